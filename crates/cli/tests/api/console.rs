//! The operator console over HTTP (its browser tests drive the same pages in Chromium): the
//! admin-token login and its session cookie, pages that need it, the CSRF token every change
//! needs, approvals with a timed-out sale's timeline, alerts acknowledged from the page, upstream
//! health with its charts, the network-cancel queue, the ledger audit, payments for customer
//! support.

use crate::for_both_backends;
use crate::gateway::{APPROVED_CARD, NO_ANSWER_CARD, on_gateway, rig};
use crate::helpers::{ADMIN_TOKEN, Backend, TestApp};
use minipay_gateway::sim::SimFaults;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;
use std::time::Duration;

for_both_backends!(
    the_console_needs_a_login_and_a_csrf_token_for_every_change,
    the_console_shows_a_timed_out_approval_and_its_network_cancel,
    the_console_shows_upstream_health_and_the_network_cancel_queue,
    the_console_audits_the_ledger,
    the_console_finds_a_payment_and_shows_its_bank_calls,
);

/// A browser without JavaScript: no redirects followed, cookies sent by hand.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Self {
            http,
            base: app.base.clone(),
            cookie: None,
        }
    }

    async fn get(&self, path: &str) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let mut req = self.http.get(format!("{}{path}", self.base));
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        let res = req.send().await.unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        (status, headers, res.text().await.unwrap())
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (StatusCode, reqwest::header::HeaderMap, String) {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body);
        if let Some(c) = &self.cookie {
            req = req.header(COOKIE, c);
        }
        let res = req.send().await.unwrap();
        let (status, headers) = (res.status(), res.headers().clone());
        (status, headers, res.text().await.unwrap())
    }

    /// Logs in with the admin token; keeps the session cookie.
    async fn log_in(&mut self) {
        let (status, headers, _) = self.post("/console/login", &[("token", ADMIN_TOKEN)]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        let set = headers[SET_COOKIE].to_str().unwrap().to_owned();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/console"),
            "{set}"
        );
        self.cookie = Some(set.split(';').next().unwrap().to_owned());
    }
}

/// The CSRF token a page's forms carry.
fn csrf_of(page: &str) -> String {
    let at = page.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + "name=\"csrf\" value=\"".len();
    page[at..].split('"').next().unwrap().to_owned()
}

async fn the_console_needs_a_login_and_a_csrf_token_for_every_change(backend: Backend) {
    on_gateway(backend, |app| async move {
        let r = rig(&app, &[("vana", 1)], false, "auto").await;
        r.http_sale(APPROVED_CARD).await;
        // An alert to acknowledge: a reconciliation with a line nobody knows.
        let file = format!(
            "{}\napproval,77777777,T9999999,1,20261204120000,5000,20261204120001,\n",
            minipay_core::gateway::reconciliation::SETTLEMENT_FILE_HEADER
        );
        app.admin_post(
            "/v1/admin/reconciliations",
            json!({"upstream": "vana", "date": "2026-12-04", "file": file}),
        )
        .await
        .assert_status(200);
        let alert = app.alerts("reconciliation_mismatch").await.pop().unwrap();
        let alert_id = alert["id"].as_str().unwrap().to_owned();

        let mut browser = Browser::new(&app);
        let (status, headers, _) = browser.get("/console/alerts").await;
        assert_eq!(
            (status, &headers[LOCATION]),
            (StatusCode::SEE_OTHER, &"/console/login".parse().unwrap())
        );
        let (status, _, page) = browser.post("/console/login", &[("token", "not-the-token")]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert!(page.contains("not the admin token"), "{page}");
        let (status, _, _) = browser.get("/console/alerts").await;
        assert_eq!(status, StatusCode::SEE_OTHER, "still logged out");

        browser.log_in().await;
        let (status, headers, page) = browser.get("/console/alerts").await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            headers[CONTENT_SECURITY_POLICY]
                .to_str()
                .unwrap()
                .contains("script-src 'self'")
        );
        assert!(page.contains(&format!("alert-{alert_id}")), "{page}");
        let csrf = csrf_of(&page);

        // The day's settlement (the sims date their approvals on the test clock's day) and the
        // reconciliation just run.
        let (status, _, page) = browser.get("/console/settlements?date=2026-11-21").await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("<td>vana</td>") && page.contains("1 × 15000"), "{page}");
        assert!(page.contains("2026-12-04") && page.contains("uploaded"), "{page}");
        let (status, _, _) = browser.get("/console/settlements?date=garbage").await;
        assert_eq!(status, StatusCode::OK, "a bad date shows today");

        let ack = format!("/console/alerts/{alert_id}/ack");
        for bad in [vec![], vec![("csrf", "forged")]] {
            let (status, _, _) = browser.post(&ack, &bad).await;
            assert_eq!(status, StatusCode::FORBIDDEN);
        }
        assert!(
            app.alerts("reconciliation_mismatch").await[0]["acknowledged_at"].is_null(),
            "nothing changed"
        );
        let (status, headers, _) = browser.post(&ack, &[("csrf", &csrf)]).await;
        assert_eq!(
            (status, headers[LOCATION].to_str().unwrap()),
            (StatusCode::SEE_OTHER, "/console/alerts")
        );
        assert!(app.alerts("reconciliation_mismatch").await[0]["acknowledged_at"].is_string());

        // Another session's token is refused; a cookie signed under another token is no session.
        let mut other = Browser::new(&app);
        other.log_in().await;
        let (status, _, _) = other.post("/console/logout", &[("csrf", &csrf)]).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let mut forged = Browser::new(&app);
        forged.cookie = Some(browser.cookie.clone().unwrap().replace('.', "x."));
        assert_eq!(forged.get("/console/alerts").await.0, StatusCode::SEE_OTHER);

        let (status, headers, _) = browser.post("/console/logout", &[("csrf", &csrf)]).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert!(headers[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));

        let (status, headers, script) = browser.get("/console/assets/htmx.min.js").await;
        assert_eq!(
            (status, headers[CONTENT_TYPE].to_str().unwrap()),
            (StatusCode::OK, "text/javascript")
        );
        assert!(script.starts_with("var htmx="));
    })
    .await
}

