//! Accepting remittances between businesses in groups: concurrent requests share one
//! transaction — their keys read together, the remittances and their events inserted with one
//! statement each, every answer stored under its key — and each gets its own answer. A request
//! the group cannot settle (its key taken meanwhile, the group failing as a whole) is handed
//! back to run on its own.

use super::views::RemittanceView;
use super::{NewRemittance, Recipient, internal, subjects, trigger};
use async_trait::async_trait;
use minipay_core::{BusinessId, Clock, KeyOwner, RemittanceId};
use minipay_events::{Events, emit_all};
use minipay_services::group_commit::{BatchRunner, all_alone, answers_or_all_alone};
use minipay_services::idempotency::{IdempotentRequest, Reply, peek_all, record_all};
use minipay_services::{ServiceError, ServiceResult};
use minipay_store::{NewBusinessRemittance, Store, StoredResponse};
use std::collections::HashSet;
use std::sync::Arc;

/// A request for a remittance to a business, with its key.
pub(crate) struct Accept {
    pub from: BusinessId,
    pub req: NewRemittance,
    pub idem: IdempotentRequest,
}

/// A group's answer to one request: `Ok(None)` — run it on its own.
pub(crate) type Accepted = ServiceResult<Option<Reply<RemittanceView>>>;

/// Runs groups of accepts.
pub(crate) struct AcceptGroups {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub events: Events,
}

/// Where one request of a group stands.
#[allow(clippy::large_enum_variant)] // one per request of a group, for the group's duration
enum Slot {
    Answered(Accepted),
    /// Its key is free: recorded with the group under this id.
    Free(RemittanceId),
}

#[async_trait]
impl BatchRunner<Accept, Accepted> for AcceptGroups {
    async fn run(&self, group: Vec<Accept>) -> Vec<Accepted> {
        answers_or_all_alone(self.record_group(&group).await, group.len(), "remittance requests")
    }
}

impl AcceptGroups {
    async fn record_group(&self, group: &[Accept]) -> ServiceResult<Vec<Accepted>> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let keys: Vec<(KeyOwner, &IdempotentRequest)> = group.iter().map(|a| (a.from.into(), &a.idem)).collect();
        let verdicts = peek_all(&mut tx, &keys, now).await?;
        let mut seen = HashSet::new();
        let mut slots: Vec<Slot> = group
            .iter()
            .zip(verdicts)
            .map(|(a, verdict)| match verdict {
                Err(e) => Slot::Answered(Err(e)),
                Ok(Some(stored)) => Slot::Answered(Ok(Some(Reply::Replayed(stored)))),
                // The same key twice in one group: the first is recorded, the second runs on
                // its own afterwards and replays it.
                Ok(None) if !seen.insert((a.from, a.idem.key().to_owned())) => Slot::Answered(Ok(None)),
                Ok(None) => Slot::Free(RemittanceId::new()),
            })
            .collect();
        let rows: Vec<NewBusinessRemittance<'_>> = group
            .iter()
            .zip(&slots)
            .filter_map(|(a, slot)| match (slot, &a.req.to) {
                (Slot::Free(id), Recipient::Business(to)) => Some(NewBusinessRemittance {
                    id: *id,
                    from: a.from,
                    to: *to,
                    amount: a.req.amount.won(),
                    memo: a.req.memo.as_deref(),
                    reference: a.req.reference.as_deref(),
                    at: now,
                }),
                _ => None,
            })
            .collect();
        let recorded = tx.insert_remittances_to_business(&rows).await?;
        let events: Vec<_> = recorded.iter().map(|r| (subjects::REQUESTED, trigger(r.id))).collect();
        emit_all(&mut tx, &events, now).await?;
        let mut answers = Vec::with_capacity(recorded.len());
        for slot in &mut slots {
            let Slot::Free(id) = slot else { continue };
            *slot = match recorded.iter().find(|r| r.id == *id) {
                Some(r) => {
                    let view = RemittanceView::new(r, &[]);
                    let body =
                        serde_json::to_string(&view).map_err(|e| internal(&format!("a remittance view: {e}")))?;
                    answers.push(StoredResponse { status: 202, body });
                    Slot::Answered(Ok(Some(Reply::Fresh(view))))
                }
                // The recipient does not exist (a refusal stored under no key: a corrected
                // retry runs afresh).
                None => Slot::Answered(Err(ServiceError::NotFound("business"))),
            };
        }
        let stored: Vec<_> = group
            .iter()
            .zip(&slots)
            .filter(|(_, slot)| matches!(slot, Slot::Answered(Ok(Some(Reply::Fresh(_))))))
            .zip(&answers)
            .map(|((a, _), answer)| (KeyOwner::from(a.from), &a.idem, answer))
            .collect();
        if !record_all(&mut tx, &stored, now).await? {
            // Another request took one of the keys meanwhile: every request runs on its own.
            tx.rollback().await?;
            return Ok(all_alone(group.len()));
        }
        tx.commit().await?;
        if !recorded.is_empty() {
            self.events.wake();
        }
        Ok(slots
            .into_iter()
            .map(|slot| match slot {
                Slot::Answered(answer) => answer,
                Slot::Free(_) => Ok(None),
            })
            .collect())
    }
}
