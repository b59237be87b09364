//! Payments and refunds end to end, black box: a business takes a payment from a wallet user's
//! bank account (answered 202, pulled in the background), every outcome of the pull injected at
//! the simulated bank, refunds partial and full (and concurrent), the order id's uniqueness and
//! the idempotency key, the customer-support history; each bank balance and the ledger audit
//! checked after each.

use crate::batching::long_batches;
use crate::helpers::{
    Backend, EVENTUALLY_MAX, Engine, TestApp, TestBusiness, TestEvents, TestUser, env_refs, eventually,
    fresh_bank_account_number, fresh_bank_account_number_ending, join_all, run_on_with, run_with, spawn_serve_process,
};
use crate::{for_both_backends, for_every_engine, on_both_backends, on_every_engine};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

on_every_engine!(
    a_payment_is_pulled_into_the_business_balance,
    a_declined_pull_fails_and_never_turns_into_success,
    a_timeout_with_execution_is_settled_paid_by_the_inquiry,
    a_timeout_without_execution_is_voided_and_fails,
    a_pull_the_bank_would_not_take_is_sent_again,
    the_recovery_job_settles_a_payment_its_deliveries_gave_up_on,
    partial_refunds_add_up_to_the_payment_and_no_more,
    a_refund_the_bank_refuses_goes_back_to_the_business,
    refunds_sent_together_each_get_their_own_outcome,
    a_payout_moves_the_balance_to_the_business_bank,
    a_payout_the_bank_would_not_take_recovers,
    a_payout_to_a_closed_account_comes_back_to_the_balance,
);

for_every_engine!(
    a_crash_between_the_pull_and_its_record_pays_once,
    a_full_intake_holds_the_pull_side_back_and_it_catches_up,
);

for_both_backends!(
    payments_sent_together_are_each_answered_as_if_alone,
    refunds_sent_together_share_one_transaction,
    refunds_sent_together_beyond_the_balance_take_what_it_holds,
);

on_both_backends!(
    order_ids_and_idempotency_keys,
    bad_payment_and_refund_requests_change_nothing,
    fifty_concurrent_refunds_never_exceed_the_payment,
    refunds_and_payouts_beyond_the_balance_change_nothing,
);

/// Where every bank account starts at the simulator.
const OPENING_WON: i64 = 100_000_000;
/// What each scenario pays.
const WON: i64 = 50_000;
/// Between deliveries of an event (the default `MINIPAY_REMIT_RETRY_DELAY_MS`).
const RETRY_DELAY_SECS: i64 = 10;

/// A user paying from the bank account `account` (registered), and a business.
struct Parties {
    user: TestUser,
    account: String,
    shop: TestBusiness,
}

async fn parties_with(app: &TestApp, account: String) -> Parties {
    Parties {
        user: app.user_with_bank_number("김민수", &account).await,
        account,
        shop: app.onboard_business("가나마트").await,
    }
}

async fn parties(app: &TestApp) -> Parties {
    parties_with(app, fresh_bank_account_number()).await
}

impl TestApp {
    /// `POST /v1/biz/payouts` of `won` under `key`.
    async fn payout(&self, shop: &TestBusiness, won: i64, key: &str) -> crate::helpers::Resp {
        self.biz_post(shop, "/v1/biz/payouts", Some(key), json!({"amount": won}))
            .await
    }

    async fn pending_payouts(&self, shop: &TestBusiness) -> i64 {
        let b = self.biz_get(shop, "/v1/biz/balance").await;
        b.assert_status(200)["pending_payouts"].as_i64().unwrap()
    }

    /// `POST /v1/biz/payments` for `won` from `user`, order `order`, under `key`.
    async fn pay(
        &self,
        shop: &TestBusiness,
        user: &TestUser,
        won: i64,
        order: &str,
        key: &str,
    ) -> crate::helpers::Resp {
        let body = json!({"user_id": user.id, "amount": won, "order_id": order, "description": "라면 2개"});
        self.biz_post(shop, "/v1/biz/payments", Some(key), body).await
    }

    /// The payment as its business sees it, once its status is one of `statuses`.
    async fn payment_when(&self, shop: &TestBusiness, id: &str, statuses: &[&str]) -> Value {
        eventually(&format!("payment {id} in {statuses:?}"), EVENTUALLY_MAX, async || {
            let p = self.biz_get(shop, &format!("/v1/biz/payments/{id}")).await;
            let p = p.assert_status(200).clone();
            statuses.iter().any(|s| p["status"] == json!(s)).then_some(p)
        })
        .await
    }

    async fn refund_when(&self, shop: &TestBusiness, id: &str, statuses: &[&str]) -> Value {
        eventually(&format!("refund {id} in {statuses:?}"), EVENTUALLY_MAX, async || {
            let r = self.biz_get(shop, &format!("/v1/biz/refunds/{id}")).await;
            let r = r.assert_status(200).clone();
            statuses.iter().any(|s| r["status"] == json!(s)).then_some(r)
        })
        .await
    }

    /// The customer-support view of one payment: with its refunds and bank calls.
    async fn payment_history(&self, id: &str) -> Value {
        self.admin_get(&format!("/v1/admin/payments/{id}"))
            .await
            .assert_status(200)
            .clone()
    }

    async fn business_balance(&self, shop: &TestBusiness) -> i64 {
        let b = self.biz_get(shop, "/v1/biz/balance").await;
        b.assert_status(200)["balance"].as_i64().unwrap()
    }

    /// A paid payment of `won`: its id.
    async fn paid(&self, p: &Parties, won: i64, order: &str) -> String {
        let sent = self.pay(&p.shop, &p.user, won, order, &format!("key-{order}")).await;
        let id = sent.assert_status(202)["id"].as_str().unwrap().to_owned();
        self.payment_when(&p.shop, &id, &["paid"]).await;
        id
    }

    async fn refund(&self, shop: &TestBusiness, payment: &str, won: i64, key: &str) -> crate::helpers::Resp {
        let body = json!({"amount": won, "reason": "고객 변심"});
        self.biz_post(shop, &format!("/v1/biz/payments/{payment}/refunds"), Some(key), body)
            .await
    }
}

