//! Accepting refunds in groups: concurrent refund requests share one transaction — their keys
//! read together, each refund's amount taken from its payment and its row written, their events,
//! every answer stored under its key, and last every refund's money taken from its business's
//! balance under one set of account locks — so the accounts every refund locks (refunds in
//! transit) are locked once per group, not once per refund, and one commit answers many. A
//! business whose balance is short of its refunds in the group leaves it (the group is tried
//! again without them). A request the group does not record (its key taken, its payment not
//! giving the amount, its business's balance short, the group failing as a whole) is handed
//! back to run on its own, which says why.

use crate::accept::{RefundAsked, order_label, refund_trigger, stored_answer, take_refunds};
use crate::accept_group::GroupCounter;
use crate::views::RefundView;
use crate::{NewRefund, subjects};
use async_trait::async_trait;
use jiff::Timestamp;
use minipay_core::ledger::BalancePosting;
use minipay_core::{BusinessId, Clock, KeyOwner, PaymentId};
use minipay_events::{Events, emit_all};
use minipay_services::ServiceResult;
use minipay_services::balances::{BalanceTake, take_all_from_balances};
use minipay_services::group_commit::{BatchRunner, OrAlone, all_alone, answers_or_all_alone};
use minipay_services::idempotency::{IdempotentRequest, Reply, peek_all, record_all};
use minipay_store::{Session, Store, StoredResponse};
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
    pub counter: Arc<GroupCounter>,
}

/// Businesses whose balances a group leaves out, one at a time, before every request runs on
/// its own instead.
const SHORT_BALANCES_MAX: usize = 3;

#[async_trait]
impl BatchRunner<AcceptRefund, RefundAccepted> for RefundGroups {
    async fn run(&self, group: Vec<AcceptRefund>) -> Vec<RefundAccepted> {
        // A business whose balance is short of its refunds in the group leaves it: its
        // requests run on their own (where the ones the balance cannot pay are refused), the
        // others' are recorded by the group tried again without them.
        let mut apart = HashSet::new();
        loop {
            match self.record_group(&group, &apart).await {
                Ok(Attempt::Answered(answers)) => return answers,
                Ok(Attempt::Short(business)) if apart.len() < SHORT_BALANCES_MAX => {
                    apart.insert(business);
                }
                Ok(Attempt::Short(_)) => return all_alone(group.len()),
                Err(e) => return answers_or_all_alone(Err(e), group.len(), "refund requests"),
            }
        }
    }
}

/// How one try of a group ended.
enum Attempt {
    /// Each request's answer (`Ok(None)`: run it on its own).
    Answered(Vec<RefundAccepted>),
    /// The business's balance is short of its refunds in the group; nothing was written.
    Short(BusinessId),
}

/// A refund the group recorded: its place in the group, its order (for the ledger), its answer.
struct Recorded {
    at: usize,
    order: String,
    answer: StoredResponse,
}

impl RefundGroups {
    /// One transaction for the group, but for the requests of the businesses `apart`.
    async fn record_group(&self, group: &[AcceptRefund], apart: &HashSet<BusinessId>) -> ServiceResult<Attempt> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let (mut answers, fresh) = fresh_requests(&mut tx, group, apart, now).await?;
        let recorded = record_refunds(&mut tx, group, fresh, &mut answers, now).await?;
        let events: Vec<_> = answers
            .iter()
            .filter_map(|a| match a {
                Ok(Some(Reply::Fresh(view))) => Some((subjects::REFUND_ACCEPTED, refund_trigger(view.id))),
                _ => None,
            })
            .collect();
        emit_all(&mut tx, &events, now).await?;
        let to_record: Vec<(KeyOwner, &IdempotentRequest, &StoredResponse)> = recorded
            .iter()
            .map(|r| (KeyOwner::from(group[r.at].business), &group[r.at].idem, &r.answer))
            .collect();
        if !record_all(&mut tx, &to_record, now).await? {
            // Another request took one of the keys meanwhile: every request runs on its own.
            tx.rollback().await?;
            return Ok(Attempt::Answered(all_alone(group.len())));
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
        if let Err(short) = take_all_from_balances(&mut tx, &takes, now).await? {
            tx.rollback().await?;
            return Ok(Attempt::Short(short.business));
        }
        tx.commit().await?;
        self.counter.count(recorded.len());
        if !events.is_empty() {
            self.events.wake();
        }
        Ok(Attempt::Answered(answers))
    }
}

/// The group's keys read together: each request's answer so far (a replay, a refusal, or
/// `Ok(None)`), and the places of the requests to record here.
async fn fresh_requests(
    tx: &mut Session,
    group: &[AcceptRefund],
    apart: &HashSet<BusinessId>,
    now: Timestamp,
) -> ServiceResult<(Vec<RefundAccepted>, Vec<usize>)> {
    let keys: Vec<(KeyOwner, &IdempotentRequest)> = group.iter().map(|a| (a.business.into(), &a.idem)).collect();
    let verdicts = peek_all(tx, &keys, now).await?;
    let mut answers: Vec<RefundAccepted> = Vec::with_capacity(group.len());
    let mut fresh: Vec<usize> = Vec::new();
    let mut seen = HashSet::new();
    for (i, (a, verdict)) in group.iter().zip(verdicts).enumerate() {
        answers.push(match verdict {
            Err(e) => Err(e),
            Ok(Some(replayed)) => Ok(Some(Reply::Replayed(replayed))),
            // Its business's balance left the group: on its own.
            Ok(None) if apart.contains(&a.business) => Ok(None),
            // The same key twice in one group: the first is recorded here, the second runs on
            // its own afterwards (and replays it).
            Ok(None) if !seen.insert((a.business, a.idem.key().to_owned())) => Ok(None),
            Ok(None) => {
                fresh.push(i);
                Ok(None)
            }
        });
    }
    Ok((answers, fresh))
}

/// Takes the `fresh` requests' amounts from their payments and records the refunds, setting
/// their answers; the refunds recorded. A refund its payment does not give stays `Ok(None)`:
/// on its own, it is told why.
async fn record_refunds(
    tx: &mut Session,
    group: &[AcceptRefund],
    mut fresh: Vec<usize>,
    answers: &mut [RefundAccepted],
    now: Timestamp,
) -> ServiceResult<Vec<Recorded>> {
    // The payments' rows are asked for in one order by every group, so that two groups sharing
    // payments rarely take them crosswise (the statement's plan decides the order in the end; a
    // deadlock fails one group, whose requests then run on their own).
    fresh.sort_by_key(|&i| group[i].payment.as_uuid());
    let asked: Vec<RefundAsked> = fresh
        .iter()
        .map(|&i| RefundAsked {
            business: group[i].business,
            payment: group[i].payment,
            req: &group[i].req,
        })
        .collect();
    let taken = take_refunds(tx, &asked, now).await?;
    let mut recorded = Vec::new();
    for (i, (p, refund)) in fresh.into_iter().zip(taken).filter_map(|(i, t)| Some((i, t?))) {
        let view = RefundView::from(&refund);
        recorded.push(Recorded {
            at: i,
            order: order_label(&p),
            answer: stored_answer(&view)?,
        });
        answers[i] = Ok(Some(Reply::Fresh(view)));
    }
    Ok(recorded)
}
