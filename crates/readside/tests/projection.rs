//! The projection on SQLite and PostgreSQL: approval events delivered in any order, any number
//! of times, in batches of any size by concurrent consumers, end in the history and final state
//! of the same events delivered in order once — and in the pure fold's.

use jiff::Timestamp;
use minipay_core::ManualClock;
use minipay_events::Event;
use minipay_readside::{Projection, fold};
use minipay_store::testing::TestDb;
use minipay_store::{ApprovalView, BackendKind, HistoryStep, Store, StoreOptions};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{Value, json};
use std::sync::Arc;
use uuid::Uuid;

/// Transactions per case, and cases per backend.
const TRANSACTIONS: usize = 6;
const CASES: u32 = 12;
/// Consumers delivering at once.
const CONSUMERS: usize = 3;

/// One step as the gateway writes it: (step, upstream, detail).
type Written = (&'static str, Option<String>, Value);

fn transaction() -> impl Strategy<Value = Vec<Written>> {
    let routed = prop::collection::vec(prop_oneof![Just("van_a"), Just("van_b")], 1..3);
    let ending = prop_oneof![
        "[0-9]{8}".prop_map(|n| vec![(
            "approved",
            json!({"response_code": "00", "approval_no": n,
            "approved_at": "20261204120001"})
        )]),
        Just(vec![("declined", json!({"response_code": "51"}))]),
        (1usize..=4, any::<bool>(), any::<bool>()).prop_map(|(sends, acknowledged, late)| {
            let mut steps = vec![
                ("timed_out", json!({"response_code": "TO"})),
                ("cancel_queued", json!({})),
            ];
            steps.extend((0..sends).map(|i| ("cancel_sent", json!({"send": i + 1}))));
            steps.push(if acknowledged {
                ("cancel_acknowledged", json!({}))
            } else {
                ("cancel_failed", json!({"sends": sends}))
            });
            if late {
                steps.push(("late_answer", json!({"response_code": "00", "approval_no": "99999999"})));
            }
            steps
        }),
    ];
    (1i64..10_000_000, routed, ending).prop_map(|(amount, routed, ending)| {
        let received = json!({"terminal_id": "T0000001", "merchant_id": Uuid::from_u128(7), "seq_no": 1,
            "sent_at": "20261204120000", "tx_type": "card_approval", "amount": amount,
            "card": "941012******0001", "original_id": null});
        let last = routed.last().copied().unwrap_or("van_a").to_owned();
        let mut steps: Vec<Written> = vec![("received", None, received)];
        steps.extend(
            routed
                .into_iter()
                .map(|u| ("routed", Some(u.to_owned()), json!({"probe": false}))),
        );
        steps.extend(ending.into_iter().map(|(s, d)| (s, Some(last.clone()), d)));
        steps
    })
}

/// The events of `transactions` under fresh transaction ids, in order.
fn events_of(transactions: &[Vec<Written>]) -> Vec<Event> {
    let at = Timestamp::from_second(1_796_000_000).unwrap();
    transactions
        .iter()
        .flat_map(|steps| {
            let id = Uuid::now_v7();
            steps.iter().enumerate().map(move |(i, (step, upstream, detail))| {
                let seq = i as i32 + 1;
                let when = at + jiff::SignedDuration::from_millis(i64::from(seq) * 10);
                Event {
                    id: Uuid::now_v7(),
                    subject: format!("approval.{step}"),
                    created_at: when,
                    data: json!({"transaction_id": id, "seq": seq, "step": step, "upstream": upstream,
                        "detail": detail, "at": when}),
                }
            })
        })
        .collect()
}

/// Deliveries: every event at least once, some again, shuffled, cut into batches.
fn deliveries(n: usize) -> impl Strategy<Value = Vec<Vec<usize>>> {
    let extra = prop::collection::vec(0..n, 0..n);
    let order = extra
        .prop_map(move |extra| (0..n).chain(extra).collect::<Vec<_>>())
        .prop_shuffle();
    (order, prop::collection::vec(1usize..8, 1..64)).prop_map(|(order, sizes)| {
        let mut batches = Vec::new();
        let mut rest = order.as_slice();
        for size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (batch, tail) = rest.split_at((*size).min(rest.len()));
            batches.push(batch.to_vec());
            rest = tail;
        }
        batches
    })
}

struct Rig {
    _db: TestDb,
    store: Store,
    projection: Projection,
}

async fn rig(backend: BackendKind) -> Option<Rig> {
    let db = TestDb::create(backend).await?;
    let store = Store::connect(&db.url, &StoreOptions::default()).await.unwrap();
    store.migrate().await.unwrap();
    let clock = Arc::new(ManualClock::new("2026-12-04T03:00:00Z".parse().unwrap()));
    Some(Rig {
        _db: db,
        projection: Projection::new(store.clone(), clock),
        store,
    })
}