/// The bank calls of a payment, oldest first: `(kind, outcome)`.
fn calls(history: &Value) -> Vec<(String, String)> {
    history["bank_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (text(&c["kind"]), text(&c["outcome"])))
        .collect()
}

#[track_caller]
fn assert_calls(history: &Value, expected: &[(&str, &str)]) {
    let expected: Vec<(String, String)> = expected.iter().map(|(k, o)| (k.to_string(), o.to_string())).collect();
    assert_eq!(calls(history), expected, "bank calls of {}", history["id"]);
}

/// The bank was asked for one pull and executed it: never pulled again.
async fn assert_pulled_once(app: &TestApp) {
    let stats = app.bank_stats().await;
    assert_eq!(
        (stats["pulls"].clone(), stats["pulls_executed"].clone()),
        (json!(1), json!(1)),
        "pulled once: {stats}"
    );
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// The user's bank account, the platform's own account at the bank, and the business's
/// balance on the platform; then the ledger audit.
async fn assert_money(app: &TestApp, p: &Parties, [user_bank, platform, business]: [i64; 3]) {
    assert_eq!(
        app.bank_balance_of(&p.account).await,
        user_bank,
        "the user's bank account"
    );
    assert_eq!(
        app.platform_bank_balance().await,
        platform,
        "the platform's bank account"
    );
    assert_eq!(app.business_balance(&p.shop).await, business, "the business's balance");
    app.assert_invariants().await;
}

async fn a_payment_is_pulled_into_the_business_balance(app: TestApp) {
    let p = parties(&app).await;
    let sent = app.pay(&p.shop, &p.user, WON, "ORDER-1", "pay-1").await;
    let sent = sent.assert_status(202).clone();
    assert_eq!(sent["status"], json!("accepted"), "{sent}");
    assert_eq!(
        (
            sent["amount"].clone(),
            sent["refunded_amount"].clone(),
            sent["order_id"].clone()
        ),
        (json!(WON), json!(0), json!("ORDER-1"))
    );
    assert_eq!(
        (sent["business_id"].clone(), sent["user_id"].clone()),
        (json!(p.shop.id), json!(p.user.id))
    );
    assert_eq!(sent["description"], json!("라면 2개"));
    let id = text(&sent["id"]);
    // Our transfer id, fixed when the payment was recorded: the bank deduplicates on it.
    let tran_id = text(&sent["bank_transaction_id"]);
    assert_eq!(tran_id, format!("{}-pay", id.replace('-', "")));

    let paid = app.payment_when(&p.shop, &id, &["paid"]).await;
    assert_eq!(paid["failure"], Value::Null);
    assert!(paid["paid_at"].is_string(), "{paid}");
    assert_money(&app, &p, [OPENING_WON - WON, WON, WON]).await;

    // Customer support sees the one pull, with the bank's own id for it.
    let history = app.payment_history(&id).await;
    assert_calls(&history, &[("pull", "completed")]);
    assert_eq!(history["bank_calls"][0]["tran_id"], json!(tran_id));
    assert!(history["bank_calls"][0]["bank_tran_id"].is_string(), "{history}");
    let by_user = app
        .admin_get(&format!("/v1/admin/payments?user_id={}", p.user.id))
        .await;
    let by_user = by_user.assert_status(200).clone();
    assert_eq!(by_user["items"].as_array().unwrap().len(), 1, "{by_user}");
    assert_eq!(by_user["items"][0]["bank_calls"], history["bank_calls"]);
    let by_order = app
        .admin_get(&format!(
            "/v1/admin/payments?business_id={}&order_id=ORDER-1",
            p.shop.id
        ))
        .await;
    assert_eq!(by_order.assert_status(200)["items"][0]["id"], json!(id));

    // The user sees it among their payments; the business in its list.
    let mine = app.get("/v1/payments", &p.user.token).await;
    assert_eq!(mine.assert_status(200)["items"][0]["id"], json!(id));
    let listed = app
        .biz_get(&p.shop, "/v1/biz/payments?status=paid&order_id=ORDER-1")
        .await;
    assert_eq!(listed.assert_status(200)["items"][0]["id"], json!(id));
    assert_pulled_once(&app).await;
}

async fn a_declined_pull_fails_and_never_turns_into_success(app: TestApp) {
    let p = parties(&app).await;
    app.set_bank_account_faults(&p.account, json!({"pull": "decline"}))
        .await;
    let sent = app.pay(&p.shop, &p.user, WON, "ORDER-D", "pay-d").await;
    let id = text(&sent.assert_status(202)["id"]);

    let failed = app.payment_when(&p.shop, &id, &["failed", "paid"]).await;
    assert_eq!(failed["status"], json!("failed"), "{failed}");
    assert_eq!(failed["failure"]["code"], json!("bank_declined"), "{failed}");
    assert_eq!(failed["paid_at"], Value::Null);
    // However long one waits, and whatever the recovery job does, it stays failed.
    app.advance_clock(120).await;
    app.run_job("payment-recovery").await;
    let again = app.biz_get(&p.shop, &format!("/v1/biz/payments/{id}")).await;
    assert_eq!(again.assert_status(200)["status"], json!("failed"));
    assert_calls(&app.payment_history(&id).await, &[("pull", "declined")]);
    assert_money(&app, &p, [OPENING_WON, 0, 0]).await;
    // A refund of a failed payment is refused.
    let refund = app.refund(&p.shop, &id, 1_000, "refund-d").await;
    refund.assert_error(409, "invalid_state");
}

async fn a_timeout_with_execution_is_settled_paid_by_the_inquiry(app: TestApp) {
    let p = parties(&app).await;
    app.set_bank_account_faults(&p.account, json!({"pull": "timeout_executed", "times": 1}))
        .await;
    let sent = app.pay(&p.shop, &p.user, WON, "ORDER-T1", "pay-t1").await;
    let id = text(&sent.assert_status(202)["id"]);

    app.payment_when(&p.shop, &id, &["paid"]).await;
    assert_calls(
        &app.payment_history(&id).await,
        &[("pull", "unknown"), ("inquiry", "completed")],
    );
    assert_money(&app, &p, [OPENING_WON - WON, WON, WON]).await;
    assert_pulled_once(&app).await;
}

async fn a_timeout_without_execution_is_voided_and_fails(app: TestApp) {
    let p = parties(&app).await;
    app.set_bank_account_faults(&p.account, json!({"pull": "timeout_not_executed", "times": 1}))
        .await;
    let sent = app.pay(&p.shop, &p.user, WON, "ORDER-T2", "pay-t2").await;
    let id = text(&sent.assert_status(202)["id"]);

    // The bank has no record of it: the id is voided (so the pull can never land later), and
    // the payment fails for good with nothing taken. It is never pulled again.
    let failed = app.payment_when(&p.shop, &id, &["failed", "paid"]).await;
    assert_eq!(failed["status"], json!("failed"), "{failed}");
    assert_eq!(failed["failure"]["code"], json!("bank_no_answer"), "{failed}");
    assert_calls(
        &app.payment_history(&id).await,
        &[("pull", "unknown"), ("inquiry", "unknown"), ("void", "declined")],
    );
    assert_money(&app, &p, [OPENING_WON, 0, 0]).await;
    let stats = app.bank_stats().await;
    assert_eq!(
        (stats["pulls"].clone(), stats["pulls_executed"].clone()),
        (json!(1), json!(0)),
        "{stats}"
    );
}

async fn a_pull_the_bank_would_not_take_is_sent_again(app: TestApp) {
    let p = parties(&app).await;
    // Three refusals: the bank client's own quick retries (two after the first) all refused.
    app.set_bank_account_faults(&p.account, json!({"pull": "unavailable", "times": 3}))
        .await;
    let sent = app.pay(&p.shop, &p.user, WON, "ORDER-U", "pay-u").await;
    let id = text(&sent.assert_status(202)["id"]);

    let history = eventually("the first pull refused", EVENTUALLY_MAX, async || {
        let h = app.payment_history(&id).await;
        (calls(&h).len() == 1 && h["bank_calls"][0]["outcome"] == json!("unavailable")).then_some(h)
    })
    .await;
    assert_eq!(history["status"], json!("processing"), "{history}");
    // Nothing happened at the bank, so the same transfer id is sent again at the next delivery.
    app.advance_clock(RETRY_DELAY_SECS).await;
    app.payment_when(&p.shop, &id, &["paid"]).await;
    assert_calls(
        &app.payment_history(&id).await,
        &[("pull", "unavailable"), ("pull", "completed")],
    );
    assert_money(&app, &p, [OPENING_WON - WON, WON, WON]).await;
}

/// A pull with no answer whose inquiries the bank cannot take either: its deliveries give up
/// (a dead letter) and leave the payment `processing`. The recovery job finds it (by the
/// columns a settled payment has set: none yet) once it has not moved for a minute, asks the
/// bank again and records it paid; after that the job finds nothing.
async fn the_recovery_job_settles_a_payment_its_deliveries_gave_up_on(app: TestApp) {
    /// A payment that has not moved for this long is the recovery job's (its default).
    const RECOVER_AFTER_SECS: i64 = 60;
    let p = parties(&app).await;
    app.set_bank_account_faults(&p.account, json!({"pull": "timeout_executed", "times": 1}))
        .await;
    app.set_bank_account_faults(&p.account, json!({"inquiry": "unavailable"}))
        .await;
    let sent = app.pay(&p.shop, &p.user, WON, "ORDER-REC", "pay-rec").await;
    let id = text(&sent.assert_status(202)["id"]);

    // Three deliveries, ten seconds apart on the clock, each asking the bank in vain.
    for attempt in 1..=3 {
        eventually("the delivery's inquiry", EVENTUALLY_MAX, async || {
            let h = app.payment_history(&id).await;
            (calls(&h).iter().filter(|(kind, _)| kind == "inquiry").count() == attempt).then_some(())
        })
        .await;
        if attempt < 3 {
            app.advance_clock(RETRY_DELAY_SECS).await;
        }
    }
    eventually("the dead letter", EVENTUALLY_MAX, async || {
        (!app.dead_letters("event.payment-pull").await.is_empty()).then_some(())
    })
    .await;
    let stuck = app.payment_history(&id).await;
    assert_eq!(stuck["status"], json!("processing"), "{stuck}");

    app.set_bank_account_faults(&p.account, json!({"inquiry": "ok"})).await;
    app.advance_clock(RECOVER_AFTER_SECS + 1).await;
    let run = app.run_job("payment-recovery").await;
    let paid = app.payment_when(&p.shop, &id, &["paid"]).await;
    assert_eq!(paid["status"], json!("paid"), "{paid} after {run}");
    let history = app.payment_history(&id).await;
    let calls = calls(&history);
    assert_eq!(calls.len(), 5, "{history}");
    assert_eq!(calls[0], ("pull".to_owned(), "unknown".to_owned()), "{history}");
    assert_eq!(
        calls[4],
        ("inquiry".to_owned(), "completed".to_owned()),
        "never pulled again: {history}"
    );
    // Settled, it is nobody's work any more.
    let again = app.run_job("payment-recovery").await;
    assert_eq!(again["details"]["payments"], json!(0), "{again}");
    assert_money(&app, &p, [OPENING_WON - WON, WON, WON]).await;
    assert_pulled_once(&app).await;
}

async fn partial_refunds_add_up_to_the_payment_and_no_more(app: TestApp) {
    let p = parties(&app).await;
    let id = app.paid(&p, WON, "ORDER-R").await;

    let first = app.refund(&p.shop, &id, 20_000, "refund-1").await;
    let first = first.assert_status(202).clone();
    assert_eq!(
        (first["status"].clone(), first["amount"].clone()),
        (json!("accepted"), json!(20_000))
    );
    assert_eq!(first["payment_id"], json!(id));
    app.refund_when(&p.shop, &text(&first["id"]), &["succeeded"]).await;
    let partly = app.payment_when(&p.shop, &id, &["partially_refunded"]).await;
    assert_eq!(partly["refunded_amount"], json!(20_000));
    assert_money(&app, &p, [OPENING_WON - WON + 20_000, WON - 20_000, WON - 20_000]).await;

    // The rest, then one won more.
    let rest = app.refund(&p.shop, &id, WON - 20_000, "refund-2").await;
    let rest = rest.assert_status(202).clone();
    app.refund_when(&p.shop, &text(&rest["id"]), &["succeeded"]).await;
    let refunded = app.payment_when(&p.shop, &id, &["refunded"]).await;
    assert_eq!(refunded["refunded_amount"], json!(WON));
    let more = app
        .assert_changes_nothing(app.refund(&p.shop, &id, 1, "refund-3"))
        .await;
    more.assert_error(422, "refund_exceeds_payment");
    assert_money(&app, &p, [OPENING_WON, 0, 0]).await;

    let history = app.payment_history(&id).await;
    assert_calls(
        &history,
        &[("pull", "completed"), ("push", "completed"), ("push", "completed")],
    );
    assert_eq!(history["refunds"].as_array().unwrap().len(), 2, "{history}");
    let listed = app.biz_get(&p.shop, &format!("/v1/biz/payments/{id}/refunds")).await;
    assert_eq!(listed.assert_status(200).as_array().unwrap().len(), 2);
}

async fn a_refund_the_bank_refuses_goes_back_to_the_business(app: TestApp) {
    // Accounts ending 0006 are closed to deposits: the pull works, the refund's push is refused.
    let p = parties_with(&app, fresh_bank_account_number_ending("0006")).await;
    let id = app.paid(&p, WON, "ORDER-C").await;
    let refund = app.refund(&p.shop, &id, 10_000, "refund-c").await;
    let refund_id = text(&refund.assert_status(202)["id"]);

    let failed = app.refund_when(&p.shop, &refund_id, &["failed", "succeeded"]).await;
    assert_eq!(failed["status"], json!("failed"), "{failed}");
    assert_eq!(failed["failure"]["code"], json!("bank_declined"), "{failed}");
    // The money is back in the business's balance, and the amount back in the payment.
    let p_after = app.payment_when(&p.shop, &id, &["paid"]).await;
    assert_eq!(p_after["refunded_amount"], json!(0));
    assert_money(&app, &p, [OPENING_WON - WON, WON, WON]).await;
    assert_calls(
        &app.payment_history(&id).await,
        &[("pull", "completed"), ("push", "declined")],
    );
}

/// Refunds that arrive together are settled together (one transaction records a batch's
/// answers): each still gets its own outcome — those the bank refuses go back to their
/// business and their payment, the others reach the user — and every balance is exact.
async fn refunds_sent_together_each_get_their_own_outcome(app: TestApp) {
    const EACH: i64 = 10_000;
    const PER_PAYMENT: usize = 4;
    let open = parties(&app).await;
    // Accounts ending 0006 are closed to deposits: the pull works, the refund's push is refused.
    let closed = parties_with(&app, fresh_bank_account_number_ending("0006")).await;
    let open_id = app.paid(&open, WON, "ORDER-T1").await;
    let closed_id = app.paid(&closed, WON, "ORDER-T2").await;
    let sends: Vec<(TestBusiness, String, String)> = (0..PER_PAYMENT)
        .flat_map(|i| {
            [
                (open.shop.clone(), open_id.clone(), format!("together-open-{i}")),
                (closed.shop.clone(), closed_id.clone(), format!("together-closed-{i}")),
            ]
        })
        .collect();
    let answers = join_all(sends.iter().cloned().map(|(shop, id, key)| {
        let app = app.clone();
        async move { app.refund(&shop, &id, EACH, &key).await }
    }))
    .await;
    for ((shop, payment, _), answer) in sends.iter().zip(&answers) {
        let refund_id = text(&answer.assert_status(202)["id"]);
        let done = app.refund_when(shop, &refund_id, &["failed", "succeeded"]).await;
        let expected = if *payment == open_id { "succeeded" } else { "failed" };
        assert_eq!(done["status"], json!(expected), "{done}");
    }
    let open_after = app.payment_when(&open.shop, &open_id, &["partially_refunded"]).await;
    assert_eq!(open_after["refunded_amount"], json!(EACH * PER_PAYMENT as i64));
    let closed_after = app.payment_when(&closed.shop, &closed_id, &["paid"]).await;
    assert_eq!(closed_after["refunded_amount"], json!(0));
    let refunded = EACH * PER_PAYMENT as i64;
    assert_eq!(app.bank_balance_of(&open.account).await, OPENING_WON - WON + refunded);
    assert_eq!(app.bank_balance_of(&closed.account).await, OPENING_WON - WON);
    assert_eq!(app.business_balance(&open.shop).await, WON - refunded);
    assert_eq!(app.business_balance(&closed.shop).await, WON);
    assert_eq!(app.platform_bank_balance().await, 2 * WON - refunded);
    app.assert_invariants().await;
}

/// How many refund groups this server has committed that recorded refunds, and the refunds
/// they recorded (its own counters).
async fn refund_groups(app: &TestApp) -> (u64, u64) {
    accept_groups(app, "refunds").await
}

/// [`refund_groups`] for payments.
async fn payment_groups(app: &TestApp) -> (u64, u64) {
    accept_groups(app, "payments").await
}

/// This server's accept groups of one `kind` that recorded something, and what they recorded.
async fn accept_groups(app: &TestApp, kind: &str) -> (u64, u64) {
    let counts = app.admin_get("/v1/admin/payment-groups").await;
    let groups = &counts.assert_status(200)[kind];
    (groups["groups"].as_u64().unwrap(), groups["recorded"].as_u64().unwrap())
}

/// `n` payments of [`WON`] by `p`'s user to its shop, paid; their ids.
async fn paid_n(app: &TestApp, p: &Parties, n: usize) -> Vec<String> {
    let sent = join_all((0..n).map(|i| {
        let app = app.clone();
        let (shop, user) = (p.shop.clone(), p.user.clone());
        async move {
            let order = format!("ORDER-G{i}");
            app.pay(&shop, &user, WON, &order, &format!("key-{order}")).await
        }
    }))
    .await;
    let mut ids = Vec::with_capacity(n);
    for answer in sent {
        let id = text(&answer.assert_status(202)["id"]);
        app.payment_when(&p.shop, &id, &["paid"]).await;
        ids.push(id);
    }
    ids
}

/// Refunds sent together are recorded by one transaction (one group), each with its own
/// answer: a second refund of one payment is taken after the first; a refund its payment cannot
/// give and a repeated key, handed back by the group, are answered on their own — the one
/// refused, the other the same refund.
async fn refunds_sent_together_share_one_transaction(backend: Backend) {
    run_with(backend, long_batches, |app| async move {
        const EACH: i64 = 10_000;
        let p = parties(&app).await;
        let ids = paid_n(&app, &p, 7).await;
        let before = refund_groups(&app).await;
        let mut sends: Vec<(String, i64, String)> = ids[..6]
            .iter()
            .enumerate()
            .map(|(i, id)| (id.clone(), EACH, format!("grouped-{i}")))
            .collect();
        sends.push((ids[0].clone(), EACH, "again-0".into()));
        sends.push((ids[6].clone(), WON + 1, "beyond".into()));
        sends.push((ids[1].clone(), EACH, "grouped-1".into()));
        let answers = join_all(sends.iter().cloned().map(|(id, won, key)| {
            let (app, shop) = (app.clone(), p.shop.clone());
            async move { app.refund(&shop, &id, won, &key).await }
        }))
        .await;
        answers[7].assert_error(422, "refund_exceeds_payment");
        assert_eq!(
            answers[8].assert_status(202)["id"],
            answers[1].assert_status(202)["id"],
            "a repeated key is the same refund"
        );
        let after = refund_groups(&app).await;
        assert_eq!(
            (after.0 - before.0, after.1 - before.1),
            (1, 7),
            "one group recorded the seven refunds"
        );
        for answer in &answers[..7] {
            let refund = text(&answer.assert_status(202)["id"]);
            app.refund_when(&p.shop, &refund, &["succeeded"]).await;
        }
        for (i, id) in ids.iter().enumerate() {
            let (status, refunded) = match i {
                0 => ("partially_refunded", 2 * EACH),
                6 => ("paid", 0),
                _ => ("partially_refunded", EACH),
            };
            let after = app.payment_when(&p.shop, id, &[status]).await;
            assert_eq!(after["refunded_amount"], json!(refunded), "{after}");
        }
        let (paid, refunded) = (7 * WON, 7 * EACH);
        assert_money(
            &app,
            &p,
            [OPENING_WON - paid + refunded, paid - refunded, paid - refunded],
        )
        .await;
    })
    .await
}

/// `n` payments of [`WON`] paid to `p`'s shop, then all but `left` won paid out (the payout
/// completed); the payments' ids.
async fn paid_and_paid_out_but(app: &TestApp, p: &Parties, n: usize, left: i64) -> Vec<String> {
    let ids = paid_n(app, p, n).await;
    let payout = app.payout(&p.shop, n as i64 * WON - left, "payout-all-but").await;
    let payout = text(&payout.assert_status(202)["id"]);
    app.remittance_when(&p.shop, &payout, &["completed"]).await;
    ids
}

/// Each payment's `refunded_amount`, as its business sees it.
async fn refunded_amounts(app: &TestApp, shop: &TestBusiness, ids: &[String]) -> Vec<i64> {
    let mut refunded = Vec::with_capacity(ids.len());
    for id in ids {
        let payment = app.biz_get(shop, &format!("/v1/biz/payments/{id}")).await;
        refunded.push(payment.assert_status(200)["refunded_amount"].as_i64().unwrap());
    }
    refunded
}

/// Refunds sent together whose business's balance holds only some of them: that business's
/// requests leave the group and run on their own — as many are accepted as the balance holds,
/// the others refused with `insufficient_funds`, and the balance never goes below zero — while
/// another business's refunds sent with them are still recorded by the group.
async fn refunds_sent_together_beyond_the_balance_take_what_it_holds(backend: Backend) {
    run_with(backend, long_batches, |app| async move {
        const EACH: i64 = 20_000;
        let (short, other) = (parties(&app).await, parties(&app).await);
        // 30,000 won left of 150,000: one refund of 20,000 fits, two do not.
        let ids = paid_and_paid_out_but(&app, &short, 3, 30_000).await;
        let other_ids = paid_n(&app, &other, 2).await;
        let before = refund_groups(&app).await;
        let sends: Vec<(TestBusiness, String)> = ids
            .iter()
            .map(|id| (short.shop.clone(), id.clone()))
            .chain(other_ids.iter().map(|id| (other.shop.clone(), id.clone())))
            .collect();
        let answers = join_all(sends.into_iter().enumerate().map(|(i, (shop, id))| {
            let app = app.clone();
            async move { app.refund(&shop, &id, EACH, &format!("short-{i}")).await }
        }))
        .await;
        let (shorts, others) = answers.split_at(3);
        let accepted: Vec<String> = shorts
            .iter()
            .filter(|a| a.status == 202)
            .map(|a| text(&a.body["id"]))
            .collect();
        let refused = shorts
            .iter()
            .filter(|a| a.status == 422 && a.code() == "insufficient_funds")
            .count();
        assert_eq!(
            (accepted.len(), refused),
            (1, 2),
            "{:?}",
            shorts.iter().map(|a| (a.status, a.code())).collect::<Vec<_>>()
        );
        let after = refund_groups(&app).await;
        assert_eq!(
            after.1 - before.1,
            2,
            "the other business's two refunds were recorded by the group, the short one's on their own"
        );
        app.refund_when(&short.shop, &accepted[0], &["succeeded"]).await;
        for answer in others {
            let refund = text(&answer.assert_status(202)["id"]);
            app.refund_when(&other.shop, &refund, &["succeeded"]).await;
        }
        let refunded = refunded_amounts(&app, &short.shop, &ids).await;
        assert_eq!(
            refunded.iter().sum::<i64>(),
            EACH,
            "only the accepted refund was taken: {refunded:?}"
        );
        assert_eq!(
            app.bank_balance_of(&other.account).await,
            OPENING_WON - 2 * WON + 2 * EACH
        );
        assert_eq!(app.business_balance(&other.shop).await, 2 * WON - 2 * EACH);
        let platform = (3 * WON - (3 * WON - 30_000) - EACH) + (2 * WON - 2 * EACH);
        assert_money(&app, &short, [OPENING_WON - 3 * WON + EACH, platform, 30_000 - EACH]).await;
    })
    .await
}

async fn order_ids_and_idempotency_keys(app: TestApp) {
    let p = parties(&app).await;
    let first = app.pay(&p.shop, &p.user, WON, "ORDER-I", "key-i").await;
    let first = first.assert_status(202).clone();
    let id = text(&first["id"]);
    // Paid before anything below checks that a refusal changed nothing.
    app.payment_when(&p.shop, &id, &["paid"]).await;

    // The same key and body: the stored answer, byte for byte.
    let replay = app.pay(&p.shop, &p.user, WON, "ORDER-I", "key-i").await;
    replay.assert_status(202);
    assert_eq!(replay.headers.get("idempotent-replayed").unwrap(), "true");
    assert_eq!(replay.body, first);
    // The same key with another body.
    let reused = app.pay(&p.shop, &p.user, WON + 1, "ORDER-I2", "key-i").await;
    reused.assert_error(422, "idempotency_key_reused");

    // The same order with the same body under another key: the same payment.
    let same = app.pay(&p.shop, &p.user, WON, "ORDER-I", "key-i-again").await;
    assert_eq!(same.assert_status(202)["id"], first["id"]);
    // The same order with another body: a conflict, and nothing changes.
    let other = app
        .assert_changes_nothing(app.pay(&p.shop, &p.user, WON + 1, "ORDER-I", "key-i-other"))
        .await;
    other.assert_error(409, "conflict");
    // Another business may use the same order id.
    let other_shop = app.onboard_business("다라상회").await;
    let theirs = app.pay(&other_shop, &p.user, 1_000, "ORDER-I", "key-i").await;
    assert_ne!(theirs.assert_status(202)["id"], first["id"]);

    // Paid once: the user's bank was pulled for the two payments only.
    eventually("both payments paid", EVENTUALLY_MAX, async || {
        (app.bank_balance_of(&p.account).await == OPENING_WON - WON - 1_000).then_some(())
    })
    .await;
    // Someone else's payment is not found; a user's token is not a business's key.
    let hidden = app.biz_get(&other_shop, &format!("/v1/biz/payments/{id}")).await;
    hidden.assert_error(404, "not_found");
    let as_user = app
        .request(
            Method::GET,
            &format!("/v1/biz/payments/{id}"),
            Some(&p.user.token),
            None,
            None,
        )
        .await;
    as_user.assert_error(403, "forbidden");
    app.assert_invariants().await;
}

/// Requests arriving together are recorded by one statement (on PostgreSQL; one transaction on
/// SQLite) that finds every user's bank account: each is still answered as if it came alone —
/// fresh orders accepted (the answer is the payment as recorded), the same order with the same
/// body the same payment, a taken order with another body a conflict, a user with no bank
/// account refused, a key used before replayed or refused — and only the fresh payments are
/// pulled.
async fn payments_sent_together_are_each_answered_as_if_alone(backend: Backend) {
    run_with(backend, long_batches, |app| async move {
        const FRESH: usize = 20;
        const SAME_ORDER: usize = 5;
        const NO_BANK: usize = 3;
        let p = parties(&app).await;
        let no_bank = app.user("박은행없음").await;
        let taken = app.paid(&p, WON, "ORDER-TAKEN").await;
        let before = payment_groups(&app).await;
        let fresh = (0..FRESH).map(|i| (p.user.clone(), WON, format!("ORDER-{i}"), format!("fresh-{i}")));
        let same = (0..SAME_ORDER).map(|i| (p.user.clone(), WON, "ORDER-SAME".to_owned(), format!("same-{i}")));
        let conflict = std::iter::once((p.user.clone(), WON + 1, "ORDER-TAKEN".to_owned(), "conflict".to_owned()));
        let refused = (0..NO_BANK).map(|i| (no_bank.clone(), WON, format!("ORDER-NB-{i}"), format!("nb-{i}")));
        // The taken order's key: once with its body (a replay), twice with another (refused,
        // even for a user with no bank account).
        let used_key = [
            (
                p.user.clone(),
                WON,
                "ORDER-TAKEN".to_owned(),
                "key-ORDER-TAKEN".to_owned(),
            ),
            (
                p.user.clone(),
                WON,
                "ORDER-KEY-REUSED".to_owned(),
                "key-ORDER-TAKEN".to_owned(),
            ),
            (
                no_bank.clone(),
                WON,
                "ORDER-KEY-REUSED-NB".to_owned(),
                "key-ORDER-TAKEN".to_owned(),
            ),
        ];
        let requests: Vec<_> = fresh
            .chain(same)
            .chain(conflict)
            .chain(refused)
            .chain(used_key)
            .collect();
        let answers = join_all(requests.into_iter().map(|(user, won, order, key)| {
            let (app, shop) = (app.clone(), p.shop.clone());
            async move { app.pay(&shop, &user, won, &order, &key).await }
        }))
        .await;

        let (fresh, rest) = answers.split_at(FRESH);
        let (same, rest) = rest.split_at(SAME_ORDER);
        let (conflict, rest) = rest.split_at(1);
        let (refused, used_key) = rest.split_at(NO_BANK);
        let replay = &used_key[0];
        replay.assert_status(202);
        assert_eq!(replay.headers.get("idempotent-replayed").unwrap(), "true");
        assert_eq!(text(&replay.body["id"]), taken);
        used_key[1].assert_error(422, "idempotency_key_reused");
        used_key[2].assert_error(422, "idempotency_key_reused");
        let mut ids: Vec<String> = fresh.iter().map(|r| text(&r.assert_status(202)["id"])).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), FRESH, "each fresh order is its own payment");
        let same_ids: Vec<String> = same.iter().map(|r| text(&r.assert_status(202)["id"])).collect();
        assert!(same_ids.iter().all(|id| *id == same_ids[0]), "{same_ids:?}");
        conflict[0].assert_error(409, "conflict");
        for r in refused {
            r.assert_error(409, "invalid_state");
        }
        assert!(!ids.contains(&taken) && !ids.contains(&same_ids[0]));
        let (_, recorded) = payment_groups(&app).await;
        assert_eq!(
            recorded - before.1,
            FRESH as u64 + 1,
            "the fresh orders and the first of the shared one were recorded by groups"
        );
        for id in ids.iter().chain([&same_ids[0]]) {
            app.payment_when(&p.shop, id, &["paid"]).await;
        }
        for answer in fresh {
            let recorded = app
                .biz_get(&p.shop, &format!("/v1/biz/payments/{}", text(&answer.body["id"])))
                .await;
            let recorded = recorded.assert_status(200);
            let fields = [
                "id",
                "amount",
                "refunded_amount",
                "business_id",
                "user_id",
                "order_id",
                "description",
                "bank_transaction_id",
                "failure",
                "created_at",
            ];
            for field in fields {
                assert_eq!(
                    answer.body[field], recorded[field],
                    "{field}: {} vs {recorded}",
                    answer.body
                );
            }
            assert_eq!(answer.body["status"], json!("accepted"), "{}", answer.body);
        }
        // The taken order, the fresh ones and the one shared order: pulled once each.
        let paid = (FRESH as i64 + 2) * WON;
        assert_money(&app, &p, [OPENING_WON - paid, paid, paid]).await;
    })
    .await;
}

