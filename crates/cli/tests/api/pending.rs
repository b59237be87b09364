//! Pending transfers: the hold, accept and cancel, the reminder at 24 hours left, the
//! 72-hour expiry, and races between them.

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;
use serde_json::{Value, json};

on_both_backends!(
    a_pending_transfer_holds_the_money_until_the_receiver_accepts,
    the_sender_can_cancel_and_gets_the_money_back,
    pending_mode_comes_from_the_senders_setting_unless_overridden,
    a_short_sender_is_auto_charged_for_a_pending_transfer_too,
    the_reminder_comes_once_when_24_hours_remain,
    expiry_at_72_hours_returns_the_money_to_the_sender,
    accepting_after_the_deadline_is_refused_even_before_the_job_runs,
    accept_and_cancel_racing_have_exactly_one_winner,
    ten_thousand_pendings_expiring_at_once_are_expired_by_one_run,
);

async fn account(app: &TestApp, user: &crate::helpers::TestUser) -> Value {
    app.account(user, &user.main_account_id).await
}

async fn a_pending_transfer_holds_the_money_until_the_receiver_accepts(app: TestApp) {
    let kim = app.funded_user("Kim", 30_000).await;
    let lee = app.user("Lee").await;
    let sent = app.pending_transfer(&kim, &lee, 20_000).await;
    let t = sent.assert_status(201).clone();
    assert_eq!(t["status"], json!("pending"));
    assert_eq!(
        t["expires_at"],
        json!("2026-11-24T03:00:00Z"),
        "72 hours after it was sent"
    );
    assert_eq!(t["resolved_at"], json!(null));
    let id = t["id"].as_str().unwrap().to_owned();
    let a = account(&app, &kim).await;
    assert_eq!(
        (a["balance"].clone(), a["pending_out"].clone(), a["available"].clone()),
        (json!(30_000), json!(20_000), json!(10_000))
    );
    assert_eq!(app.balance(&lee).await, 0);
    let received = app.notifications(&lee, "pending_transfer_received").await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0]["data"]["transfer_id"], json!(id));

    // 30,000 with 20,000 pending: 10,000 more can go, without any auto-charge.
    let park = app.user("Park").await;
    assert_eq!(
        app.transfer(&kim, &park, 10_000).await.assert_status(201)["auto_charged"],
        json!(0)
    );
    assert_eq!(
        app.bank_sim().await["stats"]["pulls_executed"],
        json!(1),
        "only the initial funding charge"
    );

    let accepted = app.accept(&lee, &id).await;
    let accepted = accepted.assert_status(200);
    assert_eq!(accepted["status"], json!("completed"));
    assert!(accepted["resolved_at"].is_string());
    assert_eq!(app.balance(&lee).await, 20_000);
    let a = account(&app, &kim).await;
    assert_eq!((a["balance"].clone(), a["pending_out"].clone()), (json!(0), json!(0)));
    app.accept(&lee, &id).await.assert_error(409, "invalid_state");
    app.cancel(&kim, &id).await.assert_error(409, "invalid_state");
}

