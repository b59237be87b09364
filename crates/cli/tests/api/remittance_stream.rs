//! Remittances on the event stream under concurrency and failure: one Idempotency-Key sent ten
//! times at once, two instances sharing one JetStream consumer, JetStream restarted mid-run,
//! the server killed between a bank call and the recording of its outcome, and alerts reaching
//! the operators' webhook. Each scenario ends with exact balances at the bank (A, B and the
//! platform's own account), the bank's count of executed transfers, and the ledger audit.

use crate::helpers::{
    Backend, Engine, HookReceiver, TestApp, TestBusiness, TestEvents, env_refs, eventually_holds, join_all,
    run_on_with, spawn_app_with, spawn_serve_process, start_twin,
};
use crate::{for_both_backends, for_every_engine, on_every_engine};
use minipay_events::testing::OwnNats;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// Where every bank account starts at the simulator.
const OPENING_WON: i64 = 100_000_000;
/// How long a scenario waits for background work (JetStream reconnecting, say) before it fails.
const SETTLE_MAX: Duration = Duration::from_secs(60);
/// How long a scenario watches for something that must NOT happen (a second delivery, a retry
/// before its time) before it accepts that it did not.
const QUIET_MS: u64 = 400;
/// The lease of a claimed delivery on the queue (minipay-jobs; embedded deliveries), and a
/// second past it.
const LEASE_SECS: i64 = 300;
/// Between a delivery's attempts (the remittance rule and the default for every consumer).
const RETRY_DELAY_SECS: i64 = 10;
/// The monitor alerts on remittances unfinished this long after they were requested.
const STUCK_AFTER_SECS: i64 = 600;

on_every_engine!(one_key_sent_ten_times_at_once_makes_one_remittance);

for_both_backends!(a_restarted_jetstream_loses_no_remittance_and_repeats_none);

for_every_engine!(
    a_crash_between_the_payout_and_its_record_pays_b_once,
    a_crash_between_the_collect_and_its_record_pulls_a_once,
    a_stuck_remittance_alert_reaches_the_webhook_once,
    an_alert_webhook_that_fails_gets_the_alert_later,
);

/// The bank's counters that show money moving: transfers executed, whatever was asked.
async fn executed(app: &TestApp) -> (i64, i64) {
    let stats = app.bank_stats().await;
    (
        stats["pulls_executed"].as_i64().unwrap(),
        stats["pushes_executed"].as_i64().unwrap(),
    )
}

/// A remittance's status as its sender sees it.
async fn status_of(app: &TestApp, sender: &TestBusiness, id: &str) -> String {
    let r = app.biz_get(sender, &format!("/v1/biz/remittances/{id}")).await;
    r.assert_status(200)["status"].as_str().unwrap().to_owned()
}

