//! Business remittance end to end: A → platform float → B on the event stream, every failure
//! point injected at the simulated bank, retries on the manual clock, dead letters, the retry
//! job and the monitor; bank balances and invariant 7 checked after each.

use crate::helpers::{TestApp, TestBusiness};
use crate::on_every_engine;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

on_every_engine!(a_remittance_moves_money_from_a_to_b_through_the_float);

/// How long a test waits for the background steps before it fails.
const SETTLE_MAX: Duration = Duration::from_secs(20);

impl TestApp {
    pub async fn biz_post(
        &self,
        business: &TestBusiness,
        path: &str,
        key: Option<&str>,
        body: Value,
    ) -> crate::helpers::Resp {
        self.request(Method::POST, path, Some(&business.api_key), key, Some(body))
            .await
    }

    pub async fn biz_get(&self, business: &TestBusiness, path: &str) -> crate::helpers::Resp {
        self.request(Method::GET, path, Some(&business.api_key), None, None)
            .await
    }

    /// A remittance of `won` from `from` to the business `to`, under `key`.
    pub async fn remit(&self, from: &TestBusiness, to: &TestBusiness, won: i64, key: &str) -> crate::helpers::Resp {
        let body = json!({"amount": won, "to_business_id": to.id, "memo": "invoice 42", "reference": "INV-42"});
        self.biz_post(from, "/v1/biz/remittances", Some(key), body).await
    }

    /// The remittance as its sender sees it, once its status is one of `statuses`.
    pub async fn remittance_when(&self, sender: &TestBusiness, id: &str, statuses: &[&str]) -> Value {
        let started = std::time::Instant::now();
        loop {
            let r = self.biz_get(sender, &format!("/v1/biz/remittances/{id}")).await;
            let r = r.assert_status(200).clone();
            if statuses.iter().any(|s| r["status"] == json!(s)) {
                return r;
            }
            assert!(
                started.elapsed() < SETTLE_MAX,
                "remittance {id} never reached {statuses:?}: {r}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A simulated bank account's balance (built-in simulator, bank code 004).
    pub async fn bank_balance_of(&self, account_number: &str) -> i64 {
        let view = self
            .admin_get(&format!("/v1/admin/bank-sim/accounts/{account_number}"))
            .await;
        view.assert_status(200)["balances"]["004"].as_i64().unwrap()
    }
}

/// Where every bank account starts at the simulator.
const OPENING_WON: i64 = 100_000_000;

async fn a_remittance_moves_money_from_a_to_b_through_the_float(app: TestApp) {
    let a = app.onboard_business("가나상사").await;
    let b = app.onboard_business("다라물산").await;
    let sent = app.remit(&a, &b, 70_000, "r-1").await;
    let sent = sent.assert_status(202).clone();
    assert_eq!(sent["status"], json!("requested"));
    assert_eq!(sent["amount"], json!(70_000));
    assert_eq!(sent["from_business_id"], json!(a.id));
    assert_eq!(sent["to"]["business_id"], json!(b.id));
    assert_eq!(
        (sent["memo"].clone(), sent["reference"].clone()),
        (json!("invoice 42"), json!("INV-42"))
    );
    let id = sent["id"].as_str().unwrap().to_owned();

    let done = app.remittance_when(&a, &id, &["completed"]).await;
    let steps: Vec<(Value, Value, Value)> = done["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].clone(), s["status"].clone(), s["attempts"].clone()))
        .collect();
    assert_eq!(
        steps,
        ["collect", "credit_float", "debit_float", "payout"].map(|n| (json!(n), json!("succeeded"), json!(1)))
    );
    assert_eq!(
        (done["failure"].clone(), done["money_at"].clone()),
        (Value::Null, json!("receiver_bank"))
    );
    assert!(done["completed_at"].is_string());
    assert_eq!(app.bank_balance_of(&a.account_number).await, OPENING_WON - 70_000);
    assert_eq!(app.bank_balance_of(&b.account_number).await, OPENING_WON + 70_000);
    // B sees it too; the same key and body answer the same remittance; nothing moved again.
    app.biz_get(&b, &format!("/v1/biz/remittances/{id}"))
        .await
        .assert_status(200);
    let again = app.remit(&a, &b, 70_000, "r-1").await;
    assert_eq!(again.assert_status(202)["id"], json!(id));
    assert_eq!(again.headers["idempotent-replayed"], "true");
    app.remit(&a, &b, 70_001, "r-1")
        .await
        .assert_error(422, "idempotency_key_reused");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.bank_balance_of(&b.account_number).await, OPENING_WON + 70_000);
    let audit = app.admin_get("/v1/admin/ledger/audit").await;
    let audit = audit.assert_status(200);
    assert_eq!(
        audit["platform_bank"]["at_bank"],
        json!(0),
        "the platform paid out all it collected: {audit}"
    );
}
