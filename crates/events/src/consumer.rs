//! Consumers: what a handler of one subject implements, and how its deliveries ride the
//! durable queue (one keyed job per event: a duplicate is a no-op; retries on the injected
//! clock; a dead letter with the reason after the last attempt).

use crate::alerts;
use crate::event::Event;
use async_trait::async_trait;
use futures_util::StreamExt;
use jiff::{SignedDuration, Timestamp};
use minipay_jobs::{QueueHandler, Retry};
use minipay_store::{DeadLetter, NewDeadLetter, QueuedJob, Session, StoreError};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// How often a delivery is tried, and how far apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub attempts_max: i32,
    pub delay: SignedDuration,
}

impl Default for RetryPolicy {
    /// Three attempts, ten seconds apart (the remittance design's rule, and a fair default).
    fn default() -> Self {
        Self {
            attempts_max: 3,
            delay: SignedDuration::from_secs(10),
        }
    }
}

/// Why handling an event failed this time (it will be tried again, or dead-lettered).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Failure(pub String);

impl Failure {
    pub fn new(why: impl std::fmt::Display) -> Self {
        Self(why.to_string())
    }
}

/// `handle` for a consumer whose work is its `handle_batch`: the event as a batch of one.
pub async fn as_batch_of_one<C: Consumer + ?Sized>(consumer: &C, event: &Event) -> Result<(), Failure> {
    consumer
        .handle_batch(std::slice::from_ref(event))
        .await
        .pop()
        .unwrap_or_else(|| Err(Failure::new("no answer")))
}

/// A durable consumer of one subject. Delivery is at least once: `handle` must be idempotent
/// (an event handled twice changes nothing the second time).
#[async_trait]
pub trait Consumer: Send + Sync + 'static {
    /// The durable name (JetStream consumer name; its deliveries' queue kind is
    /// `event.<name>`).
    fn name(&self) -> &'static str;
    /// The relative subject it takes, e.g. `remittance.credited`.
    fn subject(&self) -> &'static str;
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::default()
    }
    /// Events handled at once by one instance (handlers that wait on a bank overlap waits).
    fn concurrency(&self) -> usize {
        16
    }
    /// Events of its queue claimed and handed to [`Consumer::handle_batch`] at once.
    fn batch_max(&self) -> u32 {
        50
    }
    async fn handle(&self, event: &Event) -> Result<(), Failure>;
    /// Handles several events together: one answer per event, in their order. Default:
    /// `handle` each, `concurrency()` at a time. A consumer that can do a batch's work in
    /// fewer transactions overrides it.
    async fn handle_batch(&self, events: &[Event]) -> Vec<Result<(), Failure>> {
        // By index: a closure over `&Event` would not be `Send` for every lifetime.
        futures_util::stream::iter(0..events.len())
            .map(|i| self.handle(&events[i]))
            .buffered(self.concurrency().max(1))
            .collect()
            .await
    }
    /// A consumer whose whole work on a batch is idempotent writes to the platform's own
    /// database says so here: the embedded dispatcher then applies its events inside the
    /// transaction that marks them published — no delivery rows to insert, claim and settle,
    /// and applied exactly once by construction. `None` (the default): deliveries, as always.
    /// (On JetStream the consumer takes its events from the stream like any other.)
    fn in_transaction(&self) -> Option<&dyn InTransaction> {
        None
    }
    /// Records the dead letter when `event` failed its last attempt, in the transaction that
    /// buries its delivery (and an alert for operators, once per dead letter). The default
    /// names the consumer and the event; a consumer that knows the failing point (a
    /// remittance's step) says so instead.
    async fn dead_letter(
        &self,
        tx: &mut Session,
        event: &Event,
        attempts: i32,
        reason: &str,
        now: Timestamp,
    ) -> Result<Option<DeadLetter>, StoreError> {
        let kind = format!("event.{}", self.name());
        tx.insert_dead_letter(
            &NewDeadLetter {
                kind: &kind,
                subject_id: event.id,
                step: "handle",
                consumer: Some(self.name()),
                event_id: Some(event.id),
                attempts,
                error: reason,
                next_attempt_at: None,
            },
            now,
        )
        .await
        .map(Some)
    }
}

