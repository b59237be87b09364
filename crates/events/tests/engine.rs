//! The event engine end to end, on SQLite and PostgreSQL, embedded and with JetStream for
//! real: each consumer handles each event once, retries wait for the (manual) clock, the last
//! failure is a dead letter, duplicates and restarts lose and repeat nothing.

use async_trait::async_trait;
use jiff::SignedDuration;
use minipay_core::{Clock, ManualClock};
use minipay_events::testing::{OwnNats, delete_stream, isolated_config, nats_url};
use minipay_events::{Consumer, Event, Events, EventsConfig, Failure, InTransaction, RetryPolicy, emit};
use minipay_store::testing::TestDb;
use minipay_store::{AlertFilter, BackendKind, DeadLetterFilter, NewAlert, Session, Store, StoreOptions};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

/// How long a test waits for the engine to get somewhere before it fails.
const EVENTUALLY_MAX: Duration = Duration::from_secs(30);

/// A consumer that records what it handled, and fails each event's first `fail_first`
/// attempts.
struct Recorder {
    name: &'static str,
    subject: &'static str,
    fail_first: u32,
    attempts: Mutex<HashMap<Uuid, u32>>,
    /// Successful handlings per event, shared between instances in the two-instance test.
    handled: Arc<Mutex<HashMap<Uuid, u32>>>,
}

impl Recorder {
    fn new(name: &'static str, subject: &'static str, fail_first: u32) -> Arc<Self> {
        Self::sharing(name, subject, fail_first, Arc::default())
    }

    fn sharing(
        name: &'static str,
        subject: &'static str,
        fail_first: u32,
        handled: Arc<Mutex<HashMap<Uuid, u32>>>,
    ) -> Arc<Self> {
        Arc::new(Self {
            name,
            subject,
            fail_first,
            attempts: Mutex::default(),
            handled,
        })
    }

    fn handled(&self) -> HashMap<Uuid, u32> {
        self.handled.lock().unwrap().clone()
    }

    fn attempts(&self, id: Uuid) -> u32 {
        self.attempts.lock().unwrap().get(&id).copied().unwrap_or(0)
    }
}

#[async_trait]
impl Consumer for Recorder {
    fn name(&self) -> &'static str {
        self.name
    }
    fn subject(&self) -> &'static str {
        self.subject
    }
    async fn handle(&self, event: &Event) -> Result<(), Failure> {
        let attempt = {
            let mut attempts = self.attempts.lock().unwrap();
            let n = attempts.entry(event.id).or_default();
            *n += 1;
            *n
        };
        if attempt <= self.fail_first {
            return Err(Failure::new(format!("attempt {attempt} fails on purpose")));
        }
        *self.handled.lock().unwrap().entry(event.id).or_default() += 1;
        Ok(())
    }
}

struct Setup {
    db: TestDb,
    store: Store,
    clock: Arc<ManualClock>,
    config: EventsConfig,
    engines: Vec<Events>,
}

impl Setup {
    /// A fresh database, a manual clock, and (with `jetstream`) a stream of the test's own on
    /// the shared NATS server; `None` when a service is missing and not required.
    async fn new(backend: BackendKind, jetstream: bool) -> Option<Self> {
        let nats = if jetstream { Some(nats_url().await?) } else { None };
        Self::on(backend, isolated_config(nats)).await
    }

    async fn on(backend: BackendKind, config: EventsConfig) -> Option<Self> {
        let db = TestDb::create(backend).await?;
        let store = Store::connect(&db.url, &StoreOptions::default()).await.unwrap();
        store.migrate().await.unwrap();
        let clock = Arc::new(ManualClock::new("2026-11-21T03:00:00Z".parse().unwrap()));
        Some(Self {
            db,
            store,
            clock,
            config,
            engines: Vec::new(),
        })
    }

    async fn start(&mut self, consumers: Vec<Arc<dyn Consumer>>) -> Events {
        let events = Events::new(self.store.clone(), self.clock.clone(), self.config.clone());
        events.start(consumers).await.expect("the engine starts");
        self.engines.push(events.clone());
        events
    }

