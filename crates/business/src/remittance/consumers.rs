//! The two consumers that move a remittance: the collect side on `remittance.requested`, the
//! payout side on `remittance.credited`. Each is idempotent by the remittance's status (an
//! event handled twice finds nothing left to do); the last failure of a delivery becomes a
//! dead letter naming the step the remittance stopped at.

use super::steps::{Side, StepFailure};
use super::{Remittances, subjects};
use async_trait::async_trait;
use jiff::Timestamp;
use minipay_core::RemittanceId;
use minipay_events::{Consumer, Event, Failure, RetryPolicy};
use minipay_store::{DeadLetter, NewDeadLetter, Session, StoreError};
use std::sync::Arc;

/// Remittances one instance works on at once per side (their bank calls overlap).
const SIDE_CONCURRENCY_MAX: usize = 64;

/// The consumers to start with the event engine.
pub fn consumers(remittances: &Arc<Remittances>) -> Vec<Arc<dyn Consumer>> {
    vec![
        Arc::new(SideConsumer {
            remittances: remittances.clone(),
            side: Side::Collect,
        }),
        Arc::new(SideConsumer {
            remittances: remittances.clone(),
            side: Side::Payout,
        }),
    ]
}

struct SideConsumer {
    remittances: Arc<Remittances>,
    side: Side,
}

#[derive(serde::Deserialize)]
struct Trigger {
    remittance_id: RemittanceId,
}

fn remittance_of(event: &Event) -> Result<RemittanceId, Failure> {
    event
        .data::<Trigger>()
        .map(|t| t.remittance_id)
        .map_err(|e| Failure::new(format!("an event without a remittance id: {e}")))
}

#[async_trait]
impl Consumer for SideConsumer {
    fn name(&self) -> &'static str {
        match self.side {
            Side::Collect => "remittance-collect",
            Side::Payout => "remittance-payout",
        }
    }

    fn subject(&self) -> &'static str {
        match self.side {
            Side::Collect => subjects::REQUESTED,
            Side::Payout => subjects::CREDITED,
        }
    }

    fn retry_policy(&self) -> RetryPolicy {
        let config = self.remittances.config();
        RetryPolicy {
            attempts_max: config.attempts_max,
            delay: config.retry_delay,
        }
    }

    fn concurrency(&self) -> usize {
        SIDE_CONCURRENCY_MAX
    }

    async fn handle(&self, event: &Event) -> Result<(), Failure> {
        minipay_events::as_batch_of_one(self, event).await
    }

    /// The whole batch advanced together (one transaction per step, bank calls overlapped).
    async fn handle_batch(&self, events: &[Event]) -> Vec<Result<(), Failure>> {
        let ids: Vec<Result<RemittanceId, Failure>> = events.iter().map(remittance_of).collect();
        let valid: Vec<RemittanceId> = ids.iter().filter_map(|id| id.as_ref().ok().copied()).collect();
        let mut advanced = self.remittances.advance_batch(&valid, self.side).await.into_iter();
        ids.into_iter()
            .map(|id| {
                id?;
                advanced
                    .next()
                    .unwrap_or(Ok(()))
                    .map_err(|StepFailure { step, reason }| Failure::new(format!("{}: {reason}", step.as_str())))
            })
            .collect()
    }

    /// The dead letter names the step the remittance stopped at (its failing point) and comes
    /// due for the `remittance-retry` job's first round.
    async fn dead_letter(
        &self,
        tx: &mut Session,
        event: &Event,
        attempts: i32,
        reason: &str,
        now: Timestamp,
    ) -> Result<Option<DeadLetter>, StoreError> {
        let Ok(id) = remittance_of(event) else {
            return Ok(None); // a malformed event: its delivery stays dead, with the reason
        };
        let Some(r) = tx.remittance(id).await? else {
            return Ok(None);
        };
        let (step, kind) = Remittances::dead_letter_kind_of(&r);
        tx.insert_dead_letter(
            &NewDeadLetter {
                kind: &kind,
                subject_id: id.as_uuid(),
                step: step.as_str(),
                consumer: Some(self.name()),
                event_id: Some(event.id),
                attempts,
                error: reason,
                next_attempt_at: Some(now + self.remittances.config().retry_round_delay),
            },
            now,
        )
        .await
        .map(Some)
    }
}
