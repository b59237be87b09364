//! When the bank says no, is down, or does not answer: the right error, nothing moved, no
//! second pull — and an unknown outcome resolved by the status inquiry, never by pulling again.
//! Also the built-in simulator's per-account faults and its platform account.

use crate::helpers::{ADMIN_TOKEN, TestApp, TestUser, fresh_bank_account_number};
use crate::on_both_backends;
use crate::validation::{all_rejected, case};
use reqwest::Method;
use serde_json::{Value, json};

on_both_backends!(
    a_declined_pull_is_bank_declined_and_moves_nothing,
    an_unavailable_bank_is_bank_unavailable_and_a_retry_may_try_again,
    a_pull_that_times_out_untaken_moves_nothing_and_is_not_resent,
    a_pull_that_times_out_after_taking_is_found_by_the_status_inquiry,
    an_unknown_charge_is_resolved_by_recovery_and_replays_without_a_second_pull,
    an_unknown_auto_charge_lands_in_the_main_account_and_a_retry_transfers_it,
    an_unknown_charge_the_bank_never_took_gives_the_limit_back,
    a_declined_auto_charge_fails_the_transfer_and_moves_nothing,
    a_lost_pull_is_voided_at_the_bank_and_nothing_moves,
    recovery_voids_a_pull_the_bank_never_saw,
    recovery_settling_a_charge_in_flight_still_answers_the_charge,
    recovery_settling_an_auto_charge_in_flight_still_makes_the_transfer,
    the_bank_sim_account_route_checks_the_token_and_the_body,
    a_bank_sim_account_shows_its_faults_and_its_balance,
    an_account_outage_through_every_retry_is_bank_unavailable_and_the_next_charge_succeeds,
    a_one_call_account_outage_is_absorbed_by_the_retry_under_the_same_transfer_id,
);

async fn pulls(app: &TestApp) -> (i64, i64) {
    let stats = app.bank_sim().await["stats"].clone();
    (
        stats["pulls"].as_i64().unwrap(),
        stats["pulls_executed"].as_i64().unwrap(),
    )
}

async fn charge_keyed(app: &TestApp, user: &TestUser, key: &str, won: i64) -> crate::helpers::Resp {
    let path = format!("/v1/accounts/{}/charges", user.main_account_id);
    app.post_keyed(&path, &user.token, key, json!({"amount": won})).await
}

async fn bank_balance(app: &TestApp, user: &TestUser) -> Value {
    let banks = app.get("/v1/bank-accounts", &user.token).await;
    let id = banks.assert_status(200)["items"][0]["id"].as_str().unwrap().to_owned();
    app.get(&format!("/v1/bank-accounts/{id}/balance"), &user.token)
        .await
        .assert_status(200)["balance"]
        .clone()
}

async fn a_declined_pull_is_bank_declined_and_moves_nothing(app: TestApp) {
    let user = app.user_with_bank_number("Kim", "1110000002").await;
    let r = app
        .assert_changes_nothing(charge_keyed(&app, &user, "k1", 10_000))
        .await;
    r.assert_error(422, "bank_declined");
    assert_eq!(app.limit_used(&user).await, 0);
    assert_eq!(pulls(&app).await, (1, 0));
    // A decline is a final answer: the same key replays it without calling the bank again.
    let again = charge_keyed(&app, &user, "k1", 10_000).await;
    assert_eq!((again.status, &again.body), (422, &r.body));
    assert_eq!(pulls(&app).await, (1, 0));
}

async fn an_unavailable_bank_is_bank_unavailable_and_a_retry_may_try_again(app: TestApp) {
    let user = app.user_with_bank_number("Kim", "1110000003").await;
    let r = app
        .assert_changes_nothing(charge_keyed(&app, &user, "k1", 10_000))
        .await;
    r.assert_error(503, "bank_unavailable");
    assert_eq!(app.limit_used(&user).await, 0);
    // Transient: the key was not used up; the retry reaches the bank again (and fails again).
    let again = app
        .assert_changes_nothing(charge_keyed(&app, &user, "k1", 10_000))
        .await;
    again.assert_error(503, "bank_unavailable");
    assert_eq!(pulls(&app).await.1, 0);

    // A bank outage on a healthy account: the same.
    let healthy = app.user_with_bank("Lee").await;
    app.set_bank_sim(json!({"error_rate": 1.0})).await;
    app.assert_changes_nothing(app.charge(&healthy, 10_000))
        .await
        .assert_error(503, "bank_unavailable");
    app.set_bank_sim(json!({"error_rate": 0.0})).await;
    app.charge(&healthy, 10_000).await.assert_status(201);
}

