//! Operations: health, metrics, OpenAPI and docs, HTTP-level errors, the manual clock and jobs run by hand.

use crate::helpers::{ADMIN_TOKEN, Backend, Resp, T0, TestApp};
use crate::on_both_backends;
use reqwest::Method;
use serde_json::{Value, json};

on_both_backends!(
    health_metrics_and_docs_answer,
    openapi_documents_every_contract_path,
    http_level_errors_are_json_with_their_codes,
    an_oversized_job_body_is_payload_too_large,
    the_manual_clock_drives_the_seoul_business_date,
    jobs_run_by_hand_as_of_a_time,
    the_idempotency_cleanup_job_runs,
);

/// Sends `body` with the given content type (none when `None`) and reads the answer.
async fn send_bytes(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> Resp {
    let mut req = app.http.request(method, format!("{}{path}", app.base)).body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(ct) = content_type {
        req = req.header(reqwest::header::CONTENT_TYPE, ct);
    }
    Resp::read(req.send().await.expect("request reaches the server")).await
}

async fn get_public(app: &TestApp, path: &str) -> Resp {
    app.request(Method::GET, path, None, None, None).await
}

fn content_type(resp: &Resp) -> &str {
    resp.headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

/// An RFC 3339 time in a JSON answer, as an instant (so `Z` and `+09:00` forms compare equal).
#[track_caller]
fn instant(v: &Value) -> jiff::Timestamp {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an RFC 3339 time: {v}"))
}

fn at(s: &str) -> jiff::Timestamp {
    s.parse().expect("a valid time")
}

async fn health_metrics_and_docs_answer(app: TestApp) {
    for path in ["/health/live", "/health/ready"] {
        get_public(&app, path).await.assert_status(200);
    }

    // The request just made is counted, labelled by its route and status.
    let metrics = get_public(&app, "/metrics").await;
    metrics.assert_status(200);
    assert!(
        content_type(&metrics).starts_with("text/plain"),
        "{:?}",
        metrics.headers
    );
    let counted = metrics.text.lines().any(|l| {
        l.starts_with("minipay_http_requests_total{")
            && l.contains(r#"route="/health/ready""#)
            && l.contains(r#"status="200""#)
    });
    assert!(
        counted,
        "no minipay_http_requests_total for /health/ready:\n{}",
        metrics.text
    );

    let docs = get_public(&app, "/docs/").await;
    docs.assert_status(200);
    assert!(content_type(&docs).starts_with("text/html"), "{:?}", docs.headers);
    assert!(docs.text.to_lowercase().contains("<html"), "{}", docs.text);
}

/// A path template with its parameter names erased (`{main_id}` and `{id}` are one path).
fn template(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push_str("{}");
            }
            '}' => in_param = false,
            _ if !in_param => out.push(c),
            _ => {}
        }
    }
    out
}

/// Asserts the served OpenAPI document has every `(method, path)` pair.
async fn assert_documented(app: &TestApp, expected: &[(&str, &str)]) {
    let doc = get_public(app, "/openapi.json").await;
    let doc = doc.assert_status(200);
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with('3')),
        "not an OpenAPI 3 document: {doc}"
    );
    let paths = doc["paths"].as_object().expect("paths is an object");
    let missing: Vec<_> = expected
        .iter()
        .filter(|(method, path)| {
            !paths
                .iter()
                .any(|(p, ops)| template(p) == template(path) && ops.get(*method).is_some())
        })
        .collect();
    assert!(
        missing.is_empty(),
        "not in /openapi.json: {missing:?}; documented: {:?}",
        paths.keys().collect::<Vec<_>>()
    );
}

async fn openapi_documents_every_contract_path(app: TestApp) {
    assert_documented(
        &app,
        &[
            // Users and sessions
            ("post", "/v1/users"),
            ("post", "/v1/auth/token"),
            ("get", "/v1/users/me"),
            ("patch", "/v1/users/me"),
            ("get", "/v1/users/lookup"),
            // Bank accounts
            ("post", "/v1/bank-accounts"),
            ("get", "/v1/bank-accounts"),
            ("get", "/v1/bank-accounts/{id}/balance"),
            // Accounts
            ("get", "/v1/accounts"),
            ("get", "/v1/accounts/{id}"),
            ("post", "/v1/accounts"),
            // Charging and the daily limit
            ("post", "/v1/accounts/{main_id}/charges"),
            ("get", "/v1/charge-limit"),
            // History
            ("get", "/v1/accounts/{id}/history"),
            ("get", "/v1/accounts/{id}/statements/{month}"),
            // Savings deposits
            ("post", "/v1/accounts/{savings_id}/deposits"),
            // Transfers
            ("post", "/v1/transfers"),
            ("get", "/v1/transfers"),
            ("get", "/v1/transfers/{id}"),
            ("post", "/v1/transfers/{id}/accept"),
            ("post", "/v1/transfers/{id}/cancel"),
            // Notifications and settlements
            ("get", "/v1/notifications"),
            ("post", "/v1/settlements"),
            ("get", "/v1/settlements"),
            ("get", "/v1/settlements/{id}"),
            ("post", "/v1/settlements/{id}/pay"),
            // Admin and operations
            ("post", "/v1/admin/jobs/{name}/run"),
            ("get", "/v1/admin/jobs/runs"),
            ("get", "/v1/admin/clock"),
            ("put", "/v1/admin/clock"),
            ("post", "/v1/admin/clock/advance"),
            ("put", "/v1/admin/bank-sim"),
            ("get", "/v1/admin/bank-sim/accounts/{account_number}"),
            ("put", "/v1/admin/bank-sim/accounts/{account_number}"),
            ("get", "/health/live"),
            ("get", "/health/ready"),
            ("get", "/metrics"),
        ],
    )
    .await;
}

