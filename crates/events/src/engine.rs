//! The running engine: the relay (to JetStream, or the embedded dispatcher), one worker per
//! consumer draining its deliveries (first attempts in embedded mode, retries in both), the
//! JetStream consumers, and the counters operators and tests read. Consumers' batches step
//! back while this instance's intake is at capacity.

use crate::consumer::{Consumer, Deliveries};
use crate::{dispatch, jetstream};
use jiff::Timestamp;
use minipay_core::Clock;
use minipay_jobs::IntakeLoad;
use minipay_store::{BackendKind, Store};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

/// Batches each instance pulls at once per JetStream consumer: one is handled while the next
/// is pulled and recorded.
const PULLERS_PER_CONSUMER: usize = 2;

/// How events travel. Every setting is named with its unit.
#[derive(Debug, Clone)]
pub struct EventsConfig {
    /// `nats://HOST:PORT`: publish to JetStream and consume through durable pull consumers.
    /// `None`: the embedded dispatcher hands the outbox straight to the local consumers.
    pub nats_url: Option<String>,
    /// The JetStream stream (created if missing).
    pub stream: String,
    /// Subjects are `<prefix>.<area>.<event>`; the stream takes `<prefix>.>`.
    pub subject_prefix: String,
    /// How often the relay and the consumers look for work nobody woke them for (retries that
    /// came due on the clock, events another instance wrote).
    pub poll_interval: Duration,
    /// How long JetStream waits for a message's ack before it offers the message again: a
    /// delivery's first attempt runs before it has a row, so this is how soon the work of an
    /// instance that died mid-attempt is taken up by another (an attempt that runs longer
    /// tells JetStream it is still at work).
    pub ack_wait: Duration,
    /// Outbox rows relayed per round (JetStream).
    pub relay_batch_max: u32,
    /// The embedded dispatcher: outbox rows per transaction, and dispatchers running at once
    /// (`None`: the backend's, see [`DispatchShape::of`]).
    pub dispatch: Option<DispatchShape>,
    /// Longest a consumer's batch waits while the intake is at capacity (a request group found
    /// every commit slot busy, or answered its oldest request after
    /// [`minipay_jobs::SLOW_GROUP`]), held under half the ack wait — on JetStream counted from
    /// when the batch's first message was stored, so a backlog runs at once; zero (the
    /// default): batches never wait.
    pub yield_max: Duration,
}

/// How the embedded dispatcher works through the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DispatchShape {
    /// Outbox rows claimed, and applied or queued, in one transaction.
    pub batch_max: u32,
    /// Dispatchers at once (each claims its own rows: `SKIP LOCKED`).
    pub dispatchers: usize,
}

impl DispatchShape {
    /// Measured under `minipay bench approvals` with the read side's projection applied in the
    /// dispatcher's transactions (docs/bench/readside.md): on PostgreSQL two dispatchers of
    /// 2,048 rows keep the projection under a second behind the gateway at full rate (one of
    /// 256 trailed by 2.6 s); SQLite has one writer, so one dispatcher, of 1,024 rows.
    pub fn of(kind: BackendKind) -> Self {
        match kind {
            BackendKind::Postgres => Self {
                batch_max: 2_048,
                dispatchers: 2,
            },
            BackendKind::Sqlite => Self {
                batch_max: 1_024,
                dispatchers: 1,
            },
        }
    }
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self {
            nats_url: None,
            stream: "MINIPAY".into(),
            subject_prefix: "minipay".into(),
            poll_interval: Duration::from_millis(250),
            ack_wait: Duration::from_secs(60),
            relay_batch_max: 256,
            dispatch: None,
            yield_max: Duration::ZERO,
        }
    }
}

/// What this instance's engine has done since it started.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub published: AtomicU64,
    pub redelivered: AtomicU64,
    pub retried: AtomicU64,
    pub dead_lettered: AtomicU64,
}

