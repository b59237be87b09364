//! Accepting payments in groups: concurrent requests share one statement (on PostgreSQL; one
//! transaction on SQLite) — the payments, each pulling from its user's bank account found by
//! it, their events, every answer stored under its key — so one round trip and one commit (one
//! WAL flush) answer many. A request the group does not record (its key used before, its order
//! id taken, its user without a bank account, the group failing as a whole) is handed back to
//! run on its own, which says why.

use crate::accept::{NewPaymentIds, stored_answer, trigger};
use crate::views::{AcceptGroupCounts, PaymentView};
use crate::{NewPayment, subjects};
use async_trait::async_trait;
use minipay_core::{BusinessId, Clock, PaymentId};
use minipay_events::{Events, new_event};
use minipay_services::ServiceResult;
use minipay_services::group_commit::{BatchRunner, all_alone, answers_or_all_alone};
use minipay_services::idempotency::{IdempotentRequest, Reply, key_expiry};
use minipay_store::{AcceptedPayment, Store, StoredResponse};
use std::collections::HashSet;
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
    /// Records the group's fresh requests in one statement (PostgreSQL, two when a key has a
    /// record; one transaction on SQLite) with their events and their answers, which are known
    /// beforehand: a new payment's view is its row. Every other request — its key used before,
    /// its order id or key repeated in the group, its order taken, its user without a bank
    /// account — and every request of a group the store could not record (a key taken
    /// meanwhile; on PostgreSQL, during its second try) runs on its own, which says why.
    async fn record_group(&self, group: &[AcceptPayment]) -> ServiceResult<Vec<Accepted>> {
        let now = self.clock.now();
        let fresh: Vec<(usize, NewPaymentIds)> = first_of_each_key_and_order(group)
            .into_iter()
            .map(|i| (i, NewPaymentIds::new()))
            .collect();
        let payments: Vec<minipay_store::NewPayment> = fresh
            .iter()
            .map(|(i, ids)| ids.payment(group[*i].business, &group[*i].req, now))
            .collect();
        let views: Vec<PaymentView> = payments.iter().map(PaymentView::accepted).collect();
        let answers: Vec<StoredResponse> = views.iter().map(stored_answer).collect::<ServiceResult<_>>()?;
        let rows: Vec<AcceptedPayment> = fresh
            .iter()
            .zip(payments.iter().zip(&answers))
            .map(|((i, ids), (payment, answer))| {
                let a = &group[*i];
                AcceptedPayment {
                    payment: payment.clone(),
                    event: new_event(subjects::ACCEPTED, trigger(ids.id()), now),
                    key_owner: a.business.into(),
                    key: a.idem.key(),
                    fingerprint: a.idem.fingerprint(),
                    answer,
                }
            })
            .collect();
        let mut session = self.store.one_statement().await?;
        let Some(recorded) = session.insert_accepted_payments(&rows, now, key_expiry(now)).await? else {
            // Another request took one of the keys meanwhile (on PostgreSQL, during the store's
            // second try): every request runs on its own.
            session.rollback().await?;
            return Ok(all_alone(group.len()));
        };
        session.commit().await?;
        self.counter.count(recorded.len());
        if !recorded.is_empty() {
            self.events.wake();
        }
        let recorded: HashSet<PaymentId> = recorded.into_iter().collect();
        let mut out = all_alone(group.len());
        for ((i, ids), view) in fresh.iter().zip(views) {
            if recorded.contains(&ids.id()) {
                out[*i] = Ok(Some(Reply::Fresh(view)));
            }
        }
        Ok(out)
    }
}

/// The requests a group may record: the first of each idempotency key and of each order id of
/// a business (a repeat runs on its own afterwards, and replays the first or finds its order).
fn first_of_each_key_and_order(group: &[AcceptPayment]) -> Vec<usize> {
    let (mut keys, mut orders) = (HashSet::new(), HashSet::new());
    (0..group.len())
        .filter(|&i| {
            let a = &group[i];
            // Both sets take the request's key and order, whichever was seen before (`&`, not
            // `&&`): a later request repeating either one is left out too.
            keys.insert((a.business, a.idem.key())) & orders.insert((a.business, a.req.order_id.as_str()))
        })
        .collect()
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