async fn http_level_errors_are_json_with_their_codes(app: TestApp) {
    for path in ["/v1/nothing-here", "/v2/users", "/", "/v1/transfers/x/refund"] {
        let r = get_public(&app, path).await;
        r.assert_error(404, "not_found");
        assert!(
            content_type(&r).starts_with("application/json"),
            "{path}: {:?}",
            r.headers
        );
    }

    for (method, path) in [
        (Method::DELETE, "/v1/users"),
        (Method::PUT, "/v1/transfers"),
        (Method::GET, "/v1/auth/token"),
        (Method::POST, "/health/live"),
    ] {
        let r = app.request(method.clone(), path, None, None, None).await;
        assert_eq!(r.code(), "method_not_allowed", "{method} {path}: {}", r.text);
        r.assert_error(405, "method_not_allowed");
    }

    let user = app.funded_user("Kim", 50_000).await;
    let lee = app.user("Lee").await;
    let limit_bytes = 64 * 1024;

    // Over 64 KiB: refused before it is read (the admin job endpoint: see the next scenario).
    let huge = "x".repeat(limit_bytes + 1);
    let signup = json!({"email": "big@example.com", "password": huge, "name": "Big"});
    app.request(Method::POST, "/v1/users", None, None, Some(signup))
        .await
        .assert_error(413, "payload_too_large");
    let transfer = json!({"to_user_id": lee.id, "amount": 1_000, "memo": huge});
    let r = app.assert_changes_nothing(app.post("/v1/transfers", &user.token, transfer));
    r.await.assert_error(413, "payload_too_large");
    // Just under the limit is read (and then judged on its content).
    let padded = json!({"email": "big@example.com", "password": "p".repeat(limit_bytes - 100), "name": "Big"});
    app.request(Method::POST, "/v1/users", None, None, Some(padded))
        .await
        .assert_error(400, "validation_failed");

    // A JSON body without the JSON content type.
    let body = json!({"to_user_id": lee.id, "amount": 1_000}).to_string();
    for ct in [None, Some("text/plain"), Some("application/x-www-form-urlencoded")] {
        let sent = send_bytes(&app, Method::POST, "/v1/transfers", Some(&user.token), ct, body.clone());
        let r = app.assert_changes_nothing(sent).await;
        assert_eq!(r.code(), "unsupported_media_type", "content type {ct:?}: {}", r.text);
        r.assert_error(415, "unsupported_media_type");
    }
    let signup = json!({"email": "plain@example.com", "password": "password-123", "name": "Plain"}).to_string();
    send_bytes(&app, Method::POST, "/v1/users", None, Some("text/plain"), signup)
        .await
        .assert_error(415, "unsupported_media_type");
    assert_eq!((app.balance(&user).await, app.balance(&lee).await), (50_000, 0));
}

async fn an_oversized_job_body_is_payload_too_large(app: TestApp) {
    // Regression: the job endpoint reads its optional body as raw bytes, whose size-limit
    // rejection used to be axum's plain-text 413 instead of the JSON `payload_too_large`.
    let job = json!({"at": T0, "padding": "x".repeat(64 * 1024 + 1)});
    app.admin_post("/v1/admin/jobs/charge-recovery/run", job)
        .await
        .assert_error(413, "payload_too_large");
}

