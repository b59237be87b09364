//! Draining the durable queue: claim due work, hand it to its handler, retry with backoff,
//! and bury it (state `dead`, with the reason) after its last attempt.

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use minipay_core::Clock;
use minipay_store::{QueuedJob, QueuedOutcome, Store};
use serde::Serialize;

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

/// Handles every job of `handler.kind()` due at `at`, batch by batch. Safe to run on several
/// instances at once: claims skip each other's rows and are leased. Leases and retry times
/// count from the clock's now, whatever `at` a run by hand was given.
pub async fn drain_queue(
    store: &Store,
    clock: &dyn Clock,
    handler: &dyn QueueHandler,
    at: Timestamp,
) -> anyhow::Result<QueueReport> {
    let mut report = QueueReport::default();
    loop {
        let mut tx = store.begin().await?;
        let lease = clock.now() + SignedDuration::from_secs(CLAIM_LEASE_SECS);
        let batch = tx.claim_queued_jobs(handler.kind(), at, lease, DRAIN_BATCH_MAX).await?;
        tx.commit().await?;
        let claimed = batch.len();
        for job in &batch {
            let result = handler.handle(job).await;
            let outcome = match &result {
                Ok(changed) => {
                    if *changed {
                        report.changed += 1;
                    } else {
                        report.unchanged += 1;
                    }
                    QueuedOutcome::Done
                }
                Err(Retry(why)) if job.attempts >= job.attempts_max => {
                    report.dead += 1;
                    metrics::counter!("minipay_queued_jobs_dead_total", "kind" => handler.kind()).increment(1);
                    tracing::error!(job = %job.id, kind = handler.kind(), attempts = job.attempts, reason = %why,
                        "queued job is dead after its last attempt; it needs a person");
                    QueuedOutcome::Dead { error: why }
                }
                Err(Retry(why)) => {
                    report.retried += 1;
                    QueuedOutcome::Retry {
                        at: clock.now() + backoff(job.attempts),
                        error: why,
                    }
                }
            };
            let mut tx = store.begin().await?;
            if !tx.settle_queued_job(job.id, job.attempts, outcome, clock.now()).await? {
                // Our lease ran out and another worker took the job over; its outcome stands.
                tracing::warn!(job = %job.id, kind = handler.kind(), "queued job was taken over before we settled it");
            }
            tx.commit().await?;
        }
        if claimed < DRAIN_BATCH_MAX as usize {
            return Ok(report);
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