    /// Writes `n` events of `subject`, each in its own transaction, and wakes `events`.
    async fn emit(&self, events: &Events, subject: &str, n: usize) -> Vec<Uuid> {
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let mut tx = self.store.begin().await.unwrap();
            ids.push(
                emit(&mut tx, subject, &json!({"n": i}), self.clock.now())
                    .await
                    .unwrap(),
            );
            tx.commit().await.unwrap();
            events.wake();
        }
        ids
    }

    fn advance(&self, secs: i64) {
        self.clock.advance(SignedDuration::from_secs(secs)).unwrap();
    }

    async fn teardown(self) {
        for e in &self.engines {
            e.shutdown().await;
        }
        delete_stream(&self.config).await;
        self.store.close().await;
        self.db.remove().await;
    }
}

/// Waits until `done` holds (checked every 10 ms), or fails naming `what`.
async fn eventually(what: &str, mut done: impl AsyncFnMut() -> bool) {
    let started = std::time::Instant::now();
    while !done().await {
        assert!(started.elapsed() < EVENTUALLY_MAX, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn exactly_once(handled: &HashMap<Uuid, u32>, ids: &[Uuid]) -> bool {
    handled.len() == ids.len() && ids.iter().all(|id| handled.get(id) == Some(&1))
}

/// Declares a scenario `fn(BackendKind, jetstream: bool)` on both backends and both modes.
macro_rules! every_way {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            use minipay_store::BackendKind::{Postgres, Sqlite};
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite_embedded() { super::$name(Sqlite, false).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite_jetstream() { super::$name(Sqlite, true).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres_embedded() { super::$name(Postgres, false).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres_jetstream() { super::$name(Postgres, true).await }
        }
    )+};
}

every_way!(
    each_consumer_handles_each_event_once,
    a_failing_delivery_waits_for_the_clock_then_is_dead_lettered,
    a_delivery_that_recovers_is_handled_once,
    a_delivery_with_one_attempt_is_dead_lettered_by_its_first,
);

async fn each_consumer_handles_each_event_once(backend: BackendKind, jetstream: bool) {
    let Some(mut s) = Setup::new(backend, jetstream).await else {
        return;
    };
    let (a1, a2, b) = (
        Recorder::new("a-one", "test.a", 0),
        Recorder::new("a-two", "test.a", 0),
        Recorder::new("b", "test.b", 0),
    );
    let events = s.start(vec![a1.clone(), a2.clone(), b.clone()]).await;
    let on_a = s.emit(&events, "test.a", 30).await;
    let on_b = s.emit(&events, "test.b", 20).await;
    s.emit(&events, "test.unheard", 5).await; // no consumer: published all the same
    eventually("every consumer handled its subject's events", async || {
        exactly_once(&a1.handled(), &on_a) && exactly_once(&a2.handled(), &on_a) && exactly_once(&b.handled(), &on_b)
    })
    .await;
    eventually("the outbox is empty", async || {
        events.stats().await.unwrap().outbox_unpublished == 0
    })
    .await;
    // Nothing more arrives later: each was handled once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(exactly_once(&a1.handled(), &on_a) && exactly_once(&b.handled(), &on_b));
    let stats = events.stats().await.unwrap();
    assert_eq!((stats.outbox_published, stats.published), (55, 55), "{stats:?}");
    assert_eq!((stats.retried, stats.dead_lettered), (0, 0), "{stats:?}");
    assert_eq!(stats.mode, if jetstream { "jetstream" } else { "embedded" });
    // One delivery per consumer and event, each done (JetStream: written once, done).
    let mut queues = s.store.read().await.unwrap().queue_counts().await.unwrap();
    queues.sort();
    let done = |kind: &str, n: i64| (kind.to_owned(), "done".to_owned(), n);
    assert_eq!(
        queues,
        vec![done("event.a-one", 30), done("event.a-two", 30), done("event.b", 20)]
    );
    s.teardown().await;
}

async fn a_failing_delivery_waits_for_the_clock_then_is_dead_lettered(backend: BackendKind, jetstream: bool) {
    let Some(mut s) = Setup::new(backend, jetstream).await else {
        return;
    };
    let failing = Recorder::new("failing", "test.f", u32::MAX);
    let events = s.start(vec![failing.clone()]).await;
    let id = s.emit(&events, "test.f", 1).await[0];
    eventually("the first attempt", async || failing.attempts(id) == 1).await;
    // The retry is 10 s away on the clock, which stands still: no real time brings it closer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(failing.attempts(id), 1, "a retry came before its time");
    s.advance(9);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(failing.attempts(id), 1, "a retry came a second early");
    s.advance(1);
    eventually("the second attempt", async || failing.attempts(id) == 2).await;
    s.advance(10);
    eventually("the third attempt", async || failing.attempts(id) == 3).await;
    let dead = async || {
        let mut r = s.store.read().await.unwrap();
        r.dead_letters(&DeadLetterFilter::default(), None, 10).await.unwrap()
    };
    eventually("a dead letter", async || !dead().await.is_empty()).await;
    s.advance(60);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(failing.attempts(id), 3, "no attempt after the last one");
    let letters = dead().await;
    assert_eq!(letters.len(), 1, "{letters:?}");
    let d = &letters[0];
    assert_eq!(
        (
            d.kind.as_str(),
            d.step.as_str(),
            d.consumer.as_deref(),
            d.event_id,
            d.attempts,
            d.resolved_at
        ),
        ("event.failing", "handle", Some("failing"), Some(id), 3, None)
    );
    assert_eq!(d.last_error, "attempt 3 fails on purpose");
    let stats = events.stats().await.unwrap();
    assert_eq!((stats.retried, stats.dead_lettered), (2, 1), "{stats:?}");
    assert!(failing.handled().is_empty());
    s.teardown().await;
}

async fn a_delivery_that_recovers_is_handled_once(backend: BackendKind, jetstream: bool) {
    let Some(mut s) = Setup::new(backend, jetstream).await else {
        return;
    };
    let flaky = Recorder::new("flaky", "test.r", 2);
    let events = s.start(vec![flaky.clone()]).await;
    let ids = s.emit(&events, "test.r", 5).await;
    eventually("every first attempt", async || {
        ids.iter().all(|id| flaky.attempts(*id) == 1)
    })
    .await;
    s.advance(10);
    eventually("every second attempt", async || {
        ids.iter().all(|id| flaky.attempts(*id) == 2)
    })
    .await;
    s.advance(10);
    eventually("every event handled", async || exactly_once(&flaky.handled(), &ids)).await;
    s.advance(100);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(exactly_once(&flaky.handled(), &ids));
    assert!(ids.iter().all(|id| flaky.attempts(*id) == 3));
    let stats = events.stats().await.unwrap();
    assert_eq!((stats.retried, stats.dead_lettered), (10, 0), "{stats:?}");
    s.teardown().await;
}

/// A consumer allowed one attempt per event (a [`Recorder`] that fails every time).
struct OneAttempt(Arc<Recorder>);

#[async_trait]
impl Consumer for OneAttempt {
    fn name(&self) -> &'static str {
        self.0.name
    }
    fn subject(&self) -> &'static str {
        self.0.subject
    }
    fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            attempts_max: 1,
            delay: SignedDuration::from_secs(10),
        }
    }
    async fn handle(&self, event: &Event) -> Result<(), Failure> {
        self.0.handle(event).await
    }
}

