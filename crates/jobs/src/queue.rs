//! Draining the durable queue: claim due work, hand it to its handler a batch at a time,
//! retry with backoff, and bury it (state `dead`, with the reason) after its last attempt.

use async_trait::async_trait;
use futures_util::StreamExt;
use jiff::{SignedDuration, Timestamp};
use minipay_core::Clock;
use minipay_store::{AttemptedJob, QueuedJob, QueuedOutcome, Session, Store, StoreError};
use serde::Serialize;
use uuid::Uuid;

/// Why a job must be tried again later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retry(pub String);

/// Handles one kind of queued work.
#[async_trait]
pub trait QueueHandler: Send + Sync {
    /// The `kind` of queued job this handler takes.
    fn kind(&self) -> &'static str;
    /// Does the work. `Ok(true)` if it changed something, `Ok(false)` if there was nothing
    /// left to do; `Err(Retry)` to try again after a backoff.
    async fn handle(&self, job: &QueuedJob) -> Result<bool, Retry>;
    /// How long to wait before the attempt after `attempts` failed ones (default: 30 s,
    /// doubling, at most an hour).
    fn retry_delay(&self, attempts: i32) -> SignedDuration {
        backoff(attempts)
    }
    /// Called in the transaction that buries `job` after its last attempt, to leave a record
    /// of its own (a dead letter saying where the work stopped). Default: nothing.
    async fn buried(&self, _tx: &mut Session, _job: &QueuedJob, _reason: &str) -> Result<(), StoreError> {
        Ok(())
    }
    /// How many due jobs one drain claims and hands to [`QueueHandler::handle_batch`] at
    /// once. Default 50; a handler whose batch is one transaction takes more.
    fn batch_max(&self) -> u32 {
        DRAIN_BATCH_MAX
    }
    /// How many claimed jobs of this kind one drain works on at once (work that waits on a
    /// remote system overlaps its waits). Default 1: one after another.
    fn concurrency(&self) -> usize {
        1
    }
    /// Handles claimed jobs together: one answer per job, in their order. Default: `handle`
    /// each, `concurrency()` at a time. A handler that can do a batch's work in fewer
    /// transactions overrides it.
    async fn handle_batch(&self, jobs: &[QueuedJob]) -> Vec<Result<bool, Retry>> {
        // By index: a closure over `&QueuedJob` would not be `Send` for every lifetime.
        futures_util::stream::iter(0..jobs.len())
            .map(|i| self.handle(&jobs[i]))
            .buffered(self.concurrency().max(1))
            .collect()
            .await
    }
}

/// What became of one claimed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    Changed,
    Unchanged,
    Retried,
    Dead,
    /// Our lease ran out and another worker took the job over; its outcome stands.
    TakenOver,
}

/// What a drain did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QueueReport {
    /// Jobs handled that changed something.
    pub changed: u64,
    /// Jobs handled that found nothing left to do.
    pub unchanged: u64,
    pub retried: u64,
    /// Jobs buried after their last attempt.
    pub dead: u64,
}

/// Jobs claimed per batch.
const DRAIN_BATCH_MAX: u32 = 50;
/// How long a claimed job is leased to this worker before another may take it over.
const CLAIM_LEASE_SECS: i64 = 300;
/// Backoff: 30 s after the first failed attempt, doubling, at most an hour.
const RETRY_DELAY_FIRST_SECS: i64 = 30;
const RETRY_DELAY_MAX_SECS: i64 = 3_600;

/// The delay before attempt `attempts + 1`.
fn backoff(attempts: i32) -> SignedDuration {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 16)).expect("clamped");
    let secs = RETRY_DELAY_FIRST_SECS
        .saturating_mul(1 << doublings)
        .min(RETRY_DELAY_MAX_SECS);
    SignedDuration::from_secs(secs)
}

