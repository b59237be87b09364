//! Webhooks to businesses, black box: the final statuses of payments, refunds and remittances
//! — failures included — posted to a receiver in the test, which checks each signature with
//! the business's webhook secret; a receiver down for a while gets the webhook later from the
//! retry job, exactly once; the delivery log shows every attempt.

use crate::helpers::{
    EVENTUALLY_MAX, HookReceiver, HookRequest, TestApp, TestBusiness, eventually, fresh_bank_account_number,
    fresh_bank_account_number_ending,
};
use crate::{on_both_backends, on_every_engine};
use serde_json::{Value, json};

on_every_engine!(final_statuses_are_posted_signed_once_each);
on_every_engine!(failures_are_posted_with_their_reason);
on_both_backends!(a_receiver_down_for_a_while_gets_the_webhook_later_exactly_once);

impl TestApp {
    /// Onboards a business whose webhooks go to `url`.
    async fn onboard_business_hooked(&self, name: &str, url: &str) -> TestBusiness {
        let mut body = Self::business_body(name);
        body["webhook_url"] = json!(url);
        self.onboard_business_as(body).await
    }

    /// The business's delivery log once it holds at least `n` attempts (each is logged right
    /// after the receiver answers).
    async fn deliveries_when(&self, shop: &TestBusiness, n: usize) -> Vec<Value> {
        eventually(&format!("{n} attempts logged"), EVENTUALLY_MAX, async || {
            Some(self.deliveries(shop).await).filter(|log| log.len() >= n)
        })
        .await
    }

    async fn deliveries(&self, shop: &TestBusiness) -> Vec<Value> {
        let page = self.biz_get(shop, "/v1/biz/webhook-deliveries?limit=100").await;
        page.assert_status(200)["items"].as_array().unwrap().clone()
    }
}

/// The requests of webhook `kind` the receiver has got so far.
fn of_type(receiver: &HookReceiver, kind: &str) -> Vec<HookRequest> {
    receiver
        .received()
        .into_iter()
        .filter(|r| r.body["type"] == json!(kind))
        .collect()
}

/// Waits until the receiver has taken (answered 2xx) a webhook of `kind`; that request.
async fn taken(receiver: &HookReceiver, kind: &str) -> HookRequest {
    eventually(&format!("a {kind} webhook taken"), EVENTUALLY_MAX, async || {
        of_type(receiver, kind).into_iter().find(|r| r.answered == 200)
    })
    .await
}