/// Each step's `(name, status)`.
fn steps_of(r: &Value) -> Vec<(String, String)> {
    r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_owned(),
                s["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The four steps of a remittance that reached B, each succeeded (no refund among them).
fn all_four_succeeded() -> Vec<(String, String)> {
    ["collect", "credit_float", "debit_float", "payout"]
        .map(|n| (n.to_owned(), "succeeded".to_owned()))
        .to_vec()
}

/// Remittances sent in a scenario: who sent what to whom, and what came of it.
#[derive(Default)]
struct Ledger {
    sent: Vec<(usize, usize, i64, String)>,
}

impl Ledger {
    /// Sends `won` from `businesses[from]` to `businesses[to]` under `key`; it must be accepted.
    async fn send(&mut self, app: &TestApp, businesses: &[TestBusiness], from: usize, to: usize, won: i64, key: &str) {
        let r = app.remit(&businesses[from], &businesses[to], won, key).await;
        let id = r.assert_status(202)["id"].as_str().unwrap().to_owned();
        self.sent.push((from, to, won, id));
    }

    fn total(&self) -> i64 {
        self.sent.iter().map(|s| s.2).sum()
    }

    /// Waits until every remittance sent is completed, then checks each one's steps.
    async fn all_completed(&self, app: &TestApp, businesses: &[TestBusiness]) {
        eventually_holds("every remittance completed", SETTLE_MAX, || async {
            let mut done = 0;
            for (from, _, _, id) in &self.sent {
                if status_of(app, &businesses[*from], id).await == "completed" {
                    done += 1;
                }
            }
            done == self.sent.len()
        })
        .await;
        for (from, _, won, id) in &self.sent {
            let r = app.remittance_when(&businesses[*from], id, &["completed"]).await;
            assert_eq!(steps_of(&r), all_four_succeeded(), "{r}");
            assert_eq!((r["amount"].as_i64(), &r["failure"]), (Some(*won), &Value::Null), "{r}");
        }
    }

    /// Every business's balance at the bank is its opening balance, less what it sent, plus
    /// what it received: each A debited once, each B paid once.
    async fn assert_bank_balances(&self, app: &TestApp, businesses: &[TestBusiness]) {
        let mut expected: BTreeMap<usize, i64> = (0..businesses.len()).map(|i| (i, OPENING_WON)).collect();
        for (from, to, won, _) in &self.sent {
            *expected.get_mut(from).unwrap() -= won;
            *expected.get_mut(to).unwrap() += won;
        }
        for (i, want) in expected {
            let b = &businesses[i];
            assert_eq!(
                app.bank_account_balance(&b.account_number).await,
                want,
                "{}'s balance at the bank",
                b.name
            );
        }
    }
}

/// 1. The same Idempotency-Key and body ten times at once: one remittance. Each answer is the
///    remittance (202, one of them fresh, the others replayed) or, while the first is still
///    being recorded, `409 conflict` — nothing else.
async fn one_key_sent_ten_times_at_once_makes_one_remittance(app: TestApp) {
    let a = app.onboard_business("동시상사").await;
    let b = app.onboard_business("한번물산").await;
    let before = executed(&app).await;
    let answers = join_all((0..10).map(|_| {
        let (app, a, b) = (app.clone(), a.clone(), b.clone());
        async move { app.remit(&a, &b, 33_000, "same-key-ten-times").await }
    }))
    .await;
    let (mut ids, mut fresh, mut conflicts) = (HashSet::new(), 0, 0);
    for r in &answers {
        match r.status {
            202 => {
                ids.insert(r.body["id"].as_str().unwrap().to_owned());
                if r.headers.get("idempotent-replayed").is_none_or(|v| v != "true") {
                    fresh += 1;
                }
            }
            409 => {
                r.assert_error(409, "conflict");
                conflicts += 1;
            }
            _ => panic!("the same key at once answered neither 202 nor 409: {}", r.text),
        }
    }
    eprintln!(
        "{:?}: ten at once answered {} × 202 and {conflicts} × 409 conflict",
        app.backend,
        10 - conflicts
    );
    assert_eq!((ids.len(), fresh), (1, 1), "one remittance, recorded once: {answers:?}");
    let id = ids.into_iter().next().unwrap();

    let done = app.remittance_when(&a, &id, &["completed"]).await;
    assert_eq!(steps_of(&done), all_four_succeeded(), "{done}");
    // Sent again once it is done, the key still answers the same remittance.
    let again = app.remit(&a, &b, 33_000, "same-key-ten-times").await;
    assert_eq!(again.assert_status(202)["id"], json!(id));
    let listed = app
        .admin_get(&format!("/v1/admin/remittances?business_id={}", a.id))
        .await;
    let items = listed.assert_status(200)["items"].as_array().unwrap().clone();
    assert_eq!(
        items.iter().map(|r| r["id"].clone()).collect::<Vec<_>>(),
        [json!(id)],
        "exactly one remittance: {items:?}"
    );

    tokio::time::sleep(Duration::from_millis(QUIET_MS)).await;
    let ledger = Ledger {
        sent: vec![(0, 1, 33_000, id)],
    };
    ledger.assert_bank_balances(&app, &[a, b]).await;
    let (pulls, pushes) = executed(&app).await;
    assert_eq!(
        (pulls - before.0, pushes - before.1),
        (1, 1),
        "one pull from A, one push to B"
    );
    assert_eq!(app.platform_bank_balance().await, 0);
}

/// 2. Two instances of one deployment (PostgreSQL, JetStream) take turns on the same durable
///    consumers: 45 remittances between five businesses, sent through both, each completed,
///    each A debited once and each B paid once, and the platform's bank account back at 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_jetstream_consumer_pay_each_remittance_once() {
    let Some(events) = TestEvents::on(Engine::JetStream).await else {
        return;
    };
    let Some(first) = spawn_app_with(Backend::Postgres, |s| events.apply(s)).await else {
        return;
    };
    let second = start_twin(&first).await;
    let names = ["하나상사", "두리물산", "세모유통", "네모상회", "다섯무역"];
    let businesses = join_all(names.map(|n| {
        let app = first.clone();
        async move { app.onboard_business(n).await }
    }))
    .await;
    let before = executed(&first).await;

    // Remittance i goes from business i % 5 to another one, through instance i % 2.
    let plan: Vec<(usize, usize, i64)> = (0..45)
        .map(|i| (i % 5, (i % 5 + 1 + (i / 5) % 4) % 5, 1_000 + 10 * i as i64))
        .collect();
    let sends = plan.iter().enumerate().map(|(i, &(from, to, won))| {
        let app = if i % 2 == 0 { first.clone() } else { second.clone() };
        let (sender, receiver) = (businesses[from].clone(), businesses[to].clone());
        async move {
            let r = app.remit(&sender, &receiver, won, &format!("fan-out-{i}")).await;
            r.assert_status(202)["id"].as_str().unwrap().to_owned()
        }
    });
    let ids = join_all(sends).await;
    let ledger = Ledger {
        sent: plan.iter().zip(ids).map(|(&(f, t, w), id)| (f, t, w, id)).collect(),
    };

    ledger.all_completed(&second, &businesses).await;
    tokio::time::sleep(Duration::from_millis(QUIET_MS)).await;
    ledger.assert_bank_balances(&first, &businesses).await;
    let (pulls, pushes) = executed(&first).await;
    assert_eq!(
        (pulls - before.0, pushes - before.1),
        (45, 45),
        "each A pulled once and each B paid once"
    );
    assert_eq!(first.platform_bank_balance().await, 0);
    for app in [&first, &second] {
        let stats = app.admin_get("/v1/admin/events").await;
        assert_eq!(stats.assert_status(200)["mode"], json!("jetstream"));
    }
    eventually_holds("the outbox is empty", SETTLE_MAX, || async {
        let stats = first.admin_get("/v1/admin/events").await;
        stats.assert_status(200)["outbox_unpublished"] == json!(0)
    })
    .await;
    first.assert_invariants().await;
    second.teardown().await;
    first.teardown().await;
    events.remove().await;
}

/// 3. JetStream stops mid-run (a nats-server of the test's own) and starts again: what was sent
///    meanwhile is accepted and kept in the outbox, and every remittance completes once.
async fn a_restarted_jetstream_loses_no_remittance_and_repeats_none(backend: Backend) {
    let Some(mut nats) = OwnNats::start().await else {
        return;
    };
    let events = TestEvents::jetstream_at(&nats.url);
    let Some(app) = spawn_app_with(backend, |s| events.apply(s)).await else {
        return;
    };
    let businesses = vec![
        app.onboard_business("첫째상사").await,
        app.onboard_business("둘째물산").await,
        app.onboard_business("셋째유통").await,
    ];
    let before = executed(&app).await;
    let mut ledger = Ledger::default();
    let mut n = 0;
    let mut send_round = async |ledger: &mut Ledger, count: usize, round: &str| {
        for _ in 0..count {
            let (from, to) = (n % 3, (n + 1 + n / 3 % 2) % 3);
            let key = format!("{round}-{n}");
            ledger
                .send(&app, &businesses, from, to, 2_000 + 10 * n as i64, &key)
                .await;
            n += 1;
        }
    };

    send_round(&mut ledger, 10, "before").await;
    ledger.all_completed(&app, &businesses).await;

    nats.stop().await;
    let first_round = ledger.sent.len();
    send_round(&mut ledger, 10, "while-down").await;
    // The relay tries and fails: what it could not publish stays in the outbox, untouched.
    tokio::time::sleep(Duration::from_millis(QUIET_MS)).await;
    let stats = app.admin_get("/v1/admin/events").await;
    let stats = stats.assert_status(200).clone();
    assert!(
        stats["outbox_unpublished"].as_i64().unwrap() > 0,
        "with NATS down the outbox keeps what it could not publish: {stats}"
    );
    for (from, _, _, id) in &ledger.sent[first_round..] {
        assert_eq!(status_of(&app, &businesses[*from], id).await, "requested");
    }

    assert!(nats.resume().await, "the nats-server starts again");
    send_round(&mut ledger, 5, "after").await;
    ledger.all_completed(&app, &businesses).await;
    eventually_holds("the outbox is empty", SETTLE_MAX, || async {
        let stats = app.admin_get("/v1/admin/events").await;
        stats.assert_status(200)["outbox_unpublished"] == json!(0)
    })
    .await;

    tokio::time::sleep(Duration::from_millis(QUIET_MS)).await;
    ledger.assert_bank_balances(&app, &businesses).await;
    let (pulls, pushes) = executed(&app).await;
    assert_eq!((pulls - before.0, pushes - before.1), (25, 25), "nothing twice");
    assert_eq!(app.platform_bank_balance().await, 0);
    assert_eq!(ledger.total(), (0..25).map(|n| 2_000 + 10 * n).sum::<i64>());
    app.assert_invariants().await;
    app.teardown().await;
    events.remove().await;
    nats.stop().await;
}

/// Which bank call the server is killed in, its answer still on the way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KilledIn {
    /// The pull from A (the remittance is still `requested`).
    Collect,
    /// The push to B (the remittance is `debited`).
    Payout,
}