async fn bad_payment_and_refund_requests_change_nothing(app: TestApp) {
    let p = parties(&app).await;
    let no_bank = app.user("박은행없음").await;
    let body = |user: &str, won: Value, order: &str| json!({"user_id": user, "amount": won, "order_id": order});
    let cases: Vec<(Value, Option<&str>, u16, &str)> = vec![
        (body(&p.user.id, json!(WON), "O-1"), None, 400, "validation_failed"),
        (body(&p.user.id, json!(0), "O-1"), Some("k1"), 400, "validation_failed"),
        (body(&p.user.id, json!(-5), "O-1"), Some("k2"), 400, "validation_failed"),
        (
            body(&p.user.id, json!("1000"), "O-1"),
            Some("k3"),
            400,
            "validation_failed",
        ),
        (body(&p.user.id, json!(WON), ""), Some("k4"), 400, "validation_failed"),
        (
            body(&p.user.id, json!(WON), "has space"),
            Some("k5"),
            400,
            "validation_failed",
        ),
        (
            body(&p.user.id, json!(WON), &"x".repeat(65)),
            Some("k6"),
            400,
            "validation_failed",
        ),
        (
            body("not-a-uuid", json!(WON), "O-1"),
            Some("k7"),
            400,
            "validation_failed",
        ),
        (
            body(&uuid::Uuid::now_v7().to_string(), json!(WON), "O-1"),
            Some("k8"),
            404,
            "not_found",
        ),
        (body(&no_bank.id, json!(WON), "O-1"), Some("k9"), 409, "invalid_state"),
    ];
    for (b, key, status, code) in cases {
        let resp = app
            .assert_changes_nothing(app.biz_post(&p.shop, "/v1/biz/payments", key, b.clone()))
            .await;
        assert_eq!((resp.status, resp.code()), (status, code), "{b}: {}", resp.text);
    }
    let id = app.paid(&p, WON, "O-OK").await;
    let refund = |won: Value| json!({"amount": won});
    let refunds = format!("/v1/biz/payments/{id}/refunds");
    let cases: Vec<(String, Value, Option<&str>, u16, &str)> = vec![
        (refunds.clone(), refund(json!(1_000)), None, 400, "validation_failed"),
        (refunds.clone(), refund(json!(0)), Some("r1"), 400, "validation_failed"),
        (
            refunds.clone(),
            refund(json!(WON + 1)),
            Some("r2"),
            422,
            "refund_exceeds_payment",
        ),
        (
            format!("/v1/biz/payments/{}/refunds", uuid::Uuid::now_v7()),
            refund(json!(1_000)),
            Some("r3"),
            404,
            "not_found",
        ),
    ];
    for (path, b, key, status, code) in cases {
        let resp = app
            .assert_changes_nothing(app.biz_post(&p.shop, &path, key, b.clone()))
            .await;
        assert_eq!((resp.status, resp.code()), (status, code), "{path} {b}: {}", resp.text);
    }
    // Another business cannot refund this one's payment.
    let other = app.onboard_business("다라상회").await;
    let theirs = app
        .assert_changes_nothing(app.biz_post(&other, &refunds, Some("r4"), refund(json!(1_000))))
        .await;
    theirs.assert_error(404, "not_found");
    app.assert_invariants().await;
}