/// The last attempt is the first: the delivery is buried with its dead letter by the attempt
/// that failed (JetStream: in the transaction that writes the delivery's row, once).
async fn a_delivery_with_one_attempt_is_dead_lettered_by_its_first(backend: BackendKind, jetstream: bool) {
    let Some(mut s) = Setup::new(backend, jetstream).await else {
        return;
    };
    let failing = Recorder::new("one-shot", "test.o1", u32::MAX);
    let events = s.start(vec![Arc::new(OneAttempt(failing.clone()))]).await;
    let ids = s.emit(&events, "test.o1", 3).await;
    let dead = async || {
        let mut r = s.store.read().await.unwrap();
        r.dead_letters(&DeadLetterFilter::default(), None, 10).await.unwrap()
    };
    eventually("three dead letters", async || dead().await.len() == 3).await;
    s.advance(60);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(ids.iter().all(|id| failing.attempts(*id) == 1), "one attempt each");
    let letters = dead().await;
    assert_eq!(letters.len(), 3, "{letters:?}");
    for d in &letters {
        assert!(d.event_id.is_some_and(|id| ids.contains(&id)), "{d:?}");
        assert_eq!((d.consumer.as_deref(), d.attempts), (Some("one-shot"), 1), "{d:?}");
        assert_eq!(d.last_error, "attempt 1 fails on purpose");
    }
    let queues = s.store.read().await.unwrap().queue_counts().await.unwrap();
    assert_eq!(queues, vec![("event.one-shot".to_owned(), "dead".to_owned(), 3)]);
    let stats = events.stats().await.unwrap();
    assert_eq!((stats.retried, stats.dead_lettered), (0, 3), "{stats:?}");
    s.teardown().await;
}