/// How long the bank takes to answer while the server is killed: the transfer is applied at
/// once and answered this much later (within the client's 5 s transfer timeout).
const SLOW_BANK_MS: u64 = 3_000;
const CRASH_WON: i64 = 55_000;

/// 4. The `minipay serve` process is SIGKILLed after the bank moved the money and before the
///    server recorded the answer. The restarted server takes the step over once the dead
///    worker's claim runs out — its lease on the clock (embedded), or JetStream's ack wait (in
///    real time: the message is offered again) — asks the bank under the same transfer id,
///    and finishes: A pulled once, B paid once, nothing refunded.
async fn crash_in_a_bank_call(backend: Backend, engine: Engine, killed_in: KilledIn) {
    let Some(events) = TestEvents::on(engine).await else {
        return;
    };
    let env = events.env();
    let Some(app) = spawn_serve_process(backend, &env_refs(&env)).await else {
        return;
    };
    let a = app.onboard_business("보내는상사").await;
    let b = app.onboard_business("받는물산").await;
    app.set_bank_latency_ms(SLOW_BANK_MS).await;
    let sent = app.remit(&a, &b, CRASH_WON, "crash-1").await;
    let id = sent.assert_status(202)["id"].as_str().unwrap().to_owned();

    let (watched, moved, status_then) = match killed_in {
        KilledIn::Collect => (&a, OPENING_WON - CRASH_WON, "requested"),
        KilledIn::Payout => (&b, OPENING_WON + CRASH_WON, "debited"),
    };
    eventually_holds(
        "the bank applied the transfer (its answer is still on the way)",
        Duration::from_secs(20),
        || async { app.bank_account_balance(&watched.account_number).await == moved },
    )
    .await;
    app.kill_process().await;
    app.set_bank_latency_ms(0).await;
    assert_eq!(
        executed(&app).await,
        match killed_in {
            KilledIn::Collect => (1, 0),
            KilledIn::Payout => (1, 1),
        }
    );

    let restarted = app.restart_process(&env_refs(&env)).await;
    // The dead worker's claim holds until its lease runs out on the clock (embedded), or
    // until JetStream's ack wait (TEST_ACK_WAIT_MS after the delivery) runs out.
    tokio::time::sleep(Duration::from_millis(QUIET_MS)).await;
    assert_eq!(status_of(&restarted, &a, &id).await, status_then);
    restarted.advance_clock(LEASE_SECS + 1).await;
    let done = restarted.remittance_when(&a, &id, &["completed"]).await;
    assert_eq!(steps_of(&done), all_four_succeeded(), "{done}");
    assert_eq!(done["failure"], Value::Null);

    tokio::time::sleep(Duration::from_millis(QUIET_MS)).await;
    assert_eq!(status_of(&restarted, &a, &id).await, "completed", "never refunded");
    Ledger {
        sent: vec![(0, 1, CRASH_WON, id)],
    }
    .assert_bank_balances(&restarted, &[a, b])
    .await;
    assert_eq!(
        executed(&restarted).await,
        (1, 1),
        "the bank executed one pull and one push: the same transfer ids, asked again, moved nothing"
    );
    assert_eq!(restarted.platform_bank_balance().await, 0);
    let stats = restarted.bank_stats().await;
    let asked = match killed_in {
        KilledIn::Collect => &stats["pulls"],
        KilledIn::Payout => &stats["pushes"],
    };
    assert!(
        asked.as_i64().unwrap() + stats["status_inquiries"].as_i64().unwrap() >= 2,
        "the restarted server went back to the bank about the killed transfer: {stats}"
    );
    restarted.assert_invariants().await;
    restarted.teardown().await;
    app.teardown().await;
    events.remove().await;
}