async fn the_sender_can_cancel_and_gets_the_money_back(app: TestApp) {
    let kim = app.funded_user("Kim", 30_000).await;
    let lee = app.user("Lee").await;
    let id = app.pending_transfer(&kim, &lee, 25_000).await.assert_status(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(account(&app, &kim).await["available"], json!(5_000));
    let canceled = app.cancel(&kim, &id).await;
    assert_eq!(canceled.assert_status(200)["status"], json!("canceled"));
    let a = account(&app, &kim).await;
    assert_eq!(
        (a["balance"].clone(), a["available"].clone()),
        (json!(30_000), json!(30_000))
    );
    app.accept(&lee, &id).await.assert_error(409, "invalid_state");
    assert_eq!(app.balance(&lee).await, 0);
}

async fn pending_mode_comes_from_the_senders_setting_unless_overridden(app: TestApp) {
    let kim = app.funded_user("Kim", 10_000).await;
    let lee = app.user("Lee").await;
    let mode = json!({"transfer_mode": "pending"});
    app.request(
        reqwest::Method::PATCH,
        "/v1/users/me",
        Some(&kim.token),
        None,
        Some(mode),
    )
    .await
    .assert_status(200);
    assert_eq!(
        app.transfer(&kim, &lee, 1_000).await.assert_status(201)["status"],
        json!("pending")
    );
    let now = json!({"to_user_id": lee.id, "amount": 1_000, "mode": "immediate"});
    assert_eq!(
        app.post("/v1/transfers", &kim.token, now).await.assert_status(201)["status"],
        json!("completed")
    );
    let pending = app.get("/v1/transfers?status=pending", &lee.token).await;
    assert_eq!(pending.assert_status(200)["items"].as_array().unwrap().len(), 1);
}

async fn a_short_sender_is_auto_charged_for_a_pending_transfer_too(app: TestApp) {
    let kim = app.user_with_bank("Kim").await;
    let lee = app.user("Lee").await;
    let t = app.pending_transfer(&kim, &lee, 15_000).await;
    assert_eq!(t.assert_status(201)["auto_charged"], json!(20_000));
    let a = account(&app, &kim).await;
    assert_eq!(
        (a["balance"].clone(), a["pending_out"].clone(), a["available"].clone()),
        (json!(20_000), json!(15_000), json!(5_000))
    );
}

async fn the_reminder_comes_once_when_24_hours_remain(app: TestApp) {
    let mut kim = app.funded_user("Kim", 10_000).await;
    let mut lee = app.user("Lee").await;
    let id = app.pending_transfer(&kim, &lee, 1_000).await.assert_status(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();

    app.advance_clock_for(47 * 3_600 + 59 * 60, &mut [&mut kim, &mut lee])
        .await; // T+47h59m
    assert_eq!(app.run_job("pending-reminders").await["processed"], json!(0));
    assert!(app.notifications(&lee, "pending_transfer_reminder").await.is_empty());

    app.advance_clock_for(60, &mut [&mut kim, &mut lee]).await; // T+48h: 24 hours left
    assert_eq!(app.run_job("pending-reminders").await["processed"], json!(1));
    assert_eq!(
        app.run_job("pending-reminders").await["processed"],
        json!(0),
        "a rerun reminds nobody twice"
    );
    app.advance_clock_for(3_600, &mut [&mut kim, &mut lee]).await;
    assert_eq!(app.run_job("pending-reminders").await["processed"], json!(0));
    let reminders = app.notifications(&lee, "pending_transfer_reminder").await;
    assert_eq!(reminders.len(), 1);
    // A transfer whose time ran out before anyone reminded its receiver gets no reminder.
    app.pending_transfer(&kim, &lee, 1_000).await.assert_status(201);
    app.advance_clock_for(72 * 3_600, &mut [&mut kim, &mut lee]).await;
    assert_eq!(app.run_job("pending-reminders").await["processed"], json!(0));
    assert_eq!(app.run_job("pending-expiry").await["processed"], json!(2));

    assert_eq!(reminders[0]["data"]["transfer_id"], json!(id));
    assert!(
        app.notifications(&kim, "pending_transfer_reminder").await.is_empty(),
        "the receiver is reminded"
    );
}

async fn expiry_at_72_hours_returns_the_money_to_the_sender(app: TestApp) {
    let mut kim = app.funded_user("Kim", 10_000).await;
    let mut lee = app.user("Lee").await;
    let id = app.pending_transfer(&kim, &lee, 4_000).await.assert_status(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();

    app.advance_clock_for(71 * 3_600 + 59 * 60, &mut [&mut kim, &mut lee])
        .await; // T+71h59m
    assert_eq!(app.run_job("pending-expiry").await["processed"], json!(0));
    assert_eq!(app.transfer_status(&kim, &id).await, "pending");

    app.advance_clock_for(60, &mut [&mut kim, &mut lee]).await; // T+72h
    assert_eq!(app.run_job("pending-expiry").await["processed"], json!(1));
    assert_eq!(app.run_job("pending-expiry").await["processed"], json!(0));
    assert_eq!(app.transfer_status(&kim, &id).await, "expired");
    let a = account(&app, &kim).await;
    assert_eq!(
        (a["balance"].clone(), a["pending_out"].clone()),
        (json!(10_000), json!(0))
    );
    let expired = app.notifications(&kim, "pending_transfer_expired").await;
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0]["data"]["transfer_id"], json!(id));
    app.accept(&lee, &id).await.assert_error(409, "invalid_state");
    app.cancel(&kim, &id).await.assert_error(409, "invalid_state");
    assert_eq!(app.balance(&lee).await, 0);
}

async fn accepting_after_the_deadline_is_refused_even_before_the_job_runs(app: TestApp) {
    let mut kim = app.funded_user("Kim", 10_000).await;
    let mut lee = app.user("Lee").await;
    let id = app.pending_transfer(&kim, &lee, 4_000).await.assert_status(201)["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.advance_clock_for(72 * 3_600, &mut [&mut kim, &mut lee]).await;
    app.accept(&lee, &id).await.assert_error(409, "invalid_state");
    // Refusing it expired it: the money is back and the sender is told, once.
    assert_eq!(app.transfer_status(&kim, &id).await, "expired");
    assert_eq!(account(&app, &kim).await["available"], json!(10_000));
    assert_eq!(app.run_job("pending-expiry").await["processed"], json!(0));
    assert_eq!(app.notifications(&kim, "pending_transfer_expired").await.len(), 1);
}

async fn accept_and_cancel_racing_have_exactly_one_winner(app: TestApp) {
    let kim = app.funded_user("Kim", 100_000).await;
    let lee = app.user("Lee").await;
    let (mut accepted, mut canceled) = (0, 0);
    for _ in 0..20 {
        let id = app.pending_transfer(&kim, &lee, 1_000).await.assert_status(201)["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (a, c) = tokio::join!(
            tokio::spawn({
                let (app, lee, id) = (app.clone(), lee.clone(), id.clone());
                async move { app.accept(&lee, &id).await }
            }),
            tokio::spawn({
                let (app, kim, id) = (app.clone(), kim.clone(), id.clone());
                async move { app.cancel(&kim, &id).await }
            }),
        );
        let (a, c) = (a.unwrap(), c.unwrap());
        match (a.status, c.status) {
            (200, 409) => {
                accepted += 1;
                assert_eq!(app.transfer_status(&kim, &id).await, "completed");
            }
            (409, 200) => {
                canceled += 1;
                assert_eq!(app.transfer_status(&kim, &id).await, "canceled");
            }
            other => panic!("expected exactly one winner, got {other:?}: {} / {}", a.text, c.text),
        }
    }
    assert_eq!(accepted + canceled, 20);
    assert_eq!(app.balance(&lee).await, accepted * 1_000);
    let a = account(&app, &kim).await;
    assert_eq!(
        (a["balance"].clone(), a["pending_out"].clone()),
        (json!(100_000 - accepted * 1_000), json!(0))
    );
}

/// Ten thousand pending transfers that expire at the same instant, written straight into the
/// database (sending them one by one over HTTP would only test the HTTP path again), are all
/// expired by a single run of the job, which pages through them by (expires_at, id).
async fn ten_thousand_pendings_expiring_at_once_are_expired_by_one_run(app: TestApp) {
    const N: i64 = 10_000;
    let mut kim = app.funded_user("Kim", N).await;
    let lee = app.user("Lee").await;
    seed_pendings(&app, &kim, &lee, N).await;
    assert_eq!(account(&app, &kim).await["available"], json!(0));
    app.assert_invariants().await;

    app.advance_clock_for(72 * 3_600, &mut [&mut kim]).await;
    let run = app.run_job("pending-expiry").await;
    assert_eq!(run["processed"], json!(N));
    let a = account(&app, &kim).await;
    assert_eq!((a["balance"].clone(), a["pending_out"].clone()), (json!(N), json!(0)));
    let left = app.get("/v1/transfers?status=pending&limit=1", &kim.token).await;
    assert_eq!(left.assert_status(200)["items"], json!([]));
    assert_eq!(app.run_job("pending-expiry").await["processed"], json!(0));
}

async fn seed_pendings(app: &TestApp, from: &crate::helpers::TestUser, to: &crate::helpers::TestUser, n: i64) {
    let expires: jiff::Timestamp = "2026-11-24T03:00:00Z".parse().unwrap(); // T0 + 72 hours
    let ids: Vec<uuid::Uuid> = (0..n).map(|_| uuid::Uuid::now_v7()).collect();
    let (from_user, to_user) = (
        uuid::Uuid::parse_str(&from.id).unwrap(),
        uuid::Uuid::parse_str(&to.id).unwrap(),
    );
    let from_account = uuid::Uuid::parse_str(&from.main_account_id).unwrap();
    let to_account = uuid::Uuid::parse_str(&to.main_account_id).unwrap();
    let insert = "INSERT INTO transfers (id, status, amount, from_account_id, to_account_id, from_user_id, to_user_id,
                                         from_name, display_name, created_at, expires_at)
                  VALUES ($1, 'pending', 1, $2, $3, $4, $5, 'Kim', 'Kim', $6, $7)";
    let hold = "UPDATE accounts SET pending_out = pending_out + $2 WHERE id = $1";
    let created_us = expires.as_microsecond() - 72 * 3_600 * 1_000_000;
    match app.backend {
        Backend::Postgres => {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(app.db_url()).await.unwrap();
            let mut tx = sqlx::Connection::begin(&mut c).await.unwrap();
            let created = jiff::Timestamp::from_microsecond(created_us).unwrap().to_string();
            sqlx::query(
                "INSERT INTO transfers (id, status, amount, from_account_id, to_account_id, from_user_id, to_user_id,
                                        from_name, display_name, created_at, expires_at)
                 SELECT id, 'pending', 1, $2, $3, $4, $5, 'Kim', 'Kim', $6::timestamptz, $7::timestamptz
                 FROM UNNEST($1::uuid[]) AS t(id)",
            )
            .bind(&ids)
            .bind(from_account)
            .bind(to_account)
            .bind(from_user)
            .bind(to_user)
            .bind(&created)
            .bind(expires.to_string())
            .execute(&mut *tx)
            .await
            .unwrap();
            sqlx::query(hold)
                .bind(from_account)
                .bind(n)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
        Backend::Sqlite => {
            use sqlx::Connection;
            let mut c = sqlx::SqliteConnection::connect(app.db_url()).await.unwrap();
            let mut tx = sqlx::Connection::begin(&mut c).await.unwrap();
            for id in &ids {
                sqlx::query(insert)
                    .bind(id)
                    .bind(from_account)
                    .bind(to_account)
                    .bind(from_user)
                    .bind(to_user)
                    .bind(created_us)
                    .bind(expires.as_microsecond())
                    .execute(&mut *tx)
                    .await
                    .unwrap();
            }
            sqlx::query(hold)
                .bind(from_account)
                .bind(n)
                .execute(&mut *tx)
                .await
                .unwrap();
            tx.commit().await.unwrap();
        }
    }
}
