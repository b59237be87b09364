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

/// A run that has not beaten for this long without finishing belongs to a dead instance: the
/// slot may be taken over (the jobs are idempotent, so finishing the work twice is safe).
const CLAIM_STALE_SECS: i64 = 300;
/// A running job beats this often.
const HEARTBEAT_SECS: u64 = 30;
/// A slot whose run failed is tried again after this long (while still in its grace window).
const FAILED_RETRY_SECS: i64 = 60;

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

    /// One scheduler pass over every job (each as of its own reading of the clock).
    pub async fn tick(&self) -> Vec<RunReport> {
        let mut reports = Vec::new();
        for job in &self.jobs {
            reports.extend(self.tick_job(job).await);
        }
        reports
    }

    /// If `job`'s most recent slot is within its catch-up window and nobody has run it (or its
    /// run failed, or its instance died), claims it and runs it here.
    async fn tick_job(&self, job: &Arc<dyn ScheduledJob>) -> Option<RunReport> {
        let now = self.clock.now();
        let slot = job.schedule().slot_at_or_before(now);
        if now.duration_since(slot) > job.catch_up_grace() {
            return None;
        }
        let run = match self.claim(job.name(), slot, now).await {
            Ok(Some(run)) => run,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(job = job.name(), error = %e, "claiming a job slot failed");
                return None;
            }
        };
        match self.execute(job, run, slot).await {
            Ok(report) => Some(report),
            Err(e) => {
                tracing::error!(job = job.name(), error = %e, "recording a job run failed");
                None
            }
        }
    }

    async fn claim(&self, name: &str, slot: Timestamp, now: Timestamp) -> Result<Option<uuid::Uuid>, RunError> {
        let stale_before = now - SignedDuration::from_secs(CLAIM_STALE_SECS);
        let retry_before = now - SignedDuration::from_secs(FAILED_RETRY_SECS);
        // A cheap read first: most ticks find the slot taken, and need no write transaction.
        if let Some(state) = self.store.read().await?.job_slot(name, slot).await? {
            let retry = state.failed && state.finished_at.is_some_and(|f| f < retry_before);
            let dead = state.finished_at.is_none() && state.last_sign_of_life < stale_before;
            if !retry && !dead {
                return Ok(None);
            }
        }
        let mut tx = self.store.begin().await?;
        let claimed = tx
            .claim_job_slot(name, slot, &self.instance, now, stale_before, retry_before)
            .await?;
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
        let heartbeat = self.heartbeat(run);
        let result = job.run(at).await;
        heartbeat.abort();
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

    /// Beats for `run` every `HEARTBEAT_SECS` until aborted.
    fn heartbeat(&self, run: uuid::Uuid) -> tokio::task::JoinHandle<()> {
        let (store, clock) = (self.store.clone(), self.clock.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(HEARTBEAT_SECS)).await;
                let beat = async {
                    let mut tx = store.begin().await?;
                    tx.beat_job_run(run, clock.now()).await?;
                    tx.commit().await
                };
                if let Err(e) = beat.await {
                    tracing::warn!(error = %e, "job heartbeat failed");
                }
            }
        })
    }

    /// Runs every job's own loop — a slow job never delays the others — until `shutdown`
    /// resolves, then stops them (an interrupted run is safe: its transaction rolls back and
    /// the jobs are idempotent). Each loop's first pass, at start, catches up a missed slot.
    pub async fn run_scheduler(self: Arc<Self>, interval: Duration, shutdown: impl Future<Output = ()> + Send) {
        let loops: Vec<_> = self
            .jobs
            .iter()
            .cloned()
            .map(|job| {
                let runner = self.clone();
                tokio::spawn(async move {
                    loop {
                        if let Some(r) = runner.tick_job(&job).await {
                            tracing::info!(job = %r.job, slot = %r.at, processed = r.processed, error = ?r.error,
                                "scheduled run");
                        }
                        tokio::time::sleep(interval).await;
                    }
                })
            })
            .collect();
        shutdown.await;
        for l in loops {
            l.abort();
        }
    }
}