async fn fifty_concurrent_refunds_never_exceed_the_payment(app: TestApp) {
    const REFUNDS: usize = 50;
    const EACH: i64 = 2_000;
    let p = parties(&app).await;
    let id = app.paid(&p, WON, "ORDER-50").await;
    let shop = &p.shop;
    let answers = join_all((0..REFUNDS).map(|i| {
        let (app, shop, id) = (app.clone(), shop.clone(), id.clone());
        async move { app.refund(&shop, &id, EACH, &format!("refund-{i}")).await }
    }))
    .await;
    let accepted: Vec<&crate::helpers::Resp> = answers.iter().filter(|r| r.status == 202).collect();
    let refused = answers
        .iter()
        .filter(|r| r.status == 422 && r.code() == "refund_exceeds_payment")
        .count();
    let fits = (WON / EACH) as usize;
    assert_eq!(
        (accepted.len(), refused),
        (fits, REFUNDS - fits),
        "{:?}",
        answers.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    for r in &accepted {
        app.refund_when(shop, &text(&r.body["id"]), &["succeeded"]).await;
    }
    let refunded = app.payment_when(shop, &id, &["refunded"]).await;
    assert_eq!(refunded["refunded_amount"], json!(WON));
    assert_money(&app, &p, [OPENING_WON, 0, 0]).await;
}

/// A shop paid [`WON`] whose bank account is `shop_account`; then a payout of `won`: its id.
async fn paid_then_payout(app: &TestApp, shop_account: &str, won: i64) -> (Parties, String) {
    let account = fresh_bank_account_number();
    let p = Parties {
        user: app.user_with_bank_number("김민수", &account).await,
        account,
        shop: app.onboard_business_at("가나마트", shop_account).await,
    };
    app.paid(&p, WON, "ORDER-P").await;
    let sent = app.payout(&p.shop, won, "payout-1").await;
    let sent = sent.assert_status(202).clone();
    assert_eq!(
        (
            sent["status"].clone(),
            sent["source"].clone(),
            sent["money_at"].clone(),
            sent["amount"].clone()
        ),
        (json!("credited"), json!("balance"), json!("float"), json!(won)),
        "{sent}"
    );
    assert_eq!(sent["from_business_id"], json!(p.shop.id));
    (p, text(&sent["id"]))
}

async fn a_payout_moves_the_balance_to_the_business_bank(app: TestApp) {
    let (p, id) = paid_then_payout(&app, &fresh_bank_account_number(), 30_000).await;
    let done = app.remittance_when(&p.shop, &id, &["completed"]).await;
    assert_eq!(done["money_at"], json!("receiver_bank"));
    let steps: Vec<(String, String)> = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (text(&s["name"]), text(&s["status"])))
        .collect();
    assert_eq!(
        steps,
        [
            ("debit_float".into(), "succeeded".into()),
            ("payout".into(), "succeeded".into())
        ]
    );
    assert_eq!(app.bank_balance_of(&p.shop.account_number).await, OPENING_WON + 30_000);
    assert_eq!(app.pending_payouts(&p.shop).await, 0);
    assert_money(&app, &p, [OPENING_WON - WON, WON - 30_000, WON - 30_000]).await;
}

