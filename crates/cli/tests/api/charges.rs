//! Charges from the bank and the daily limit in Asia/Seoul business days.

use crate::helpers::TestApp;
use crate::on_both_backends;
use serde_json::json;

on_both_backends!(
    a_charge_moves_money_from_the_bank_into_the_main_account,
    charges_need_a_registered_bank_account_and_a_main_account,
    a_bank_account_can_be_linked_by_its_holder_only,
    bank_accounts_are_listed_a_page_at_a_time,
    the_daily_limit_refuses_what_does_not_fit_and_changes_nothing,
    the_limit_resets_at_midnight_in_seoul,
    a_charge_with_an_idempotency_key_happens_once,
    the_bank_balance_falls_back_to_the_last_known_value,
);

async fn a_charge_moves_money_from_the_bank_into_the_main_account(app: TestApp) {
    let user = app.user_with_bank("Kim").await;
    let banks = app.get("/v1/bank-accounts", &user.token).await;
    let bank = banks.assert_status(200)["items"][0].clone();
    let masked = bank["account_number_masked"].as_str().unwrap();
    assert!(masked.starts_with("******") && masked.len() == 10, "{masked}");
    assert_eq!(bank["status"], json!("registered"));
    let bank_id = bank["id"].as_str().unwrap();

    let charged = app.charge(&user, 250_000).await;
    let charged = charged.assert_status(201);
    assert_eq!(charged["status"], json!("completed"));
    assert_eq!(charged["amount"], json!(250_000));
    assert_eq!(charged["account"]["balance"], json!(250_000));
    assert_eq!(charged["account"]["available"], json!(250_000));
    assert_eq!(charged["limit"]["used"], json!(250_000));
    assert_eq!(charged["limit"]["remaining"], json!(2_750_000));
    assert_eq!(charged["limit"]["date"], json!("2026-11-21"));

    // The money left the bank account exactly once.
    let at_bank = app
        .get(&format!("/v1/bank-accounts/{bank_id}/balance"), &user.token)
        .await;
    let at_bank = at_bank.assert_status(200);
    assert_eq!(
        (at_bank["balance"].clone(), at_bank["stale"].clone()),
        (json!(99_750_000), json!(false))
    );
    assert_eq!(app.bank_sim().await["stats"]["pulls_executed"], json!(1));

    // Registering the same bank account again is a conflict.
    let again = app
        .user_with_bank_number("Kim2", crate::helpers::GOOD_BANK_ACCOUNT)
        .await;
    app.register_bank(&again, crate::helpers::GOOD_BANK_ACCOUNT)
        .await
        .assert_error(409, "conflict");
}

async fn a_bank_account_can_be_linked_by_its_holder_only(app: TestApp) {
    let kim = app
        .user_with_bank_number("Kim", crate::helpers::GOOD_BANK_ACCOUNT)
        .await;
    // Someone else linking Kim's account: refused, whatever name they give.
    let lee = app.user("Lee").await;
    let as_kim = json!({"bank_code": "004", "account_number": crate::helpers::GOOD_BANK_ACCOUNT, "holder_name": "Kim"});
    app.post("/v1/bank-accounts", &lee.token, as_kim)
        .await
        .assert_error(409, "conflict");
    // An account first registered by its holder refuses another holder name at the bank.
    let park = app.user("Park").await;
    app.register_bank(&park, "7770001111").await.assert_status(201);
    let choi = app.user("Choi").await;
    let wrong = json!({"bank_code": "004", "account_number": "7770001111", "holder_name": "Choi"});
    app.post("/v1/bank-accounts", &choi.token, wrong)
        .await
        .assert_error(422, "bank_declined");
    let banks = app.get("/v1/bank-accounts", &lee.token).await;
    assert_eq!(banks.assert_status(200)["items"], json!([]));
    app.charge(&lee, 10_000).await.assert_error(409, "invalid_state");
    assert_eq!(app.balance(&kim).await, 0);
}

