//! The payments' scheduled job, registered by the payments themselves: `payment-recovery`
//! settles every payment and refund whose transfer has not moved for a minute — after a crash
//! between the bank call and its recording, or a delivery that gave up — by the same rules
//! as the consumers (ask the bank; never send an unanswered transfer again).

use crate::Payments;
use async_trait::async_trait;
use jiff::Timestamp;
use minipay_core::schedule::Schedule;
use minipay_jobs::{JobOutcome, ScheduledJob};
use serde_json::json;
use std::sync::Arc;

/// Payments (and refunds) settled per job run, at most.
const RECOVER_BATCH_MAX: u32 = 500;

/// The job and when it runs, for `minipay jobs list`.
pub const SCHEDULES: &[(&str, &str)] = &[(
    "payment-recovery",
    "every minute: settles payments and refunds whose bank transfer has not moved for a minute",
)];

/// The payments' jobs, for the job runner.
pub fn jobs(payments: &Arc<Payments>) -> Vec<Arc<dyn ScheduledJob>> {
    vec![Arc::new(RecoveryJob(payments.clone()))]
}

struct RecoveryJob(Arc<Payments>);

#[async_trait]
impl ScheduledJob for RecoveryJob {
    fn name(&self) -> &'static str {
        "payment-recovery"
    }
    fn schedule(&self) -> Schedule {
        Schedule::Every { seconds: 60 }
    }
    async fn run(&self, at: Timestamp) -> anyhow::Result<JobOutcome> {
        self.0.recover(at).await
    }
}

impl Payments {
    /// Settles what has not moved since `at - recover_after`.
    async fn recover(&self, at: Timestamp) -> anyhow::Result<JobOutcome> {
        let before = at - self.config.recover_after;
        let (payments, refunds) = {
            let mut s = self.store.read().await?;
            (
                s.unsettled_payments(before, RECOVER_BATCH_MAX).await?,
                s.unsettled_refunds(before, RECOVER_BATCH_MAX).await?,
            )
        };
        let (mut settled, mut pending) = (0u64, 0u64);
        for p in &payments {
            match self.settle_payment(p.id).await {
                Ok(()) => settled += 1,
                Err(why) => {
                    pending += 1;
                    tracing::info!(payment = %p.id, why, "payment still not settled");
                }
            }
        }
        for r in &refunds {
            match self.settle_refund(r.id).await {
                Ok(()) => settled += 1,
                Err(why) => {
                    pending += 1;
                    tracing::info!(refund = %r.id, why, "refund still not settled");
                }
            }
        }
        Ok(JobOutcome {
            processed: settled,
            details: json!({"payments": payments.len(), "refunds": refunds.len(),
                            "settled": settled, "still_pending": pending}),
        })
    }
}