async fn a_crash_between_the_payout_and_its_record_pays_b_once(backend: Backend, engine: Engine) {
    crash_in_a_bank_call(backend, engine, KilledIn::Payout).await;
}

async fn a_crash_between_the_collect_and_its_record_pulls_a_once(backend: Backend, engine: Engine) {
    crash_in_a_bank_call(backend, engine, KilledIn::Collect).await;
}

/// A remittance whose collect keeps failing (A's bank is unavailable for pulls), ten minutes
/// old when the monitor runs: it raises one `remittance_stuck` alert. The sender and the id.
async fn stuck_remittance(app: &TestApp) -> (TestBusiness, TestBusiness, String) {
    let a = app.onboard_business("막힌상사").await;
    let b = app.onboard_business("기다림물산").await;
    app.admin_put(
        &format!("/v1/admin/bank-sim/accounts/{}", a.account_number),
        json!({"pull": "unavailable"}),
    )
    .await
    .assert_status(200);
    let sent = app.remit(&a, &b, 12_000, "stuck-1").await;
    let id = sent.assert_status(202)["id"].as_str().unwrap().to_owned();
    eventually_holds("the collect's first attempt failed", SETTLE_MAX, || async {
        let r = app.admin_get(&format!("/v1/admin/remittances/{id}")).await;
        let r = r.assert_status(200);
        r["steps"][0]["attempts"].as_i64() >= Some(1)
    })
    .await;
    app.advance_clock(STUCK_AFTER_SECS).await;
    let run = app.run_job("remittance-monitor").await;
    assert_eq!(run["processed"], json!(1), "one alert raised: {run}");
    assert_eq!(status_of(app, &a, &id).await, "requested");
    (a, b, id)
}