/// A consumer applied in the dispatcher's transaction: each event becomes a row (an alert whose
/// cause is the event's id, so a second write of it changes nothing). An event whose data says
/// `"bad": true` cannot be applied: in the transaction it fails the batch (after writing the
/// batch's other rows, which must then be rolled back); handled alone, it fails for good.
struct Applied {
    store: Store,
    clock: Arc<ManualClock>,
    /// Events handled the queued way (not in the dispatcher's transaction).
    queued: Mutex<Vec<Uuid>>,
}

impl Applied {
    fn on(s: &Setup) -> Arc<Self> {
        Arc::new(Self {
            store: s.store.clone(),
            clock: s.clock.clone(),
            queued: Mutex::default(),
        })
    }

    async fn write(&self, tx: &mut Session, events: &[Event]) -> anyhow::Result<()> {
        for e in events {
            let cause = e.id.to_string();
            let alert = NewAlert {
                kind: "applied",
                cause: &cause,
                subject_id: Some(e.id),
                message: "applied",
                data: e.data.clone(),
            };
            tx.insert_alert(&alert, self.clock.now()).await?;
        }
        match events.iter().find(|e| e.data["bad"] == true) {
            Some(bad) => anyhow::bail!("event {} cannot be applied", bad.id),
            None => Ok(()),
        }
    }

    /// The events applied (rows written and committed).
    async fn rows(&self) -> Vec<Uuid> {
        let filter = AlertFilter {
            kind: Some("applied".into()),
            ..AlertFilter::default()
        };
        let mut r = self.store.read().await.unwrap();
        let alerts = r.alerts(&filter, None, 1_000).await.unwrap();
        alerts.iter().filter_map(|a| a.subject_id).collect()
    }
}

#[async_trait]
impl Consumer for Applied {
    fn name(&self) -> &'static str {
        "applied"
    }
    fn subject(&self) -> &'static str {
        "test.*"
    }
    async fn handle(&self, event: &Event) -> Result<(), Failure> {
        self.queued.lock().unwrap().push(event.id);
        let mut tx = self.store.begin().await.map_err(Failure::new)?;
        self.write(&mut tx, std::slice::from_ref(event))
            .await
            .map_err(Failure::new)?;
        tx.commit().await.map_err(Failure::new)
    }
    fn in_transaction(&self) -> Option<&dyn InTransaction> {
        Some(self)
    }
}

#[async_trait]
impl InTransaction for Applied {
    async fn apply(&self, tx: &mut Session, events: &[Event]) -> anyhow::Result<()> {
        self.write(tx, events).await
    }
}

/// Declares a scenario `fn(BackendKind)` on both backends.
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            use minipay_store::BackendKind::{Postgres, Sqlite};
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() { super::$name(Sqlite).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() { super::$name(Postgres).await }
        }
    )+};
}

// Embedded only: on JetStream a consumer applied in a transaction reads the stream as any other.
on_both_backends!(
    a_consumer_in_the_transaction_is_applied_with_the_publication,
    a_batch_that_cannot_be_applied_is_queued_and_only_its_bad_event_dead_lettered,
);