/// A consumer's batch applied in the embedded dispatcher's transaction (see
/// [`Consumer::in_transaction`]).
#[async_trait]
pub trait InTransaction: Send + Sync {
    /// Applies `events` (in outbox order) in `tx`. An error rolls the whole dispatch back; the
    /// dispatcher then sends the same events the queued way, where each event is retried and
    /// dead-lettered alone.
    async fn apply(&self, tx: &mut Session, events: &[Event]) -> anyhow::Result<()>;
}

/// The queue kind of a consumer's deliveries.
pub fn delivery_kind(consumer: &str) -> String {
    format!("event.{consumer}")
}

/// A delivery's payload on the queue: the event, whole.
#[derive(Serialize, Deserialize)]
pub(crate) struct Delivery {
    pub event: Event,
}

impl Delivery {
    pub(crate) fn payload(event: &Event) -> serde_json::Value {
        serde_json::json!({ "event": event })
    }
}

/// A consumer seen by the queue.
pub(crate) struct Deliveries {
    pub consumer: Arc<dyn Consumer>,
    pub kind: &'static str,
    pub clock: Arc<dyn minipay_core::Clock>,
    pub stats: Arc<crate::engine::Counters>,
}

impl Deliveries {
    pub(crate) fn new(
        consumer: Arc<dyn Consumer>,
        clock: Arc<dyn minipay_core::Clock>,
        stats: Arc<crate::engine::Counters>,
    ) -> Self {
        // Leaked once per consumer at start: the queue wants a `&'static str` kind.
        let kind: &'static str = Box::leak(delivery_kind(consumer.name()).into_boxed_str());
        Self {
            consumer,
            kind,
            clock,
            stats,
        }
    }
}

fn event_of(job: &QueuedJob) -> Result<Event, Retry> {
    serde_json::from_value::<Delivery>(job.payload.clone())
        .map(|d| d.event)
        .map_err(|e| Retry(format!("a delivery that is not an event: {e}")))
}

#[async_trait]
impl QueueHandler for Deliveries {
    fn kind(&self) -> &'static str {
        self.kind
    }

    async fn handle(&self, job: &QueuedJob) -> Result<bool, Retry> {
        self.handle_batch(std::slice::from_ref(job))
            .await
            .pop()
            .unwrap_or_else(|| Err(Retry("no answer".into())))
    }

    async fn handle_batch(&self, jobs: &[QueuedJob]) -> Vec<Result<bool, Retry>> {
        let parsed: Vec<Result<Event, Retry>> = jobs.iter().map(event_of).collect();
        let events: Vec<Event> = parsed.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
        let mut answers = self.consumer.handle_batch(&events).await.into_iter();
        let name = self.consumer.name();
        jobs.iter()
            .zip(parsed)
            .map(|(job, parsed)| {
                let event = parsed?;
                match answers.next().unwrap_or_else(|| Err(Failure::new("no answer"))) {
                    Ok(()) => {
                        metrics::counter!("minipay_events_handled_total", "consumer" => name).increment(1);
                        Ok(true)
                    }
                    Err(Failure(why)) => {
                        tracing::info!(consumer = name, event = %event.id, attempt = job.attempts, reason = %why,
                            "event handler failed");
                        if job.attempts < job.attempts_max {
                            self.stats.add(&self.stats.retried, 1);
                            metrics::counter!("minipay_events_retried_total", "consumer" => name).increment(1);
                        }
                        Err(Retry(why))
                    }
                }
            })
            .collect()
    }

    fn retry_delay(&self, _attempts: i32) -> SignedDuration {
        self.consumer.retry_policy().delay
    }

    async fn buried(&self, tx: &mut Session, job: &QueuedJob, reason: &str) -> Result<(), StoreError> {
        let event = event_of(job).map_err(|Retry(why)| StoreError::Corrupt(why))?;
        self.stats.add(&self.stats.dead_lettered, 1);
        metrics::counter!("minipay_events_dead_lettered_total", "consumer" => self.consumer.name()).increment(1);
        let now = self.clock.now();
        match self.consumer.dead_letter(tx, &event, job.attempts, reason, now).await? {
            Some(d) => alerts::raise_dead_letter(tx, &d, now).await,
            None => Ok(()),
        }
    }

    fn concurrency(&self) -> usize {
        self.consumer.concurrency()
    }

    fn batch_max(&self) -> u32 {
        self.consumer.batch_max()
    }
}