/// `GET /v1/bank-accounts` is a cursor page like every list: newest first, `limit` honoured,
/// `next_cursor` null on the last page, and nobody else's accounts.
async fn bank_accounts_are_listed_a_page_at_a_time(app: TestApp) {
    let user = app.user("Kim").await;
    let mut registered = Vec::new();
    for _ in 0..3 {
        let number = crate::helpers::fresh_bank_account_number();
        let r = app.register_bank(&user, &number).await;
        registered.push(r.assert_status(201)["id"].as_str().unwrap().to_owned());
        app.advance_clock(1).await; // distinct creation times: the order is observable
    }
    app.user_with_bank("Lee").await; // someone else's account never shows
    let mut listed = Vec::new();
    let mut path = "/v1/bank-accounts?limit=2".to_owned();
    loop {
        let page = app.get(&path, &user.token).await;
        let page = page.assert_status(200);
        let items = page["items"].as_array().unwrap();
        assert!(items.len() <= 2, "{page}");
        listed.extend(items.iter().map(|b| b["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/bank-accounts?limit=2&cursor={c}"),
            None => break,
        }
    }
    registered.reverse();
    assert_eq!(listed, registered, "newest first, each once");
    let all = app.get("/v1/bank-accounts", &user.token).await;
    let all = all.assert_status(200);
    assert_eq!(
        (all["items"].as_array().unwrap().len(), all["next_cursor"].clone()),
        (3, json!(null))
    );
}

async fn charges_need_a_registered_bank_account_and_a_main_account(app: TestApp) {
    let user = app.user("Kim").await;
    let r = app.assert_changes_nothing(app.charge(&user, 10_000)).await;
    r.assert_error(409, "invalid_state");

    app.register_bank(&user, crate::helpers::GOOD_BANK_ACCOUNT)
        .await
        .assert_status(201);
    let savings = app
        .post(
            "/v1/accounts",
            &user.token,
            json!({"kind": "savings", "product": "free"}),
        )
        .await;
    let savings_id = savings.assert_status(201)["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/accounts/{savings_id}/charges");
    let into_savings = app.post(&path, &user.token, json!({"amount": 10_000}));
    app.assert_changes_nothing(into_savings)
        .await
        .assert_error(409, "invalid_state");

    // A bank that refuses the registration.
    app.register_bank(&user, "5550000009")
        .await
        .assert_error(422, "bank_declined");
}

async fn the_daily_limit_refuses_what_does_not_fit_and_changes_nothing(app: TestApp) {
    let user = app.user_with_bank("Kim").await;
    app.assert_changes_nothing(app.charge(&user, 3_000_001))
        .await
        .assert_error(422, "daily_limit_exceeded");
    app.charge(&user, 2_990_000).await.assert_status(201);
    let over = app.assert_changes_nothing(app.charge(&user, 10_001)).await;
    over.assert_error(422, "daily_limit_exceeded");
    assert!(
        over.body["error"]["message"].as_str().unwrap().contains("10000"),
        "{}",
        over.text
    );
    app.charge(&user, 10_000).await.assert_status(201);
    app.assert_changes_nothing(app.charge(&user, 1))
        .await
        .assert_error(422, "daily_limit_exceeded");

    // Money received from other users never counts against the limit.
    let friend = app.funded_user("Lee", 500_000).await;
    app.transfer(&friend, &user, 500_000).await.assert_status(201);
    let limit = app.get("/v1/charge-limit", &user.token).await;
    let limit = limit.assert_status(200);
    assert_eq!(
        (limit["used"].clone(), limit["remaining"].clone()),
        (json!(3_000_000), json!(0))
    );
    assert_eq!(app.balance(&user).await, 3_500_000);
}

async fn the_limit_resets_at_midnight_in_seoul(app: TestApp) {
    // 23:59 in Seoul is 14:59 UTC; the server's own time zone plays no part.
    app.set_clock("2026-11-21T14:59:00Z").await;
    let user = app.user_with_bank("Kim").await;
    app.charge(&user, 3_000_000).await.assert_status(201);
    app.charge(&user, 1).await.assert_error(422, "daily_limit_exceeded");
    let limit = app.get("/v1/charge-limit", &user.token).await;
    let limit = limit.assert_status(200);
    assert_eq!(limit["date"], json!("2026-11-21"));
    assert_eq!(limit["resets_at"], json!("2026-11-21T15:00:00Z"));

    app.advance_clock(59).await; // 23:59:59 — still the same business day
    app.charge(&user, 1).await.assert_error(422, "daily_limit_exceeded");
    app.advance_clock(1).await; // 00:00:00 in Seoul
    let limit = app.get("/v1/charge-limit", &user.token).await;
    let limit = limit.assert_status(200);
    assert_eq!(
        (limit["date"].clone(), limit["used"].clone()),
        (json!("2026-11-22"), json!(0))
    );
    let charged = app.charge(&user, 3_000_000).await;
    assert_eq!(charged.assert_status(201)["limit"]["date"], json!("2026-11-22"));
    assert_eq!(app.balance(&user).await, 6_000_000);
}

async fn a_charge_with_an_idempotency_key_happens_once(app: TestApp) {
    let user = app.user_with_bank("Kim").await;
    let path = format!("/v1/accounts/{}/charges", user.main_account_id);
    let first = app
        .post_keyed(&path, &user.token, "charge-1", json!({"amount": 30_000}))
        .await;
    let first = first.assert_status(201).clone();
    let again = app
        .post_keyed(&path, &user.token, "charge-1", json!({"amount": 30_000}))
        .await;
    assert_eq!(again.assert_status(201), &first);
    assert_eq!(again.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(app.balance(&user).await, 30_000);
    assert_eq!(app.bank_sim().await["stats"]["pulls"], json!(1));

    let different = app
        .post_keyed(&path, &user.token, "charge-1", json!({"amount": 30_001}))
        .await;
    different.assert_error(422, "idempotency_key_reused");
    // The same key on another endpoint is another request: refused too.
    let elsewhere = app.post_keyed(
        "/v1/accounts",
        &user.token,
        "charge-1",
        json!({"kind": "savings", "product": "free"}),
    );
    elsewhere.await.assert_error(422, "idempotency_key_reused");

    // A stored failure replays as the same failure.
    let big = app
        .post_keyed(&path, &user.token, "charge-2", json!({"amount": 3_000_000}))
        .await;
    big.assert_error(422, "daily_limit_exceeded");
    let big_again = app
        .post_keyed(&path, &user.token, "charge-2", json!({"amount": 3_000_000}))
        .await;
    assert_eq!((big_again.status, &big_again.body), (422, &big.body));
}

async fn the_bank_balance_falls_back_to_the_last_known_value(app: TestApp) {
    let user = app.user_with_bank("Kim").await;
    let banks = app.get("/v1/bank-accounts", &user.token).await;
    let bank_id = banks.assert_status(200)["items"][0]["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/bank-accounts/{bank_id}/balance");

    // The bank is down before any balance is known: nothing to fall back to.
    app.set_bank_sim(json!({"error_rate": 1.0})).await;
    app.get(&path, &user.token).await.assert_error(503, "bank_unavailable");

    app.set_bank_sim(json!({"error_rate": 0.0})).await;
    let fresh = app.get(&path, &user.token).await;
    let fresh = fresh.assert_status(200).clone();
    assert_eq!(
        (fresh["balance"].clone(), fresh["stale"].clone()),
        (json!(100_000_000), json!(false))
    );

    // Slow bank (over the 1 s inquiry deadline): the last known value, marked stale.
    app.advance_clock(600).await;
    app.set_bank_sim(json!({"latency_ms": 1_500})).await;
    let stale = app.get(&path, &user.token).await;
    let stale = stale.assert_status(200);
    assert_eq!(stale["stale"], json!(true));
    assert_eq!(stale["balance"], fresh["balance"]);
    assert_eq!(stale["as_of"], fresh["as_of"]);

    // Down: the same.
    app.set_bank_sim(json!({"latency_ms": 0, "error_rate": 1.0})).await;
    let down = app.get(&path, &user.token).await;
    assert_eq!(down.assert_status(200)["stale"], json!(true));
    app.set_bank_sim(json!({"error_rate": 0.0})).await;
}
