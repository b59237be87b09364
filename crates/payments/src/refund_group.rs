//! Accepting refunds in groups: concurrent refund requests share one transaction — their keys
//! read together, each refund's amount taken from its payment and its row written, their events,
//! every answer stored under its key, and last every refund's money taken from its business's
//! balance under one set of account locks — so the accounts every refund locks (refunds in
//! transit) are locked once per group, not once per refund, and one commit answers many. A
//! request the group does not record (its key taken, its payment not giving the amount, a
//! balance short, the group failing as a whole) is handed back to run on its own, which says why.

use crate::accept::{RefundAsked, order_label, refund_trigger, stored_answer, take_refunds};
use crate::accept_group::count_committed_group;
use crate::views::RefundView;
use crate::{NewRefund, subjects};
use async_trait::async_trait;
use minipay_core::ledger::BalancePosting;
use minipay_core::{BusinessId, Clock, KeyOwner, PaymentId};
use minipay_events::{Events, emit_all};
use minipay_services::balances::{BalanceTake, take_all_from_balances};
use minipay_services::group_commit::{BatchRunner, OrAlone, all_alone, answers_or_all_alone};
use minipay_services::idempotency::{IdempotentRequest, Reply, peek_all, record_all};
use minipay_services::{ServiceError, ServiceResult};
use minipay_store::{Store, StoredResponse};
use std::collections::HashSet;
use std::sync::Arc;

/// A refund request, with its key.
pub(crate) struct AcceptRefund {
    pub business: BusinessId,
    pub payment: PaymentId,
    pub req: NewRefund,
    pub idem: IdempotentRequest,
}

/// A group's answer to one request: `Ok(None)` — run it on its own.
pub(crate) type RefundAccepted = OrAlone<Reply<RefundView>>;

/// Runs groups of refund requests.
pub(crate) struct RefundGroups {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub events: Events,
}

#[async_trait]
impl BatchRunner<AcceptRefund, RefundAccepted> for RefundGroups {
    async fn run(&self, group: Vec<AcceptRefund>) -> Vec<RefundAccepted> {
        answers_or_all_alone(self.record_group(&group).await, group.len(), "refund requests")
    }
}

/// A refund the group recorded: its place in the group, its order (for the ledger), its answer.
struct Recorded {
    at: usize,
    order: String,
    answer: StoredResponse,
}

impl RefundGroups {
    async fn record_group(&self, group: &[AcceptRefund]) -> ServiceResult<Vec<RefundAccepted>> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let keys: Vec<(KeyOwner, &IdempotentRequest)> = group.iter().map(|a| (a.business.into(), &a.idem)).collect();
        let verdicts = peek_all(&mut tx, &keys, now).await?;
        let mut answers: Vec<RefundAccepted> = Vec::with_capacity(group.len());
        // The requests to record here, by place in the group.
        let mut fresh: Vec<usize> = Vec::new();
        let mut seen = HashSet::new();
        for (i, (a, verdict)) in group.iter().zip(verdicts).enumerate() {
            answers.push(match verdict {
                Err(e) => Err(e),
                Ok(Some(replayed)) => Ok(Some(Reply::Replayed(replayed))),
                // The same key twice in one group: the first is recorded here, the second runs
                // on its own afterwards (and replays it).
                Ok(None) if !seen.insert((a.business, a.idem.key().to_owned())) => Ok(None),
                Ok(None) => {
                    fresh.push(i);
                    Ok(None)
                }
            });
        }
        // The payments' rows are taken in one order by every group, so that two groups never
        // wait for each other's.
        fresh.sort_by_key(|&i| group[i].payment.as_uuid());
        let asked: Vec<RefundAsked> = fresh
            .iter()
            .map(|&i| RefundAsked {
                business: group[i].business,
                payment: group[i].payment,
                req: &group[i].req,
            })
            .collect();
        let taken = take_refunds(&mut tx, &asked, now).await?;
        let mut recorded: Vec<Recorded> = Vec::new();
        let mut events = Vec::new();
        // Not given by its payment: on its own, it is told why.
        for (i, (p, refund)) in fresh.into_iter().zip(taken).filter_map(|(i, t)| Some((i, t?))) {
            events.push((subjects::REFUND_ACCEPTED, refund_trigger(refund.id)));
            let view = RefundView::from(&refund);
            recorded.push(Recorded {
                at: i,
                order: order_label(&p),
                answer: stored_answer(&view)?,
            });
            answers[i] = Ok(Some(Reply::Fresh(view)));
        }
        emit_all(&mut tx, &events, now).await?;
        let to_record: Vec<(KeyOwner, &IdempotentRequest, &StoredResponse)> = recorded
            .iter()
            .map(|r| (KeyOwner::from(group[r.at].business), &group[r.at].idem, &r.answer))
            .collect();
        if !record_all(&mut tx, &to_record, now).await? {
            // Another request took one of the keys meanwhile: every request runs on its own.
            tx.rollback().await?;
            return Ok(all_alone(group.len()));
        }
        // The money last, right before the commit (see `record_refund`), for every refund at once.
        let takes: Vec<BalanceTake> = recorded
            .iter()
            .map(|r| BalanceTake {
                posting: BalancePosting::RefundTaken,
                business: group[r.at].business,
                counterparty: &r.order,
                amount: group[r.at].req.amount,
            })
            .collect();
        match take_all_from_balances(&mut tx, &takes, "refund", now).await {
            Ok(()) => {}
            // A balance short of its business's refunds here: each runs on its own, and the
            // ones it cannot pay are refused there.
            Err(ServiceError::InsufficientFunds(_)) => {
                tx.rollback().await?;
                return Ok(all_alone(group.len()));
            }
            Err(e) => return Err(e),
        }
        tx.commit().await?;
        count_committed_group("refund", recorded.len());
        if !events.is_empty() {
            self.events.wake();
        }
        Ok(answers)
    }
}
