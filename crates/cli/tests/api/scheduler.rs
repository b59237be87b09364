//! The scheduler: each (job, slot) runs once however many instances schedule, and the most
//! recent missed slot is caught up at start within its grace window.

use crate::helpers::{Backend, TestApp, spawn_app_with, test_settings};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::Duration;

/// 04:00 and 04:00:30 in Seoul on 2026-11-22, in UTC.
const NOV22_0400: &str = "2026-11-21T19:00:00Z";
const NOV22_0400_30: &str = "2026-11-21T19:00:30Z";

async fn runs(app: &TestApp, job: &str) -> Vec<Value> {
    let page = app.admin_get(&format!("/v1/admin/jobs/runs?job={job}&limit=200")).await;
    page.assert_status(200)["items"].as_array().unwrap().clone()
}

/// Waits until `job` has a finished scheduled run for `slot` (the scheduler ticks every 50 ms).
async fn wait_for_run(app: &TestApp, job: &str, slot: &str) -> Value {
    for _ in 0..200 {
        let found = runs(app, job)
            .await
            .into_iter()
            .find(|r| r["slot"] == json!(slot) && r["finished"].is_string());
        if let Some(run) = found {
            return run;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("no finished {job} run for {slot}");
}

fn scheduling(settings: &mut minipay_server::Settings) {
    settings.scheduler = true;
    settings.scheduler_tick_ms = 50;
}

/// Two instances, both scheduling, on one PostgreSQL database, both clocks past 04:00: the
/// interest slot is claimed and run once, and the savings account is paid once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_on_one_database_never_run_a_slot_twice() {
    let Some(first) = spawn_app_with(Backend::Postgres, scheduling).await else {
        return;
    };
    let mut settings = test_settings(first.db_url());
    scheduling(&mut settings);
    let second = crate::helpers::start_beside(&first, settings).await;

    let kim = first.funded_user("Kim", 1_000_000).await;
    let savings = first.open_savings(&kim, "free", None).await;
    let deposit = format!("/v1/accounts/{savings}/deposits");
    first
        .post(&deposit, &kim.token, json!({"amount": 1_000_000}))
        .await
        .assert_status(201);

    // Both instances' clocks move past the 04:00 slot at the same moment.
    tokio::join!(first.set_clock(NOV22_0400_30), second.set_clock(NOV22_0400_30));
    let run = wait_for_run(&first, "savings-interest", NOV22_0400).await;
    assert_eq!(run["trigger"], json!("scheduled"));
    assert_eq!(run["processed"], json!(1));
    // Give the other instance's scheduler ample time to (not) run it again.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut per_slot: HashMap<(String, String), usize> = HashMap::new();
    for job in [
        "savings-interest",
        "pending-expiry",
        "pending-reminders",
        "charge-recovery",
        "savings-auto-debit",
    ] {
        for r in runs(&first, job)
            .await
            .into_iter()
            .filter(|r| r["trigger"] == json!("scheduled"))
        {
            *per_slot
                .entry((job.to_owned(), r["slot"].as_str().unwrap().to_owned()))
                .or_default() += 1;
        }
    }
    assert!(per_slot.values().all(|&n| n == 1), "a slot ran twice: {per_slot:?}");

    let mut kim = kim;
    first.log_in_again(&mut kim).await;
    assert_eq!(
        first.account(&kim, &savings).await["balance"],
        json!(1_000_082),
        "interest paid once"
    );

    second.assert_invariants().await;
    second.teardown().await;
    first.assert_invariants().await;
    first.teardown().await;
}

async fn catch_up_at_start(backend: Backend, started_at: &str, expect_run: bool) {
    // A database with a funded free savings account, served without a scheduler.
    let Some(setup) = spawn_app_with(backend, |_| {}).await else {
        return;
    };
    let kim = setup.funded_user("Kim", 1_000_000).await;
    let savings = setup.open_savings(&kim, "free", None).await;
    let deposit = format!("/v1/accounts/{savings}/deposits");
    setup
        .post(&deposit, &kim.token, json!({"amount": 1_000_000}))
        .await
        .assert_status(201);

    // A scheduling instance starts after the 04:00 slot (it was down at 04:00).
    let mut settings = test_settings(setup.db_url());
    scheduling(&mut settings);
    settings.clock_start = Some(started_at.parse().unwrap());
    let late = crate::helpers::start_beside(&setup, settings).await;
    late.set_clock(started_at).await;
    if expect_run {
        let run = wait_for_run(&late, "savings-interest", NOV22_0400).await;
        assert_eq!(run["processed"], json!(1));
    } else {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            runs(&late, "savings-interest").await.is_empty(),
            "a slot past its grace window is not run"
        );
    }
    late.teardown().await;
    setup.assert_invariants().await;
    setup.teardown().await;
}

macro_rules! catch_up_tests {
    ($($name:ident: $at:expr, $expect:expr;)+) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() { super::catch_up_at_start(crate::helpers::Backend::Sqlite, $at, $expect).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() { super::catch_up_at_start(crate::helpers::Backend::Postgres, $at, $expect).await }
        }
    )+};
}

catch_up_tests! {
    // 05:00 in Seoul: one hour after the slot, inside the 12-hour window.
    a_missed_slot_is_caught_up_at_start: "2026-11-21T20:00:00Z", true;
    // 17:00 in Seoul: thirteen hours after, outside it.
    a_slot_older_than_its_grace_window_is_not_caught_up: "2026-11-22T08:00:00Z", false;
}