async fn a_pull_that_times_out_untaken_moves_nothing_and_is_not_resent(app: TestApp) {
    let user = app.user_with_bank_number("Kim", "1110000004").await;
    let before = pulls(&app).await;
    let r = app.assert_changes_nothing(app.charge(&user, 10_000)).await;
    r.assert_error(503, "bank_unavailable");
    let after = pulls(&app).await;
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (1, 0),
        "one pull, never resent after a timeout"
    );
    assert_eq!(app.limit_used(&user).await, 0);
    assert_eq!(bank_balance(&app, &user).await, json!(100_000_000));
}

async fn a_pull_that_times_out_after_taking_is_found_by_the_status_inquiry(app: TestApp) {
    let user = app.user_with_bank_number("Kim", "1110000005").await;
    let r = app.charge(&user, 10_000).await;
    assert_eq!(r.assert_status(201)["account"]["balance"], json!(10_000));
    assert_eq!(pulls(&app).await, (1, 1), "the inquiry found it: no second pull");
    assert_eq!(bank_balance(&app, &user).await, json!(99_990_000));
    assert_eq!(app.limit_used(&user).await, 10_000);
}

async fn an_unknown_charge_is_resolved_by_recovery_and_replays_without_a_second_pull(app: TestApp) {
    let user = app.user_with_bank_number("Kim", "1110000005").await;
    app.set_bank_sim(json!({"inquiries_unavailable": true})).await;
    let r = charge_keyed(&app, &user, "charge-unknown", 10_000).await;
    r.assert_error(503, "bank_unavailable");
    // The outcome is open: no money credited yet, the limit stays reserved, the key is held.
    assert_eq!(app.balance(&user).await, 0);
    assert_eq!(app.limit_used(&user).await, 10_000);
    charge_keyed(&app, &user, "charge-unknown", 10_000)
        .await
        .assert_error(409, "conflict");

    // Recovery leaves young charges to their request, then asks the bank.
    app.set_bank_sim(json!({"inquiries_unavailable": false})).await;
    assert_eq!(app.run_job("charge-recovery").await["processed"], json!(0));
    app.advance_clock(61).await;
    assert_eq!(app.run_job("charge-recovery").await["processed"], json!(1));
    assert_eq!(
        app.run_job("charge-recovery").await["processed"],
        json!(0),
        "resolved exactly once"
    );
    assert_eq!(app.balance(&user).await, 10_000);
    assert_eq!(pulls(&app).await, (1, 1));

    // The retry replays the completed charge; the bank is not asked to pull again.
    let replay = charge_keyed(&app, &user, "charge-unknown", 10_000).await;
    let replay = replay.assert_status(201);
    assert_eq!(
        (replay["status"].clone(), replay["amount"].clone()),
        (json!("completed"), json!(10_000))
    );
    assert_eq!(pulls(&app).await, (1, 1));
    assert_eq!(app.balance(&user).await, 10_000);
}

async fn an_unknown_auto_charge_lands_in_the_main_account_and_a_retry_transfers_it(app: TestApp) {
    let kim = app.user_with_bank_number("Kim", "1110000005").await;
    let lee = app.user("Lee").await;
    app.set_bank_sim(json!({"inquiries_unavailable": true})).await;
    let body = json!({"to_user_id": lee.id, "amount": 7_000});
    let r = app
        .post_keyed("/v1/transfers", &kim.token, "pay-lee", body.clone())
        .await;
    r.assert_error(503, "bank_unavailable");
    assert_eq!((app.balance(&kim).await, app.balance(&lee).await), (0, 0));

    app.set_bank_sim(json!({"inquiries_unavailable": false})).await;
    app.advance_clock(61).await;
    assert_eq!(app.run_job("charge-recovery").await["processed"], json!(1));
    // The charged 10,000 stands as a normal charge; the transfer did not happen.
    assert_eq!((app.balance(&kim).await, app.balance(&lee).await), (10_000, 0));

    // The retry makes the transfer from that money, without charging again.
    let retry = app.post_keyed("/v1/transfers", &kim.token, "pay-lee", body).await;
    assert_eq!(retry.assert_status(201)["auto_charged"], json!(0));
    assert_eq!((app.balance(&kim).await, app.balance(&lee).await), (3_000, 7_000));
    assert_eq!(pulls(&app).await, (1, 1));
    assert_eq!(app.limit_used(&kim).await, 10_000);
}