async fn a_payout_the_bank_would_not_take_recovers(app: TestApp) {
    let shop_account = fresh_bank_account_number();
    // Three refusals: the bank client's own quick retries all refused; the next delivery works.
    app.set_bank_account_faults(&shop_account, json!({"push": "unavailable", "times": 3}))
        .await;
    let (p, id) = paid_then_payout(&app, &shop_account, 30_000).await;
    eventually("the first payout attempt refused", EVENTUALLY_MAX, async || {
        let d = app.admin_get(&format!("/v1/admin/remittances/{id}")).await;
        let d = d.assert_status(200).clone();
        d["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["step"] == json!("payout"))
            .then_some(())
    })
    .await;
    // Until it is paid out the money is neither in the balance nor at the bank: pending.
    assert_eq!(app.pending_payouts(&p.shop).await, 30_000);
    assert_eq!(app.business_balance(&p.shop).await, WON - 30_000);
    app.advance_clock(RETRY_DELAY_SECS).await;
    app.remittance_when(&p.shop, &id, &["completed"]).await;
    assert_eq!(app.bank_balance_of(&shop_account).await, OPENING_WON + 30_000);
    assert_eq!(app.pending_payouts(&p.shop).await, 0);
    assert_money(&app, &p, [OPENING_WON - WON, WON - 30_000, WON - 30_000]).await;
}

async fn a_payout_to_a_closed_account_comes_back_to_the_balance(app: TestApp) {
    // A business account ending 0006 refuses every deposit.
    let shop_account = fresh_bank_account_number_ending("0006");
    let (p, id) = paid_then_payout(&app, &shop_account, 30_000).await;
    let back = app.remittance_when(&p.shop, &id, &["refunded"]).await;
    assert_eq!(back["money_at"], json!("back_in_balance"), "{back}");
    assert_eq!(back["failure"]["step"], json!("payout"), "{back}");
    assert_eq!(app.bank_balance_of(&shop_account).await, OPENING_WON);
    assert_eq!(app.pending_payouts(&p.shop).await, 0);
    assert_money(&app, &p, [OPENING_WON - WON, WON, WON]).await;
}

async fn refunds_and_payouts_beyond_the_balance_change_nothing(app: TestApp) {
    let (p, id) = paid_then_payout(&app, &fresh_bank_account_number(), 40_000).await;
    app.remittance_when(&p.shop, &id, &["completed"]).await;
    let payment = app.biz_get(&p.shop, "/v1/biz/payments?order_id=ORDER-P").await;
    let payment = text(&payment.assert_status(200)["items"][0]["id"]);
    // 10,000 won left: a refund of 20,000 is within the payment but not within the balance.
    let refund = app
        .assert_changes_nothing(app.refund(&p.shop, &payment, 20_000, "short-refund"))
        .await;
    refund.assert_error(422, "insufficient_funds");
    let payout = app
        .assert_changes_nothing(app.payout(&p.shop, 10_001, "short-payout"))
        .await;
    payout.assert_error(422, "insufficient_funds");
    for (body, code) in [
        (json!({"amount": 0}), "validation_failed"),
        (json!({"amount": "5"}), "validation_failed"),
    ] {
        let bad = app
            .assert_changes_nothing(app.biz_post(&p.shop, "/v1/biz/payouts", Some("bad-payout"), body))
            .await;
        bad.assert_error(400, code);
    }
    let no_key = app
        .assert_changes_nothing(app.biz_post(&p.shop, "/v1/biz/payouts", None, json!({"amount": 1})))
        .await;
    no_key.assert_error(400, "validation_failed");
    // What is left can be refunded.
    let ok = app.refund(&p.shop, &payment, 10_000, "ok-refund").await;
    app.refund_when(&p.shop, &text(&ok.assert_status(202)["id"]), &["succeeded"])
        .await;
    assert_money(&app, &p, [OPENING_WON - WON + 10_000, 0, 0]).await;
}

/// The `minipay serve` process is SIGKILLed after the bank took the money from the user and
/// before the server recorded the answer. The restarted server takes the delivery over once the
/// dead worker's claim runs out — its lease on the clock (embedded), or JetStream's ack wait
/// (in real time: the message is offered again) — finds the pull `sent` with no answer, asks
/// the bank under the same transfer id (never pulls again), and records the payment paid, once.
async fn a_crash_between_the_pull_and_its_record_pays_once(backend: Backend, engine: Engine) {
    /// The bank answers this late (within the client's 5 s transfer timeout); the server is
    /// killed meanwhile.
    const SLOW_BANK_MS: u64 = 3_000;
    /// The lease of a claimed delivery (embedded), and a second past it.
    const LEASE_SECS: i64 = 301;
    let Some(events) = TestEvents::on(engine).await else {
        return;
    };
    let env = events.env();
    let Some(app) = spawn_serve_process(backend, &env_refs(&env)).await else {
        return;
    };
    let p = parties(&app).await;
    app.set_bank_latency_ms(SLOW_BANK_MS).await;
    let sent = app.pay(&p.shop, &p.user, WON, "ORDER-KILL", "pay-kill").await;
    let id = text(&sent.assert_status(202)["id"]);
    eventually(
        "the bank took the money (its answer is still on the way)",
        EVENTUALLY_MAX,
        async || (app.bank_account_balance(&p.account).await == OPENING_WON - WON).then_some(()),
    )
    .await;
    app.kill_process().await;
    app.set_bank_latency_ms(0).await;

    let restarted = app.restart_process(&env_refs(&env)).await;
    let before = restarted.payment_history(&id).await;
    assert_eq!(before["status"], json!("processing"), "{before}");
    assert_calls(&before, &[("pull", "sent")]);
    restarted.advance_clock(LEASE_SECS).await;
    restarted.payment_when(&p.shop, &id, &["paid"]).await;
    assert_calls(
        &restarted.payment_history(&id).await,
        &[("pull", "sent"), ("inquiry", "completed")],
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(restarted.bank_account_balance(&p.account).await, OPENING_WON - WON);
    assert_pulled_once(&restarted).await;
    assert_eq!(restarted.platform_bank_balance().await, WON);
    assert_eq!(restarted.business_balance(&p.shop).await, WON);
    restarted.assert_invariants().await;
    restarted.teardown().await;
    app.teardown().await;
    events.remove().await;
}

/// With `MINIPAY_EVENTS_YIELD_MAX_MS` set, payments whose group answered its oldest request
/// slowly (here after a 300 ms group window: the intake at capacity) are pulled only once the
/// intake has been calm for a lull — the pull side's wait is counted, and no payment is paid
/// before the window and the lull have passed — and then every one is pulled once: money exact.
async fn a_full_intake_holds_the_pull_side_back_and_it_catches_up(backend: Backend, engine: Engine) {
    const N: usize = 6;
    let configure = |s: &mut minipay_server::Settings| {
        long_batches(s);
        s.events_yield_max_ms = 5_000;
    };
    run_on_with(backend, engine, configure, |app| async move {
        let p = parties(&app).await;
        let sent = std::time::Instant::now();
        let answers = join_all((0..N).map(|i| {
            let (app, shop, user) = (app.clone(), p.shop.clone(), p.user.clone());
            async move {
                app.pay(&shop, &user, WON, &format!("ORDER-{i}"), &format!("full-{i}"))
                    .await
            }
        }))
        .await;
        for answer in &answers {
            app.payment_when(&p.shop, &text(&answer.assert_status(202)["id"]), &["paid"])
                .await;
        }
        let earliest = Duration::from_micros(crate::batching::LONG_BATCH_WAIT_US) + minipay_jobs::LULL;
        assert!(sent.elapsed() >= earliest, "paid within {:?}", sent.elapsed());
        let paid = N as i64 * WON;
        assert_money(&app, &p, [OPENING_WON - paid, paid, paid]).await;
        let metrics = app.request(Method::GET, "/metrics", None, None, None).await;
        let waited: f64 = metrics
            .text
            .lines()
            .filter(|l| l.starts_with("minipay_events_yielded_ms_total{") && l.contains(r#"consumer="payment-pull""#))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert!(waited > 0.0, "the pull side's wait is counted: {waited}");
    })
    .await;
}
