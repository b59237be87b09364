//! Immediate transfers: names, auto-charge, refusals, and listing.

use crate::helpers::{T0, TestApp};
use crate::on_both_backends;
use serde_json::json;

on_both_backends!(
    a_transfer_moves_money_and_keeps_both_names,
    a_short_sender_is_auto_charged_in_whole_ten_thousands,
    auto_charge_is_refused_when_it_does_not_fit_the_limit,
    short_money_without_a_bank_account_is_insufficient_funds,
    transfers_go_only_to_other_users_main_accounts,
    transfers_list_newest_first_with_a_cursor,
    a_transfer_reports_the_time_of_its_request,
);

/// On the manual clock, which stands still, every transfer made at T says `created_at` T —
/// also when the accounts already have entries at T. The entries themselves stay strictly
/// ordered per account (stamped a microsecond apart), so history never shows a tie.
async fn a_transfer_reports_the_time_of_its_request(app: TestApp) {
    let kim = app.funded_user("Kim", 50_000).await; // a charge entry at T0 already
    let lee = app.user_with_bank("Lee").await;
    let mut ids = Vec::new();
    for (from, to, won) in [
        (&kim, &lee, 10_000),
        (&kim, &lee, 20_000),
        (&lee, &kim, 5_000),
        (&lee, &kim, 30_000),
    ] {
        let t = app.transfer(from, to, won).await;
        let t = t.assert_status(201).clone();
        assert_eq!(
            (t["created_at"].clone(), t["resolved_at"].clone()),
            (json!(T0), json!(T0)),
            "{t}"
        );
        ids.push((from, t["id"].as_str().unwrap().to_owned()));
    }
    // The last one was auto-charged after a bank call (Lee had 25,000): still the request's time.
    let (lee_again, last) = &ids[3];
    let last = app.get(&format!("/v1/transfers/{last}"), &lee_again.token).await;
    assert_eq!(last.assert_status(200)["auto_charged"], json!(10_000));
    let pending = app.pending_transfer(&kim, &lee, 1_000).await;
    let pending = pending.assert_status(201);
    assert_eq!(
        (pending["created_at"].clone(), pending["expires_at"].clone()),
        (json!(T0), json!("2026-11-24T03:00:00Z"))
    );
    for (who, id) in &ids {
        let t = app.get(&format!("/v1/transfers/{id}"), &who.token).await;
        assert_eq!(t.assert_status(200)["created_at"], json!(T0));
    }
    for user in [&kim, &lee] {
        let history = app.history(user, &user.main_account_id, "limit=200").await;
        let times: Vec<jiff::Timestamp> = history
            .iter()
            .map(|e| e["occurred_at"].as_str().unwrap().parse().unwrap())
            .collect();
        assert!(times.windows(2).all(|w| w[0] > w[1]), "strictly ordered: {times:?}");
        assert!(times.len() >= 4, "{history:?}");
    }
}

async fn a_transfer_moves_money_and_keeps_both_names(app: TestApp) {
    let kim = app.funded_user("Kim", 50_000).await;
    let lee = app.user("Lee").await;
    let body = json!({"to_user_id": lee.id, "amount": 12_345, "display_name": "Secret Santa", "memo": "gift"});
    let sent = app.post("/v1/transfers", &kim.token, body).await;
    let t = sent.assert_status(201).clone();
    assert_eq!(t["status"], json!("completed"));
    assert_eq!(t["amount"], json!(12_345));
    assert_eq!(t["from_name"], json!("Kim"), "the sender's record keeps the real name");
    assert_eq!(t["display_name"], json!("Secret Santa"), "what the receiver sees");
    assert_eq!(t["memo"], json!("gift"));
    assert_eq!(t["auto_charged"], json!(0));
    assert_eq!(
        (t["from_user_id"].clone(), t["to_user_id"].clone()),
        (json!(kim.id), json!(lee.id))
    );
    assert_eq!(t["to_account_id"], json!(lee.main_account_id));
    assert_eq!(t["expires_at"], json!(null));
    assert_eq!(app.balance(&kim).await, 37_655);
    assert_eq!(app.balance(&lee).await, 12_345);

    // The receiver reads the same transfer; a rename later does not rewrite it.
    let renamed = json!({"name": "Kim Minsu"});
    app.request(
        reqwest::Method::PATCH,
        "/v1/users/me",
        Some(&kim.token),
        None,
        Some(renamed),
    )
    .await
    .assert_status(200);
    let seen = app
        .get(&format!("/v1/transfers/{}", t["id"].as_str().unwrap()), &lee.token)
        .await;
    assert_eq!(seen.assert_status(200), &t);

    // Without display_name the receiver sees the sender's (new) name.
    let plain = app.transfer(&kim, &lee, 1).await;
    let plain = plain.assert_status(201);
    assert_eq!(
        (plain["from_name"].clone(), plain["display_name"].clone()),
        (json!("Kim Minsu"), json!("Kim Minsu"))
    );

    // Sending to a main account id works the same.
    let by_account = app
        .post(
            "/v1/transfers",
            &kim.token,
            json!({"to_account_id": lee.main_account_id, "amount": 2}),
        )
        .await;
    assert_eq!(by_account.assert_status(201)["to_user_id"], json!(lee.id));
    assert_eq!(app.balance(&lee).await, 12_348);
}