/// What the read side holds of the transactions of `events`.
async fn read_back(store: &Store, events: &[Event]) -> Vec<(ApprovalView, Vec<HistoryStep>)> {
    let mut ids: Vec<Uuid> = events
        .iter()
        .map(|e| fold::history_step(e).unwrap().transaction_id)
        .collect();
    ids.dedup();
    let mut s = store.read().await.unwrap();
    let mut out = Vec::new();
    for id in ids {
        let view = s
            .approval_view(id)
            .await
            .unwrap()
            .expect("every transaction has a final state");
        out.push((view, s.approval_history(id).await.unwrap()));
    }
    out
}

/// The pure fold of the events in order.
fn expected(events: &[Event]) -> Vec<(ApprovalView, Vec<HistoryStep>)> {
    let steps: Vec<HistoryStep> = events.iter().map(|e| fold::history_step(e).unwrap()).collect();
    steps
        .chunk_by(|a, b| a.transaction_id == b.transaction_id)
        .map(|t| (fold::view_of(t).unwrap(), t.to_vec()))
        .collect()
}

/// Renames the transactions of `got` to those of `like`, in order (two runs of the same
/// events under different ids compare equal).
fn renamed(
    mut got: Vec<(ApprovalView, Vec<HistoryStep>)>,
    like: &[(ApprovalView, Vec<HistoryStep>)],
) -> Vec<(ApprovalView, Vec<HistoryStep>)> {
    for ((view, history), (want, want_history)) in got.iter_mut().zip(like) {
        view.transaction_id = want.transaction_id;
        for (h, w) in history.iter_mut().zip(want_history) {
            h.transaction_id = w.transaction_id;
            h.event_id = w.event_id;
        }
    }
    got
}

async fn deliver(projection: &Projection, events: &[Event], batches: Vec<Vec<usize>>) {
    let mut lanes: Vec<Vec<Vec<Event>>> = vec![Vec::new(); CONSUMERS];
    for (i, batch) in batches.into_iter().enumerate() {
        lanes[i % CONSUMERS].push(batch.into_iter().map(|j| events[j].clone()).collect());
    }
    let tasks: Vec<_> = lanes
        .into_iter()
        .map(|lane| {
            let projection = projection.clone();
            tokio::spawn(async move {
                for batch in lane {
                    for answer in projection.project(&batch).await {
                        answer.expect("every event projects");
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
}

async fn any_order_and_redeliveries_end_as_in_order_once(backend: BackendKind) {
    let Some(rig) = rig(backend).await else { return };
    let strategy = prop::collection::vec(transaction(), TRANSACTIONS).prop_flat_map(|ts| {
        let n: usize = ts.iter().map(Vec::len).sum();
        (Just(ts), deliveries(n))
    });
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        ..Config::default()
    });
    let handle = tokio::runtime::Handle::current();
    runner
        .run(&strategy, |(transactions, batches)| {
            tokio::task::block_in_place(|| {
                handle.block_on(async {
                    let in_order = events_of(&transactions);
                    for e in &in_order {
                        rig.projection
                            .project(std::slice::from_ref(e))
                            .await
                            .pop()
                            .unwrap()
                            .unwrap();
                    }
                    let once = read_back(&rig.store, &in_order).await;
                    let oracle = expected(&in_order);
                    assert_eq!(once, oracle, "in order once is the pure fold");
                    let shuffled = events_of(&transactions);
                    deliver(&rig.projection, &shuffled, batches).await;
                    let got = renamed(read_back(&rig.store, &shuffled).await, &oracle);
                    assert_eq!(got, oracle, "any order, any redeliveries: the same history and state");
                })
            });
            Ok(())
        })
        .unwrap();
}

async fn a_conflicting_event_is_kept_apart_once(backend: BackendKind) {
    let Some(rig) = rig(backend).await else { return };
    let events = events_of(&[vec![
        ("received", None, json!({"amount": 1000, "tx_type": "card_approval"})),
        ("routed", Some("van_a".into()), json!({})),
    ]]);
    let mut conflicting = events[1].clone();
    conflicting.id = Uuid::now_v7();
    conflicting.subject = "approval.timed_out".into();
    conflicting.data["step"] = json!("timed_out");
    for _ in 0..2 {
        for answer in rig
            .projection
            .project(&[events[0].clone(), events[1].clone(), conflicting.clone()])
            .await
        {
            answer.unwrap();
        }
    }
    let (view, history) = read_back(&rig.store, &events).await.pop().unwrap();
    assert_eq!((view.status.as_str(), view.conflicts, history.len()), ("sent", 1, 2));
}

async fn an_event_that_is_not_an_approval_step_fails_alone(backend: BackendKind) {
    let Some(rig) = rig(backend).await else { return };
    let events = events_of(&[vec![("received", None, json!({"amount": 1000}))]]);
    let mut bad = events[0].clone();
    bad.id = Uuid::now_v7();
    bad.data["step"] = json!("teleported");
    let answers = rig.projection.project(&[bad, events[0].clone()]).await;
    assert!(answers[0].is_err());
    assert!(answers[1].is_ok());
    assert_eq!(read_back(&rig.store, &events).await.len(), 1);
}

macro_rules! for_both_backends {
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

for_both_backends!(
    any_order_and_redeliveries_end_as_in_order_once,
    a_conflicting_event_is_kept_apart_once,
    an_event_that_is_not_an_approval_step_fails_alone,
);
