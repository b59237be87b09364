//! Batched ledger writes (transfers and charge postings): commands that share one transaction
//! still succeed or fail on their own, keep their idempotency keys, and lose nothing across
//! instances or a crash.

use crate::helpers::{Backend, Resp, TestApp, TestUser, join_all, run_with, spawn_serve_process};
use minipay_server::Settings;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};

/// How long a batch of [`long_batches`] waits for others, in microseconds.
pub(crate) const LONG_BATCH_WAIT_US: u64 = 300_000;

/// A long batch window, so that requests sent together surely share a batch.
pub(crate) fn long_batches(s: &mut Settings) {
    s.transfer_batch_max = 256;
    s.transfer_batch_wait_us = LONG_BATCH_WAIT_US;
}

macro_rules! with_long_batches {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            use crate::helpers::{Backend, run_with};
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                run_with(Backend::Sqlite, super::long_batches, super::$name).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                run_with(Backend::Postgres, super::long_batches, super::$name).await
            }
        }
    )+};
}

with_long_batches!(
    members_of_one_batch_succeed_or_fail_on_their_own,
    duplicate_keys_inside_one_batch_make_one_transfer,
    charges_post_in_the_same_batch_as_transfers,
    an_expired_key_is_used_afresh_in_a_batch,
);

async fn batches(app: &TestApp) -> Value {
    app.admin_get("/v1/admin/transfer-batches")
        .await
        .assert_status(200)
        .clone()
}

/// The batch counters now, as increases since `before`.
async fn batches_since(app: &TestApp, before: &Value) -> HashMap<String, u64> {
    let after = batches(app).await;
    let now = after.as_object().expect("counters are an object");
    now.iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap() - before[k].as_u64().unwrap()))
        .collect()
}

fn send(
    app: &TestApp,
    from: &TestUser,
    body: Value,
    key: Option<String>,
) -> impl Future<Output = Resp> + Send + 'static {
    let (app, token) = (app.clone(), from.token.clone());
    async move {
        match key {
            Some(k) => app.post_keyed("/v1/transfers", &token, &k, body).await,
            None => app.post("/v1/transfers", &token, body).await,
        }
    }
}

/// One batch holds good transfers, an overdrawn sender with no bank account, a transfer to
/// oneself, an unknown recipient and a sender who spends down to exactly zero: each gets
/// its own answer, the failures change nothing, and the rest land.
async fn members_of_one_batch_succeed_or_fail_on_their_own(app: TestApp) {
    let receiver = app.user("Receiver").await;
    let rich = app.funded_user("Rich", 50_000).await;
    let exact = app.funded_user("Exact", 20_000).await;
    let broke = app.user("Broke").await; // no money, no bank account
    let to = |u: &TestUser, won: i64| json!({"to_user_id": u.id, "amount": won});
    let before = batches(&app).await;
    let answers = join_all(vec![
        Box::pin(send(&app, &rich, to(&receiver, 10_000), None))
            as std::pin::Pin<Box<dyn Future<Output = Resp> + Send>>,
        Box::pin(send(&app, &broke, to(&receiver, 1_000), Some("broke-1".into()))),
        Box::pin(send(&app, &exact, to(&receiver, 20_000), None)),
        Box::pin(send(&app, &rich, to(&rich, 1_000), None)),
        Box::pin(send(
            &app,
            &rich,
            json!({"to_user_id": "00000000-0000-7000-8000-000000000000", "amount": 1_000}),
            None,
        )),
        Box::pin(send(&app, &rich, to(&exact, 5_000), None)),
    ])
    .await;
    answers[0].assert_status(201);
    answers[1].assert_error(422, "insufficient_funds");
    answers[2].assert_status(201);
    answers[3].assert_error(400, "validation_failed");
    answers[4].assert_error(404, "not_found");
    answers[5].assert_status(201);

    // They were answered by one batch, none of them alone.
    let delta = batches_since(&app, &before).await;
    assert_eq!(delta["batches"], 1, "{delta:?}");
    assert_eq!(delta["commands"], 6, "{delta:?}");
    assert_eq!(delta["unbatched"], 0, "{delta:?}");

    assert_eq!(app.balance(&receiver).await, 30_000);
    assert_eq!(app.balance(&rich).await, 35_000);
    // Exact spent all 20,000 and received 5,000 in the same batch (in whichever order).
    assert_eq!(app.balance(&exact).await, 5_000);
    assert_eq!(app.balance(&broke).await, 0);
    // The refusal is the key's answer from now on.
    let again = app
        .post_keyed("/v1/transfers", &broke.token, "broke-1", to(&receiver, 1_000))
        .await;
    again.assert_error(422, "insufficient_funds");
    assert_eq!(again.body, answers[1].body);
}