async fn a_short_sender_is_auto_charged_in_whole_ten_thousands(app: TestApp) {
    let kim = app.funded_user("Kim", 5_000).await;
    let lee = app.user("Lee").await;
    // Short by 10,001: 20,000 is charged.
    let sent = app.transfer(&kim, &lee, 15_001).await;
    assert_eq!(sent.assert_status(201)["auto_charged"], json!(20_000));
    assert_eq!(app.balance(&kim).await, 9_999);
    assert_eq!(app.balance(&lee).await, 15_001);
    assert_eq!(app.limit_used(&kim).await, 25_000);
    // Short by exactly 10,000: 10,000.
    let sent = app.transfer(&kim, &lee, 19_999).await;
    assert_eq!(sent.assert_status(201)["auto_charged"], json!(10_000));
    assert_eq!(app.balance(&kim).await, 0);
    // Short by 1: 10,000.
    let sent = app.transfer(&kim, &lee, 1).await;
    assert_eq!(sent.assert_status(201)["auto_charged"], json!(10_000));
    assert_eq!(app.balance(&kim).await, 9_999);
    assert_eq!(app.limit_used(&kim).await, 45_000);
    assert_eq!(app.bank_sim().await["stats"]["pulls_executed"], json!(4));
}

async fn auto_charge_is_refused_when_it_does_not_fit_the_limit(app: TestApp) {
    let kim = app.funded_user("Kim", 2_995_000).await;
    let lee = app.user("Lee").await;
    // 5,000 of limit left; short by 1 needs a 10,000 charge: refused, nothing moves.
    let r = app.assert_changes_nothing(app.transfer(&kim, &lee, 2_995_001)).await;
    r.assert_error(422, "daily_limit_exceeded");
    assert_eq!(app.balance(&kim).await, 2_995_000);
    // Without needing a charge it still goes.
    app.transfer(&kim, &lee, 2_995_000).await.assert_status(201);
}

async fn short_money_without_a_bank_account_is_insufficient_funds(app: TestApp) {
    let kim = app.user("Kim").await;
    let lee = app.funded_user("Lee", 1_000).await;
    app.transfer(&lee, &kim, 1_000).await.assert_status(201);
    let r = app.assert_changes_nothing(app.transfer(&kim, &lee, 1_001)).await;
    r.assert_error(422, "insufficient_funds");
    app.transfer(&kim, &lee, 1_000).await.assert_status(201);
}

async fn transfers_go_only_to_other_users_main_accounts(app: TestApp) {
    let kim = app.funded_user("Kim", 10_000).await;
    let lee = app.user("Lee").await;
    let savings = app
        .post(
            "/v1/accounts",
            &lee.token,
            json!({"kind": "savings", "product": "free"}),
        )
        .await;
    let savings_id = savings.assert_status(201)["id"].as_str().unwrap().to_owned();
    let cases = [
        (json!({"to_user_id": kim.id, "amount": 1}), 400, "validation_failed"),
        (
            json!({"to_account_id": kim.main_account_id, "amount": 1}),
            400,
            "validation_failed",
        ),
        (
            json!({"to_account_id": savings_id, "amount": 1}),
            400,
            "validation_failed",
        ),
        (
            json!({"to_user_id": uuid::Uuid::now_v7(), "amount": 1}),
            404,
            "not_found",
        ),
        (
            json!({"to_account_id": uuid::Uuid::now_v7(), "amount": 1}),
            404,
            "not_found",
        ),
    ];
    for (body, status, code) in cases {
        app.assert_changes_nothing(app.post("/v1/transfers", &kim.token, body))
            .await
            .assert_error(status, code);
    }
}

async fn transfers_list_newest_first_with_a_cursor(app: TestApp) {
    let kim = app.funded_user("Kim", 100_000).await;
    let lee = app.funded_user("Lee", 100_000).await;
    // Five transfers at the same instant (the manual clock stands still) and two later.
    for won in 1..=5 {
        app.transfer(&kim, &lee, won).await.assert_status(201);
    }
    app.advance_clock(1).await;
    app.transfer(&lee, &kim, 6).await.assert_status(201);
    app.transfer(&kim, &lee, 7).await.assert_status(201);

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/transfers?limit=2&cursor={c}"),
            None => "/v1/transfers?limit=2".to_owned(),
        };
        let page = app.get(&path, &kim.token).await;
        let page = page.assert_status(200).clone();
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2);
        seen.extend(items.iter().map(|t| t["amount"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    // Newest first, nothing skipped or repeated (ties on time broken by id).
    assert_eq!(seen, vec![7, 6, 5, 4, 3, 2, 1]);

    let incoming = app.get("/v1/transfers?direction=incoming", &kim.token).await;
    let amounts: Vec<_> = incoming.assert_status(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["amount"].clone())
        .collect();
    assert_eq!(amounts, vec![json!(6)]);
    let outgoing = app
        .get(
            "/v1/transfers?direction=outgoing&status=completed&limit=200",
            &kim.token,
        )
        .await;
    assert_eq!(outgoing.assert_status(200)["items"].as_array().unwrap().len(), 6);
    let none = app.get("/v1/transfers?status=pending", &kim.token).await;
    assert_eq!(none.assert_status(200)["items"], json!([]));
}
