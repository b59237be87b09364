//! Savings products: 04:00 simple interest with the fraction carried, and the 08:00
//! auto-debit into fixed savings accounts.

use crate::helpers::{TestApp, TestUser};
use crate::on_both_backends;
use serde_json::json;

on_both_backends!(
    fixed_savings_earn_simple_interest_with_the_fraction_carried,
    free_savings_earn_three_percent,
    an_interest_rerun_pays_nothing_and_a_missed_day_is_made_up,
    the_auto_debit_charges_the_shortfall_when_the_limit_allows,
    the_auto_debit_fails_whole_without_room_in_the_limit_and_the_run_goes_on,
    the_auto_debit_starts_at_the_first_0800_after_opening,
    missed_days_are_paid_on_the_principal_of_each_day,
    a_run_by_hand_before_0800_is_the_previous_days_run,
    an_auto_debit_whose_charge_is_settled_by_recovery_is_finished,
);

/// 04:00 and 08:00 in Seoul on 2026-11-22 (the day after T0), in UTC.
const NOV22_0400: &str = "2026-11-21T19:00:00Z";
const NOV22_0800: &str = "2026-11-21T23:00:00Z";
const DAY_SECS: i64 = 86_400;

async fn savings_balance(app: &TestApp, user: &TestUser, id: &str) -> i64 {
    app.account(user, id).await["balance"].as_i64().unwrap()
}

async fn fixed_savings_earn_simple_interest_with_the_fraction_carried(app: TestApp) {
    let mut kim = app.user_with_bank("Kim").await;
    let savings = app.open_savings(&kim, "fixed", Some(1_000_000)).await;
    // 08:00 on the next day: the first auto-debit moves 1,000,000 in (charged from the bank).
    app.set_clock(NOV22_0800).await;
    assert_eq!(app.run_job("savings-auto-debit").await["processed"], json!(1));
    app.log_in_again(&mut kim).await;
    assert_eq!(savings_balance(&app, &kim, &savings).await, 1_000_000);

    // The first 04:00 run after that: 1,000,000 × 5% / 365 = 136.98… → 136, 0.98… carried.
    app.advance_clock(20 * 3_600).await; // 2026-11-23 04:00 in Seoul
    let run = app.run_job("savings-interest").await;
    assert_eq!(
        (run["processed"].clone(), run["details"]["won_paid"].clone()),
        (json!(1), json!(136))
    );
    app.log_in_again(&mut kim).await;
    assert_eq!(savings_balance(&app, &kim, &savings).await, 1_000_136);

    // Ten runs in all: 1,369 (simple interest on the principal, the fractions carried).
    for _ in 0..9 {
        app.advance_clock(DAY_SECS).await;
        app.run_job("savings-interest").await;
    }
    app.log_in_again(&mut kim).await;
    assert_eq!(savings_balance(&app, &kim, &savings).await, 1_001_369);

    // A year of daily runs: 50,000 — compounding would have given about 51,267.
    for _ in 0..355 {
        app.advance_clock(DAY_SECS).await;
        app.run_job("savings-interest").await;
    }
    app.log_in_again(&mut kim).await;
    let interest = savings_balance(&app, &kim, &savings).await - 1_000_000;
    assert!((49_999..=50_000).contains(&interest), "a year paid {interest}");
    // The principal never included interest: the main account paid 1,000,000 once.
    assert_eq!(app.balance(&kim).await, 0);
}

async fn free_savings_earn_three_percent(app: TestApp) {
    let mut kim = app.funded_user("Kim", 1_000_000).await;
    let savings = app.open_savings(&kim, "free", None).await;
    let path = format!("/v1/accounts/{savings}/deposits");
    app.post(&path, &kim.token, json!({"amount": 1_000_000}))
        .await
        .assert_status(201);
    app.set_clock(NOV22_0400).await;
    let run = app.run_job("savings-interest").await;
    assert_eq!(run["details"]["won_paid"], json!(82), "1,000,000 × 3% / 365 = 82.19…");
    app.log_in_again(&mut kim).await;
    assert_eq!(savings_balance(&app, &kim, &savings).await, 1_000_082);
}

