//! Business remittance under faults, black box: every failure point of the way injected — at the
//! simulated bank (per account: declined, unavailable, timeouts with and without the money
//! moving, a closed account) and in the database (a trigger refusing one status change behind
//! the API's back) — with retries driven by the manual clock, dead letters, the retry job's
//! rounds, an operator's retry, the stuck monitor and alerts; and every bad request on the
//! remittance endpoints. Each scenario checks the final status, the steps and every attempt,
//! `failure`, `money_at` and each bank balance (A, B and the platform's own account).

use crate::helpers::{
    ADMIN_TOKEN, Backend, EVENTUALLY_MAX, TestApp, TestBusiness, eventually, fresh_bank_account_number,
    fresh_bank_account_number_ending,
};
use crate::{on_both_backends, on_every_engine};
use jiff::{SignedDuration, Timestamp};
use reqwest::Method;
use serde_json::{Value, json};

on_every_engine!(
    collect_declined_moves_nothing,
    collect_unavailable_once_succeeds_on_the_next_attempt,
    collect_timeout_executed_is_settled_by_the_inquiry,
    collect_timeout_not_executed_is_retried_under_the_same_id,
    collect_unavailable_forever_needs_attention_until_an_operator_retries,
    credit_float_failing_once_recovers,
    credit_float_failing_every_attempt_is_dead_lettered_then_recovered,
    debit_float_failing_once_recovers,
    debit_float_failing_every_attempt_is_dead_lettered_then_recovered,
    payout_declined_is_refunded,
    payout_to_a_closed_account_is_refunded,
    payout_unavailable_once_succeeds_on_the_next_attempt,
    payout_timeout_executed_pays_b_once,
    payout_timeout_not_executed_pays_b_once,
    refund_refused_needs_attention_with_the_money_in_transit,
    a_stuck_remittance_raises_one_alert,
);

on_both_backends!(bad_requests_on_the_remittance_endpoints_change_nothing);

// --- the way a remittance goes, seen from outside -------------------------------------------

/// Where every bank account starts at the simulator.
const OPENING_WON: i64 = 100_000_000;
/// What each scenario sends.
const WON: i64 = 70_000;
/// Between a step's attempts (the default `MINIPAY_REMIT_RETRY_DELAY_MS`).
const RETRY_DELAY_SECS: i64 = 10;
/// Between the retry job's rounds for one dead letter.
const ROUND_DELAY_SECS: i64 = 60;
/// The way, as the steps are listed.
const WAY: [&str; 4] = ["collect", "credit_float", "debit_float", "payout"];

/// A (who sends) and B (who is paid), each with a fresh working bank account.
async fn parties(app: &TestApp) -> (TestBusiness, TestBusiness) {
    (
        app.onboard_business("가나상사").await,
        app.onboard_business("다라물산").await,
    )
}

/// A sends B [`WON`]; the remittance's id.
async fn send(app: &TestApp, a: &TestBusiness, b: &TestBusiness) -> String {
    let sent = app.remit(a, b, WON, "remit-1").await;
    let sent = sent.assert_status(202);
    assert_eq!(sent["status"], json!("requested"), "{sent}");
    assert_eq!(sent["money_at"], json!("sender_bank"), "{sent}");
    sent["id"].as_str().unwrap().to_owned()
}

/// The operator's view: the remittance with every attempt.
async fn detail(app: &TestApp, id: &str) -> Value {
    let r = app.admin_get(&format!("/v1/admin/remittances/{id}")).await;
    r.assert_status(200).clone()
}

/// The operator's view once `step` has had `n` attempts (the background has tried it).
async fn after_attempts(app: &TestApp, id: &str, step: &str, n: usize) -> Value {
    eventually(
        &format!("remittance {id}: {n} attempts at {step}"),
        EVENTUALLY_MAX,
        async || {
            let d = detail(app, id).await;
            let tried = attempts(&d).iter().filter(|(s, _)| s == step).count();
            assert!(tried <= n, "more than {n} attempts at {step}: {d}");
            (tried == n).then_some(d)
        },
    )
    .await
}

/// A remittance whose collect keeps failing, through its three attempts ten seconds apart (on
/// the manual clock), until its dead letter is written; the dead letter.
pub(crate) async fn collect_attempts_exhausted(app: &TestApp, id: &str) -> Value {
    after_attempts(app, id, "collect", 1).await;
    app.advance_clock(RETRY_DELAY_SECS).await;
    after_attempts(app, id, "collect", 2).await;
    app.advance_clock(RETRY_DELAY_SECS).await;
    dead_letter(app, "remittance.collect", id).await
}

/// The retry job's three rounds for one open dead letter that keeps failing, a minute apart;
/// after the last a person must decide. Each round's outcome is checked.
pub(crate) async fn retry_rounds_exhausted(app: &TestApp) {
    for round in 1..=3 {
        app.advance_clock(ROUND_DELAY_SECS).await;
        let run = app.run_job("remittance-retry").await;
        let gave_up = i64::from(round == 3);
        assert_eq!(
            run["details"],
            json!({"recovered": 0, "failed_again": 1 - gave_up, "needs_attention": gave_up}),
            "round {round}: {run}"
        );
    }
}

