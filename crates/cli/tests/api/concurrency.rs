//! Concurrent money movement: hot receivers, opposite transfers, the daily limit under a
//! race, and duplicate requests.

use crate::helpers::{TestApp, TestUser, join_all};
use crate::on_both_backends;
use serde_json::json;

on_both_backends!(
    a_hundred_senders_to_one_receiver,
    opposite_transfers_do_not_deadlock,
    eleven_concurrent_charges_exactly_ten_succeed,
    two_auto_charges_at_the_limit_exactly_one_succeeds,
    the_same_idempotency_key_ten_times_makes_one_transfer,
);

async fn users(app: &TestApp, n: usize, won: i64) -> Vec<TestUser> {
    join_all((0..n).map(|i| {
        let app = app.clone();
        async move { app.funded_user(&format!("Sender{i}"), won).await }
    }))
    .await
}

async fn a_hundred_senders_to_one_receiver(app: TestApp) {
    let receiver = app.user("Receiver").await;
    let senders = users(&app, 100, 1_000).await;
    let results = join_all(senders.iter().cloned().map(|s| {
        let (app, receiver) = (app.clone(), receiver.clone());
        async move { app.transfer(&s, &receiver, 1_000).await }
    }))
    .await;
    for r in &results {
        assert_eq!(r.assert_status(201)["auto_charged"], json!(0));
    }
    assert_eq!(app.balance(&receiver).await, 100_000);
    for s in &senders {
        assert_eq!(app.balance(s).await, 0);
    }
    let incoming = app
        .get("/v1/transfers?direction=incoming&limit=200", &receiver.token)
        .await;
    assert_eq!(incoming.assert_status(200)["items"].as_array().unwrap().len(), 100);
}

async fn opposite_transfers_do_not_deadlock(app: TestApp) {
    let a = app.funded_user("A", 100_000).await;
    let b = app.funded_user("B", 100_000).await;
    let moves = (0..100).map(|i| {
        let (app, a, b) = (app.clone(), a.clone(), b.clone());
        async move {
            if i % 2 == 0 {
                app.transfer(&a, &b, 1_000).await
            } else {
                app.transfer(&b, &a, 1_000).await
            }
        }
    });
    for r in join_all(moves).await {
        r.assert_status(201);
    }
    assert_eq!((app.balance(&a).await, app.balance(&b).await), (100_000, 100_000));
}

async fn eleven_concurrent_charges_exactly_ten_succeed(app: TestApp) {
    let user = app.user_with_bank("Kim").await;
    let charges = (0..11).map(|_| {
        let (app, user) = (app.clone(), user.clone());
        async move { app.charge(&user, 300_000).await }
    });
    let results = join_all(charges).await;
    let ok = results.iter().filter(|r| r.status == 201).count();
    let limited: Vec<_> = results.iter().filter(|r| r.status != 201).collect();
    assert_eq!(ok, 10, "{results:?}");
    assert_eq!(limited.len(), 1);
    limited[0].assert_error(422, "daily_limit_exceeded");
    assert_eq!(app.balance(&user).await, 3_000_000);
    assert_eq!(app.limit_used(&user).await, 3_000_000);
    assert_eq!(app.bank_sim().await["stats"]["pulls_executed"], json!(10));
}

async fn two_auto_charges_at_the_limit_exactly_one_succeeds(app: TestApp) {
    let sender = app.user_with_bank("Kim").await;
    let receiver = app.user("Lee").await;
    // Use 2,990,000 of today's limit and spend it, leaving 0 in the account.
    app.charge(&sender, 2_990_000).await.assert_status(201);
    let other = app.user("Park").await;
    app.transfer(&sender, &other, 2_990_000).await.assert_status(201);

    let tries = (0..2).map(|_| {
        let (app, sender, receiver) = (app.clone(), sender.clone(), receiver.clone());
        async move { app.transfer(&sender, &receiver, 10_000).await }
    });
    let results = join_all(tries).await;
    let ok: Vec<_> = results.iter().filter(|r| r.status == 201).collect();
    assert_eq!(ok.len(), 1, "{results:?}");
    assert_eq!(ok[0].body["auto_charged"], json!(10_000));
    let failed = results.iter().find(|r| r.status != 201).unwrap();
    failed.assert_error(422, "daily_limit_exceeded");
    assert_eq!(app.balance(&receiver).await, 10_000);
    assert_eq!(app.balance(&sender).await, 0);
    assert_eq!(app.limit_used(&sender).await, 3_000_000);
}