/// Two charges whose money the bank took and a transfer are posted by one batch: each charge
/// answers with its own account as it stood right after its posting and its limit, the key
/// replays that answer byte for byte.
async fn charges_post_in_the_same_batch_as_transfers(app: TestApp) {
    let payer = app.funded_user("Payer", 40_000).await;
    let charger = app.user_with_bank("Charger").await;
    let both = app.user_with_bank("Both").await;
    let before = batches(&app).await;
    let charge = |u: &TestUser, won: i64, key: &str| {
        let (app, token, path, key) = (
            app.clone(),
            u.token.clone(),
            format!("/v1/accounts/{}/charges", u.main_account_id),
            key.to_owned(),
        );
        async move { app.post_keyed(&path, &token, &key, json!({"amount": won})).await }
    };
    let answers = join_all(vec![
        Box::pin(charge(&charger, 30_000, "charge-1")) as std::pin::Pin<Box<dyn Future<Output = Resp> + Send>>,
        Box::pin(send(
            &app,
            &payer,
            json!({"to_user_id": both.id, "amount": 15_000}),
            None,
        )),
        Box::pin(charge(&both, 20_000, "charge-2")),
    ])
    .await;
    let first = answers[0].assert_status(201);
    assert_eq!(first["amount"], 30_000);
    assert_eq!(first["status"], "completed");
    // Nothing else touched Charger's account in the batch: the answer is exact.
    assert_eq!(first["account"]["balance"], 30_000, "{first}");
    assert_eq!(first["limit"]["used"], 30_000, "{first}");
    answers[1].assert_status(201);
    let second = answers[2].assert_status(201);
    // Both's balance right after its charge: 20,000, plus 15,000 if the transfer came first.
    let seen = second["account"]["balance"].as_i64().unwrap();
    assert!(seen == 20_000 || seen == 35_000, "{second}");
    assert_eq!(second["limit"]["used"], 20_000, "{second}");

    let delta = batches_since(&app, &before).await;
    assert_eq!(delta["batches"], 1, "{delta:?}");
    assert_eq!(delta["commands"], 3, "{delta:?}");
    assert_eq!(delta["charges"], 2, "{delta:?}");
    assert_eq!(delta["unbatched"], 0, "{delta:?}");

    assert_eq!(app.balance(&charger).await, 30_000);
    assert_eq!(app.balance(&both).await, 35_000);
    assert_eq!(app.balance(&payer).await, 25_000);
    // The key answers the same from now on, and charges nothing more.
    let again = charge(&charger, 30_000, "charge-1").await;
    again.assert_status(201);
    assert_eq!(again.text, answers[0].text);
    assert_eq!(app.balance(&charger).await, 30_000);
}