/// The alert operators see at `GET /v1/admin/alerts`, the one of `kind`.
async fn listed_alert(app: &TestApp, kind: &str) -> Value {
    let listed = app.admin_get(&format!("/v1/admin/alerts?kind={kind}")).await;
    let items = listed.assert_status(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "{items:?}");
    items[0].clone()
}

/// Nothing moved for a remittance that never got past its collect.
async fn assert_nothing_moved(app: &TestApp, a: TestBusiness, b: TestBusiness) {
    Ledger::default().assert_bank_balances(app, &[a, b]).await;
    assert_eq!(app.platform_bank_balance().await, 0);
}

/// 5a. The `remittance_stuck` alert is POSTed once to `MINIPAY_ALERT_WEBHOOK_URL`: the alert
///     itself, as operators list it.
async fn a_stuck_remittance_alert_reaches_the_webhook_once(backend: Backend, engine: Engine) {
    let receiver = HookReceiver::start().await;
    let url = receiver.url.clone();
    let receiver = &receiver;
    run_on_with(
        backend,
        engine,
        |s| s.alert_webhook_url = Some(url),
        |app| async move {
            let (a, b, id) = stuck_remittance(&app).await;
            eventually_holds("the alert reaches the webhook", SETTLE_MAX, || async {
                !receiver.received().is_empty()
            })
            .await;
            // Raised once per remittance: the monitor again raises nothing, nothing else comes.
            let again = app.run_job("remittance-monitor").await;
            assert_eq!(again["processed"], json!(0), "{again}");
            tokio::time::sleep(Duration::from_millis(QUIET_MS)).await;
            let got = receiver.received();
            assert_eq!(got.len(), 1, "one POST: {got:?}");
            assert_eq!(
                (got[0].method.as_str(), got[0].path.as_str(), got[0].answered),
                ("POST", "/hook", 200)
            );
            let alert = &got[0].body;
            assert_eq!(alert["kind"], json!("remittance_stuck"), "{alert}");
            assert_eq!(alert["cause"], json!(format!("remittance_stuck:{id}")), "{alert}");
            assert_eq!(alert["subject_id"], json!(id), "{alert}");
            assert_eq!(alert["data"]["remittance_id"], json!(id), "{alert}");
            assert_eq!(*alert, listed_alert(&app, "remittance_stuck").await);
            assert_nothing_moved(&app, a, b).await;
        },
    )
    .await;
}

