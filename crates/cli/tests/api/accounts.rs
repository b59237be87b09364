//! Savings accounts and deposits from the main account.

use crate::helpers::TestApp;
use crate::on_both_backends;
use serde_json::json;

on_both_backends!(
    savings_accounts_open_and_list_after_the_main_account,
    deposits_move_money_into_free_savings_only,
);

async fn savings_accounts_open_and_list_after_the_main_account(app: TestApp) {
    let kim = app.user("Kim").await;
    let free = app
        .post(
            "/v1/accounts",
            &kim.token,
            json!({"kind": "savings", "product": "free"}),
        )
        .await;
    let free = free.assert_status(201).clone();
    assert_eq!(free["kind"], json!("savings"));
    assert_eq!(free["product"], json!("free"));
    assert_eq!(free["daily_amount"], json!(null));
    assert_eq!(
        (
            free["balance"].clone(),
            free["pending_out"].clone(),
            free["available"].clone()
        ),
        (json!(0), json!(0), json!(0))
    );
    let body = json!({"kind": "savings", "product": "fixed", "daily_amount": 10_000});
    let fixed = app
        .post_keyed("/v1/accounts", &kim.token, "open-fixed", body.clone())
        .await;
    let fixed = fixed.assert_status(201).clone();
    assert_eq!(
        (fixed["product"].clone(), fixed["daily_amount"].clone()),
        (json!("fixed"), json!(10_000))
    );
    // Opening with the same key again does not open a second account.
    let again = app.post_keyed("/v1/accounts", &kim.token, "open-fixed", body).await;
    assert_eq!(again.assert_status(201), &fixed);

    let list = app.get("/v1/accounts", &kim.token).await;
    let ids: Vec<_> = list.assert_status(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].clone())
        .collect();
    assert_eq!(
        ids,
        vec![json!(kim.main_account_id), free["id"].clone(), fixed["id"].clone()]
    );
    assert_eq!(app.account(&kim, free["id"].as_str().unwrap()).await, free);
}

async fn deposits_move_money_into_free_savings_only(app: TestApp) {
    let kim = app.funded_user("Kim", 30_000).await;
    let free = app
        .post(
            "/v1/accounts",
            &kim.token,
            json!({"kind": "savings", "product": "free"}),
        )
        .await;
    let free_id = free.assert_status(201)["id"].as_str().unwrap().to_owned();
    let fixed = app
        .post(
            "/v1/accounts",
            &kim.token,
            json!({"kind": "savings", "product": "fixed", "daily_amount": 1000}),
        )
        .await;
    let fixed_id = fixed.assert_status(201)["id"].as_str().unwrap().to_owned();
    let paths: std::collections::HashMap<String, String> = [&free_id, &fixed_id, &kim.main_account_id]
        .into_iter()
        .map(|id| (id.clone(), format!("/v1/accounts/{id}/deposits")))
        .collect();
    let deposit = |id: &str, won: i64| app.post(&paths[id], &kim.token, json!({"amount": won}));

    let d = deposit(&free_id, 20_000).await;
    let d = d.assert_status(201);
    assert_eq!(d["amount"], json!(20_000));
    assert_eq!(d["account"]["id"], json!(free_id));
    assert_eq!(d["account"]["balance"], json!(20_000));
    assert_eq!(app.balance(&kim).await, 10_000);

    // Short money: refused without auto-charge, nothing moves.
    app.assert_changes_nothing(deposit(&free_id, 10_001))
        .await
        .assert_error(422, "insufficient_funds");
    app.assert_changes_nothing(deposit(&fixed_id, 1_000))
        .await
        .assert_error(409, "invalid_state");
    app.assert_changes_nothing(deposit(&kim.main_account_id, 1_000))
        .await
        .assert_error(400, "validation_failed");
    let lee = app.user("Lee").await;
    let others = app.post(&paths[&free_id], &lee.token, json!({"amount": 1}));
    app.assert_changes_nothing(others).await.assert_error(404, "not_found");

    deposit(&free_id, 10_000).await.assert_status(201);
    assert_eq!(app.balance(&kim).await, 0);
    assert_eq!(app.account(&kim, &free_id).await["balance"], json!(30_000));
    assert_eq!(
        app.bank_sim().await["stats"]["pulls_executed"],
        json!(1),
        "deposits never charge the bank"
    );
}
