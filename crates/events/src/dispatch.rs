//! The embedded dispatcher (no event engine configured): outbox rows become deliveries on the
//! local queue, one per consumer of their subject, in the transaction that marks them
//! published — so an event is delivered to each consumer exactly once, or not yet.

use crate::consumer::{Deliveries, Delivery};
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

/// Dispatches one batch; how many outbox rows it took.
async fn dispatch_batch(shared: &Shared, routes: &Routes) -> anyhow::Result<usize> {
    let mut tx = shared.store.begin().await?;
    let batch = tx.claim_unpublished_events(shared.config.relay_batch_max).await?;
    let now = shared.clock.now();
    // Each consumer's deliveries of the batch, enqueued with one call per consumer.
    let mut per_route: HashMap<&'static str, (&Route, Vec<KeyedPayload>)> = HashMap::new();
    for row in &batch {
        let mut targets = routes.of(&row.subject).peekable();
        if targets.peek().is_none() {
            continue;
        }
        let payload = Delivery::payload(&event_of(row)?);
        for route in targets {
            let entry = per_route.entry(route.kind).or_insert_with(|| (route, Vec::new()));
            entry.1.push((row.id.to_string(), payload.clone()));
        }
    }
    for (route, items) in per_route.values() {
        tx.enqueue_keyed_jobs(route.kind, items, route.attempts_max, now)
            .await?;
    }
    let seqs: Vec<i64> = batch.iter().map(|r| r.seq).collect();
    tx.mark_events_published(&seqs, now).await?;
    tx.commit().await?;
    shared
        .counters
        .published
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    metrics::counter!("minipay_events_published_total", "mode" => "embedded").increment(batch.len() as u64);
    for (route, _) in per_route.values() {
        route.wake.notify_one();
    }
    Ok(batch.len())
}

/// The dispatcher's loop: every wake-up or poll, dispatch until the outbox is empty.
pub(crate) async fn run(shared: Arc<Shared>, routes: Routes) {
    while idle(&shared, &shared.wake_relay).await {
        loop {
            match dispatch_batch(&shared, &routes).await {
                Ok(n) if n == shared.config.relay_batch_max as usize => continue,
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
