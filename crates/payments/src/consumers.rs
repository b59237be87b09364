//! The two consumers that settle with the bank: the pull side on `payment.accepted`, the push
//! side on `refund.accepted`. Each is idempotent by the row's status (an event handled twice
//! finds nothing left to do); a transfer not settled after the last delivery is left to the
//! `payment-recovery` job, with a dead letter naming it.

use crate::{Payments, subjects};
use async_trait::async_trait;
use minipay_core::{PaymentId, RefundId};
use minipay_events::{Consumer, Event, Failure, RetryPolicy};
use std::sync::Arc;

/// Payments (or refunds) one instance settles at once (their bank calls overlap).
const CONCURRENCY_MAX: usize = 64;

/// The consumers to start with the event engine.
pub fn consumers(payments: &Arc<Payments>) -> Vec<Arc<dyn Consumer>> {
    vec![
        Arc::new(PullConsumer(payments.clone())),
        Arc::new(PushConsumer(payments.clone())),
    ]
}

struct PullConsumer(Arc<Payments>);
struct PushConsumer(Arc<Payments>);

#[derive(serde::Deserialize)]
struct PaymentTrigger {
    payment_id: PaymentId,
}

#[derive(serde::Deserialize)]
struct RefundTrigger {
    refund_id: RefundId,
}

fn retry_policy(payments: &Payments) -> RetryPolicy {
    RetryPolicy {
        attempts_max: payments.config().attempts_max,
        delay: payments.config().retry_delay,
    }
}

#[async_trait]
impl Consumer for PullConsumer {
    fn name(&self) -> &'static str {
        "payment-pull"
    }
    fn subject(&self) -> &'static str {
        subjects::ACCEPTED
    }
    fn retry_policy(&self) -> RetryPolicy {
        retry_policy(&self.0)
    }
    fn concurrency(&self) -> usize {
        CONCURRENCY_MAX
    }
    async fn handle(&self, event: &Event) -> Result<(), Failure> {
        minipay_events::as_batch_of_one(self, event).await
    }

    /// The whole batch settled together (two transactions, the pulls overlapped).
    async fn handle_batch(&self, events: &[Event]) -> Vec<Result<(), Failure>> {
        let payments = &self.0;
        settle_together(
            events,
            payment_of,
            |ids| async move { payments.settle_payments(&ids).await },
        )
        .await
    }
}

/// The id each event names; the valid ones settled together by `settle` (one answer per id,
/// in order); one answer per event.
async fn settle_together<T: Copy, F, Fut>(
    events: &[Event],
    id_of: fn(&Event) -> Result<T, Failure>,
    settle: F,
) -> Vec<Result<(), Failure>>
where
    F: FnOnce(Vec<T>) -> Fut,
    Fut: std::future::Future<Output = Vec<Result<(), String>>>,
{
    let ids: Vec<Result<T, Failure>> = events.iter().map(id_of).collect();
    let valid: Vec<T> = ids.iter().filter_map(|id| id.as_ref().ok().copied()).collect();
    let mut settled = settle(valid).await.into_iter();
    ids.into_iter()
        .map(|id| {
            id?;
            settled.next().unwrap_or(Ok(())).map_err(Failure::new)
        })
        .collect()
}

fn refund_of(event: &Event) -> Result<RefundId, Failure> {
    event
        .data::<RefundTrigger>()
        .map(|t| t.refund_id)
        .map_err(|e| Failure::new(format!("an event without a refund id: {e}")))
}

fn payment_of(event: &Event) -> Result<PaymentId, Failure> {
    event
        .data::<PaymentTrigger>()
        .map(|t| t.payment_id)
        .map_err(|e| Failure::new(format!("an event without a payment id: {e}")))
}

#[async_trait]
impl Consumer for PushConsumer {
    fn name(&self) -> &'static str {
        "refund-push"
    }
    fn subject(&self) -> &'static str {
        subjects::REFUND_ACCEPTED
    }
    fn retry_policy(&self) -> RetryPolicy {
        retry_policy(&self.0)
    }
    fn concurrency(&self) -> usize {
        CONCURRENCY_MAX
    }
    async fn handle(&self, event: &Event) -> Result<(), Failure> {
        minipay_events::as_batch_of_one(self, event).await
    }

    async fn handle_batch(&self, events: &[Event]) -> Vec<Result<(), Failure>> {
        let payments = &self.0;
        settle_together(
            events,
            refund_of,
            |ids| async move { payments.settle_refunds(&ids).await },
        )
        .await
    }
}

// The triggers' shapes are written in one place (accept.rs) and read here.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::accept::{refund_trigger, trigger};

    #[test]
    fn triggers_are_read_back() {
        let p = PaymentId::new();
        let t: PaymentTrigger = serde_json::from_value(trigger(p)).unwrap();
        assert_eq!(t.payment_id, p);
        let r = RefundId::new();
        let t: RefundTrigger = serde_json::from_value(refund_trigger(r)).unwrap();
        assert_eq!(t.refund_id, r);
    }
}