async fn the_console_shows_a_timed_out_approval_and_its_network_cancel(backend: Backend) {
    on_gateway(backend, |app| async move {
        let r = rig(&app, &[("vana", 1), ("vanb", 1)], false, "auto").await;
        let timed_out = r.tcp_sale(NO_ANSWER_CARD).await.transaction_id.unwrap().to_string();
        r.wait_cancel(&timed_out, "acknowledged").await;
        let mut browser = Browser::new(&app);
        browser.log_in().await;
        let mut page = String::new();
        for _ in 0..200 {
            page = browser.get("/console/approvals?status=timeout").await.2;
            if page.contains(&timed_out) && page.contains("acknowledged") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert!(page.contains(&format!("/console/approvals/{timed_out}")), "{page}");
        let (status, _, timeline) = browser.get(&format!("/console/approvals/{timed_out}")).await;
        assert_eq!(status, StatusCode::OK);
        let order: Vec<usize> = [
            "received",
            "routed",
            "timed_out",
            "cancel_queued",
            "cancel_sent",
            "cancel_acknowledged",
        ]
        .iter()
        .map(|s| {
            timeline
                .find(&format!("step-{s}"))
                .unwrap_or_else(|| panic!("no {s} step: {timeline}"))
        })
        .collect();
        assert!(order.is_sorted(), "the steps in order: {order:?}");
        let (status, _, _) = browser
            .get(&format!("/console/approvals/{}", uuid::Uuid::now_v7()))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    })
    .await
}

/// The `d` of every charted line on a page.
fn chart_paths(page: &str) -> Vec<&str> {
    page.split("<path class=\"series")
        .skip(1)
        .map(|p| p.split("d=\"").nth(1).unwrap().split('"').next().unwrap())
        .collect()
}

async fn the_console_shows_upstream_health_and_the_network_cancel_queue(backend: Backend) {
    on_gateway(backend, |app| async move {
        let r = rig(&app, &[("vana", 1), ("vanb", 0)], false, "auto").await;
        r.vans[0].set_faults(SimFaults {
            drop_cancels: true,
            ..SimFaults::default()
        });
        r.http_sale(APPROVED_CARD).await;
        let id = r.tcp_sale(NO_ANSWER_CARD).await.transaction_id.unwrap().to_string();
        r.wait_sends(&id, "1").await;
        let mut browser = Browser::new(&app);
        browser.log_in().await;

        let (status, _, page) = browser.get("/console/upstreams").await;
        assert_eq!(status, StatusCode::OK);
        let vana = page.split("id=\"upstream-vana\"").nth(1).expect("a row for vana");
        let cells: Vec<&str> = vana
            .split("</tr>")
            .next()
            .unwrap()
            .split("<td")
            .skip(1)
            .map(|c| c.split('>').nth(1).unwrap().split('<').next().unwrap())
            .collect();
        assert_eq!(
            (cells[2], cells[3], cells[5], cells[6], cells[8]),
            ("closed", "1", "2", "1", "1"),
            "breaker, errors in its window, requests, approved, timed out: {cells:?}"
        );
        assert!(page.contains("id=\"upstream-vanb\""), "every configured upstream");
        let paths = chart_paths(&page);
        assert_eq!(paths.len(), 4, "latency and errors, a line per upstream: {paths:?}");
        assert!(paths[0].starts_with('M'), "vana's latency is drawn: {paths:?}");
        assert_eq!(paths[1], "", "vanb answered nothing: no latency line");
        assert!(
            paths[2].matches(' ').count() == 59,
            "vana's errors: a point for every minute of the hour: {}",
            paths[2]
        );
        assert!(page.contains("<svg viewBox="), "an inline SVG chart");

        let (status, _, page) = browser.get("/console/cancels").await;
        assert_eq!(status, StatusCode::OK);
        let pending = page.split("id=\"cancels-pending\"").nth(1).expect("the pending table");
        assert!(pending.contains(&format!("id=\"cancel-{id}\"")), "{page}");
        assert!(pending.contains("<td>sent</td><td class=\"num\">1</td>"), "{pending}");
        assert!(page.contains("No network cancel has been given up."));

        for sends in 2..=5 {
            app.advance_clock(10).await;
            r.wait_sends(&id, &sends.to_string()).await;
        }
        r.wait_cancel(&id, "failed").await;
        let (_, _, page) = browser.get("/console/cancels").await;
        assert!(page.contains("No network cancel is waiting"), "{page}");
        let failed = page.split("id=\"cancels-failed\"").nth(1).expect("the failed table");
        assert!(
            failed.contains(&format!("id=\"cancel-{id}\"")) && failed.contains("<td class=\"num\">5</td>"),
            "{failed}"
        );
    })
    .await
}

async fn the_console_audits_the_ledger(backend: Backend) {
    crate::helpers::run(backend, |app| async move {
        app.funded_user("audited", 50_000).await;
        let mut browser = Browser::new(&app);
        assert_eq!(browser.get("/console/ledger").await.0, StatusCode::SEE_OTHER);
        browser.log_in().await;
        let (status, _, page) = browser.get("/console/ledger").await;
        assert_eq!(status, StatusCode::OK);
        assert!(page.contains("id=\"verdict\" class=\"verdict-ok\""), "{page}");
        assert!(page.contains("<dt>Holds</dt><dd>yes</dd>"), "{page}");
        assert!(
            page.contains("<th>charges completed</th><td class=\"num\">1</td>"),
            "{page}"
        );
    })
    .await
}

async fn the_console_finds_a_payment_and_shows_its_bank_calls(backend: Backend) {
    crate::helpers::run(backend, |app| async move {
        let account = crate::helpers::fresh_bank_account_number();
        let user = app.user_with_bank_number("김민수", &account).await;
        let shop = app.onboard_business("가나마트").await;
        // No answer to the pull, though the bank took the money: settled by the inquiry.
        app.set_bank_account_faults(&account, json!({"pull": "timeout_executed", "times": 1}))
            .await;
        let body = json!({"user_id": user.id, "amount": 40_000, "order_id": "CS-ORDER-7"});
        let paid = app.biz_post(&shop, "/v1/biz/payments", Some("cs-pay"), body).await;
        let id = paid.assert_status(202)["id"].as_str().unwrap().to_owned();
        crate::helpers::eventually("paid", crate::helpers::EVENTUALLY_MAX, async || {
            let p = app.biz_get(&shop, &format!("/v1/biz/payments/{id}")).await;
            (p.assert_status(200)["status"] == json!("paid")).then_some(())
        })
        .await;
        let refund = app
            .biz_post(
                &shop,
                &format!("/v1/biz/payments/{id}/refunds"),
                Some("cs-refund"),
                json!({"amount": 15_000, "reason": "불량"}),
            )
            .await;
        refund.assert_status(202);

        let mut browser = Browser::new(&app);
        assert_eq!(browser.get("/console/payments").await.0, StatusCode::SEE_OTHER);
        browser.log_in().await;
        let (status, _, page) = browser.get(&format!("/console/payments?user_id={}", user.id)).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains("CS-ORDER-7") && page.contains(&format!("/console/payments/{id}")),
            "{page}"
        );
        let (_, _, page) = browser.get("/console/payments?order_id=NO-SUCH-ORDER").await;
        assert!(page.contains("No payment matches."), "{page}");
        let (status, _, _) = browser.get("/console/payments?user_id=not-a-uuid").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);

        let (status, _, page) = browser.get(&format!("/console/payments/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        assert!(
            page.contains("<td>pull</td>") && page.contains("<td>inquiry</td>"),
            "{page}"
        );
        assert!(
            page.contains("<td>unknown</td>") && page.contains("<td>completed</td>"),
            "{page}"
        );
        assert!(page.contains("불량") && page.contains("15000"), "{page}");
        let (status, _, _) = browser
            .get(&format!("/console/payments/{}", uuid::Uuid::now_v7()))
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    })
    .await
}