async fn a_consumer_in_the_transaction_is_applied_with_the_publication(backend: BackendKind) {
    let Some(mut s) = Setup::new(backend, false).await else {
        return;
    };
    let applied = Applied::on(&s);
    let queued_beside = Recorder::new("beside", "test.a", 0);
    let events = s.start(vec![applied.clone(), queued_beside.clone()]).await;
    let ids = s.emit(&events, "test.a", 40).await;
    eventually("every event applied", async || applied.rows().await.len() == ids.len()).await;
    eventually("the consumer beside it handled each event", async || {
        exactly_once(&queued_beside.handled(), &ids)
    })
    .await;
    let mut rows = applied.rows().await;
    rows.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(rows, expected, "each event applied once");
    assert!(applied.queued.lock().unwrap().is_empty(), "nothing went the queued way");
    let queues = s.store.read().await.unwrap().queue_counts().await.unwrap();
    assert!(
        queues.iter().all(|(kind, _, _)| kind != "event.applied"),
        "no delivery rows for a consumer applied in the transaction: {queues:?}"
    );
    assert!(
        queues.iter().any(|(kind, _, n)| kind == "event.beside" && *n == 40),
        "{queues:?}"
    );
    let stats = events.stats().await.unwrap();
    assert_eq!((stats.outbox_unpublished, stats.published), (0, 40), "{stats:?}");
    s.teardown().await;
}

async fn a_batch_that_cannot_be_applied_is_queued_and_only_its_bad_event_dead_lettered(backend: BackendKind) {
    let Some(mut s) = Setup::new(backend, false).await else {
        return;
    };
    let applied = Applied::on(&s);
    // Written before the engine starts, so that they are dispatched as one batch.
    let mut ids = Vec::new();
    let mut tx = s.store.begin().await.unwrap();
    for i in 0..10 {
        let data = json!({"n": i, "bad": i == 4});
        ids.push(emit(&mut tx, "test.b", &data, s.clock.now()).await.unwrap());
    }
    tx.commit().await.unwrap();
    let bad = ids[4];
    let events = s.start(vec![applied.clone()]).await;
    eventually("the good events applied", async || applied.rows().await.len() == 9).await;
    let dead = async || {
        let mut r = s.store.read().await.unwrap();
        r.dead_letters(&DeadLetterFilter::default(), None, 10).await.unwrap()
    };
    // Its retries come on the clock: it moves on while we wait.
    eventually("the bad event dead-lettered", async || {
        s.advance(1);
        !dead().await.is_empty()
    })
    .await;
    let letters = dead().await;
    assert_eq!(
        (letters.len(), letters[0].event_id, letters[0].consumer.as_deref()),
        (1, Some(bad), Some("applied"))
    );
    let rows = applied.rows().await;
    assert!(
        !rows.contains(&bad),
        "the failed batch's rows were rolled back, the bad event's too"
    );
    assert_eq!(rows.len(), 9);
    let mut queued = applied.queued.lock().unwrap().clone();
    queued.sort();
    queued.dedup();
    assert_eq!(queued.len(), 10, "the whole batch went the queued way");
    eventually("the outbox is empty", async || {
        events.stats().await.unwrap().outbox_unpublished == 0
    })
    .await;
    s.teardown().await;
}

on_both_backends!(
    a_message_seen_twice_is_handled_once,
    a_restarted_jetstream_loses_nothing,
    the_relay_publishes_in_outbox_order,
);

/// A duplicate message (another message id, the same event) and a re-publish after a crash
/// before the outbox row was marked (the same message id) are each handled at most once.
async fn a_message_seen_twice_is_handled_once(backend: BackendKind) {
    let Some(mut s) = Setup::new(backend, true).await else {
        return;
    };
    let once = Recorder::new("once", "test.d", 0);
    let events = s.start(vec![once.clone()]).await;
    let ids = s.emit(&events, "test.d", 3).await;
    eventually("handled", async || exactly_once(&once.handled(), &ids)).await;

    // The same event in a second message: its delivery exists already.
    let client = async_nats::connect(s.config.nats_url.as_deref().unwrap())
        .await
        .unwrap();
    let js = async_nats::jetstream::new(client);
    let event = Event {
        id: ids[0],
        subject: "test.d".into(),
        created_at: s.clock.now(),
        data: json!({"n": 0}),
    };
    let subject = format!("{}.test.d", s.config.subject_prefix);
    js.publish(subject, serde_json::to_vec(&event).unwrap().into())
        .await
        .unwrap()
        .await
        .unwrap();
    // A relay that crashed after publishing but before marking: the row goes out again, with
    // the same message id, and JetStream drops it.
    let stream_messages = async || {
        let mut stream = js.get_stream(&s.config.stream).await.unwrap();
        stream.info().await.unwrap().state.messages
    };
    assert_eq!(stream_messages().await, 4);
    assert_eq!(unmark_published(&s.db.url, ids[1]).await, 1);
    events.wake();
    eventually("re-published", async || {
        events.stats().await.unwrap().outbox_unpublished == 0
    })
    .await;
    assert_eq!(stream_messages().await, 4, "the re-publish was dropped as a duplicate");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(exactly_once(&once.handled(), &ids), "{:?}", once.handled());
    s.teardown().await;
}