/// The same key five times in one batch makes one transfer and five identical answers; the
/// same key with a different body in one batch is refused for exactly one of the two.
async fn duplicate_keys_inside_one_batch_make_one_transfer(app: TestApp) {
    let receiver = app.user("Receiver").await;
    let sender = app.funded_user("Sender", 100_000).await;
    let body = json!({"to_user_id": receiver.id, "amount": 7_000});
    let before = batches(&app).await;
    let same = join_all((0..5).map(|_| send(&app, &sender, body.clone(), Some("dup-1".into())))).await;
    let ids: HashSet<String> = same
        .iter()
        .map(|r| r.assert_status(201)["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "{same:?}");
    assert_eq!(app.balance(&receiver).await, 7_000);
    assert_eq!(batches_since(&app, &before).await["batches"], 1);

    let other = json!({"to_user_id": receiver.id, "amount": 8_000});
    let mixed = join_all(vec![
        send(&app, &sender, body.clone(), Some("dup-2".into())),
        send(&app, &sender, other, Some("dup-2".into())),
    ])
    .await;
    let mut statuses: Vec<u16> = mixed.iter().map(|r| r.status).collect();
    statuses.sort();
    assert_eq!(statuses, [201, 422], "{mixed:?}");
    let refused = mixed.iter().find(|r| r.status == 422).unwrap();
    refused.assert_error(422, "idempotency_key_reused");
    let made = mixed.iter().find(|r| r.status == 201).unwrap().body["amount"]
        .as_i64()
        .unwrap();
    assert_eq!(app.balance(&receiver).await, 7_000 + made);
    assert_eq!(app.balance(&sender).await, 100_000 - 7_000 - made);
}

/// A key whose record has expired (kept 48 hours) but not yet been purged makes a new
/// transfer, in a batch (the batch takes the record over; it does not fall back to running
/// alone), and replays that new answer from then on.
async fn an_expired_key_is_used_afresh_in_a_batch(app: TestApp) {
    let mut receiver = app.user("Receiver").await;
    let mut sender = app.funded_user("Sender", 100_000).await;
    let body = json!({"to_user_id": receiver.id, "amount": 1_000});
    let first = send(&app, &sender, body.clone(), Some("old-1".into())).await;
    let first_id = first.assert_status(201)["id"].clone();
    let replayed = send(&app, &sender, body.clone(), Some("old-1".into())).await;
    assert_eq!(replayed.text, first.text);

    app.advance_clock_for(48 * 3_600 + 60, &mut [&mut sender, &mut receiver])
        .await;
    let before = batches(&app).await;
    let fresh = send(&app, &sender, body.clone(), Some("old-1".into())).await;
    assert_ne!(fresh.assert_status(201)["id"], first_id, "{fresh:?}");
    let delta = batches_since(&app, &before).await;
    assert_eq!(
        (delta["batches"], delta["failed"], delta["unbatched"]),
        (1, 0, 0),
        "{delta:?}"
    );
    let again = send(&app, &sender, body, Some("old-1".into())).await;
    assert_eq!(again.text, fresh.text);
    assert_eq!(app.balance(&receiver).await, 2_000);
    assert_eq!(app.balance(&sender).await, 98_000);
    app.assert_invariants().await;
}

/// Short batch windows, for tests with two instances.
fn short_batches(s: &mut Settings) {
    s.transfer_batch_max = 64;
    s.transfer_batch_wait_us = 20_000;
}

/// A second server on `app`'s database, batching like it.
async fn second_instance(app: &TestApp) -> TestApp {
    let mut settings = crate::helpers::test_settings(app.db_url());
    short_batches(&mut settings);
    crate::helpers::start_beside(app, settings).await
}

/// An account row locked by a connection of the test's own (PostgreSQL), as another
/// transaction would hold it, until released.
struct AccountLock(sqlx::PgConnection);

impl AccountLock {
    async fn take(app: &TestApp, account_id: &str) -> Self {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(app.db_url()).await.unwrap();
        sqlx::raw_sql("BEGIN").execute(&mut c).await.unwrap();
        sqlx::query("SELECT 1 FROM accounts WHERE id = $1::uuid FOR UPDATE")
            .bind(account_id)
            .execute(&mut c)
            .await
            .unwrap();
        Self(c)
    }

    async fn release(mut self) {
        sqlx::raw_sql("ROLLBACK").execute(&mut self.0).await.unwrap();
    }
}

/// Two instances on one PostgreSQL database, both batching, against one hot receiver and
/// between the same pair in both directions: every transfer lands exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_batching_instances_share_one_database() {
    run_with(Backend::Postgres, short_batches, |app| async move {
        let second = second_instance(&app).await;
        let receiver = app.user("Receiver").await;
        let (a, b) = (app.funded_user("A", 100_000).await, app.funded_user("B", 100_000).await);
        let senders = join_all((0..40).map(|i| {
            let app = app.clone();
            async move { app.funded_user(&format!("Sender{i}"), 10_000).await }
        }))
        .await;
        let mut sends: Vec<_> = senders
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let via = if i % 2 == 0 { &app } else { &second };
                send(via, s, json!({"to_user_id": receiver.id, "amount": 10_000}), None)
            })
            .collect();
        for i in 0..40 {
            let (via, from, to) = if i % 2 == 0 { (&app, &a, &b) } else { (&second, &b, &a) };
            sends.push(send(via, from, json!({"to_user_id": to.id, "amount": 1_000}), None));
        }
        for r in join_all(sends).await {
            r.assert_status(201);
        }
        assert_eq!(second.balance(&receiver).await, 400_000);
        assert_eq!((app.balance(&a).await, app.balance(&b).await), (100_000, 100_000));
        for instance in [&app, &second] {
            let stats = batches(instance).await;
            assert!(stats["largest"].as_u64().unwrap() > 1, "{stats}");
            // A batch may give way to the other instance's batch on the hot receiver (a lock
            // held past its wait on a loaded machine); none fails for any other reason.
            assert_eq!(stats["failed"], stats["gave_way"], "{stats}");
        }
        second.teardown().await;
    })
    .await;
}

