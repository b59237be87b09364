//! Users and sessions: signup, login, tokens, profile, lookup and who may see what.

use crate::helpers::{ADMIN_TOKEN, TestApp};
use crate::on_both_backends;
use reqwest::Method;
use serde_json::json;

on_both_backends!(
    sign_up_log_in_and_profile,
    tokens_expire_after_an_hour_of_server_time,
    users_see_only_their_own_money,
    admin_endpoints_need_the_admin_token,
    login_attempts_are_rate_limited,
    logging_in_again_and_again_is_never_throttled,
);

async fn sign_up_log_in_and_profile(app: TestApp) {
    let email = format!("kim-{}@Example.com", uuid::Uuid::new_v4().simple());
    let created = app.sign_up_raw(&email, "password-123", "김민수").await;
    let user = created.assert_status(201);
    assert_eq!(user["email"], json!(email.to_lowercase()));
    assert_eq!(user["name"], json!("김민수"));
    assert_eq!(user["transfer_mode"], json!("immediate"));
    assert!(user["main_account_id"].is_string() && user["created_at"].is_string());

    // The email is unique whatever its case.
    app.sign_up_raw(&email.to_uppercase(), "password-123", "Other")
        .await
        .assert_error(409, "conflict");

    app.log_in(&email, "wrong-password")
        .await
        .assert_error(401, "unauthorized");
    app.log_in("nobody@example.com", "password-123")
        .await
        .assert_error(401, "unauthorized");
    let token = app.log_in(&email, "password-123").await;
    let token = token.assert_status(200);
    assert_eq!(token["token_type"], json!("Bearer"));
    assert_eq!(token["expires_in"], json!(3600));
    let token = token["access_token"].as_str().unwrap();

    let me = app.get("/v1/users/me", token).await;
    assert_eq!(me.assert_status(200)["id"], user["id"]);

    // The main account exists from signup, empty.
    let accounts = app.get("/v1/accounts", token).await;
    let items = accounts.assert_status(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["id"], user["main_account_id"]);
    assert_eq!(
        (items[0]["kind"].clone(), items[0]["balance"].clone()),
        (json!("main"), json!(0))
    );

    let patched = app
        .request(
            Method::PATCH,
            "/v1/users/me",
            Some(token),
            None,
            Some(json!({"name": "Kim", "transfer_mode": "pending"})),
        )
        .await;
    let patched = patched.assert_status(200);
    assert_eq!(
        (patched["name"].clone(), patched["transfer_mode"].clone()),
        (json!("Kim"), json!("pending"))
    );

    let friend = app.user("Lee").await;
    let found = app
        .get(
            &format!("/v1/users/lookup?email={}", friend.email.to_uppercase()),
            token,
        )
        .await;
    let found = found.assert_status(200);
    assert_eq!(found["id"], json!(friend.id));
    assert_eq!(found["main_account_id"], json!(friend.main_account_id));
    assert!(found.get("email").is_none(), "lookup does not reveal more than needed");
    app.get("/v1/users/lookup?email=nobody@example.com", token)
        .await
        .assert_error(404, "not_found");
}

async fn tokens_expire_after_an_hour_of_server_time(app: TestApp) {
    let user = app.user("Kim").await;
    app.advance_clock(3_599).await;
    app.get("/v1/users/me", &user.token).await.assert_status(200);
    app.advance_clock(1).await;
    app.get("/v1/users/me", &user.token)
        .await
        .assert_error(401, "unauthorized");
}