/// Handles every job of `handler.kind()` due at `at`, batch by batch (each batch handed to
/// the handler whole, and settled in one transaction). Safe to run on several instances at
/// once: claims skip each other's rows and are leased. Leases and retry times count from the
/// clock's now, whatever `at` a run by hand was given.
pub async fn drain_queue(
    store: &Store,
    clock: &dyn Clock,
    handler: &dyn QueueHandler,
    at: Timestamp,
) -> anyhow::Result<QueueReport> {
    let mut report = QueueReport::default();
    loop {
        // One statement, outside any transaction on PostgreSQL: an empty queue, the usual
        // answer to a poll, costs one round trip.
        let mut claim = store.one_statement().await?;
        let batch = claim
            .claim_queued_jobs(handler.kind(), at, claim_lease_until(clock), handler.batch_max())
            .await?;
        claim.commit().await?;
        for settled in run_batch(store, clock, handler, &batch).await? {
            match settled {
                Settled::Changed => report.changed += 1,
                Settled::Unchanged => report.unchanged += 1,
                Settled::Retried => report.retried += 1,
                Settled::Dead => report.dead += 1,
                Settled::TakenOver => {}
            }
        }
        if batch.len() < handler.batch_max() as usize {
            return Ok(report);
        }
    }
}

/// Until when a job claimed now is leased to its worker.
pub fn claim_lease_until(clock: &dyn Clock) -> Timestamp {
    clock.now() + SignedDuration::from_secs(CLAIM_LEASE_SECS)
}

/// Runs one job this worker has claimed and settles it (see [`run_batch`]).
pub async fn run_claimed(
    store: &Store,
    clock: &dyn Clock,
    handler: &dyn QueueHandler,
    job: &QueuedJob,
) -> anyhow::Result<Settled> {
    let settled = run_batch(store, clock, handler, std::slice::from_ref(job)).await?;
    Ok(settled.into_iter().next().unwrap_or(Settled::TakenOver))
}

/// Runs jobs this worker has claimed, as one batch, and settles them in one transaction: each
/// done, retried the handler's delay after this attempt began, or — after its last attempt —
/// buried with the handler's record of it.
pub async fn run_batch(
    store: &Store,
    clock: &dyn Clock,
    handler: &dyn QueueHandler,
    jobs: &[QueuedJob],
) -> anyhow::Result<Vec<Settled>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    // Retries count from when the attempt began: "10 s apart" means between attempts, however
    // long this one took.
    let started = clock.now();
    let results = handler.handle_batch(jobs).await;
    let outcomes = outcomes_of(handler, jobs, &results, started);
    let mut tx = store.begin().await?;
    let rows: Vec<_> = jobs
        .iter()
        .zip(&outcomes)
        .map(|(job, (outcome, _))| (job.id, job.attempts, *outcome))
        .collect();
    let held = tx.settle_queued_jobs(&rows, clock.now()).await?;
    let settled = bury_the_dead(&mut tx, handler, jobs, &outcomes, &held).await?;
    tx.commit().await?;
    Ok(settled)
}

/// Runs the first attempt of keyed work that has no row yet — a JetStream delivery, whose
/// message is the claim — as one batch, and records each job in the state its attempt left
/// it (done, queued for its retry, or buried after its last attempt) in one transaction: one
/// row written once. Keys `handler.kind()` has already (a message delivered again) are left
/// to their record; a key recorded meanwhile by another attempt keeps that record
/// (`TakenOver`). The handler must be idempotent: a crash between its work and the record
/// means it runs again when the message is delivered again.
pub async fn run_first_attempts(
    store: &Store,
    clock: &dyn Clock,
    handler: &dyn QueueHandler,
    items: &[(String, serde_json::Value)],
    attempts_max: i32,
) -> anyhow::Result<Vec<Settled>> {
    let keys: Vec<&str> = items.iter().map(|(key, _)| key.as_str()).collect();
    let mut seen = store.read().await?.queued_job_keys(handler.kind(), &keys).await?;
    let started = clock.now();
    let (keys, jobs): (Vec<&str>, Vec<QueuedJob>) = items
        .iter()
        .filter(|(key, _)| seen.insert(key.clone()))
        .map(|(key, payload)| {
            let job = QueuedJob {
                id: Uuid::now_v7(),
                kind: handler.kind().to_owned(),
                payload: payload.clone(),
                run_at: started,
                attempts: 1,
                attempts_max,
            };
            (key.as_str(), job)
        })
        .unzip();
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let results = handler.handle_batch(&jobs).await;
    let outcomes = outcomes_of(handler, &jobs, &results, started);
    let rows: Vec<AttemptedJob<'_>> = jobs
        .iter()
        .zip(&keys)
        .zip(&outcomes)
        .map(|((job, key), (outcome, _))| AttemptedJob {
            id: job.id,
            key,
            payload: &job.payload,
            attempts_max,
            outcome: *outcome,
        })
        .collect();
    let mut tx = store.begin().await?;
    let recorded = tx.record_attempted_jobs(handler.kind(), &rows, clock.now()).await?;
    let settled = bury_the_dead(&mut tx, handler, &jobs, &outcomes, &recorded).await?;
    tx.commit().await?;
    Ok(settled)
}

