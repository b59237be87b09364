//! The jobs minipay runs, and when: each is a `ScheduledJob` for the runner (once per slot
//! across instances) that can also be run by hand "as of" a time.

use crate::Wallet;
use crate::charges::RECOVER_CHARGE;
use crate::savings::{AUTO_DEBIT_TIME, INTEREST_TIME};
use async_trait::async_trait;
use jiff::Timestamp;
use minipay_core::ChargeId;
use minipay_core::schedule::Schedule;
use minipay_jobs::{JobOutcome, JobRunner, QueueHandler, Retry, ScheduledJob, drain_queue};
use minipay_store::QueuedJob;
use serde_json::json;
use std::sync::Arc;

/// When history retention runs (Seoul): a quiet hour, before the 04:00 interest run.
const HISTORY_RETENTION_TIME: jiff::civil::Time = jiff::civil::Time::constant(3, 0, 0, 0);

/// Expired idempotency records deleted per statement.
const IDEMPOTENCY_PURGE_BATCH_MAX: u32 = 1_000;

/// Every job this build runs, by name and schedule (times are Asia/Seoul).
pub fn all_jobs(wallet: &Arc<Wallet>) -> Vec<Arc<dyn ScheduledJob>> {
    let job = |name, schedule, kind| -> Arc<dyn ScheduledJob> {
        Arc::new(WalletJob {
            wallet: wallet.clone(),
            name,
            schedule,
            kind,
        })
    };
    vec![
        job(
            "pending-reminders",
            Schedule::Every { seconds: 60 },
            Kind::PendingReminders,
        ),
        job("pending-expiry", Schedule::Every { seconds: 60 }, Kind::PendingExpiry),
        job("savings-interest", daily(INTEREST_TIME), Kind::SavingsInterest),
        job("savings-auto-debit", daily(AUTO_DEBIT_TIME), Kind::SavingsAutoDebit),
        job("charge-recovery", Schedule::Every { seconds: 10 }, Kind::ChargeRecovery),
        job(
            "idempotency-cleanup",
            Schedule::Every { seconds: 3_600 },
            Kind::IdempotencyCleanup,
        ),
        job("housekeeping", Schedule::Every { seconds: 3_600 }, Kind::Housekeeping),
        job(
            "history-partitions",
            Schedule::Every { seconds: 3_600 },
            Kind::HistoryPartitions,
        ),
        job(
            "history-retention",
            daily(HISTORY_RETENTION_TIME),
            Kind::HistoryRetention,
        ),
    ]
}

fn daily(t: jiff::civil::Time) -> Schedule {
    Schedule::Daily {
        hour: t.hour(),
        minute: t.minute(),
    }
}

/// The runner for the wallet's jobs and `more` (the other systems register their own).
pub fn job_runner(wallet: &Arc<Wallet>, more: Vec<Arc<dyn ScheduledJob>>) -> JobRunner {
    let mut jobs = all_jobs(wallet);
    jobs.extend(more);
    JobRunner::new(wallet.store().clone(), wallet.clock().clone(), jobs)
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    PendingReminders,
    PendingExpiry,
    SavingsInterest,
    SavingsAutoDebit,
    ChargeRecovery,
    IdempotencyCleanup,
    Housekeeping,
    HistoryPartitions,
    HistoryRetention,
}

struct WalletJob {
    wallet: Arc<Wallet>,
    name: &'static str,
    schedule: Schedule,
    kind: Kind,
}

#[async_trait]
impl ScheduledJob for WalletJob {
    fn name(&self) -> &'static str {
        self.name
    }

    fn schedule(&self) -> Schedule {
        self.schedule
    }

    async fn run(&self, at: Timestamp) -> anyhow::Result<JobOutcome> {
        let w = &self.wallet;
        Ok(match self.kind {
            Kind::PendingReminders => counted(w.remind_pending_transfers(at).await?),
            Kind::PendingExpiry => counted(w.expire_pending_transfers(at).await?),
            Kind::SavingsInterest => {
                let r = w.pay_interest(at).await?;
                JobOutcome {
                    processed: r.paid_accounts,
                    details: serde_json::to_value(r)?,
                }
            }
            Kind::SavingsAutoDebit => {
                let r = w.run_auto_debits(at).await?;
                JobOutcome {
                    processed: r.completed + r.failed,
                    details: serde_json::to_value(r)?,
                }
            }
            Kind::ChargeRecovery => {
                let handler = RecoverCharges { wallet: w.clone() };
                let r = drain_queue(w.store(), w.clock().as_ref(), &handler, at).await?;
                JobOutcome {
                    processed: r.changed,
                    details: serde_json::to_value(r)?,
                }
            }
            Kind::IdempotencyCleanup => counted(w.purge_idempotency_keys(at).await?),
            Kind::Housekeeping => counted(w.housekeeping(at).await?),
            Kind::HistoryPartitions => counted(w.make_history_partitions(at).await?),
            Kind::HistoryRetention => {
                let r = w.retire_history(at).await?;
                JobOutcome {
                    processed: r.entries,
                    details: serde_json::to_value(r)?,
                }
            }
        })
    }
}

