//! Accepting payments in groups: concurrent requests share one transaction — their keys read
//! together, the payments written by one statement that also finds each user's bank account,
//! their events, every answer stored under its key — so one commit (one WAL flush) answers
//! many. A request the group does not record (its key or order id taken, its user without a
//! bank account, the group failing as a whole) is handed back to run on its own, which says why.

use crate::accept::{NewPaymentIds, stored_answer, trigger};
use crate::views::{AcceptGroupCounts, PaymentView};
use crate::{NewPayment, subjects};
use async_trait::async_trait;
use minipay_core::{BusinessId, Clock, KeyOwner, PaymentId};
use minipay_events::{Events, emit_all};
use minipay_services::ServiceResult;
use minipay_services::group_commit::{BatchRunner, all_alone, answers_or_all_alone};
use minipay_services::idempotency::{IdempotentRequest, Reply, peek_all, record_all};
use minipay_store::{Payment, Store, StoredResponse};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A payment request, with its key.
pub(crate) struct AcceptPayment {
    pub business: BusinessId,
    pub req: NewPayment,
    pub idem: IdempotentRequest,
}

/// A group's answer to one request: `Ok(None)` — run it on its own.
pub(crate) type Accepted = ServiceResult<Option<Reply<PaymentView>>>;

/// Runs groups of payment requests.
pub(crate) struct PaymentGroups {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub events: Events,
    pub counter: Arc<GroupCounter>,
}

#[async_trait]
impl BatchRunner<AcceptPayment, Accepted> for PaymentGroups {
    async fn run(&self, group: Vec<AcceptPayment>) -> Vec<Accepted> {
        answers_or_all_alone(self.record_group(&group).await, group.len(), "payment requests")
    }
}

impl PaymentGroups {
    async fn record_group(&self, group: &[AcceptPayment]) -> ServiceResult<Vec<Accepted>> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let keys: Vec<(KeyOwner, &IdempotentRequest)> = group.iter().map(|a| (a.business.into(), &a.idem)).collect();
        let verdicts = peek_all(&mut tx, &keys, now).await?;
        let mut answers: Vec<Accepted> = Vec::with_capacity(group.len());
        // The requests to record here: (their place in the group, their ids).
        let mut fresh: Vec<(usize, NewPaymentIds)> = Vec::new();
        let mut seen = HashSet::new();
        for (i, (a, verdict)) in group.iter().zip(verdicts).enumerate() {
            answers.push(match verdict {
                Err(e) => Err(e),
                Ok(Some(replayed)) => Ok(Some(Reply::Replayed(replayed))),
                // The same key or order twice in one group: the first is recorded here, the
                // second runs on its own afterwards (and replays it, or finds the order).
                Ok(None)
                    if !seen.insert((a.business, a.idem.key().to_owned()))
                        || !seen.insert((a.business, format!("order:{}", a.req.order_id.as_str()))) =>
                {
                    Ok(None)
                }
                Ok(None) => {
                    fresh.push((i, NewPaymentIds::new()));
                    Ok(None)
                }
            });
        }
        let rows: Vec<_> = fresh
            .iter()
            .map(|(i, ids)| ids.payment(group[*i].business, &group[*i].req, now))
            .collect();
        // A request not recorded (its order taken, or its user without a bank account to pull
        // from) stays `Ok(None)`: on its own, it is told why.
        let mut recorded: HashMap<PaymentId, Payment> = tx
            .insert_payments_from_charging_accounts(&rows)
            .await?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        let mut events = Vec::new();
        let mut stored: Vec<(usize, StoredResponse)> = Vec::new();
        for (i, row) in fresh.iter().map(|(i, _)| *i).zip(&rows) {
            let Some(p) = recorded.remove(&row.id) else { continue };
            events.push((subjects::ACCEPTED, trigger(p.id)));
            let view = PaymentView::from(&p);
            stored.push((i, stored_answer(&view)?));
            answers[i] = Ok(Some(Reply::Fresh(view)));
        }
        emit_all(&mut tx, &events, now).await?;
        let to_record: Vec<(KeyOwner, &IdempotentRequest, &StoredResponse)> = stored
            .iter()
            .map(|(i, answer)| (KeyOwner::from(group[*i].business), &group[*i].idem, answer))
            .collect();
        if !record_all(&mut tx, &to_record, now).await? {
            // Another request took one of the keys meanwhile: every request runs on its own.
            tx.rollback().await?;
            return Ok(all_alone(group.len()));
        }
        tx.commit().await?;
        self.counter.count(events.len());
        if !events.is_empty() {
            self.events.wake();
        }
        Ok(answers)
    }
}

/// What one kind of accept group has recorded since the instance started (each instance counts
/// its own), also counted in Prometheus (`minipay_accept_groups_total`,
/// `minipay_accepted_in_groups_total`, labelled by kind).
#[derive(Debug)]
pub(crate) struct GroupCounter {
    kind: &'static str,
    groups: AtomicU64,
    recorded: AtomicU64,
}

impl GroupCounter {
    pub(crate) fn new(kind: &'static str) -> Self {
        Self {
            kind,
            groups: AtomicU64::new(0),
            recorded: AtomicU64::new(0),
        }
    }

    /// A committed group that recorded `recorded` requests (the rest of its requests were
    /// replays or ran on their own); a group that recorded none is not counted.
    pub(crate) fn count(&self, recorded: usize) {
        if recorded == 0 {
            return;
        }
        self.groups.fetch_add(1, Ordering::Relaxed);
        self.recorded.fetch_add(recorded as u64, Ordering::Relaxed);
        metrics::counter!("minipay_accept_groups_total", "kind" => self.kind).increment(1);
        metrics::counter!("minipay_accepted_in_groups_total", "kind" => self.kind).increment(recorded as u64);
    }

    pub(crate) fn view(&self) -> AcceptGroupCounts {
        AcceptGroupCounts {
            groups: self.groups.load(Ordering::Relaxed),
            recorded: self.recorded.load(Ordering::Relaxed),
        }
    }
}
