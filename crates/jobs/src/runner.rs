//! Scheduled jobs: the slot claim, the catch-up window, manual runs and their history.

use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use minipay_core::Clock;
use minipay_core::schedule::Schedule;
use minipay_store::Store;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// What a run did: how many items it changed, and anything worth showing an operator.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct JobOutcome {
    pub processed: u64,
    pub details: serde_json::Value,
}

/// A job the runner schedules. Runs must be idempotent per business key (an interest run
/// for a date pays nothing the second time), so a rerun — by hand, or after a crash — is safe.
#[async_trait]
pub trait ScheduledJob: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn schedule(&self) -> Schedule;
    /// How long after its slot a run that did not happen (the instance was down) is still
    /// made at start. Only the most recent slot is ever caught up.
    fn catch_up_grace(&self) -> SignedDuration {
        match self.schedule() {
            Schedule::Daily { .. } => SignedDuration::from_hours(12),
            Schedule::Every { seconds } => SignedDuration::from_secs(seconds.saturating_mul(2)),
        }
    }
    /// Does the work as of `at` (the slot, or the time given by hand).
    async fn run(&self, at: Timestamp) -> anyhow::Result<JobOutcome>;
}

/// One run, as recorded in the history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunReport {
    pub job: String,
    /// The slot (scheduled) or the "as of" time (by hand).
    pub at: Timestamp,
    pub processed: u64,
    pub details: serde_json::Value,
    pub error: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("no job named {0:?}")]
    UnknownJob(String),
    #[error("recording the run failed")]
    Store(#[from] minipay_store::StoreError),
}

/// A claim older than this whose run never finished belongs to a dead instance: the slot may
/// be taken over (the jobs are idempotent, so finishing the work twice is safe).
const CLAIM_LEASE_MINS: i64 = 30;

/// Runs scheduled jobs once per slot across instances, and jobs by hand.
pub struct JobRunner {
    store: Store,
    clock: Arc<dyn Clock>,
    jobs: Vec<Arc<dyn ScheduledJob>>,
    /// Names this process in the run history.
    instance: String,
}

impl JobRunner {
    pub fn new(store: Store, clock: Arc<dyn Clock>, jobs: Vec<Arc<dyn ScheduledJob>>) -> Self {
        let instance = format!(
            "{}-{}",
            std::process::id(),
            &uuid::Uuid::now_v7().simple().to_string()[24..]
        );
        Self {
            store,
            clock,
            jobs,
            instance,
        }
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.jobs.iter().map(|j| j.name()).collect()
    }

    fn job(&self, name: &str) -> Option<&Arc<dyn ScheduledJob>> {
        self.jobs.iter().find(|j| j.name() == name)
    }

    /// Runs `name` by hand as of `at` and records the run. A job that fails is reported with
    /// its error, not as an `Err`: the run happened and is in the history.
    pub async fn run_by_hand(&self, name: &str, at: Timestamp) -> Result<RunReport, RunError> {
        let job = self
            .job(name)
            .ok_or_else(|| RunError::UnknownJob(name.to_owned()))?
            .clone();
        let mut tx = self.store.begin().await?;
        let run = tx.insert_manual_run(name, at, &self.instance, self.clock.now()).await?;
        tx.commit().await?;
        self.execute(&job, run, at).await
    }

    /// One pass of the scheduler: each job's most recent slot, if still within its catch-up
    /// window and not yet claimed by any instance, is claimed and run here.
    pub async fn tick(&self) -> Vec<RunReport> {
        let now = self.clock.now();
        let mut reports = Vec::new();
        for job in &self.jobs {
            let slot = job.schedule().slot_at_or_before(now);
            if now.duration_since(slot) > job.catch_up_grace() {
                continue;
            }
            match self.claim(job.name(), slot, now).await {
                Ok(Some(run)) => match self.execute(job, run, slot).await {
                    Ok(report) => reports.push(report),
                    Err(e) => tracing::error!(job = job.name(), error = %e, "recording a job run failed"),
                },
                Ok(None) => {}
                Err(e) => tracing::warn!(job = job.name(), error = %e, "claiming a job slot failed"),
            }
        }
        reports
    }

    async fn claim(&self, name: &str, slot: Timestamp, now: Timestamp) -> Result<Option<uuid::Uuid>, RunError> {
        let stale_before = now - SignedDuration::from_mins(CLAIM_LEASE_MINS);
        // A cheap read first: most ticks find the slot taken, and need no write transaction.
        match self.store.read().await?.job_slot(name, slot).await? {
            Some((_, true)) => return Ok(None),
            Some((started, false)) if started >= stale_before => return Ok(None),
            _ => {}
        }
        let mut tx = self.store.begin().await?;
        let claimed = tx.claim_job_slot(name, slot, &self.instance, now, stale_before).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn execute(
        &self,
        job: &Arc<dyn ScheduledJob>,
        run: uuid::Uuid,
        at: Timestamp,
    ) -> Result<RunReport, RunError> {
        let started = std::time::Instant::now();
        let result = job.run(at).await;
        let (outcome, error) = match result {
            Ok(outcome) => (outcome, None),
            Err(e) => {
                tracing::error!(job = job.name(), error = ?e, "job run failed");
                metrics::counter!("minipay_job_failures_total", "job" => job.name()).increment(1);
                (JobOutcome::default(), Some(format!("{e:#}")))
            }
        };
        metrics::histogram!("minipay_job_run_seconds", "job" => job.name()).record(started.elapsed().as_secs_f64());
        let processed = i64::try_from(outcome.processed).unwrap_or(i64::MAX);
        let mut tx = self.store.begin().await?;
        tx.finish_job_run(run, self.clock.now(), processed, &outcome.details, error.as_deref())
            .await?;
        tx.commit().await?;
        Ok(RunReport {
            job: job.name().to_owned(),
            at,
            processed: outcome.processed,
            details: outcome.details,
            error,
        })
    }

    /// Ticks every `interval` until `shutdown` resolves; the first tick, at start, is the
    /// catch-up of missed slots.
    pub async fn run_scheduler(self: Arc<Self>, interval: Duration, shutdown: impl Future<Output = ()> + Send) {
        tokio::pin!(shutdown);
        loop {
            for r in self.tick().await {
                tracing::info!(job = %r.job, slot = %r.at, processed = r.processed, error = ?r.error, "scheduled run");
            }
            tokio::select! {
                _ = &mut shutdown => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    }
}