/// What became of each job whose outcome was written (`written`: this worker's write took),
/// with the handler's record of each one buried, in the transaction that buried it.
async fn bury_the_dead(
    tx: &mut Session,
    handler: &dyn QueueHandler,
    jobs: &[QueuedJob],
    outcomes: &[(QueuedOutcome<'_>, Settled)],
    written: &[bool],
) -> Result<Vec<Settled>, StoreError> {
    let mut settled = Vec::with_capacity(jobs.len());
    for ((job, (outcome, s)), written) in jobs.iter().zip(outcomes).zip(written) {
        if !written {
            tracing::warn!(job = %job.id, kind = handler.kind(), "queued job was settled by another worker before us");
            settled.push(Settled::TakenOver);
            continue;
        }
        if let QueuedOutcome::Dead { error } = outcome {
            metrics::counter!("minipay_queued_jobs_dead_total", "kind" => handler.kind()).increment(1);
            tracing::error!(job = %job.id, kind = handler.kind(), attempts = job.attempts, reason = %error,
                "queued job is dead after its last attempt");
            handler.buried(tx, job, error).await?;
        }
        settled.push(*s);
    }
    Ok(settled)
}

/// What each job's result makes of it (see [`outcome_of`]).
fn outcomes_of<'a>(
    handler: &dyn QueueHandler,
    jobs: &[QueuedJob],
    results: &'a [Result<bool, Retry>],
    started: Timestamp,
) -> Vec<(QueuedOutcome<'a>, Settled)> {
    assert_eq!(results.len(), jobs.len(), "one answer per job");
    jobs.iter()
        .zip(results)
        .map(|(job, result)| outcome_of(handler, job, result, started))
        .collect()
}

/// What a job's result makes of it: done, retried the handler's delay after `started`, or dead
/// after its last attempt.
fn outcome_of<'a>(
    handler: &dyn QueueHandler,
    job: &QueuedJob,
    result: &'a Result<bool, Retry>,
    started: Timestamp,
) -> (QueuedOutcome<'a>, Settled) {
    match result {
        Ok(true) => (QueuedOutcome::Done, Settled::Changed),
        Ok(false) => (QueuedOutcome::Done, Settled::Unchanged),
        Err(Retry(why)) if job.attempts >= job.attempts_max => (QueuedOutcome::Dead { error: why }, Settled::Dead),
        Err(Retry(why)) => {
            let at = started + handler.retry_delay(job.attempts);
            (QueuedOutcome::Retry { at, error: why }, Settled::Retried)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_thirty_seconds_up_to_an_hour() {
        assert_eq!(backoff(1), SignedDuration::from_secs(30));
        assert_eq!(backoff(2), SignedDuration::from_secs(60));
        assert_eq!(backoff(3), SignedDuration::from_secs(120));
        assert_eq!(backoff(8), SignedDuration::from_secs(3_600));
        assert_eq!(backoff(1_000), SignedDuration::from_secs(3_600));
    }
}