/// 5b. A webhook that answers 500 gets the alert again 10 s later on the clock (not before),
///     until it takes it; every attempt carries the same alert and event id.
async fn an_alert_webhook_that_fails_gets_the_alert_later(backend: Backend, engine: Engine) {
    let receiver = HookReceiver::start().await;
    receiver.fail_next_of_kind("remittance_stuck", 2);
    let url = receiver.url.clone();
    let receiver = &receiver;
    run_on_with(
        backend,
        engine,
        |s| s.alert_webhook_url = Some(url),
        |app| async move {
            let (a, b, _) = stuck_remittance(&app).await;
            // The stuck remittance's alert (its dead letters raise alerts of their own).
            let stuck = || {
                let mut got = receiver.received();
                got.retain(|r| r.body["kind"] == "remittance_stuck");
                got
            };
            let arrived = async |n: usize| {
                eventually_holds(&format!("attempt {n} reaches the webhook"), SETTLE_MAX, || async {
                    stuck().len() >= n
                })
                .await;
            };
            let quiet_at = async |n: usize, when: &str| {
                tokio::time::sleep(Duration::from_millis(QUIET_MS)).await;
                assert_eq!(stuck().len(), n, "{when}");
            };
            arrived(1).await;
            quiet_at(1, "no retry before its time").await;
            app.advance_clock(RETRY_DELAY_SECS - 1).await;
            quiet_at(1, "no retry 9 s after the first attempt").await;
            app.advance_clock(1).await;
            arrived(2).await;
            app.advance_clock(RETRY_DELAY_SECS).await;
            arrived(3).await;
            app.advance_clock(10 * RETRY_DELAY_SECS).await;
            quiet_at(3, "taken on the third attempt: nothing more").await;

            let got = stuck();
            assert_eq!(got.iter().map(|r| r.answered).collect::<Vec<_>>(), [500, 500, 200]);
            let event_ids: HashSet<_> = got
                .iter()
                .map(|r| r.headers.get("minipay-event-id").expect("an event id").clone())
                .collect();
            assert_eq!(event_ids.len(), 1, "one event, delivered three times");
            let alert = listed_alert(&app, "remittance_stuck").await;
            assert!(got.iter().all(|r| r.body == alert), "{got:?}");
            assert_nothing_moved(&app, a, b).await;
        },
    )
    .await;
}
