//! The embedded dispatcher (no event engine configured): outbox rows become deliveries on the
//! local queue, one per consumer of their subject, in the transaction that marks them
//! published — so an event is delivered to each consumer exactly once, or not yet. Consumers
//! that are applied in a transaction ([`crate::Consumer::in_transaction`]) get no deliveries:
//! their events are applied in that same transaction instead.

use crate::consumer::{Consumer, Deliveries, Delivery};
use crate::engine::{Shared, idle, observe_lag};
use crate::event::Event;
use minipay_store::OutboxEvent;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use tokio::sync::Notify;

/// A delivery to enqueue: the event's id (its key) and the payload.
type KeyedPayload = (String, serde_json::Value);

/// Which consumers take each subject: their queue kind, attempts and wake-up. A consumer's
/// subject may end in NATS's one-token wildcard (`approval.*`), as JetStream's filter would.
pub(crate) struct Routes {
    by_subject: HashMap<&'static str, Vec<Route>>,
    wildcards: Vec<(&'static str, Route)>,
}

struct Route {
    kind: &'static str,
    attempts_max: i32,
    wake: Arc<Notify>,
    consumer: Arc<dyn Consumer>,
}

impl Routes {
    pub(crate) fn new(deliveries: &[Arc<Deliveries>], wakes: HashMap<&'static str, Arc<Notify>>) -> Self {
        let mut by_subject: HashMap<&'static str, Vec<Route>> = HashMap::new();
        let mut wildcards = Vec::new();
        for d in deliveries {
            let route = Route {
                kind: d.kind,
                attempts_max: d.consumer.retry_policy().attempts_max,
                wake: wakes[d.kind].clone(),
                consumer: d.consumer.clone(),
            };
            let subject = d.consumer.subject();
            if subject.split('.').any(|token| token == "*") {
                wildcards.push((subject, route));
            } else {
                by_subject.entry(subject).or_default().push(route);
            }
        }
        Self { by_subject, wildcards }
    }

    /// The consumers of `subject`.
    fn of<'a>(&'a self, subject: &str) -> impl Iterator<Item = &'a Route> {
        let exact = self.by_subject.get(subject).into_iter().flatten();
        let wild = self
            .wildcards
            .iter()
            .filter(move |(pattern, _)| subject_matches(pattern, subject))
            .map(|(_, route)| route);
        exact.chain(wild)
    }
}

/// Whether `subject` matches `pattern`, where a `*` token stands for any one token (NATS).
pub(crate) fn subject_matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (None, None) => return true,
            (Some("*"), Some(token)) if !token.is_empty() => {}
            (Some(a), Some(b)) if a == b => {}
            _ => return false,
        }
    }
}

pub(crate) fn event_of(row: &OutboxEvent) -> anyhow::Result<Event> {
    Ok(Event {
        id: row.id,
        subject: row.subject.clone(),
        created_at: row.created_at,
        data: serde_json::from_str(&row.payload)?,
    })
}

/// How a batch reaches the consumers applied in a transaction.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    /// Applied in the dispatching transaction.
    InTransaction,
    /// Queued like every other consumer's (after an application failed).
    Queued,
}

/// One batch's work per consumer: deliveries to enqueue, events to apply in the transaction.
#[derive(Default)]
struct Plan<'a> {
    queued: HashMap<&'static str, (&'a Route, Vec<KeyedPayload>)>,
    applied: HashMap<&'static str, (&'a Route, Vec<Event>)>,
}

impl<'a> Plan<'a> {
    fn of(batch: &[OutboxEvent], routes: &'a Routes, way: Way) -> anyhow::Result<Self> {
        let mut plan = Self::default();
        for row in batch {
            let mut targets = routes.of(&row.subject).peekable();
            if targets.peek().is_none() {
                continue;
            }
            let event = event_of(row)?;
            let payload = Delivery::payload(&event);
            for route in targets {
                if way == Way::InTransaction && route.consumer.in_transaction().is_some() {
                    let entry = plan.applied.entry(route.kind).or_insert_with(|| (route, Vec::new()));
                    entry.1.push(event.clone());
                } else {
                    let entry = plan.queued.entry(route.kind).or_insert_with(|| (route, Vec::new()));
                    entry.1.push((row.id.to_string(), payload.clone()));
                }
            }
        }
        Ok(plan)
    }
}

/// Dispatches one batch; how many outbox rows it took.
async fn dispatch_batch(shared: &Shared, routes: &Routes, way: Way) -> anyhow::Result<usize> {
    let mut tx = shared.store.begin().await?;
    let batch = tx.claim_unpublished_events(shared.dispatch_shape().batch_max).await?;
    let now = shared.clock.now();
    let plan = Plan::of(&batch, routes, way)?;
    for (route, items) in plan.queued.values() {
        tx.enqueue_keyed_jobs(route.kind, items, route.attempts_max, now)
            .await?;
    }
    for (route, events) in plan.applied.values() {
        let applier = route
            .consumer
            .in_transaction()
            .expect("planned as applied in the transaction");
        applier.apply(&mut tx, events).await?;
    }
    let seqs: Vec<i64> = batch.iter().map(|r| r.seq).collect();
    tx.mark_events_published(&seqs, now).await?;
    tx.commit().await?;
    shared
        .counters
        .published
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    metrics::counter!("minipay_events_published_total", "mode" => "embedded").increment(batch.len() as u64);
    for (route, events) in plan.applied.values() {
        metrics::counter!("minipay_events_handled_total", "consumer" => route.consumer.name())
            .increment(events.len() as u64);
    }
    for (route, _) in plan.queued.values() {
        route.wake.notify_one();
    }
    Ok(batch.len())
}

/// Dispatches one batch; when applying it in the transaction failed, dispatches it again with
/// every consumer queued (where each event is retried and dead-lettered alone).
async fn dispatch_next(shared: &Shared, routes: &Routes) -> anyhow::Result<usize> {
    match dispatch_batch(shared, routes, Way::InTransaction).await {
        Ok(n) => Ok(n),
        Err(e) => {
            tracing::info!(error = ?e, "dispatching a batch failed; queueing it for every consumer");
            dispatch_batch(shared, routes, Way::Queued).await
        }
    }
}

/// The dispatcher's loop: every wake-up or poll, dispatch until the outbox is empty.
pub(crate) async fn run(shared: Arc<Shared>, routes: Arc<Routes>) {
    while idle(&shared, &shared.wake_relay).await {
        loop {
            match dispatch_next(&shared, &routes).await {
                Ok(n) if n == shared.dispatch_shape().batch_max as usize => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(error = ?e, "dispatching events failed; trying again");
                    break;
                }
            }
        }
        observe_lag(&shared).await;
    }
}

#[cfg(test)]
mod tests {
    use super::subject_matches;

    #[test]
    fn a_star_matches_exactly_one_token() {
        assert!(subject_matches("approval.*", "approval.received"));
        assert!(subject_matches("approval.received", "approval.received"));
        assert!(!subject_matches("approval.*", "approval"));
        assert!(!subject_matches("approval.*", "approval.cancel.sent"));
        assert!(!subject_matches("approval.*", "remittance.credited"));
        assert!(!subject_matches("approval.*", "approval."));
        assert!(subject_matches("*.credited", "remittance.credited"));
    }
}