fn counted(n: u64) -> JobOutcome {
    JobOutcome {
        processed: n,
        details: json!({}),
    }
}

/// Settles charges whose requests may have died (the `charge.recover` queued jobs).
struct RecoverCharges {
    wallet: Arc<Wallet>,
}

#[async_trait]
impl QueueHandler for RecoverCharges {
    fn kind(&self) -> &'static str {
        RECOVER_CHARGE
    }

    async fn handle(&self, job: &QueuedJob) -> Result<bool, Retry> {
        let id: ChargeId = job.payload["charge_id"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Retry(format!("malformed payload {}", job.payload)))?;
        self.wallet.recover_charge_by_id(id).await.map_err(Retry)
    }
}

/// Finished queued work is kept this long (for inspection), then deleted.
const QUEUED_JOBS_DONE_KEPT_DAYS: i64 = 7;
/// The run history is kept this long.
const JOB_RUNS_KEPT_DAYS: i64 = 30;
/// Rows deleted per statement by the housekeeping job.
const HOUSEKEEPING_BATCH_MAX: u32 = 1_000;

impl Wallet {
    /// Deletes finished queued work and old job runs, in bounded batches.
    async fn housekeeping(&self, at: Timestamp) -> anyhow::Result<u64> {
        let days = |n: i64| at - jiff::SignedDuration::from_hours(24 * n);
        let mut total = 0;
        loop {
            let mut tx = self.store.begin().await?;
            let n = tx
                .purge_done_jobs(days(QUEUED_JOBS_DONE_KEPT_DAYS), HOUSEKEEPING_BATCH_MAX)
                .await?
                + tx.purge_job_runs(days(JOB_RUNS_KEPT_DAYS), HOUSEKEEPING_BATCH_MAX)
                    .await?;
            tx.commit().await?;
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }

    /// Deletes idempotency records past their retention, in bounded batches.
    async fn purge_idempotency_keys(&self, at: Timestamp) -> anyhow::Result<u64> {
        let mut total = 0;
        loop {
            let mut tx = self.store.begin().await?;
            let n = tx.purge_idempotency_keys(at, IDEMPOTENCY_PURGE_BATCH_MAX).await?;
            tx.commit().await?;
            total += n;
            if n < u64::from(IDEMPOTENCY_PURGE_BATCH_MAX) {
                return Ok(total);
            }
        }
    }
}

/// What a job's name looks like (`JOB_NAME_PATTERN` says the same for the API document).
pub fn is_job_name(s: &str) -> bool {
    (1..=JOB_NAME_LEN_MAX).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

pub const JOB_NAME_LEN_MAX: usize = 64;
pub const JOB_NAME_PATTERN: &str = "^[a-z0-9-]{1,64}$";

impl Wallet {
    /// The job run history, newest first; `job` filters by name (a job this build no longer
    /// runs still finds its old runs, so any well-formed name is taken).
    pub async fn job_runs(
        &self,
        job: Option<&str>,
        limit: minipay_core::request::PageLimit,
        cursor: Option<&str>,
    ) -> crate::ServiceResult<crate::views::Page<minipay_store::JobRun>> {
        if job.is_some_and(|j| !is_job_name(j)) {
            return Err(crate::ServiceError::validation(
                "job must be a job's name: lowercase letters, digits and dashes",
            ));
        }
        let after = cursor.map(crate::pagination::decode_cursor).transpose()?;
        let rows = self
            .store
            .read()
            .await?
            .job_runs(job, after, crate::pagination::rows_for(limit))
            .await?;
        Ok(crate::pagination::page_of(rows, limit, |r| (r.started_at, r.id), |r| r))
    }
}

/// The jobs and when they run, for `minipay jobs list` and the docs (times Asia/Seoul).
pub const SCHEDULES: &[(&str, &str)] = &[
    ("pending-reminders", "every minute: one reminder when 24 hours are left"),
    (
        "pending-expiry",
        "every minute: expire pending transfers after 72 hours",
    ),
    (
        "savings-interest",
        "daily 04:00: one day of simple interest per savings account",
    ),
    (
        "savings-auto-debit",
        "daily 08:00: fixed savings daily_amount from the main account",
    ),
    (
        "charge-recovery",
        "every 10 seconds: settle bank pulls whose outcome is unknown",
    ),
    (
        "idempotency-cleanup",
        "hourly: delete idempotency records past 48 hours",
    ),
    (
        "housekeeping",
        "hourly: delete finished queued work after 7 days and job runs after 30 days",
    ),
    (
        "history-partitions",
        "hourly: this month's and the next 3 months' history partitions exist",
    ),
    (
        "history-retention",
        "daily 03:00: archive and retire history months older than 12 months",
    ),
];