/// Checks the `Minipay-Signature` header as a receiver would: `t=<unix>,v1=<hex HMAC-SHA256 of
/// "t.body" keyed with the webhook secret>`, over the body exactly as it came.
#[track_caller]
fn assert_signed(r: &HookRequest, secret: &str) {
    let header = r
        .headers
        .get("minipay-signature")
        .expect("a signature header")
        .to_str()
        .unwrap();
    let (t, v1) = header
        .split_once(',')
        .and_then(|(t, v)| Some((t.strip_prefix("t=")?, v.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("a malformed signature header {header:?}"));
    let t: i64 = t.parse().expect("unix seconds");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let tag: Vec<u8> = (0..v1.len() / 2)
        .map(|i| u8::from_str_radix(&v1[2 * i..2 * i + 2], 16).expect("hex"))
        .collect();
    aws_lc_rs::hmac::verify(&key, format!("{t}.{}", r.raw).as_bytes(), &tag)
        .unwrap_or_else(|_| panic!("the signature does not verify: {header} over {}", r.raw));
    // A wrong secret does not verify.
    let wrong = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"not the secret");
    assert!(aws_lc_rs::hmac::verify(&wrong, format!("{t}.{}", r.raw).as_bytes(), &tag).is_err());
}

/// A shop whose webhooks go to `receiver`, and a payment of 30,000 won to it for `order` (its
/// id as the API answered it).
async fn hooked_payment(app: &TestApp, receiver: &HookReceiver, order: &str) -> (TestBusiness, Value) {
    let shop = app.onboard_business_hooked("가나마트", &receiver.url).await;
    let user = app.user_with_bank("김민수").await;
    let body = json!({"user_id": user.id, "amount": 30_000, "order_id": order});
    let paid = app
        .biz_post(&shop, "/v1/biz/payments", Some(&format!("pay-{order}")), body)
        .await;
    let payment_id = paid.assert_status(202)["id"].clone();
    (shop, payment_id)
}

/// A declined pull is posted as `payment.failed` and a refund the bank refuses as
/// `refund.failed`, each carrying the object as `GET` shows it once failed (the reason
/// included), once each.
async fn failures_are_posted_with_their_reason(app: TestApp) {
    let receiver = HookReceiver::start().await;
    let shop = app.onboard_business_hooked("가나마트", &receiver.url).await;
    let number = fresh_bank_account_number();
    let declined = app.user_with_bank_number("김민수", &number).await;
    app.set_bank_account_faults(&number, json!({"pull": "decline"})).await;
    let body = json!({"user_id": declined.id, "amount": 30_000, "order_id": "HOOK-F"});
    let sent = app.biz_post(&shop, "/v1/biz/payments", Some("pay-hook-f"), body).await;
    let payment_id = sent.assert_status(202)["id"].clone();
    assert_failure_posted(&receiver, "payment.failed", &shop, &payment_id).await;

    // Accounts ending 0006 are closed to deposits: paid, then the refund's push is refused.
    let closed = app
        .user_with_bank_number("이영희", &fresh_bank_account_number_ending("0006"))
        .await;
    let body = json!({"user_id": closed.id, "amount": 30_000, "order_id": "HOOK-R"});
    let sent = app.biz_post(&shop, "/v1/biz/payments", Some("pay-hook-r"), body).await;
    let paid_id = sent.assert_status(202)["id"].clone();
    taken(&receiver, "payment.paid").await;
    let path = format!("/v1/biz/payments/{}/refunds", paid_id.as_str().unwrap());
    let refund = app
        .biz_post(&shop, &path, Some("hook-refund-f"), json!({"amount": 10_000}))
        .await;
    let refund_id = refund.assert_status(202)["id"].clone();
    assert_failure_posted(&receiver, "refund.failed", &shop, &refund_id).await;
    for kind in ["payment.failed", "payment.paid", "refund.failed"] {
        assert_eq!(of_type(&receiver, kind).len(), 1, "{kind}: {:?}", receiver.received());
    }
}

/// The `kind` webhook of object `id` taken by the receiver, signed, the object failed because
/// the bank declined.
async fn assert_failure_posted(receiver: &HookReceiver, kind: &str, shop: &TestBusiness, id: &Value) {
    let hook = taken(receiver, kind).await;
    assert_signed(&hook, &shop.webhook_secret);
    let data = &hook.body["data"];
    assert_eq!((&data["id"], &data["status"]), (id, &json!("failed")), "{data}");
    assert_eq!(data["failure"]["code"], json!("bank_declined"), "{data}");
}

async fn final_statuses_are_posted_signed_once_each(app: TestApp) {
    let receiver = HookReceiver::start().await;
    let (shop, payment_id) = hooked_payment(&app, &receiver, "HOOK-1").await;
    let hook = taken(&receiver, "payment.paid").await;
    assert_signed(&hook, &shop.webhook_secret);
    assert_eq!(hook.method, "POST");
    assert_eq!(
        (hook.body["data"]["id"].clone(), hook.body["data"]["status"].clone()),
        (payment_id.clone(), json!("paid"))
    );
    assert!(
        hook.body["id"].is_string() && hook.body["created_at"].is_string(),
        "{}",
        hook.body
    );

    let refund = app
        .biz_post(
            &shop,
            &format!("/v1/biz/payments/{}/refunds", payment_id.as_str().unwrap()),
            Some("hook-refund"),
            json!({"amount": 10_000}),
        )
        .await;
    let refund_id = refund.assert_status(202)["id"].clone();
    let hook = taken(&receiver, "refund.succeeded").await;
    assert_signed(&hook, &shop.webhook_secret);
    assert_eq!(hook.body["data"]["id"], refund_id);

    // The shop sends a remittance: its completion is posted to the shop too.
    let supplier = app.onboard_business("다라물산").await;
    let sent = app.remit(&shop, &supplier, 5_000, "hook-remit").await;
    let remittance_id = sent.assert_status(202)["id"].clone();
    let hook = taken(&receiver, "remittance.completed").await;
    assert_signed(&hook, &shop.webhook_secret);
    assert_eq!(hook.body["data"]["id"], remittance_id);

    // One each, and the log says so.
    for kind in ["payment.paid", "refund.succeeded", "remittance.completed"] {
        assert_eq!(of_type(&receiver, kind).len(), 1, "{kind}: {:?}", receiver.received());
    }
    let log = app.deliveries_when(&shop, 3).await;
    assert_eq!(log.len(), 3, "{log:?}");
    assert!(
        log.iter()
            .all(|d| d["delivered"] == json!(true) && d["attempt"] == json!(1) && d["status_code"] == json!(200)),
        "{log:?}"
    );
    // Another business's log is its own.
    assert!(app.deliveries(&supplier).await.is_empty());
}

async fn a_receiver_down_for_a_while_gets_the_webhook_later_exactly_once(app: TestApp) {
    let receiver = HookReceiver::start().await;
    receiver.fail_next(3);
    let (shop, payment_id) = hooked_payment(&app, &receiver, "DOWN-1").await;

    // The first attempt comes at once and is refused; then 1, 2 and 4 minutes later.
    let attempts = |n: usize| {
        let receiver = &receiver;
        async move {
            eventually(&format!("{n} attempts"), EVENTUALLY_MAX, async || {
                (of_type(receiver, "payment.paid").len() >= n).then_some(())
            })
            .await;
        }
    };
    // Each attempt is logged (with when the next is due) before the clock moves on: the
    // receiver has the request before the server has recorded its answer.
    attempts(1).await;
    app.deliveries_when(&shop, 1).await;
    for (minutes, n) in [(1, 2), (2, 3), (4, 4)] {
        app.advance_clock(minutes * 60).await;
        app.run_job("webhook-retry").await;
        attempts(n).await;
        app.deliveries_when(&shop, n).await;
    }
    // Taken at the fourth attempt; nothing is sent after that, however long one waits.
    app.advance_clock(3 * 60 * 60).await;
    app.run_job("webhook-retry").await;
    let got = of_type(&receiver, "payment.paid");
    let answers: Vec<u16> = got.iter().map(|r| r.answered).collect();
    assert_eq!(answers, [500, 500, 500, 200], "{got:?}");
    // The same webhook every time (its id), each attempt signed afresh.
    assert!(
        got.iter()
            .all(|r| r.body["id"] == got[0].body["id"] && r.body["data"]["id"] == payment_id)
    );
    for r in &got {
        assert_signed(r, &shop.webhook_secret);
    }
    let log = app.deliveries_when(&shop, 4).await;
    let summary: Vec<(i64, bool, Option<i64>)> = log
        .iter()
        .map(|d| {
            (
                d["attempt"].as_i64().unwrap(),
                d["delivered"].as_bool().unwrap(),
                d["status_code"].as_i64(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (4, true, Some(200)),
            (3, false, Some(500)),
            (2, false, Some(500)),
            (1, false, Some(500))
        ],
        "newest first: {log:?}"
    );
}