/// The same key sent to two batching instances at once, while a third party holds the
/// sender's account locked: both batches find the key free and wait for the lock. The first to
/// get it makes the transfer and records the key; the second then finds the key taken, rolls
/// back, and its command, run alone, replays the first's answer. One transfer, one answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_key_taken_by_another_batch_replays_its_answer() {
    run_with(Backend::Postgres, short_batches, |app| async move {
        let second = second_instance(&app).await;
        let receiver = app.user("Receiver").await;
        let sender = app.funded_user("Sender", 100_000).await;
        let body = json!({"to_user_id": receiver.id, "amount": 6_000});
        let (before, before_second) = (batches(&app).await, batches(&second).await);

        let hold = AccountLock::take(&app, &sender.main_account_id).await;
        let sends = tokio::spawn(join_all(vec![
            send(&app, &sender, body.clone(), Some("race-1".into())),
            send(&second, &sender, body.clone(), Some("race-1".into())),
        ]));
        // Both batches run (20 ms windows) and wait for the lock; well under their lock wait.
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        hold.release().await;

        let answers = sends.await.unwrap();
        let first = answers[0].assert_status(201);
        assert_eq!(answers[1].assert_status(201), first, "{answers:?}");
        assert_eq!(answers[0].text, answers[1].text);
        assert_eq!(app.balance(&receiver).await, 6_000);
        assert_eq!(app.balance(&sender).await, 94_000);
        let (one, two) = (
            batches_since(&app, &before).await,
            batches_since(&second, &before_second).await,
        );
        assert_eq!(one["failed"] + two["failed"], 1, "one batch gave way: {one:?} {two:?}");
        assert_eq!(one["gave_way"] + two["gave_way"], 1, "{one:?} {two:?}");
        assert_eq!(one["batches"] + two["batches"], 1, "{one:?} {two:?}");
        assert_eq!(one["unbatched"] + two["unbatched"], 1, "{one:?} {two:?}");
        app.assert_invariants().await;
        second.teardown().await;
    })
    .await;
}

/// A batch waits for a lock only so long (so that it, not a request on its own, gives way
/// should they ever wait for each other): held past that, the batch rolls back and its
/// commands run alone, and they still land once the lock is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_kept_waiting_for_a_lock_runs_its_commands_alone() {
    run_with(
        Backend::Postgres,
        |_| {},
        |app| async move {
            let receiver = app.user("Receiver").await;
            let sender = app.funded_user("Sender", 100_000).await;
            let before = batches(&app).await;

            let hold = AccountLock::take(&app, &receiver.main_account_id).await;
            let sending = tokio::spawn(send(
                &app,
                &sender,
                json!({"to_user_id": receiver.id, "amount": 5_000}),
                None,
            ));
            tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
            assert!(!sending.is_finished(), "the transfer waits for the lock");
            hold.release().await;

            sending.await.unwrap().assert_status(201);
            assert_eq!(app.balance(&receiver).await, 5_000);
            let delta = batches_since(&app, &before).await;
            assert_eq!(
                (delta["failed"], delta["gave_way"], delta["unbatched"], delta["batches"]),
                (1, 1, 1, 0),
                "{delta:?}"
            );
            app.assert_invariants().await;
        },
    )
    .await;
}

/// The server is killed (SIGKILL) while transfers are in flight: after a restart on the same
/// database every transfer that was answered 201 is there, and the ledger is whole.
async fn a_crash_mid_batch_loses_nothing_acknowledged(backend: Backend) {
    let Some(app) = spawn_serve_process(backend, &[("MINIPAY_TRANSFER_BATCH_WAIT_US", "2000")]).await else {
        return;
    };
    let receiver = app.user("Receiver").await;
    let senders = join_all((0..50).map(|i| {
        let app = app.clone();
        async move { app.funded_user(&format!("Sender{i}"), 100_000).await }
    }))
    .await;
    let streams: Vec<_> = senders
        .iter()
        .map(|s| {
            let (app, token, to) = (app.clone(), s.token.clone(), receiver.id.clone());
            async move {
                let mut acknowledged = Vec::new();
                for _ in 0..100 {
                    let sent = app
                        .http
                        .post(format!("{}/v1/transfers", app.base))
                        .bearer_auth(&token)
                        .json(&json!({"to_user_id": to, "amount": 1_000}))
                        .send()
                        .await;
                    let Ok(res) = sent else { break }; // the server is gone
                    if res.status() != 201 {
                        break;
                    }
                    let Ok(body) = res.json::<Value>().await else { break };
                    acknowledged.push(body["id"].as_str().unwrap().to_owned());
                }
                acknowledged
            }
        })
        .collect();
    let load = tokio::spawn(join_all(streams));
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    app.kill_process().await;
    let acknowledged: Vec<String> = load.await.unwrap().into_iter().flatten().collect();
    assert!(
        !acknowledged.is_empty(),
        "some transfers were answered before the crash"
    );

    let restarted = app.restart_process(&[]).await;
    for id in &acknowledged {
        restarted
            .get(&format!("/v1/transfers/{id}"), &receiver.token)
            .await
            .assert_status(200);
    }
    let landed = restarted.balance(&receiver).await;
    assert!(
        landed >= 1_000 * acknowledged.len() as i64,
        "{landed} < {}",
        acknowledged.len()
    );
    restarted.assert_invariants().await;
    restarted.teardown().await;
    app.teardown().await;
}

mod a_crash_mid_batch_loses_nothing_acknowledged {
    use crate::helpers::Backend;
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite() {
        super::a_crash_mid_batch_loses_nothing_acknowledged(Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres() {
        super::a_crash_mid_batch_loses_nothing_acknowledged(Backend::Postgres).await
    }
}