impl Shared {
    /// Before a consumer's batch whose work arrived at `since`: waits while the intake is at
    /// capacity, never past the bound.
    pub(crate) async fn yield_to_intake(&self, consumer: &'static str, since: tokio::time::Instant) {
        let bound = self.config.yield_max.min(self.config.ack_wait / 2);
        let waited = self.intake.yield_to_intake(since, bound).await;
        if !waited.is_zero() {
            let ms = u64::try_from(waited.as_millis()).unwrap_or(u64::MAX);
            metrics::counter!("minipay_events_yielded_ms_total", "consumer" => consumer).increment(ms);
        }
    }

    pub(crate) fn dispatch_shape(&self) -> DispatchShape {
        self.config
            .dispatch
            .unwrap_or_else(|| DispatchShape::of(self.store.kind()))
    }
}

impl Counters {
    pub(crate) fn add(&self, counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// The engine's state for `GET /v1/admin/events` (the outbox's counts are the database's;
/// the rest are this instance's since it started).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EngineStats {
    /// `jetstream` or `embedded`.
    pub mode: &'static str,
    pub outbox_unpublished: i64,
    pub outbox_published: i64,
    /// Age of the oldest unpublished event (the outbox lag), in seconds of the clock.
    pub outbox_lag_seconds: f64,
    pub published: u64,
    /// Messages JetStream delivered again (an ack that did not arrive in time, a restart).
    pub redelivered: u64,
    /// Failed attempts that will be tried again.
    pub retried: u64,
    pub dead_lettered: u64,
}

pub(crate) struct Shared {
    pub store: Store,
    pub clock: Arc<dyn Clock>,
    pub config: EventsConfig,
    pub counters: Arc<Counters>,
    pub wake_relay: Notify,
    pub stop: watch::Receiver<bool>,
    /// When the outbox lag gauge was last recorded.
    pub lag_observed_at: Mutex<Option<std::time::Instant>>,
    /// Whether this instance's intake is at capacity (its request groups report).
    pub intake: IntakeLoad,
}

/// The event engine of one instance. Producers call [`Events::wake`] after committing events.
#[derive(Clone)]
pub struct Events {
    shared: Arc<Shared>,
    stop: Arc<watch::Sender<bool>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Events {
    /// An engine that does nothing until [`Events::start`]: services can hold it (to wake the
    /// relay) before the consumers that use those services exist.
    pub fn new(store: Store, clock: Arc<dyn Clock>, config: EventsConfig) -> Self {
        let (stop, stop_rx) = watch::channel(false);
        Self {
            shared: Arc::new(Shared {
                store,
                clock,
                config,
                counters: Arc::new(Counters::default()),
                wake_relay: Notify::new(),
                stop: stop_rx,
                lag_observed_at: Mutex::new(None),
                intake: IntakeLoad::new(),
            }),
            stop: Arc::new(stop),
            tasks: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// What this instance's request groups report to when they are at capacity: the
    /// consumers' batches step back meanwhile (at most [`EventsConfig::yield_max`]).
    pub fn intake_load(&self) -> IntakeLoad {
        self.shared.intake.clone()
    }

    pub fn mode(&self) -> &'static str {
        if self.shared.config.nats_url.is_some() {
            "jetstream"
        } else {
            "embedded"
        }
    }

    /// Events were committed: publish them now rather than at the next poll.
    pub fn wake(&self) {
        self.shared.wake_relay.notify_one();
    }

    /// Connects (JetStream: the stream and each consumer are created if missing) and starts
    /// the relay and the consumers' workers.
    pub async fn start(&self, consumers: Vec<Arc<dyn Consumer>>) -> anyhow::Result<()> {
        let deliveries: Vec<Arc<Deliveries>> = consumers
            .into_iter()
            .map(|c| {
                Arc::new(Deliveries::new(
                    c,
                    self.shared.clock.clone(),
                    self.shared.counters.clone(),
                ))
            })
            .collect();
        let wakes: HashMap<&'static str, Arc<Notify>> =
            deliveries.iter().map(|d| (d.kind, Arc::new(Notify::new()))).collect();
        let mut tasks = Vec::new();
        for d in &deliveries {
            tasks.push(tokio::spawn(worker(
                self.shared.clone(),
                d.clone(),
                wakes[d.kind].clone(),
            )));
        }
        match &self.shared.config.nats_url {
            None => {
                let routes = Arc::new(dispatch::Routes::new(&deliveries, wakes));
                for _ in 0..self.shared.dispatch_shape().dispatchers.max(1) {
                    tasks.push(tokio::spawn(dispatch::run(self.shared.clone(), routes.clone())));
                }
            }
            Some(url) => {
                let js = jetstream::connect(url, &self.shared.config).await?;
                tasks.push(tokio::spawn(jetstream::relay(self.shared.clone(), js.clone())));
                for d in &deliveries {
                    let consumer = jetstream::durable_consumer(&js, &self.shared.config, d.consumer.as_ref()).await?;
                    for _ in 0..PULLERS_PER_CONSUMER {
                        let pull = jetstream::consume(self.shared.clone(), consumer.clone(), d.clone());
                        tasks.push(tokio::spawn(pull));
                    }
                }
            }
        }
        self.tasks.lock().expect("tasks lock").extend(tasks);
        Ok(())
    }

    /// Stops the relay and the workers (work in flight is left to its lease and redelivery).
    pub async fn shutdown(&self) {
        let _ = self.stop.send(true);
        let tasks: Vec<_> = self.tasks.lock().expect("tasks lock").drain(..).collect();
        for t in tasks {
            t.abort();
            let _ = t.await;
        }
    }

    pub async fn stats(&self) -> anyhow::Result<EngineStats> {
        let mut s = self.shared.store.read().await?;
        let (unpublished, published) = s.outbox_counts().await?;
        let oldest = s.oldest_unpublished_event_at().await?;
        let c = &self.shared.counters;
        Ok(EngineStats {
            mode: self.mode(),
            outbox_unpublished: unpublished,
            outbox_published: published,
            outbox_lag_seconds: lag_seconds(oldest, self.shared.clock.now()),
            published: c.published.load(Ordering::Relaxed),
            redelivered: c.redelivered.load(Ordering::Relaxed),
            retried: c.retried.load(Ordering::Relaxed),
            dead_lettered: c.dead_lettered.load(Ordering::Relaxed),
        })
    }
}

pub(crate) fn lag_seconds(oldest: Option<Timestamp>, now: Timestamp) -> f64 {
    oldest.map_or(0.0, |t| now.duration_since(t).as_secs_f64().max(0.0))
}

/// Records the outbox lag gauge, at most once per poll interval (the relay's rounds come as
/// often as events are committed; the gauge is scraped every few seconds).
pub(crate) async fn observe_lag(shared: &Shared) {
    {
        let mut last = shared.lag_observed_at.lock().expect("lag lock");
        if last.is_some_and(|at| at.elapsed() < shared.config.poll_interval) {
            return;
        }
        *last = Some(std::time::Instant::now());
    }
    if let Ok(mut s) = shared.store.read().await
        && let Ok(oldest) = s.oldest_unpublished_event_at().await
    {
        metrics::gauge!("minipay_outbox_lag_seconds").set(lag_seconds(oldest, shared.clock.now()));
    }
}

/// Waits for a wake-up, the poll interval, or the stop signal; `false` once stopped.
pub(crate) async fn idle(shared: &Shared, wake: &Notify) -> bool {
    let mut stop = shared.stop.clone();
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        _ = wake.notified() => true,
        _ = tokio::time::sleep(shared.config.poll_interval) => true,
        _ = stop.changed() => false,
    }
}

/// A consumer's worker: drains its due deliveries (first attempts in embedded mode, retries
/// whose time came on the clock in both modes).
async fn worker(shared: Arc<Shared>, deliveries: Arc<Deliveries>, wake: Arc<Notify>) {
    while idle(&shared, &wake).await {
        shared
            .yield_to_intake(deliveries.consumer.name(), tokio::time::Instant::now())
            .await;
        let now = shared.clock.now();
        if let Err(e) = minipay_jobs::drain_queue(&shared.store, shared.clock.as_ref(), deliveries.as_ref(), now).await
        {
            tracing::warn!(consumer = deliveries.consumer.name(), error = ?e, "draining deliveries failed; trying again");
        }
    }
}