async fn the_manual_clock_drives_the_seoul_business_date(app: TestApp) {
    let now = app.admin_get("/v1/admin/clock").await;
    assert_eq!(instant(&now.assert_status(200)["now"]), at(T0));
    // The clock stands still between calls.
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert_eq!(app.admin_get("/v1/admin/clock").await.body, now.body);

    // 23:59:59 in Seoul: still the 21st, resetting at the next Seoul midnight (15:00 UTC).
    let set = app
        .admin_put("/v1/admin/clock", json!({"now": "2026-11-21T14:59:59Z"}))
        .await;
    assert_eq!(instant(&set.assert_status(200)["now"]), at("2026-11-21T14:59:59Z"));
    assert_eq!(
        instant(&app.admin_get("/v1/admin/clock").await.assert_status(200)["now"]),
        at("2026-11-21T14:59:59Z")
    );
    let user = app.user("Kim").await; // after the clock moved: tokens last an hour of it
    let limit = app.get("/v1/charge-limit", &user.token).await;
    let limit = limit.assert_status(200);
    assert_eq!(limit["date"], json!("2026-11-21"));
    assert_eq!(instant(&limit["resets_at"]), at("2026-11-21T15:00:00Z"));
    assert_eq!(
        (
            limit["limit"].clone(),
            limit["used"].clone(),
            limit["remaining"].clone()
        ),
        (json!(3_000_000), json!(0), json!(3_000_000))
    );

    // One second later it is midnight in Seoul: the next business day.
    let moved = app.advance_clock(1).await;
    assert_eq!(instant(&json!(moved)), at("2026-11-21T15:00:00Z"));
    let limit = app.get("/v1/charge-limit", &user.token).await;
    let limit = limit.assert_status(200);
    assert_eq!(limit["date"], json!("2026-11-22"));
    assert_eq!(instant(&limit["resets_at"]), at("2026-11-22T15:00:00Z"));

    // Setting with an offset names the same instant; advancing backwards works too.
    let set = app
        .admin_put("/v1/admin/clock", json!({"now": "2026-11-22T09:00:00+09:00"}))
        .await;
    assert_eq!(instant(&set.assert_status(200)["now"]), at("2026-11-22T00:00:00Z"));
    assert_eq!(
        instant(&json!(app.advance_clock(-3_600).await)),
        at("2026-11-21T23:00:00Z")
    );
    let token = app.log_in(&user.email, "password-123").await;
    let token = token.assert_status(200)["access_token"].as_str().unwrap().to_owned();
    let limit = app.get("/v1/charge-limit", &token).await;
    assert_eq!(limit.assert_status(200)["date"], json!("2026-11-22"));
}

/// Asserts a job report's shape and returns its `at`.
#[track_caller]
fn job_report(resp: &Resp, job: &str) -> jiff::Timestamp {
    let report = resp.assert_status(200);
    assert_eq!(report["job"], json!(job));
    assert!(report["processed"].is_u64(), "{report}");
    assert!(report["details"].is_object(), "{report}");
    instant(&report["at"])
}

async fn jobs_run_by_hand_as_of_a_time(app: TestApp) {
    app.admin_post("/v1/admin/jobs/no-such-job/run", json!({}))
        .await
        .assert_error(404, "not_found");

    // Move the clock off the `at` given below, so "default: now" is told apart from it.
    let now = at(&app.advance_clock(3_600).await);
    let run = "/v1/admin/jobs/charge-recovery/run";
    let r = app.admin_post(run, json!({})).await;
    assert_eq!(job_report(&r, "charge-recovery"), now);
    assert_eq!(r.body["processed"], json!(0), "nothing to recover on a fresh server");

    let given = "2026-11-21T03:00:00Z";
    let r = app.admin_post(run, json!({"at": given})).await;
    assert_eq!(job_report(&r, "charge-recovery"), at(given));

    let r = app.request(Method::POST, run, Some(ADMIN_TOKEN), None, None).await;
    assert_eq!(job_report(&r, "charge-recovery"), now);
}

async fn the_idempotency_cleanup_job_runs(app: TestApp) {
    // Regression: the job used to delete through a read-only session (500).
    let r = app
        .admin_post("/v1/admin/jobs/idempotency-cleanup/run", json!({}))
        .await;
    assert_eq!(job_report(&r, "idempotency-cleanup"), at(T0));
}

mod without_the_manual_clock {
    use super::*;

    /// On the system clock the manual clock endpoints do not exist; everything else runs.
    async fn scenario(backend: Backend) {
        let spawned = crate::helpers::spawn_app_with(backend, |s| s.clock = minipay_server::ClockKind::System).await;
        let Some(app) = spawned else { return };

        app.admin_get("/v1/admin/clock").await.assert_error(404, "not_found");
        app.admin_put("/v1/admin/clock", json!({"now": T0}))
            .await
            .assert_error(404, "not_found");
        app.admin_post("/v1/admin/clock/advance", json!({"seconds": 60}))
            .await
            .assert_error(404, "not_found");

        // The business date is today's in Seoul by the real clock.
        let user = app.user("Kim").await;
        let seoul_today = || jiff::Timestamp::now().in_tz("Asia/Seoul").unwrap().date().to_string();
        let before = seoul_today();
        let limit = app.get("/v1/charge-limit", &user.token).await;
        let date = limit.assert_status(200)["date"].as_str().unwrap().to_owned();
        assert!([before, seoul_today()].contains(&date), "{date}");

        app.assert_invariants().await;
        app.teardown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite() {
        scenario(Backend::Sqlite).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres() {
        scenario(Backend::Postgres).await;
    }
}