async fn an_interest_rerun_pays_nothing_and_a_missed_day_is_made_up(app: TestApp) {
    let mut kim = app.funded_user("Kim", 1_000_000).await;
    let savings = app.open_savings(&kim, "free", None).await;
    let path = format!("/v1/accounts/{savings}/deposits");
    app.post(&path, &kim.token, json!({"amount": 1_000_000}))
        .await
        .assert_status(201);
    app.set_clock(NOV22_0400).await;
    assert_eq!(app.run_job("savings-interest").await["processed"], json!(1));
    assert_eq!(
        app.run_job("savings-interest").await["processed"],
        json!(0),
        "the same date again pays nothing"
    );
    app.advance_clock(3_600).await;
    assert_eq!(
        app.run_job("savings-interest").await["processed"],
        json!(0),
        "still the same business date"
    );
    // Two days later (a day missed): both days are paid, on the principal that was there.
    app.advance_clock(2 * DAY_SECS - 3_600).await;
    let run = app.run_job("savings-interest").await;
    // Day 1 paid 82 and carried 0.19…; two more days: 82.19… × 2 + 0.19… = 164.57… → 164.
    assert_eq!(run["details"]["won_paid"], json!(164));
    app.log_in_again(&mut kim).await;
    assert_eq!(savings_balance(&app, &kim, &savings).await, 1_000_246);
}

async fn the_auto_debit_charges_the_shortfall_when_the_limit_allows(app: TestApp) {
    let mut kim = app.funded_user("Kim", 15_000).await;
    let covered = app.open_savings(&kim, "fixed", Some(10_000)).await;
    let mut lee = app.user_with_bank("Lee").await;
    let charged = app.open_savings(&lee, "fixed", Some(25_000)).await;
    app.set_clock(NOV22_0800).await;
    let run = app.run_job("savings-auto-debit").await;
    assert_eq!(run["details"], json!({"completed": 2, "failed": 0}));
    app.log_in_again(&mut kim).await;
    app.log_in_again(&mut lee).await;
    // Kim had the money: no charge.
    assert_eq!(
        (app.balance(&kim).await, savings_balance(&app, &kim, &covered).await),
        (5_000, 10_000)
    );
    assert_eq!(app.limit_used(&kim).await, 0, "today's limit is a new day's");
    // Lee had nothing: 30,000 (25,000 rounded up to 10,000s) was charged under the limit.
    assert_eq!(
        (app.balance(&lee).await, savings_balance(&app, &lee, &charged).await),
        (5_000, 25_000)
    );
    assert_eq!(app.limit_used(&lee).await, 30_000);
    // Once a day: a rerun debits nothing.
    assert_eq!(app.run_job("savings-auto-debit").await["processed"], json!(0));
    assert_eq!(savings_balance(&app, &lee, &charged).await, 25_000);
}