async fn an_unknown_charge_the_bank_never_took_gives_the_limit_back(app: TestApp) {
    let user = app.user_with_bank_number("Kim", "1110000004").await;
    app.set_bank_sim(json!({"inquiries_unavailable": true})).await;
    charge_keyed(&app, &user, "k", 50_000)
        .await
        .assert_error(503, "bank_unavailable");
    assert_eq!(app.limit_used(&user).await, 50_000);
    app.set_bank_sim(json!({"inquiries_unavailable": false})).await;
    app.advance_clock(61).await;
    assert_eq!(app.run_job("charge-recovery").await["processed"], json!(1));
    assert_eq!(app.limit_used(&user).await, 0);
    assert_eq!(app.balance(&user).await, 0);
    // The key is free again: the retry tries the bank afresh (and this account always times out).
    charge_keyed(&app, &user, "k", 50_000)
        .await
        .assert_error(503, "bank_unavailable");
    assert_eq!(pulls(&app).await, (2, 0));
}

async fn a_declined_auto_charge_fails_the_transfer_and_moves_nothing(app: TestApp) {
    let kim = app.user_with_bank_number("Kim", "1110000002").await;
    let lee = app.user("Lee").await;
    let r = app.assert_changes_nothing(app.transfer(&kim, &lee, 5_000)).await;
    r.assert_error(422, "bank_declined");
    let unavailable = app.user_with_bank_number("Park", "1110000003").await;
    app.assert_changes_nothing(app.transfer(&unavailable, &lee, 5_000))
        .await
        .assert_error(503, "bank_unavailable");
    assert_eq!(app.balance(&lee).await, 0);
}

async fn cancels(app: &TestApp) -> i64 {
    app.bank_sim().await["stats"]["cancels"].as_i64().unwrap()
}

async fn a_lost_pull_is_voided_at_the_bank_and_nothing_moves(app: TestApp) {
    let user = app.user_with_bank("Kim").await;
    app.set_bank_sim(json!({"pulls_lost": true})).await;
    // The bank never saw the pull: "no record" is made final by voiding the id at the bank.
    let r = app.assert_changes_nothing(charge_keyed(&app, &user, "k", 10_000)).await;
    r.assert_error(503, "bank_unavailable");
    assert_eq!(cancels(&app).await, 1);
    assert_eq!(app.limit_used(&user).await, 0);
    assert_eq!(bank_balance(&app, &user).await, json!(100_000_000));
    // The key was released: the retry is a new pull under a new id, and it works.
    app.set_bank_sim(json!({"pulls_lost": false})).await;
    charge_keyed(&app, &user, "k", 10_000).await.assert_status(201);
    assert_eq!(pulls(&app).await, (2, 1));
}

async fn recovery_voids_a_pull_the_bank_never_saw(app: TestApp) {
    let user = app.user_with_bank("Kim").await;
    app.set_bank_sim(json!({"pulls_lost": true, "inquiries_unavailable": true}))
        .await;
    charge_keyed(&app, &user, "k", 20_000)
        .await
        .assert_error(503, "bank_unavailable");
    assert_eq!(app.limit_used(&user).await, 20_000, "held while the outcome is unknown");
    assert_eq!(cancels(&app).await, 0);

    app.set_bank_sim(json!({"pulls_lost": false, "inquiries_unavailable": false}))
        .await;
    app.advance_clock(61).await;
    assert_eq!(app.run_job("charge-recovery").await["processed"], json!(1));
    assert_eq!(
        cancels(&app).await,
        1,
        "the unseen pull was voided before it was failed"
    );
    assert_eq!(app.limit_used(&user).await, 0);
    assert_eq!(app.balance(&user).await, 0);
    assert_eq!(bank_balance(&app, &user).await, json!(100_000_000));
    // The retry runs afresh.
    charge_keyed(&app, &user, "k", 20_000).await.assert_status(201);
}