/// Every attempt, oldest first: `(step, outcome)`.
fn attempts(detail: &Value) -> Vec<(String, String)> {
    detail["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (text(&a["step"]), text(&a["outcome"])))
        .collect()
}

#[track_caller]
fn assert_attempts(detail: &Value, expected: &[(&str, &str)]) {
    let expected: Vec<(String, String)> = expected.iter().map(|(s, o)| (s.to_string(), o.to_string())).collect();
    assert_eq!(attempts(detail), expected, "attempts of {}", detail["id"]);
}

/// The steps shown: `(name, status, attempts)`.
#[track_caller]
fn assert_steps(r: &Value, expected: &[(&str, &str, u64)]) {
    let steps: Vec<(String, String, u64)> = r["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (text(&s["name"]), text(&s["status"]), s["attempts"].as_u64().unwrap()))
        .collect();
    let expected: Vec<(String, String, u64)> = expected
        .iter()
        .map(|(n, s, a)| (n.to_string(), s.to_string(), *a))
        .collect();
    assert_eq!(steps, expected, "steps of {r}");
}

/// The four steps of a remittance that went through, with `collect`, ... tried this often.
fn all_succeeded(tries: [u64; 4]) -> Vec<(&'static str, &'static str, u64)> {
    WAY.into_iter().zip(tries).map(|(n, t)| (n, "succeeded", t)).collect()
}

/// Status, where the money is, and `failure` (`null`, or `[step, code, attempts]`).
#[track_caller]
fn assert_state(r: &Value, status: &str, money_at: &str, failure: Option<(&str, &str, i64)>) {
    assert_eq!(
        (text(&r["status"]), text(&r["money_at"])),
        (status.to_owned(), money_at.to_owned()),
        "{r}"
    );
    match failure {
        None => assert_eq!(r["failure"], Value::Null, "{r}"),
        Some((step, code, attempts)) => {
            let f = &r["failure"];
            assert_eq!(
                (f["step"].clone(), f["code"].clone(), f["attempts"].clone()),
                (json!(step), json!(code), json!(attempts)),
                "{r}"
            );
            assert!(f["message"].as_str().is_some_and(|m| !m.is_empty()), "{r}");
        }
    }
    let finished = ["completed", "collect_failed", "refunded"].contains(&status);
    assert_eq!(r["completed_at"].is_string(), finished, "completed_at of {r}");
}

/// A's, B's and the platform's balances at the bank, exactly.
async fn assert_bank(app: &TestApp, a: &str, b: &str, expected: [i64; 3]) {
    let found = [
        app.bank_balance_of(a).await,
        app.bank_balance_of(b).await,
        app.platform_bank_balance().await,
    ];
    assert_eq!(found, expected, "bank balances of A, B and the platform");
}

/// The simulator's counts of transfers asked for and executed.
async fn bank_transfers(app: &TestApp) -> Value {
    let s = &app.bank_sim().await["stats"];
    json!({"pulls": s["pulls"], "pulls_executed": s["pulls_executed"],
           "pushes": s["pushes"], "pushes_executed": s["pushes_executed"]})
}

fn transfers(pulls: u64, pulls_executed: u64, pushes: u64, pushes_executed: u64) -> Value {
    json!({"pulls": pulls, "pulls_executed": pulls_executed, "pushes": pushes, "pushes_executed": pushes_executed})
}

/// The one open dead letter of `kind`, once the delivery gave up.
async fn dead_letter(app: &TestApp, kind: &str, id: &str) -> Value {
    eventually(&format!("a dead letter {kind} for {id}"), EVENTUALLY_MAX, async || {
        let open: Vec<Value> = app
            .dead_letters(kind)
            .await
            .into_iter()
            .filter(|d| d["resolved_at"].is_null())
            .collect();
        assert!(open.len() <= 1, "one open dead letter per failing point: {open:?}");
        let d = open.into_iter().next()?;
        assert_eq!(
            (text(&d["subject_id"]), &d["kind"]),
            (id.to_owned(), &json!(kind)),
            "{d}"
        );
        Some(d)
    })
    .await
}

/// `kind`'s dead letters, each as `(resolution, attempts, rounds)`.
async fn dead_letter_history(app: &TestApp, kind: &str) -> Vec<(Value, Value, Value)> {
    app.dead_letters(kind)
        .await
        .iter()
        .map(|d| (d["resolution"].clone(), d["attempts"].clone(), d["rounds"].clone()))
        .collect()
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_else(|| panic!("not a string: {v}")).to_owned()
}

fn at(v: &Value) -> Timestamp {
    text(v).parse().unwrap()
}

fn t0_plus(secs: i64) -> Timestamp {
    crate::helpers::T0.parse::<Timestamp>().unwrap() + SignedDuration::from_secs(secs)
}

/// Makes the database refuse every change of a remittance to `status` (behind the API's back),
/// as a failing write would: a failure point the bank does not see.
async fn refuse_status(app: &TestApp, status: &str) {
    let sql = match app.backend {
        Backend::Postgres => format!(
            "CREATE FUNCTION refuse_{status}() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'injected fault: no {status}'; END $$;
             CREATE TRIGGER refuse_{status} BEFORE UPDATE ON remittances FOR EACH ROW
             WHEN (NEW.status = '{status}') EXECUTE FUNCTION refuse_{status}();"
        ),
        Backend::Sqlite => format!(
            "CREATE TRIGGER refuse_{status} BEFORE UPDATE ON remittances WHEN NEW.status = '{status}'
             BEGIN SELECT RAISE(ABORT, 'injected fault: no {status}'); END;"
        ),
    };
    app.execute_sql_batch(&sql).await;
}

/// Undoes [`refuse_status`].
async fn allow_status(app: &TestApp, status: &str) {
    let sql = match app.backend {
        Backend::Postgres => {
            format!("DROP TRIGGER refuse_{status} ON remittances; DROP FUNCTION refuse_{status}();")
        }
        Backend::Sqlite => format!("DROP TRIGGER refuse_{status};"),
    };
    app.execute_sql_batch(&sql).await;
}

// --- 1. collect: pulling from A's bank ------------------------------------------------------

async fn collect_declined_moves_nothing(app: TestApp) {
    let (a, b) = parties(&app).await;
    app.set_bank_account_faults(&a.account_number, json!({"pull": "decline", "times": 1}))
        .await;
    let id = send(&app, &a, &b).await;

    let r = app.remittance_when(&a, &id, &["collect_failed"]).await;
    assert_state(
        &r,
        "collect_failed",
        "sender_bank",
        Some(("collect", "bank_declined", 1)),
    );
    assert_steps(
        &r,
        &[
            ("collect", "failed", 1),
            ("credit_float", "pending", 0),
            ("debit_float", "pending", 0),
            ("payout", "pending", 0),
        ],
    );
    assert_attempts(&detail(&app, &id).await, &[("collect", "refused")]);
    assert_bank(
        &app,
        &a.account_number,
        &b.account_number,
        [OPENING_WON, OPENING_WON, 0],
    )
    .await;
    assert_eq!(bank_transfers(&app).await, transfers(1, 0, 0, 0));
    assert!(app.dead_letters("remittance.collect").await.is_empty());
}

async fn collect_unavailable_once_succeeds_on_the_next_attempt(app: TestApp) {
    let (a, b) = parties(&app).await;
    // The bank client tries an unavailable transfer three times within one attempt.
    app.set_bank_account_faults(&a.account_number, json!({"pull": "unavailable", "times": 3}))
        .await;
    let id = send(&app, &a, &b).await;

    let d = after_attempts(&app, &id, "collect", 1).await;
    assert_state(&d, "requested", "sender_bank", None);
    assert_attempts(&d, &[("collect", "failed")]);
    app.advance_clock(RETRY_DELAY_SECS).await;

    let r = app.remittance_when(&a, &id, &["completed"]).await;
    assert_state(&r, "completed", "receiver_bank", None);
    assert_steps(&r, &all_succeeded([2, 1, 1, 1]));
    assert!(text(&r["steps"][0]["last_error"]).contains("unavailable"), "{r}");
    assert_attempts(
        &detail(&app, &id).await,
        &[
            ("collect", "failed"),
            ("collect", "succeeded"),
            ("credit_float", "succeeded"),
            ("debit_float", "succeeded"),
            ("payout", "succeeded"),
        ],
    );
    assert_bank(
        &app,
        &a.account_number,
        &b.account_number,
        [OPENING_WON - WON, OPENING_WON + WON, 0],
    )
    .await;
    assert_eq!(bank_transfers(&app).await, transfers(4, 1, 1, 1));
}

async fn collect_timeout_executed_is_settled_by_the_inquiry(app: TestApp) {
    let (a, b) = parties(&app).await;
    // The bank takes the money and the answer is lost: the status inquiry tells.
    app.set_bank_account_faults(&a.account_number, json!({"pull": "timeout_executed", "times": 1}))
        .await;
    let id = send(&app, &a, &b).await;

    let r = app.remittance_when(&a, &id, &["completed"]).await;
    assert_state(&r, "completed", "receiver_bank", None);
    assert_steps(&r, &all_succeeded([1, 1, 1, 1]));
    let d = detail(&app, &id).await;
    assert_attempts(
        &d,
        &[
            ("collect", "succeeded"),
            ("credit_float", "succeeded"),
            ("debit_float", "succeeded"),
            ("payout", "succeeded"),
        ],
    );
    assert_bank(
        &app,
        &a.account_number,
        &b.account_number,
        [OPENING_WON - WON, OPENING_WON + WON, 0],
    )
    .await;
    // One pull, never a second one: the inquiry settled the first.
    assert_eq!(bank_transfers(&app).await, transfers(1, 1, 1, 1));
    assert_eq!(app.bank_sim().await["stats"]["status_inquiries"], json!(1));
}

async fn collect_timeout_not_executed_is_retried_under_the_same_id(app: TestApp) {
    let (a, b) = parties(&app).await;
    // No answer, and the bank never processed it: the inquiry finds nothing; tried again later.
    app.set_bank_account_faults(&a.account_number, json!({"pull": "timeout_not_executed", "times": 1}))
        .await;
    let id = send(&app, &a, &b).await;

    let d = after_attempts(&app, &id, "collect", 1).await;
    assert_state(&d, "requested", "sender_bank", None);
    assert_attempts(&d, &[("collect", "unknown")]);
    app.advance_clock(RETRY_DELAY_SECS).await;

    let r = app.remittance_when(&a, &id, &["completed"]).await;
    assert_state(&r, "completed", "receiver_bank", None);
    assert_steps(&r, &all_succeeded([2, 1, 1, 1]));
    assert_attempts(
        &detail(&app, &id).await,
        &[
            ("collect", "unknown"),
            ("collect", "succeeded"),
            ("credit_float", "succeeded"),
            ("debit_float", "succeeded"),
            ("payout", "succeeded"),
        ],
    );
    assert_bank(
        &app,
        &a.account_number,
        &b.account_number,
        [OPENING_WON - WON, OPENING_WON + WON, 0],
    )
    .await;
    assert_eq!(bank_transfers(&app).await, transfers(2, 1, 1, 1));
}

async fn collect_unavailable_forever_needs_attention_until_an_operator_retries(app: TestApp) {
    let (a, b) = parties(&app).await;
    app.set_bank_account_faults(&a.account_number, json!({"pull": "unavailable"}))
        .await;
    let id = send(&app, &a, &b).await;

    // Three attempts, ten seconds apart; then a dead letter due a minute later.
    let d = collect_attempts_exhausted(&app, &id).await;
    assert_eq!(
        (d["step"].clone(), d["attempts"].clone(), d["rounds"].clone()),
        (json!("collect"), json!(3), json!(0))
    );
    assert_eq!(at(&d["created_at"]), t0_plus(2 * RETRY_DELAY_SECS));
    assert_eq!(
        at(&d["next_attempt_at"]),
        t0_plus(2 * RETRY_DELAY_SECS + ROUND_DELAY_SECS)
    );
    let r = app.remittance_when(&a, &id, &["requested"]).await;
    assert_state(&r, "requested", "sender_bank", None);

    retry_rounds_exhausted(&app).await;
    assert_eq!(
        dead_letter_history(&app, "remittance.collect").await,
        [(json!("needs_attention"), json!(6), json!(3))]
    );
    let r = app.remittance_when(&a, &id, &["needs_attention"]).await;
    assert_state(
        &r,
        "needs_attention",
        "sender_bank",
        Some(("collect", "retries_exhausted", 6)),
    );
    assert_steps(
        &r,
        &[
            ("collect", "failed", 6),
            ("credit_float", "pending", 0),
            ("debit_float", "pending", 0),
            ("payout", "pending", 0),
        ],
    );
    assert_attempts(&detail(&app, &id).await, &[("collect", "failed"); 6]);
    let alerts = app.alerts("remittance_needs_attention").await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["subject_id"], json!(id));
    // The dead letter itself was announced once, however many rounds failed after it.
    let buried = app.alerts("dead_letter").await;
    assert_eq!(buried.len(), 1, "{buried:?}");
    assert_eq!(buried[0]["subject_id"], d["id"]);
    assert_eq!(buried[0]["data"]["kind"], json!("remittance.collect"));
    assert_bank(
        &app,
        &a.account_number,
        &b.account_number,
        [OPENING_WON, OPENING_WON, 0],
    )
    .await;
    // Another run finds nothing due.
    app.advance_clock(ROUND_DELAY_SECS).await;
    assert_eq!(app.run_job("remittance-retry").await["processed"], json!(0));

    // The bank is back; an operator sends it on from the step that failed.
    app.set_bank_account_faults(&a.account_number, json!({"pull": "ok"}))
        .await;
    let retried = app
        .admin_post(&format!("/v1/admin/remittances/{id}/retry"), json!({}))
        .await;
    assert_ne!(retried.assert_status(200)["status"], json!("needs_attention"));
    let r = app.remittance_when(&a, &id, &["completed"]).await;
    // What went wrong on the way stays on record.
    assert_state(
        &r,
        "completed",
        "receiver_bank",
        Some(("collect", "retries_exhausted", 6)),
    );
    assert_steps(&r, &all_succeeded([7, 1, 1, 1]));
    assert_bank(
        &app,
        &a.account_number,
        &b.account_number,
        [OPENING_WON - WON, OPENING_WON + WON, 0],
    )
    .await;
    assert_eq!(app.alerts("remittance_needs_attention").await.len(), 1);
    // Retrying it again is refused: it no longer needs attention.
    app.admin_post(&format!("/v1/admin/remittances/{id}/retry"), json!({}))
        .await
        .assert_error(409, "invalid_state");
}

// --- 2. the float: the ledger steps, failing in the database -------------------------------

async fn credit_float_failing_once_recovers(app: TestApp) {
    float_step_failing_once_recovers(app, "credit_float", "credited").await;
}

async fn debit_float_failing_once_recovers(app: TestApp) {
    float_step_failing_once_recovers(app, "debit_float", "debited").await;
}

/// The database refuses to record `step` (its status `refused`) once; the next attempt works.
async fn float_step_failing_once_recovers(app: TestApp, step: &str, refused: &str) {
    let (a, b) = parties(&app).await;
    refuse_status(&app, refused).await;
    let id = send(&app, &a, &b).await;

    let d = after_attempts(&app, &id, step, 1).await;
    let (stopped_at, money_at) = before(step);
    assert_state(&d, stopped_at, money_at, None);
    assert!(
        d["attempts"].as_array().unwrap().last().unwrap()["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("recording the step failed")),
        "{d}"
    );
    allow_status(&app, refused).await;
    app.advance_clock(RETRY_DELAY_SECS).await;

    let r = app.remittance_when(&a, &id, &["completed"]).await;
    assert_state(&r, "completed", "receiver_bank", None);
    let tries = WAY.map(|s| if s == step { 2 } else { 1 });
    assert_steps(&r, &all_succeeded(tries));
    let mut expected: Vec<(&str, &str)> = Vec::new();
    for s in WAY {
        if s == step {
            expected.push((s, "failed"));
        }
        expected.push((s, "succeeded"));
    }
    assert_attempts(&detail(&app, &id).await, &expected);
    assert_bank(
        &app,
        &a.account_number,
        &b.account_number,
        [OPENING_WON - WON, OPENING_WON + WON, 0],
    )
    .await;
    assert_eq!(bank_transfers(&app).await, transfers(1, 1, 1, 1));
}

/// The status a remittance waits in for `step`, and where its money is then.
fn before(step: &str) -> (&'static str, &'static str) {
    match step {
        "credit_float" => ("collected", "platform_bank"),
        "debit_float" => ("credited", "float"),
        _ => unreachable!("a float step"),
    }
}

async fn credit_float_failing_every_attempt_is_dead_lettered_then_recovered(app: TestApp) {
    float_step_dead_lettered_then_recovered(app, "credit_float", "credited").await;
}

async fn debit_float_failing_every_attempt_is_dead_lettered_then_recovered(app: TestApp) {
    float_step_dead_lettered_then_recovered(app, "debit_float", "debited").await;
}

/// The database refuses to record `step` past the last attempt: a dead letter, the money where
/// the status says; once the fault is gone the retry job's next round sends it on.
async fn float_step_dead_lettered_then_recovered(app: TestApp, step: &str, refused: &str) {
    let (a, b) = parties(&app).await;
    refuse_status(&app, refused).await;
    let id = send(&app, &a, &b).await;

    after_attempts(&app, &id, step, 1).await;
    app.advance_clock(RETRY_DELAY_SECS).await;
    after_attempts(&app, &id, step, 2).await;
    app.advance_clock(RETRY_DELAY_SECS).await;
    let kind = format!("remittance.{step}");
    let d = dead_letter(&app, &kind, &id).await;
    assert_eq!((d["step"].clone(), d["attempts"].clone()), (json!(step), json!(3)));
    assert!(text(&d["last_error"]).contains("recording the step failed"), "{d}");
    assert_eq!(
        at(&d["next_attempt_at"]),
        t0_plus(2 * RETRY_DELAY_SECS + ROUND_DELAY_SECS)
    );

    let (stopped_at, money_at) = before(step);
    let r = app.remittance_when(&a, &id, &[stopped_at]).await;
    assert_state(&r, stopped_at, money_at, None);
    let mut steps = vec![("collect", "succeeded", 1)];
    if step == "debit_float" {
        steps.push(("credit_float", "succeeded", 1));
    }
    steps.push((step, "pending", 3));
    if step == "credit_float" {
        steps.push(("debit_float", "pending", 0));
    }
    steps.push(("payout", "pending", 0));
    assert_steps(&r, &steps);
    // Collected at the bank either way: the platform holds the money until B is paid.
    assert_bank(
        &app,
        &a.account_number,
        &b.account_number,
        [OPENING_WON - WON, OPENING_WON, WON],
    )
    .await;
    app.assert_invariants().await;

    allow_status(&app, refused).await;
    app.advance_clock(ROUND_DELAY_SECS).await;
    let run = app.run_job("remittance-retry").await;
    assert_eq!(
        run["details"],
        json!({"recovered": 1, "failed_again": 0, "needs_attention": 0}),
        "{run}"
    );
    assert_eq!(
        dead_letter_history(&app, &kind).await,
        [(json!("recovered"), json!(3), json!(0))]
    );

    let r = app.remittance_when(&a, &id, &["completed"]).await;
    assert_state(&r, "completed", "receiver_bank", None);
    let tries = WAY.map(|s| if s == step { 4 } else { 1 });
    assert_steps(&r, &all_succeeded(tries));
    assert_bank(
        &app,
        &a.account_number,
        &b.account_number,
        [OPENING_WON - WON, OPENING_WON + WON, 0],
    )
    .await;
    assert_eq!(bank_transfers(&app).await, transfers(1, 1, 1, 1));
    assert!(app.alerts("remittance_needs_attention").await.is_empty());
}

// --- 3. payout: pushing to B, and back to A ------------------------------------------------

/// The steps of a remittance B's bank refused, refunded to A.
fn refunded_steps() -> Vec<(&'static str, &'static str, u64)> {
    vec![
        ("collect", "succeeded", 1),
        ("credit_float", "succeeded", 1),
        ("debit_float", "succeeded", 1),
        ("payout", "failed", 1),
        ("refund", "succeeded", 1),
    ]
}

const REFUNDED_ATTEMPTS: [(&str, &str); 5] = [
    ("collect", "succeeded"),
    ("credit_float", "succeeded"),
    ("debit_float", "succeeded"),
    ("payout", "refused"),
    ("refund", "succeeded"),
];

async fn payout_declined_is_refunded(app: TestApp) {
    let (a, b) = parties(&app).await;
    app.set_bank_account_faults(&b.account_number, json!({"push": "decline"}))
        .await;
    let id = send(&app, &a, &b).await;

    let r = app.remittance_when(&a, &id, &["refunded"]).await;
    assert_state(&r, "refunded", "back_at_sender", Some(("payout", "bank_declined", 1)));
    assert_steps(&r, &refunded_steps());
    assert_attempts(&detail(&app, &id).await, &REFUNDED_ATTEMPTS);
    assert_bank(
        &app,
        &a.account_number,
        &b.account_number,
        [OPENING_WON, OPENING_WON, 0],
    )
    .await;
    // B was asked once and refused; A was paid back once.
    assert_eq!(bank_transfers(&app).await, transfers(1, 1, 2, 1));
    // B sees how it ended too.
    let seen_by_b = app.biz_get(&b, &format!("/v1/biz/remittances/{id}")).await;
    assert_eq!(seen_by_b.assert_status(200)["status"], json!("refunded"));
}

async fn payout_to_a_closed_account_is_refunded(app: TestApp) {
    let a = app.onboard_business("가나상사").await;
    let closed = fresh_bank_account_number_ending("0006");
    let body = json!({"amount": WON, "to_bank_account":
        {"bank_code": "004", "account_number": closed, "holder_name": "폐업상사"}});
    let sent = app.biz_post(&a, "/v1/biz/remittances", Some("remit-1"), body).await;
    let sent = sent.assert_status(202);
    assert_eq!(
        sent["to"],
        json!({"business_id": null, "bank_code": "004", "holder_name": "폐업상사",
               "account_number_masked": format!("{}{}", "*".repeat(closed.len() - 4), &closed[closed.len() - 4..])})
    );
    let id = text(&sent["id"]);

    let r = app.remittance_when(&a, &id, &["refunded"]).await;
    assert_state(&r, "refunded", "back_at_sender", Some(("payout", "bank_declined", 1)));
    assert_steps(&r, &refunded_steps());
    assert_attempts(&detail(&app, &id).await, &REFUNDED_ATTEMPTS);
    assert_bank(&app, &a.account_number, &closed, [OPENING_WON, OPENING_WON, 0]).await;
    assert_eq!(bank_transfers(&app).await, transfers(1, 1, 2, 1));
}

async fn payout_unavailable_once_succeeds_on_the_next_attempt(app: TestApp) {
    let (a, b) = parties(&app).await;
    app.set_bank_account_faults(&b.account_number, json!({"push": "unavailable", "times": 3}))
        .await;
    let id = send(&app, &a, &b).await;

    let d = after_attempts(&app, &id, "payout", 1).await;
    assert_state(&d, "debited", "in_transit", None);
    app.advance_clock(RETRY_DELAY_SECS).await;

    let r = app.remittance_when(&a, &id, &["completed"]).await;
    assert_state(&r, "completed", "receiver_bank", None);
    assert_steps(&r, &all_succeeded([1, 1, 1, 2]));
    assert_attempts(
        &detail(&app, &id).await,
        &[
            ("collect", "succeeded"),
            ("credit_float", "succeeded"),
            ("debit_float", "succeeded"),
            ("payout", "failed"),
            ("payout", "succeeded"),
        ],
    );
    assert_bank(
        &app,
        &a.account_number,
        &b.account_number,
        [OPENING_WON - WON, OPENING_WON + WON, 0],
    )
    .await;
    assert_eq!(bank_transfers(&app).await, transfers(1, 1, 4, 1));
}

async fn payout_timeout_executed_pays_b_once(app: TestApp) {
    let (a, b) = parties(&app).await;
    // B is paid and the answer is lost: the inquiry says so, and nothing is pushed again.
    app.set_bank_account_faults(&b.account_number, json!({"push": "timeout_executed", "times": 1}))
        .await;
    let id = send(&app, &a, &b).await;

    let r = app.remittance_when(&a, &id, &["completed"]).await;
    assert_state(&r, "completed", "receiver_bank", None);
    assert_steps(&r, &all_succeeded([1, 1, 1, 1]));
    assert_bank(
        &app,
        &a.account_number,
        &b.account_number,
        [OPENING_WON - WON, OPENING_WON + WON, 0],
    )
    .await;
    assert_eq!(bank_transfers(&app).await, transfers(1, 1, 1, 1));
    assert_eq!(app.bank_sim().await["stats"]["status_inquiries"], json!(1));
}

async fn payout_timeout_not_executed_pays_b_once(app: TestApp) {
    let (a, b) = parties(&app).await;
    app.set_bank_account_faults(&b.account_number, json!({"push": "timeout_not_executed", "times": 1}))
        .await;
    let id = send(&app, &a, &b).await;

    let d = after_attempts(&app, &id, "payout", 1).await;
    assert_state(&d, "debited", "in_transit", None);
    assert_eq!(
        attempts(&d).last().unwrap(),
        &("payout".to_owned(), "unknown".to_owned())
    );
    app.advance_clock(RETRY_DELAY_SECS).await;

    let r = app.remittance_when(&a, &id, &["completed"]).await;
    assert_state(&r, "completed", "receiver_bank", None);
    assert_steps(&r, &all_succeeded([1, 1, 1, 2]));
    assert_bank(
        &app,
        &a.account_number,
        &b.account_number,
        [OPENING_WON - WON, OPENING_WON + WON, 0],
    )
    .await;
    assert_eq!(bank_transfers(&app).await, transfers(1, 1, 2, 1));
}

async fn refund_refused_needs_attention_with_the_money_in_transit(app: TestApp) {
    let (a, b) = parties(&app).await;
    app.set_bank_account_faults(&b.account_number, json!({"push": "decline"}))
        .await;
    app.set_bank_account_faults(&a.account_number, json!({"push": "decline"}))
        .await;
    let id = send(&app, &a, &b).await;

    let r = app.remittance_when(&a, &id, &["needs_attention"]).await;
    assert_state(
        &r,
        "needs_attention",
        "in_transit",
        Some(("refund", "bank_declined", 1)),
    );
    let mut steps = refunded_steps();
    steps[4] = ("refund", "failed", 1);
    assert_steps(&r, &steps);
    let mut expected = REFUNDED_ATTEMPTS;
    expected[4] = ("refund", "refused");
    assert_attempts(&detail(&app, &id).await, &expected);
    // The platform holds the money: B refused it and A's bank would not take it back.
    assert_bank(
        &app,
        &a.account_number,
        &b.account_number,
        [OPENING_WON - WON, OPENING_WON, WON],
    )
    .await;
    let alerts = app.alerts("remittance_needs_attention").await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["subject_id"], json!(id));
    app.assert_invariants().await;

    // A's bank takes money again; an operator sends the refund once more.
    app.set_bank_account_faults(&a.account_number, json!({"push": "ok"}))
        .await;
    app.admin_post(&format!("/v1/admin/remittances/{id}/retry"), json!({}))
        .await
        .assert_status(200);
    let r = app.remittance_when(&a, &id, &["refunded"]).await;
    // `failure` keeps the last refusal recorded (the refund's), not the payout's.
    assert_state(&r, "refunded", "back_at_sender", Some(("refund", "bank_declined", 1)));
    steps[4] = ("refund", "succeeded", 2);
    assert_steps(&r, &steps);
    assert_bank(
        &app,
        &a.account_number,
        &b.account_number,
        [OPENING_WON, OPENING_WON, 0],
    )
    .await;
    // B refused once, A refused once, then A was paid back under a new transfer id.
    assert_eq!(bank_transfers(&app).await, transfers(1, 1, 3, 1));
    let mut expected = expected.to_vec();
    expected.push(("refund", "succeeded"));
    assert_attempts(&detail(&app, &id).await, &expected);
    assert_eq!(app.alerts("remittance_needs_attention").await.len(), 1);
}

// --- 4. the monitor ----------------------------------------------------------------------------

async fn a_stuck_remittance_raises_one_alert(app: TestApp) {
    let (a, b) = parties(&app).await;
    app.set_bank_account_faults(&a.account_number, json!({"pull": "unavailable"}))
        .await;
    let id = send(&app, &a, &b).await;
    after_attempts(&app, &id, "collect", 1).await;

    // Not yet ten minutes.
    app.advance_clock(599).await;
    after_attempts(&app, &id, "collect", 2).await;
    let run = app.run_job("remittance-monitor").await;
    assert_eq!(run["processed"], json!(0), "{run}");
    assert!(app.alerts("remittance_stuck").await.is_empty());

    // Ten minutes after it was requested: one alert, however often the monitor runs.
    app.advance_clock(1).await;
    for raised in [1, 0] {
        let run = app.run_job("remittance-monitor").await;
        assert_eq!(
            run["details"],
            json!({"unfinished": 1, "alerts_raised": raised}),
            "{run}"
        );
    }
    app.advance_clock(60).await;
    assert_eq!(app.run_job("remittance-monitor").await["processed"], json!(0));
    let alerts = app.alerts("remittance_stuck").await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let alert = &alerts[0];
    assert_eq!(
        (
            alert["subject_id"].clone(),
            alert["data"]["status"].clone(),
            alert["data"]["money_at"].clone()
        ),
        (json!(id), json!("requested"), json!("sender_bank"))
    );
    assert_eq!(alert["acknowledged_at"], Value::Null);

    let alert_id = text(&alert["id"]);
    let acked = app
        .admin_post(&format!("/v1/admin/alerts/{alert_id}/ack"), json!({}))
        .await;
    let acked = acked.assert_status(200).clone();
    assert_eq!(acked["id"], json!(alert_id));
    assert!(acked["acknowledged_at"].is_string(), "{acked}");
    // Acknowledging again keeps the first time.
    app.advance_clock(5).await;
    let again = app
        .admin_post(&format!("/v1/admin/alerts/{alert_id}/ack"), json!({}))
        .await;
    assert_eq!(again.assert_status(200)["acknowledged_at"], acked["acknowledged_at"]);
    let open = app
        .admin_get("/v1/admin/alerts?kind=remittance_stuck&acknowledged=false")
        .await;
    assert_eq!(open.assert_status(200)["items"], json!([]));

    let r = app.remittance_when(&a, &id, &["requested"]).await;
    assert_state(&r, "requested", "sender_bank", None);
    assert_bank(
        &app,
        &a.account_number,
        &b.account_number,
        [OPENING_WON, OPENING_WON, 0],
    )
    .await;
}

// --- 5. bad requests -------------------------------------------------------------------------

const INVALID: (u16, &str) = (400, "validation_failed");
const UNAUTHORIZED: (u16, &str) = (401, "unauthorized");
const FORBIDDEN: (u16, &str) = (403, "forbidden");
const NOT_FOUND: (u16, &str) = (404, "not_found");

/// `POST /v1/biz/remittances` with these credentials, key and body is refused with `answer`
/// (status, code) and changes nothing.
async fn assert_create_refused(
    app: &TestApp,
    token: Option<&str>,
    key: Option<&str>,
    body: Value,
    (status, code): (u16, &str),
) {
    let sent = app.request(Method::POST, "/v1/biz/remittances", token, key, Some(body.clone()));
    let r = app.assert_changes_nothing(sent).await;
    assert_eq!(
        (r.status, r.code()),
        (status, code),
        "{body} with {token:?}, key {key:?}"
    );
    r.assert_error(status, code);
}

/// `method path` with these credentials (and an empty body on a POST) is refused with `answer`
/// (status, code) and changes nothing.
async fn assert_refused(app: &TestApp, method: Method, path: &str, token: Option<&str>, (status, code): (u16, &str)) {
    let body = (method == Method::POST).then(|| json!({}));
    let what = format!("{method} {path} with {token:?}");
    let r = app
        .assert_changes_nothing(app.request(method, path, token, None, body))
        .await;
    assert_eq!((r.status, r.code()), (status, code), "{what}: {}", r.text);
    r.assert_error(status, code);
}

async fn bad_requests_on_the_remittance_endpoints_change_nothing(app: TestApp) {
    let a = app.onboard_business("가나상사").await;
    let b = app.onboard_business("다라물산").await;
    let c = app.onboard_business("마바상회").await;
    let user = app.user("Kim").await;
    let id = send(&app, &a, &b).await;
    app.remittance_when(&a, &id, &["completed"]).await;

    let bank = |code: &str, number: &str, holder: &str| json!({"bank_code": code, "account_number": number, "holder_name": holder});
    let good = fresh_bank_account_number();
    let to_b = |extra: Value| {
        let mut body = json!({"amount": 1_000, "to_business_id": b.id});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let invalid: Vec<(&str, Value)> = vec![
        ("a zero amount", to_b(json!({"amount": 0}))),
        ("a negative amount", to_b(json!({"amount": -1_000}))),
        (
            "an amount over the maximum",
            to_b(json!({"amount": 1_000_000_000_001i64})),
        ),
        ("an amount past i64", to_b(json!({"amount": u64::MAX}))),
        ("a fractional amount", to_b(json!({"amount": 1_000.5}))),
        ("an amount as a string", to_b(json!({"amount": "1000"}))),
        ("a null amount", to_b(json!({"amount": null}))),
        ("no amount", json!({"to_business_id": b.id})),
        (
            "both recipients",
            to_b(json!({"to_bank_account": bank("004", &good, "홍길동")})),
        ),
        ("neither recipient", json!({"amount": 1_000})),
        (
            "a recipient id that is not a uuid",
            to_b(json!({"to_business_id": "b"})),
        ),
        ("a recipient id that is a number", to_b(json!({"to_business_id": 7}))),
        (
            "a bank code of two digits",
            json!({"amount": 1_000, "to_bank_account": bank("04", &good, "홍길동")}),
        ),
        (
            "a bank code with a letter",
            json!({"amount": 1_000, "to_bank_account": bank("0a4", &good, "홍길동")}),
        ),
        (
            "an account number too short",
            json!({"amount": 1_000, "to_bank_account": bank("004", "12345", "홍길동")}),
        ),
        (
            "an account number too long",
            json!({"amount": 1_000, "to_bank_account": bank("004", &"1".repeat(21), "홍길동")}),
        ),
        (
            "an account number with a dash",
            json!({"amount": 1_000, "to_bank_account": bank("004", "100-2003001", "홍길동")}),
        ),
        (
            "a blank holder name",
            json!({"amount": 1_000, "to_bank_account": bank("004", &good, "  ")}),
        ),
        (
            "a holder name too long",
            json!({"amount": 1_000, "to_bank_account": bank("004", &good, &"가".repeat(51))}),
        ),
        (
            "a holder name with a control character",
            json!({"amount": 1_000, "to_bank_account": bank("004", &good, "홍\u{7}길동")}),
        ),
        (
            "a bank account without a holder",
            json!({"amount": 1_000, "to_bank_account": {"bank_code": "004", "account_number": good}}),
        ),
        (
            "a bank account with an unknown field",
            json!({"amount": 1_000, "to_bank_account":
            {"bank_code": "004", "account_number": good, "holder_name": "홍길동", "swift": "X"}}),
        ),
        (
            "a bank account that is a string",
            json!({"amount": 1_000, "to_bank_account": good}),
        ),
        ("a memo too long", to_b(json!({"memo": "메".repeat(201)}))),
        ("a blank memo", to_b(json!({"memo": " "}))),
        ("a reference too long", to_b(json!({"reference": "R".repeat(101)}))),
        (
            "a reference with a control character",
            to_b(json!({"reference": "INV\n42"})),
        ),
        ("an unknown field", to_b(json!({"currency": "KRW"}))),
        ("an array body", json!([to_b(json!({}))])),
        ("a string body", json!("1000 to B")),
        ("sending to yourself", to_b(json!({"to_business_id": a.id}))),
        (
            "sending to your own bank account",
            json!({"amount": 1_000, "to_bank_account":
            bank("004", &a.account_number, "가나상사")}),
        ),
    ];
    for (n, (what, body)) in invalid.into_iter().enumerate() {
        let key = format!("bad-{n}");
        let r = app
            .assert_changes_nothing(app.biz_post(&a, "/v1/biz/remittances", Some(&key), body))
            .await;
        assert_eq!((r.status, r.code()), INVALID, "{what}: {}", r.text);
    }
    let valid = to_b(json!({}));
    let (a_key, user_token, admin) = (Some(a.api_key.as_str()), Some(user.token.as_str()), Some(ADMIN_TOKEN));
    let create = async |token, key, body, answer| assert_create_refused(&app, token, key, body, answer).await;
    create(a_key, None, valid.clone(), INVALID).await;
    create(a_key, Some(""), valid.clone(), INVALID).await;
    let nobody = to_b(json!({"to_business_id": uuid::Uuid::new_v4()}));
    create(a_key, Some("k-nobody"), nobody, NOT_FOUND).await;
    let refused = bank("004", &fresh_bank_account_number_ending("0009"), "홍길동");
    let refused = json!({"amount": 1_000, "to_bank_account": refused});
    create(a_key, Some("k-refused"), refused, (422, "bank_declined")).await;
    create(None, Some("k-none"), valid.clone(), UNAUTHORIZED).await;
    create(Some("mp_not-a-key"), Some("k-bad"), valid.clone(), UNAUTHORIZED).await;
    create(user_token, Some("k-user"), valid.clone(), FORBIDDEN).await;
    create(admin, Some("k-admin"), valid.clone(), FORBIDDEN).await;

    // Reading: a business sees only its own (an id that does not parse cannot exist either).
    let unknown = uuid::Uuid::new_v4();
    let one = format!("/v1/biz/remittances/{id}");
    let get = async |path: &str, token, answer| assert_refused(&app, Method::GET, path, token, answer).await;
    let post = async |path: &str, token, answer| assert_refused(&app, Method::POST, path, token, answer).await;
    get(&one, Some(&c.api_key), NOT_FOUND).await;
    get(&format!("/v1/biz/remittances/{unknown}"), a_key, NOT_FOUND).await;
    get("/v1/biz/remittances/r-1", a_key, NOT_FOUND).await;
    for path in [one.as_str(), "/v1/biz/remittances"] {
        get(path, None, UNAUTHORIZED).await;
        get(path, user_token, FORBIDDEN).await;
        get(path, admin, FORBIDDEN).await;
    }
    for query in ["status=lost", "limit=0", "limit=ten", "cursor=%21%21", "sent=true"] {
        get(&format!("/v1/biz/remittances?{query}"), a_key, INVALID).await;
    }

    // Operators' endpoints.
    let retry = format!("/v1/admin/remittances/{id}/retry");
    let ack = format!("/v1/admin/alerts/{unknown}/ack");
    for path in [
        "/v1/admin/remittances",
        &format!("/v1/admin/remittances/{id}"),
        "/v1/admin/dead-letters",
        "/v1/admin/alerts",
        "/v1/admin/events",
    ] {
        get(path, None, UNAUTHORIZED).await;
        get(path, user_token, FORBIDDEN).await;
        get(path, a_key, FORBIDDEN).await;
    }
    for path in [
        retry.as_str(),
        &ack,
        "/v1/admin/jobs/remittance-retry/run",
        "/v1/admin/jobs/remittance-monitor/run",
    ] {
        post(path, None, UNAUTHORIZED).await;
        post(path, user_token, FORBIDDEN).await;
        post(path, a_key, FORBIDDEN).await;
    }
    for query in ["status=lost", "business_id=a", "owner=a", "limit=0"] {
        get(&format!("/v1/admin/remittances?{query}"), admin, INVALID).await;
    }
    for query in ["resolved=maybe", "step=collect"] {
        get(&format!("/v1/admin/dead-letters?{query}"), admin, INVALID).await;
    }
    get("/v1/admin/alerts?acknowledged=2", admin, INVALID).await;
    get(&format!("/v1/admin/remittances/{unknown}"), admin, NOT_FOUND).await;
    get("/v1/admin/remittances/r-1", admin, NOT_FOUND).await;
    post(&retry, admin, (409, "invalid_state")).await;
    post(&format!("/v1/admin/remittances/{unknown}/retry"), admin, NOT_FOUND).await;
    post(&ack, admin, NOT_FOUND).await;

    // What the rejected requests left: the one remittance, still completed, and nothing due.
    let listed = app.biz_get(&a, "/v1/biz/remittances").await;
    let listed = listed.assert_status(200)["items"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(
        (listed[0]["id"].clone(), listed[0]["status"].clone()),
        (json!(id), json!("completed"))
    );
    for other in [&b, &c] {
        let seen = app.biz_get(other, "/v1/biz/remittances").await;
        let expected = usize::from(other.id == b.id);
        assert_eq!(seen.assert_status(200)["items"].as_array().unwrap().len(), expected);
    }
    assert_bank(
        &app,
        &a.account_number,
        &b.account_number,
        [OPENING_WON - WON, OPENING_WON + WON, 0],
    )
    .await;
}