async fn the_same_idempotency_key_ten_times_makes_one_transfer(app: TestApp) {
    let sender = app.funded_user("Kim", 50_000).await;
    let receiver = app.user("Lee").await;
    let body = json!({"to_user_id": receiver.id, "amount": 7_000, "memo": "lunch"});
    let sends = (0..10).map(|_| {
        let (app, sender, body) = (app.clone(), sender.clone(), body.clone());
        async move {
            app.post_keyed("/v1/transfers", &sender.token, "lunch-2026-11-21", body)
                .await
        }
    });
    let results = join_all(sends).await;
    let first = results
        .iter()
        .find(|r| r.status == 201)
        .expect("one succeeds")
        .body
        .clone();
    for r in &results {
        // Each duplicate either replays the first answer or is told the first is still running.
        match r.status {
            201 => assert_eq!(r.body, first),
            409 => r.assert_error(409, "conflict"),
            _ => panic!("unexpected answer {}", r.text),
        }
    }
    assert_eq!(app.balance(&receiver).await, 7_000);
    assert_eq!(app.balance(&sender).await, 43_000);
    let sent = app.get("/v1/transfers?direction=outgoing", &sender.token).await;
    assert_eq!(sent.assert_status(200)["items"].as_array().unwrap().len(), 1);

    // Later replays answer the same, marked as replays; another body under the key is refused.
    let again = app
        .post_keyed("/v1/transfers", &sender.token, "lunch-2026-11-21", body.clone())
        .await;
    assert_eq!(again.assert_status(201), &first);
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    let other = json!({"to_user_id": receiver.id, "amount": 7_001, "memo": "lunch"});
    let reused = app
        .post_keyed("/v1/transfers", &sender.token, "lunch-2026-11-21", other)
        .await;
    reused.assert_error(422, "idempotency_key_reused");
    // Keys are per user: another user may use the same key.
    let stranger = app.funded_user("Park", 1_000).await;
    let theirs = json!({"to_user_id": receiver.id, "amount": 1_000});
    app.post_keyed("/v1/transfers", &stranger.token, "lunch-2026-11-21", theirs)
        .await
        .assert_status(201);
}

/// Two server instances on one database: transfers sent through both, against one hot
/// receiver and between the same pair in both directions, all land exactly once.
async fn two_instances_share_one_database(app: TestApp) {
    use crate::helpers::{Backend, test_settings};
    if app.backend == Backend::Sqlite {
        return; // the embedded database serves one process; several instances is a PostgreSQL setup
    }
    let second = crate::helpers::start_beside(&app, test_settings(app.db_url())).await;
    let receiver = app.user("Receiver").await;
    let senders = users(&app, 20, 10_000).await;
    let sends = senders.iter().cloned().enumerate().map(|(i, s)| {
        let via = if i % 2 == 0 { app.clone() } else { second.clone() };
        let receiver = receiver.clone();
        async move {
            let first = via.transfer(&s, &receiver, 5_000).await;
            let again = via.transfer(&s, &receiver, 5_000).await;
            (first, again)
        }
    });
    for (a, b) in join_all(sends).await {
        a.assert_status(201);
        b.assert_status(201);
    }
    assert_eq!(second.balance(&receiver).await, 200_000);
    second.assert_invariants().await;
    second.teardown().await;
}

on_both_backends!(two_instances_share_one_database);