/// Holds the next pull at the bank for `ms` after the money moves, then makes the bank quick
/// again, so that recovery (with the clock moved past its grace period) settles the charge
/// while the request is still waiting for the bank's answer.
async fn settle_while_in_flight<F>(app: &TestApp, request: F) -> crate::helpers::Resp
where
    F: std::future::Future<Output = crate::helpers::Resp> + Send + 'static,
{
    let executed_before = pulls(app).await.1;
    app.set_bank_sim(json!({"latency_ms": 1_500})).await;
    let in_flight = tokio::spawn(request);
    // Wait until the bank has taken the money (the answer is then held for 1.5 s).
    for _ in 0..100 {
        if pulls(app).await.1 > executed_before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    app.set_bank_sim(json!({"latency_ms": 0})).await;
    app.advance_clock(61).await;
    assert_eq!(app.run_job("charge-recovery").await["processed"], json!(1));
    in_flight.await.unwrap()
}

async fn recovery_settling_a_charge_in_flight_still_answers_the_charge(app: TestApp) {
    let user = app.user_with_bank("Kim").await;
    let request = {
        let (app, user) = (app.clone(), user.clone());
        async move { charge_keyed(&app, &user, "k", 10_000).await }
    };
    let r = settle_while_in_flight(&app, request).await;
    assert_eq!(r.assert_status(201)["account"]["balance"], json!(10_000));
    assert_eq!(app.balance(&user).await, 10_000);
    assert_eq!(pulls(&app).await, (1, 1));
    let again = charge_keyed(&app, &user, "k", 10_000).await;
    assert_eq!(again.assert_status(201), &r.body);
}

async fn recovery_settling_an_auto_charge_in_flight_still_makes_the_transfer(app: TestApp) {
    let kim = app.user_with_bank("Kim").await;
    let lee = app.user("Lee").await;
    let request = {
        let (app, kim, lee) = (app.clone(), kim.clone(), lee.clone());
        async move {
            let body = json!({"to_user_id": lee.id, "amount": 7_000});
            app.post_keyed("/v1/transfers", &kim.token, "pay", body).await
        }
    };
    let r = settle_while_in_flight(&app, request).await;
    // Recovery posted the 10,000 charge; the transfer was made from it, with no second pull.
    assert_eq!(r.assert_status(201)["amount"], json!(7_000));
    assert_eq!((app.balance(&kim).await, app.balance(&lee).await), (3_000, 7_000));
    assert_eq!(pulls(&app).await, (1, 1));
    assert_eq!(app.limit_used(&kim).await, 10_000);
}

// ---- The built-in simulator's per-account faults and platform account ----

fn sim_account_path(account_number: &str) -> String {
    format!("/v1/admin/bank-sim/accounts/{account_number}")
}

/// The platform's own account at the simulated bank, in won.
async fn platform_balance(app: &TestApp) -> i64 {
    app.bank_sim().await["platform_balance"].as_i64().unwrap()
}

/// A fault-free operation as the account view shows it.
fn no_fault() -> Value {
    json!({"fault": "ok", "times_left": null})
}

async fn the_bank_sim_account_route_checks_the_token_and_the_body(app: TestApp) {
    let number = fresh_bank_account_number();
    let path = sim_account_path(&number);
    let user = app.user("Kim").await;
    let body = Some(json!({"pull": "decline"}));
    for method in [Method::GET, Method::PUT] {
        let anonymous = app.request(method.clone(), &path, None, None, body.clone()).await;
        anonymous.assert_error(401, "unauthorized");
        let by_a_user = app.request(method, &path, Some(&user.token), None, body.clone()).await;
        by_a_user.assert_error(403, "forbidden");
    }
    all_rejected(
        &app,
        Method::PUT,
        &path,
        Some(ADMIN_TOKEN),
        vec![
            case("unknown field", json!({"pull": "decline", "mode": "chaos"})),
            case("a fault that does not exist", json!({"pull": "sometimes"})),
            case("a fault that is not a string", json!({"push": 1})),
            case("times 0", json!({"pull": "decline", "times": 0})),
            case("times -1", json!({"pull": "decline", "times": -1})),
            case("times 1.5", json!({"pull": "decline", "times": 1.5})),
            case("times without a fault to count", json!({"times": 2})),
        ],
    )
    .await;
    let malformed = app
        .admin_put(&sim_account_path("12-34"), json!({"pull": "decline"}))
        .await;
    malformed.assert_error(400, "validation_failed");
    let view = app.admin_get(&path).await;
    assert_eq!(
        view.assert_status(200)["pull"],
        no_fault(),
        "rejected changes changed nothing"
    );
}

async fn a_bank_sim_account_shows_its_faults_and_its_balance(app: TestApp) {
    let number = fresh_bank_account_number();
    let path = sim_account_path(&number);
    let user = app.user_with_bank_number("Kim", &number).await;
    let set = app
        .admin_put(
            &path,
            json!({"push": "timeout_executed", "inquiry": "unavailable", "times": 2}),
        )
        .await;
    let expected = json!({
        "account_number": number,
        "pull": no_fault(),
        "push": {"fault": "timeout_executed", "times_left": 2},
        "inquiry": {"fault": "unavailable", "times_left": 2},
        "balances": {"004": 100_000_000},
    });
    assert_eq!(set.assert_status(200), &expected);

    // A charge is a pull: the push and inquiry faults are not met, and not used up.
    app.charge(&user, 10_000).await.assert_status(201);
    let read = app.admin_get(&path).await;
    let read = read.assert_status(200);
    assert_eq!(read["balances"], json!({"004": 99_990_000}));
    assert_eq!(
        (&read["push"], &read["inquiry"]),
        (&expected["push"], &expected["inquiry"])
    );
    assert_eq!(platform_balance(&app).await, 10_000);

    // Operations not named keep their fault; `ok` clears one.
    let cleared = app.admin_put(&path, json!({"push": "ok"})).await;
    let cleared = cleared.assert_status(200);
    assert_eq!(
        (&cleared["push"], &cleared["inquiry"]),
        (&no_fault(), &expected["inquiry"])
    );
}

/// How many times `ResilientBank` sends a pull the bank answered Unavailable (same transfer id).
fn pull_attempts_per_charge() -> i64 {
    let retries = minipay_bank::BankPolicy::default().retries_max;
    i64::try_from(retries).unwrap() + 1
}

async fn an_account_outage_through_every_retry_is_bank_unavailable_and_the_next_charge_succeeds(app: TestApp) {
    let number = fresh_bank_account_number();
    let user = app.user_with_bank_number("Kim", &number).await;
    let (platform_before, pulls_before) = (platform_balance(&app).await, pulls(&app).await);
    let attempts = pull_attempts_per_charge();
    let fault = json!({"pull": "unavailable", "times": attempts});
    app.admin_put(&sim_account_path(&number), fault)
        .await
        .assert_status(200);

    let r = app.assert_changes_nothing(app.charge(&user, 10_000)).await;
    r.assert_error(503, "bank_unavailable");
    assert_eq!(pulls(&app).await, (pulls_before.0 + attempts, pulls_before.1));
    assert_eq!(platform_balance(&app).await, platform_before);
    assert_eq!(bank_balance(&app, &user).await, json!(100_000_000));

    // Every attempt used up one call of the fault: the next charge goes through, once.
    app.charge(&user, 10_000).await.assert_status(201);
    assert_eq!(platform_balance(&app).await, platform_before + 10_000);
    assert_eq!(bank_balance(&app, &user).await, json!(99_990_000));
    assert_eq!(app.balance(&user).await, 10_000);
    assert_eq!(pulls(&app).await.1, pulls_before.1 + 1);
}

async fn a_one_call_account_outage_is_absorbed_by_the_retry_under_the_same_transfer_id(app: TestApp) {
    let number = fresh_bank_account_number();
    let user = app.user_with_bank_number("Kim", &number).await;
    let (platform_before, pulls_before) = (platform_balance(&app).await, pulls(&app).await);
    let fault = json!({"pull": "unavailable", "times": 1});
    app.admin_put(&sim_account_path(&number), fault)
        .await
        .assert_status(200);

    app.charge(&user, 10_000).await.assert_status(201);
    assert_eq!(
        pulls(&app).await,
        (pulls_before.0 + 2, pulls_before.1 + 1),
        "retried once, executed once"
    );
    assert_eq!(platform_balance(&app).await, platform_before + 10_000);
    assert_eq!(bank_balance(&app, &user).await, json!(99_990_000));
}