async fn users_see_only_their_own_money(app: TestApp) {
    let kim = app.funded_user("Kim", 50_000).await;
    let lee = app.funded_user("Lee", 0).await;
    let sent = app.transfer(&kim, &lee, 1_000).await;
    let transfer_id = sent.assert_status(201)["id"].as_str().unwrap().to_owned();
    let outsider = app.user("Park").await;

    // Someone else's ids look exactly like ids that do not exist.
    let missing = uuid::Uuid::now_v7();
    for path in [
        format!("/v1/accounts/{}", kim.main_account_id),
        format!("/v1/accounts/{missing}"),
    ] {
        app.get(&path, &outsider.token).await.assert_error(404, "not_found");
    }
    for path in [
        format!("/v1/transfers/{transfer_id}"),
        format!("/v1/transfers/{missing}"),
    ] {
        app.get(&path, &outsider.token).await.assert_error(404, "not_found");
    }
    // Both sides of a transfer can read it.
    app.get(&format!("/v1/transfers/{transfer_id}"), &lee.token)
        .await
        .assert_status(200);
    app.get(&format!("/v1/transfers/{transfer_id}"), &kim.token)
        .await
        .assert_status(200);

    // Moving someone else's money is impossible.
    let r = app.assert_changes_nothing(async {
        app.post(
            &format!("/v1/accounts/{}/charges", kim.main_account_id),
            &outsider.token,
            json!({"amount": 1000}),
        )
        .await
    });
    r.await.assert_error(404, "not_found");
    let banks = app.get("/v1/bank-accounts", &kim.token).await;
    let kim_bank = banks.assert_status(200)["items"][0]["id"].as_str().unwrap().to_owned();
    app.get(&format!("/v1/bank-accounts/{kim_bank}/balance"), &outsider.token)
        .await
        .assert_error(404, "not_found");
    let outsider_banks = app.get("/v1/bank-accounts", &outsider.token).await;
    assert_eq!(outsider_banks.assert_status(200)["items"], json!([]));

    // No token, a malformed one, or a forged one: 401.
    app.request(Method::GET, "/v1/users/me", None, None, None)
        .await
        .assert_error(401, "unauthorized");
    app.get("/v1/users/me", "not-a-token")
        .await
        .assert_error(401, "unauthorized");
    app.get("/v1/users/me", ADMIN_TOKEN)
        .await
        .assert_error(401, "unauthorized");
}

async fn admin_endpoints_need_the_admin_token(app: TestApp) {
    let user = app.user("Kim").await;
    for path in ["/v1/admin/clock", "/v1/admin/ledger/audit", "/v1/admin/bank-sim"] {
        app.request(Method::GET, path, None, None, None)
            .await
            .assert_error(401, "unauthorized");
        app.get(path, "wrong").await.assert_error(401, "unauthorized");
        app.get(path, &user.token).await.assert_error(403, "forbidden");
        app.admin_get(path).await.assert_status(200);
    }
    let run = app.request(
        Method::POST,
        "/v1/admin/jobs/charge-recovery/run",
        Some(&user.token),
        None,
        Some(json!({})),
    );
    run.await.assert_error(403, "forbidden");
}

async fn login_attempts_are_rate_limited(app: TestApp) {
    let user = app.user("Kim").await;
    for _ in 0..10 {
        app.log_in(&user.email, "wrong-password")
            .await
            .assert_error(401, "unauthorized");
    }
    // Ten failures lock the address, even for the right password.
    app.log_in(&user.email, "password-123")
        .await
        .assert_error(429, "rate_limited");
    // Other addresses are not affected.
    let other = app.user("Lee").await;
    app.log_in(&other.email, "password-123").await.assert_status(200);
    // The lock lasts a minute of the server's clock (the manual one here), not of real time.
    app.advance_clock(59).await;
    app.log_in(&user.email, "password-123")
        .await
        .assert_error(429, "rate_limited");
    app.advance_clock(1).await;
    app.log_in(&user.email, "password-123").await.assert_status(200);
}

/// Only failures count: a client that logs in again after every token expiry, many times in a
/// real minute, is never throttled; and a success clears the failures before it.
async fn logging_in_again_and_again_is_never_throttled(app: TestApp) {
    let mut user = app.user("Kim").await;
    for _ in 0..30 {
        app.advance_clock_for(3_600, &mut [&mut user]).await;
        app.get("/v1/users/me", &user.token).await.assert_status(200);
    }
    for _ in 0..3 {
        for _ in 0..9 {
            app.log_in(&user.email, "wrong-password")
                .await
                .assert_error(401, "unauthorized");
        }
        app.log_in(&user.email, "password-123").await.assert_status(200);
    }
}
