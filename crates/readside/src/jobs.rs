//! The read side's scheduled job, registered by itself: `approval-reconciliation` at 06:00
//! Asia/Seoul reconciles the previous business day of every upstream that serves a settlement
//! file, once per slot.

use crate::{ReadSide, terms};
use async_trait::async_trait;
use jiff::Timestamp;
use minipay_core::BusinessDate;
use minipay_core::schedule::Schedule;
use minipay_jobs::{JobOutcome, ScheduledJob};
use serde_json::json;
use std::sync::Arc;

/// The jobs and when they run, for `minipay jobs list`.
pub const SCHEDULES: &[(&str, &str)] = &[(
    "approval-reconciliation",
    "daily 06:00 Asia/Seoul: the previous day of every upstream with a settlement_url, against its settlement file",
)];

/// The read side's jobs, for the job runner.
pub fn jobs(readside: &Arc<ReadSide>) -> Vec<Arc<dyn ScheduledJob>> {
    vec![Arc::new(ReconciliationJob(readside.clone()))]
}

struct ReconciliationJob(Arc<ReadSide>);

#[async_trait]
impl ScheduledJob for ReconciliationJob {
    fn name(&self) -> &'static str {
        "approval-reconciliation"
    }
    fn schedule(&self) -> Schedule {
        Schedule::Daily { hour: 6, minute: 0 }
    }
    async fn run(&self, at: Timestamp) -> anyhow::Result<JobOutcome> {
        let day = BusinessDate::containing(at).date().yesterday()?;
        let upstreams = terms::current(&self.0.store).await?;
        let mut results = Vec::new();
        let mut failed = Vec::new();
        for t in upstreams.iter().filter(|t| t.settlement_url.is_some()) {
            // One upstream that cannot be reached does not keep the others from reconciling.
            match self.0.reconcile(&t.id, day, None).await {
                Ok(r) => results.push(json!({"upstream": t.id, "id": r.id, "clean": r.items.is_empty(),
                    "matched": r.matched, "missing_here": r.missing_here, "missing_there": r.missing_there,
                    "amount_mismatch": r.amount_mismatch})),
                Err(e) => failed.push(json!({"upstream": t.id, "error": e.to_string()})),
            }
        }
        if !failed.is_empty() {
            anyhow::bail!(
                "reconciling {day} failed for {}: {failed:?} (done: {results:?})",
                failed.len()
            );
        }
        Ok(JobOutcome {
            processed: results.len() as u64,
            details: json!({"date": day, "upstreams": results}),
        })
    }
}