/// Marks an outbox row unpublished again behind the engine's back, as if the relay had
/// crashed after publishing it but before marking it.
async fn unmark_published(url: &str, id: Uuid) -> u64 {
    use sqlx::Connection;
    let sql = "UPDATE outbox SET published_at = NULL WHERE id = $1";
    if url.starts_with("postgres") {
        let mut c = sqlx::PgConnection::connect(url).await.unwrap();
        sqlx::query(sql).bind(id).execute(&mut c).await.unwrap().rows_affected()
    } else {
        let mut c = sqlx::SqliteConnection::connect(url).await.unwrap();
        sqlx::query(sql).bind(id).execute(&mut c).await.unwrap().rows_affected()
    }
}

async fn a_restarted_jetstream_loses_nothing(backend: BackendKind) {
    let Some(mut nats) = OwnNats::start().await else { return };
    let Some(mut s) = Setup::on(backend, isolated_config(Some(nats.url.clone()))).await else {
        return;
    };
    let sink = Recorder::new("sink", "test.s", 0);
    let events = s.start(vec![sink.clone()]).await;
    let mut ids = s.emit(&events, "test.s", 20).await;
    eventually("the first twenty", async || exactly_once(&sink.handled(), &ids)).await;
    nats.stop().await;
    ids.extend(s.emit(&events, "test.s", 20).await);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        events.stats().await.unwrap().outbox_unpublished > 0,
        "with NATS down the outbox keeps what it could not publish"
    );
    assert!(nats.resume().await);
    ids.extend(s.emit(&events, "test.s", 20).await);
    eventually("all sixty, once each", async || exactly_once(&sink.handled(), &ids)).await;
    eventually("the outbox is empty", async || {
        events.stats().await.unwrap().outbox_unpublished == 0
    })
    .await;
    s.teardown().await;
    nats.stop().await;
}

async fn the_relay_publishes_in_outbox_order(backend: BackendKind) {
    let Some(mut s) = Setup::new(backend, true).await else {
        return;
    };
    let events = s.start(vec![]).await;
    let ids = s.emit(&events, "test.o", 50).await;
    eventually("published", async || {
        events.stats().await.unwrap().outbox_unpublished == 0
    })
    .await;
    let client = async_nats::connect(s.config.nats_url.as_deref().unwrap())
        .await
        .unwrap();
    let stream = async_nats::jetstream::new(client)
        .get_stream(&s.config.stream)
        .await
        .unwrap();
    let mut published = Vec::new();
    for seq in 1..=50 {
        let m = stream.get_raw_message(seq).await.unwrap();
        let event: Event = serde_json::from_slice(&m.payload).unwrap();
        published.push(event.id);
    }
    assert_eq!(published, ids);
    s.teardown().await;
}

/// Two instances pull from one durable consumer: every event is handled exactly once in all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_one_consumer() {
    let Some(mut s) = Setup::new(BackendKind::Postgres, true).await else {
        return;
    };
    let handled = Arc::new(Mutex::new(HashMap::new()));
    let first = Recorder::sharing("shared", "test.t", 0, handled.clone());
    let second = Recorder::sharing("shared", "test.t", 0, handled.clone());
    let events = s.start(vec![first.clone()]).await;
    s.start(vec![second.clone()]).await;
    let ids = s.emit(&events, "test.t", 200).await;
    eventually("every event handled once in all", async || {
        exactly_once(&handled.lock().unwrap(), &ids)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(exactly_once(&handled.lock().unwrap(), &ids));
    let (a, b) = (
        first.attempts.lock().unwrap().len(),
        second.attempts.lock().unwrap().len(),
    );
    assert_eq!(a + b, 200, "no event reached both instances ({a} + {b})");
    s.teardown().await;
}