async fn the_auto_debit_fails_whole_without_room_in_the_limit_and_the_run_goes_on(app: TestApp) {
    app.set_clock("2026-11-21T22:00:00Z").await; // 07:00 in Seoul, the 22nd
    let mut kim = app.user_with_bank("Kim").await;
    let lee = app.user("Lee").await;
    // Kim uses 2,995,000 of today's limit and spends it all.
    app.charge(&kim, 2_995_000).await.assert_status(201);
    app.transfer(&kim, &lee, 2_995_000).await.assert_status(201);
    let short = app.open_savings(&kim, "fixed", Some(10_000)).await;
    let mut park = app.funded_user("Park", 10_000).await;
    let fine = app.open_savings(&park, "fixed", Some(10_000)).await;
    let no_bank = app.user("Choi").await;
    let unfunded = app.open_savings(&no_bank, "fixed", Some(10_000)).await;

    app.advance_clock(3_600).await; // 08:00
    let run = app.run_job("savings-auto-debit").await;
    assert_eq!(run["details"], json!({"completed": 1, "failed": 2}));
    app.log_in_again(&mut kim).await;
    app.log_in_again(&mut park).await;
    // Kim: a 10,000 charge does not fit the 5,000 left: no partial debit, nothing moved.
    assert_eq!(
        (app.balance(&kim).await, savings_balance(&app, &kim, &short).await),
        (0, 0)
    );
    assert_eq!(app.limit_used(&kim).await, 2_995_000);
    let failed = app.notifications(&kim, "savings_auto_debit_failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["data"]["account_id"], json!(short));
    // Park's debit in the same run went through.
    assert_eq!(savings_balance(&app, &park, &fine).await, 10_000);
    // Choi has no bank account to charge from.
    let mut choi = no_bank;
    app.log_in_again(&mut choi).await;
    assert_eq!(savings_balance(&app, &choi, &unfunded).await, 0);
    assert_eq!(app.notifications(&choi, "savings_auto_debit_failed").await.len(), 1);
    // The failed day is not retried by a rerun.
    assert_eq!(app.run_job("savings-auto-debit").await["processed"], json!(0));
}

async fn the_auto_debit_starts_at_the_first_0800_after_opening(app: TestApp) {
    // Opened at 09:00 on the 22nd: not that morning's 08:00, the next one.
    app.set_clock("2026-11-22T00:00:00Z").await;
    let mut kim = app.funded_user("Kim", 50_000).await;
    let savings = app.open_savings(&kim, "fixed", Some(10_000)).await;
    let before_opening = json!({"at": NOV22_0800});
    let run = app
        .admin_post("/v1/admin/jobs/savings-auto-debit/run", before_opening)
        .await;
    assert_eq!(run.assert_status(200)["processed"], json!(0));
    app.advance_clock(23 * 3_600).await; // 08:00 on the 23rd
    assert_eq!(app.run_job("savings-auto-debit").await["processed"], json!(1));
    app.log_in_again(&mut kim).await;
    assert_eq!(savings_balance(&app, &kim, &savings).await, 10_000);
}

async fn missed_days_are_paid_on_the_principal_of_each_day(app: TestApp) {
    // 1,000,000 deposited on the 21st, 1,000,000 more on the 23rd at 10:00; no run until the
    // 25th's 04:00. Owed: the 22nd, 23rd (1,000,000 each), 24th, 25th (2,000,000 each).
    let mut kim = app.funded_user("Kim", 2_000_000).await;
    let savings = app.open_savings(&kim, "free", None).await;
    let path = format!("/v1/accounts/{savings}/deposits");
    app.post(&path, &kim.token, json!({"amount": 1_000_000}))
        .await
        .assert_status(201);
    app.set_clock("2026-11-23T01:00:00Z").await; // 10:00 on the 23rd in Seoul
    app.log_in_again(&mut kim).await;
    app.post(&path, &kim.token, json!({"amount": 1_000_000}))
        .await
        .assert_status(201);
    app.set_clock("2026-11-24T19:00:00Z").await; // 04:00 on the 25th
    let run = app.run_job("savings-interest").await;
    let exact = (2 * 1_000_000 + 2 * 2_000_000) * 300 / 3_650_000; // 493.15… → 493
    assert_eq!(run["details"]["won_paid"], json!(exact));
    app.log_in_again(&mut kim).await;
    assert_eq!(savings_balance(&app, &kim, &savings).await, 2_000_000 + exact);
}

async fn a_run_by_hand_before_0800_is_the_previous_days_run(app: TestApp) {
    let mut kim = app.funded_user("Kim", 50_000).await;
    let savings = app.open_savings(&kim, "fixed", Some(10_000)).await; // opened 12:00 on the 21st
    app.set_clock("2026-11-21T22:00:00Z").await; // 07:00 on the 22nd: the latest 08:00 is the 21st's
    assert_eq!(app.run_job("savings-auto-debit").await["processed"], json!(0));
    app.advance_clock(3_600).await; // 08:00 on the 22nd
    assert_eq!(app.run_job("savings-auto-debit").await["processed"], json!(1));
    app.log_in_again(&mut kim).await;
    assert_eq!(savings_balance(&app, &kim, &savings).await, 10_000);
}

async fn an_auto_debit_whose_charge_is_settled_by_recovery_is_finished(app: TestApp) {
    // The bank takes the money but neither the pull nor the inquiry answers in time.
    let mut kim = app.user_with_bank_number("Kim", "1110000005").await;
    let savings = app.open_savings(&kim, "fixed", Some(10_000)).await;
    app.set_bank_sim(json!({"inquiries_unavailable": true})).await;
    app.set_clock(NOV22_0800).await;
    let run = app.run_job("savings-auto-debit").await;
    assert_eq!(
        run["details"],
        json!({"completed": 0, "failed": 0}),
        "the day's debit waits for the bank"
    );
    app.log_in_again(&mut kim).await;
    assert_eq!(savings_balance(&app, &kim, &savings).await, 0);

    // Recovery learns the money was taken: the charge lands and the debit is made from it.
    app.set_bank_sim(json!({"inquiries_unavailable": false})).await;
    app.advance_clock(61).await;
    assert_eq!(app.run_job("charge-recovery").await["processed"], json!(1));
    app.log_in_again(&mut kim).await;
    assert_eq!(savings_balance(&app, &kim, &savings).await, 10_000);
    assert_eq!(app.balance(&kim).await, 0);
    assert!(app.notifications(&kim, "savings_auto_debit_failed").await.is_empty());
    assert_eq!(
        app.run_job("savings-auto-debit").await["processed"],
        json!(0),
        "the day is done"
    );
}
