//! Every validation error in API.md answered with its code, never a 500; rejected money requests change nothing.

use crate::helpers::{ADMIN_TOKEN, Resp, T0, TestApp, TestUser};
use crate::on_both_backends;
use reqwest::Method;
use serde_json::{Value, json};

on_both_backends!(
    users_and_sessions_reject_bad_input,
    bank_account_registration_rejects_bad_input,
    opening_an_account_rejects_bad_input,
    charges_reject_bad_input_and_move_nothing,
    deposits_reject_bad_input_and_move_nothing,
    transfers_reject_bad_input_and_move_nothing,
    transfer_lists_reject_bad_queries,
    every_list_rejects_bad_page_queries,
    admin_endpoints_reject_bad_input,
    advancing_the_clock_by_the_smallest_integer_is_a_validation_error,
    advancing_the_clock_past_the_last_representable_time_is_a_validation_error,
);

/// Asserts an error answer, naming the case that produced it.
#[track_caller]
fn expect_error(resp: &Resp, case: &str, status: u16, code: &str) {
    assert_eq!((resp.status, resp.code()), (status, code), "{case}: {}", resp.text);
    resp.assert_error(status, code);
}

/// Sends `body` as is (no JSON encoding by the client), with a JSON content type.
async fn send_text(app: &TestApp, method: Method, path: &str, token: Option<&str>, body: &str) -> Resp {
    let mut req = app
        .http
        .request(method, format!("{}{path}", app.base))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_owned());
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    Resp::read(req.send().await.expect("request reaches the server")).await
}

/// Bodies that are not a JSON object of the expected shape, whatever the endpoint. Arrays are
/// never taken as a struct's fields by position (`[10000]` is not `{"amount": 10000}`).
const MALFORMED_JSON: &[&str] = &[
    "",
    "{",
    "{\"amount\": 1000",
    "not json",
    "[]",
    "[10000]",
    "[\"kim@example.com\", \"password-123\", \"Kim\"]",
    "null",
    "42",
    "true",
    "\"text\"",
];

/// A valid body's values as an array, in field order: what serde would accept as the struct
/// by position if nothing stopped it.
fn by_position(valid: &Value) -> Value {
    Value::Array(valid.as_object().expect("a JSON object").values().cloned().collect())
}

/// `body` with one field replaced (`Some`) or removed (`None`).
fn with(body: &Value, field: &str, value: Option<Value>) -> Value {
    let mut body = body.clone();
    let object = body.as_object_mut().expect("a JSON object");
    match value {
        Some(v) => object.insert(field.to_owned(), v),
        None => object.remove(field),
    };
    body
}

/// Every way a request amount can be wrong: out of `1 ..= 1_000_000_000_000`, not an
/// integer, not a number, null or absent.
fn bad_amounts() -> Vec<(&'static str, Option<Value>)> {
    vec![
        ("amount 0", Some(json!(0))),
        ("amount -1", Some(json!(-1))),
        ("amount 1_000_000_000_001", Some(json!(1_000_000_000_001_i64))),
        ("amount i64::MIN", Some(json!(i64::MIN))),
        ("amount beyond u64", Some(json!(1e20))),
        ("amount 1.5", Some(json!(1.5))),
        ("amount 1000.0", Some(json!(1000.0))),
        ("amount \"100\"", Some(json!("100"))),
        ("amount null", Some(Value::Null)),
        ("amount missing", None),
    ]
}

/// `Idempotency-Key` values outside 1–255 visible ASCII characters.
fn bad_idempotency_keys() -> Vec<(&'static str, String)> {
    vec![
        ("key of 256 chars", "k".repeat(256)),
        ("empty key", String::new()),
        ("key with a tab", "lunch\t2026".to_owned()),
        ("non-ASCII key", "점심-2026".to_owned()),
    ]
}

/// Sends each `(case, body)` with `method` and expects `400 validation_failed`.
pub(crate) async fn all_rejected(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    cases: Vec<(String, Value)>,
) {
    for (case, body) in cases {
        let r = app.request(method.clone(), path, token, None, Some(body)).await;
        expect_error(&r, &format!("{method} {path} {case}"), 400, "validation_failed");
    }
    for text in MALFORMED_JSON {
        let r = send_text(app, method.clone(), path, token, text).await;
        expect_error(&r, &format!("{method} {path} body {text:?}"), 400, "validation_failed");
    }
}

/// Like `all_rejected` for a money POST: each rejection must leave the ledger as it was, and
/// a malformed `Idempotency-Key` on an otherwise valid body is refused too.
async fn money_rejected(app: &TestApp, path: &str, user: &TestUser, valid: &Value, cases: Vec<(String, Value)>) {
    let token = Some(user.token.as_str());
    let positional = ("the valid body's values by position".to_owned(), by_position(valid));
    for (case, body) in cases.into_iter().chain([positional]) {
        let sent = app.request(Method::POST, path, token, None, Some(body));
        let r = app.assert_changes_nothing(sent).await;
        expect_error(&r, &format!("POST {path} {case}"), 400, "validation_failed");
    }
    for text in MALFORMED_JSON {
        let r = app
            .assert_changes_nothing(send_text(app, Method::POST, path, token, text))
            .await;
        expect_error(&r, &format!("POST {path} body {text:?}"), 400, "validation_failed");
    }
    for (case, key) in bad_idempotency_keys() {
        let sent = app.request(Method::POST, path, token, Some(&key), Some(valid.clone()));
        let r = app.assert_changes_nothing(sent).await;
        expect_error(&r, &format!("POST {path} {case}"), 400, "validation_failed");
    }
}

/// The common bad-body cases for `valid`: each bad amount in `amount_field`, an unknown field.
fn amount_cases(valid: &Value, amount_field: &str) -> Vec<(String, Value)> {
    let mut cases: Vec<(String, Value)> = bad_amounts()
        .into_iter()
        .map(|(case, amount)| (case.to_owned(), with(valid, amount_field, amount)))
        .collect();
    cases.push(("unknown field".into(), with(valid, "currency", Some(json!("KRW")))));
    cases
}

pub(crate) fn case(name: &str, body: Value) -> (String, Value) {
    (name.to_owned(), body)
}

async fn users_and_sessions_reject_bad_input(app: TestApp) {
    let email = format!("kim-{}@example.com", uuid::Uuid::new_v4().simple());
    let valid = json!({"email": email, "password": "password-123", "name": "Kim"});
    all_rejected(
        &app,
        Method::POST,
        "/v1/users",
        None,
        vec![
            case("password of 7 chars", with(&valid, "password", Some(json!("1234567")))),
            case("email without @", with(&valid, "email", Some(json!("kim.example.com")))),
            case("email without domain", with(&valid, "email", Some(json!("kim@")))),
            case(
                "email without a dot in the domain",
                with(&valid, "email", Some(json!("kim@example"))),
            ),
            case(
                "email with a space",
                with(&valid, "email", Some(json!("k m@example.com"))),
            ),
            case("empty email", with(&valid, "email", Some(json!("")))),
            case("empty name", with(&valid, "name", Some(json!("")))),
            case("blank name", with(&valid, "name", Some(json!("   ")))),
            case("name of 51 chars", with(&valid, "name", Some(json!("가".repeat(51))))),
            // PostgreSQL refuses NUL in text: this was a 500 there.
            case("name with a NUL", with(&valid, "name", Some(json!("Ki\u{0}m")))),
            case(
                "name with a control character",
                with(&valid, "name", Some(json!("Ki\u{7}m"))),
            ),
            case("missing password", with(&valid, "password", None)),
            case("missing email", with(&valid, "email", None)),
            case("name not a string", with(&valid, "name", Some(json!(42)))),
            case("unknown field", with(&valid, "role", Some(json!("admin")))),
            case("the valid body's values by position", by_position(&valid)),
        ],
    )
    .await;
    // None of that created the user: the email is still free, and 8 characters and a
    // 50-character name are enough.
    let edge = with(
        &with(&valid, "password", Some(json!("12345678"))),
        "name",
        Some(json!("가".repeat(50))),
    );
    let created = app.request(Method::POST, "/v1/users", None, None, Some(edge)).await;
    assert_eq!(created.assert_status(201)["name"], json!("가".repeat(50)));

    all_rejected(
        &app,
        Method::POST,
        "/v1/auth/token",
        None,
        vec![
            case("missing password", json!({"email": email})),
            case("missing email", json!({"password": "12345678"})),
            case("password not a string", json!({"email": email, "password": 12345678})),
            case(
                "unknown field",
                json!({"email": email, "password": "12345678", "otp": "1234"}),
            ),
        ],
    )
    .await;
    // A malformed email is simply a wrong credential.
    app.log_in("not-an-email", "12345678")
        .await
        .assert_error(401, "unauthorized");
    let token = app.log_in(&email, "12345678").await;
    let token = token.assert_status(200)["access_token"].as_str().unwrap().to_owned();

    all_rejected(
        &app,
        Method::PATCH,
        "/v1/users/me",
        Some(&token),
        vec![
            case("empty name", json!({"name": ""})),
            case("blank name", json!({"name": "  "})),
            case("name of 51 chars", json!({"name": "a".repeat(51)})),
            case("name with a NUL", json!({"name": "Ki\u{0}m"})),
            case("transfer_mode later", json!({"transfer_mode": "later"})),
            case("transfer_mode not a string", json!({"transfer_mode": true})),
            case("unknown field", json!({"email": "other@example.com"})),
        ],
    )
    .await;
    let me = app.get("/v1/users/me", &token).await;
    let me = me.assert_status(200);
    assert_eq!(
        (me["name"].clone(), me["transfer_mode"].clone()),
        (json!("가".repeat(50)), json!("immediate")),
        "rejected updates changed nothing"
    );

    for (case, query) in [
        ("no email", ""),
        ("empty email", "?email="),
        ("malformed email", "?email=not-an-email"),
    ] {
        let r = app.get(&format!("/v1/users/lookup{query}"), &token).await;
        expect_error(&r, case, 400, "validation_failed");
    }
}

async fn bank_account_registration_rejects_bad_input(app: TestApp) {
    let user = app.user("Kim").await;
    let valid = json!({"bank_code": "004", "account_number": crate::helpers::GOOD_BANK_ACCOUNT, "holder_name": "Kim"});
    all_rejected(
        &app,
        Method::POST,
        "/v1/bank-accounts",
        Some(&user.token),
        vec![
            case("bank_code of 2 digits", with(&valid, "bank_code", Some(json!("04")))),
            case("bank_code with a letter", with(&valid, "bank_code", Some(json!("0a4")))),
            case("bank_code of 4 digits", with(&valid, "bank_code", Some(json!("0004")))),
            case("bank_code as a number", with(&valid, "bank_code", Some(json!(4)))),
            case(
                "account_number of 5 digits",
                with(&valid, "account_number", Some(json!("12345"))),
            ),
            case(
                "account_number of 21 digits",
                with(&valid, "account_number", Some(json!("1".repeat(21)))),
            ),
            case(
                "account_number with dashes",
                with(&valid, "account_number", Some(json!("100-200-3001"))),
            ),
            case("empty holder_name", with(&valid, "holder_name", Some(json!("")))),
            case(
                "holder_name of 51 chars",
                with(&valid, "holder_name", Some(json!("a".repeat(51)))),
            ),
            case(
                "holder_name with a NUL",
                with(&valid, "holder_name", Some(json!("K\u{0}"))),
            ),
            case("missing account_number", with(&valid, "account_number", None)),
            case("unknown field", with(&valid, "pin", Some(json!("1234")))),
        ],
    )
    .await;
    let listed = app.get("/v1/bank-accounts", &user.token).await;
    assert_eq!(listed.assert_status(200)["items"], json!([]), "nothing was registered");
    // The boundaries themselves are fine: 6 and 20 digits.
    for number in ["100001", "10000000000000000001"] {
        let body = with(&valid, "account_number", Some(json!(number)));
        app.post("/v1/bank-accounts", &user.token, body)
            .await
            .assert_status(201);
    }
}

async fn opening_an_account_rejects_bad_input(app: TestApp) {
    let user = app.user("Kim").await;
    let fixed = json!({"kind": "savings", "product": "fixed", "daily_amount": 10_000});
    let mut cases = vec![
        case("kind main", with(&fixed, "kind", Some(json!("main")))),
        case("missing kind", with(&fixed, "kind", None)),
        case("product gold", with(&fixed, "product", Some(json!("gold")))),
        case("missing product", with(&fixed, "product", None)),
        case("fixed without daily_amount", with(&fixed, "daily_amount", None)),
        case(
            "fixed with daily_amount null",
            with(&fixed, "daily_amount", Some(Value::Null)),
        ),
        case(
            "free with daily_amount",
            json!({"kind": "savings", "product": "free", "daily_amount": 10_000}),
        ),
        case("unknown field", with(&fixed, "rate", Some(json!(0.05)))),
    ];
    // daily_amount is a request amount like any other (absent and null are covered above).
    cases.extend(bad_amounts().into_iter().filter_map(|(name, amount)| {
        let amount = amount.filter(|a| !a.is_null())?;
        Some((format!("daily_{name}"), with(&fixed, "daily_amount", Some(amount))))
    }));
    money_rejected(&app, "/v1/accounts", &user, &fixed, cases).await;
    let accounts = app.get("/v1/accounts", &user.token).await;
    let items = accounts.assert_status(200)["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1, "only the main account exists: {items:?}");
}

async fn charges_reject_bad_input_and_move_nothing(app: TestApp) {
    let user = app.user_with_bank("Kim").await;
    let path = format!("/v1/accounts/{}/charges", user.main_account_id);
    let valid = json!({"amount": 10_000});
    money_rejected(&app, &path, &user, &valid, amount_cases(&valid, "amount")).await;

    // The maximum amount passes validation and meets the daily limit instead.
    let max = app.post(&path, &user.token, json!({"amount": 1_000_000_000_000_i64}));
    app.assert_changes_nothing(max)
        .await
        .assert_error(422, "daily_limit_exceeded");
    // An id that does not parse cannot exist.
    let bad_id = app.post("/v1/accounts/abc/charges", &user.token, valid.clone());
    app.assert_changes_nothing(bad_id).await.assert_error(404, "not_found");
    assert_eq!(app.limit_used(&user).await, 0);
    assert_eq!(app.balance(&user).await, 0);
}

async fn deposits_reject_bad_input_and_move_nothing(app: TestApp) {
    let user = app.funded_user("Kim", 100_000).await;
    let opened = app
        .post(
            "/v1/accounts",
            &user.token,
            json!({"kind": "savings", "product": "free"}),
        )
        .await;
    let savings_id = opened.assert_status(201)["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/accounts/{savings_id}/deposits");
    let valid = json!({"amount": 10_000});
    money_rejected(&app, &path, &user, &valid, amount_cases(&valid, "amount")).await;

    // Depositing into the main account is a validation error (API.md "Savings deposits").
    let main_path = format!("/v1/accounts/{}/deposits", user.main_account_id);
    let into_main = app.post(&main_path, &user.token, valid.clone());
    app.assert_changes_nothing(into_main)
        .await
        .assert_error(400, "validation_failed");
    let bad_id = app.post("/v1/accounts/not-a-uuid/deposits", &user.token, valid.clone());
    app.assert_changes_nothing(bad_id).await.assert_error(404, "not_found");
    assert_eq!(app.account(&user, &savings_id).await["balance"], json!(0));
    assert_eq!(app.balance(&user).await, 100_000);
}

async fn transfers_reject_bad_input_and_move_nothing(app: TestApp) {
    let kim = app.funded_user("Kim", 100_000).await;
    let lee = app.user("Lee").await;
    let lee_savings = app
        .post(
            "/v1/accounts",
            &lee.token,
            json!({"kind": "savings", "product": "free"}),
        )
        .await;
    let lee_savings = lee_savings.assert_status(201)["id"].as_str().unwrap().to_owned();
    let valid = json!({"to_user_id": lee.id, "amount": 1_000});
    let mut cases = amount_cases(&valid, "amount");
    cases.extend([
        case(
            "both to_user_id and to_account_id",
            with(&valid, "to_account_id", Some(json!(lee.main_account_id))),
        ),
        case("neither to_user_id nor to_account_id", with(&valid, "to_user_id", None)),
        case("to_user_id null", with(&valid, "to_user_id", Some(Value::Null))),
        case("malformed to_user_id", with(&valid, "to_user_id", Some(json!("abc")))),
        case(
            "malformed to_account_id",
            json!({"to_account_id": "12345", "amount": 1_000}),
        ),
        case("to self by user id", with(&valid, "to_user_id", Some(json!(kim.id)))),
        case(
            "to self by main account",
            json!({"to_account_id": kim.main_account_id, "amount": 1_000}),
        ),
        case(
            "to a savings account",
            json!({"to_account_id": lee_savings, "amount": 1_000}),
        ),
        case("empty display_name", with(&valid, "display_name", Some(json!("")))),
        case("blank display_name", with(&valid, "display_name", Some(json!("   ")))),
        case(
            "display_name of 51 chars",
            with(&valid, "display_name", Some(json!("나".repeat(51)))),
        ),
        case("memo of 201 chars", with(&valid, "memo", Some(json!("m".repeat(201))))),
        case("memo with a NUL", with(&valid, "memo", Some(json!("lunch\u{0}")))),
        case(
            "display_name with a control character",
            with(&valid, "display_name", Some(json!("K\u{1b}[31m"))),
        ),
        case("memo not a string", with(&valid, "memo", Some(json!(["lunch"])))),
        case("mode later", with(&valid, "mode", Some(json!("later")))),
        case("mode upper-case", with(&valid, "mode", Some(json!("IMMEDIATE")))),
    ]);
    money_rejected(&app, "/v1/transfers", &kim, &valid, cases).await;

    // Well-formed ids of nobody: not found.
    let nobody = uuid::Uuid::now_v7().to_string();
    for (case, body) in [
        ("unknown to_user_id", with(&valid, "to_user_id", Some(json!(nobody)))),
        (
            "unknown to_account_id",
            json!({"to_account_id": nobody, "amount": 1_000}),
        ),
    ] {
        let r = app
            .assert_changes_nothing(app.post("/v1/transfers", &kim.token, body))
            .await;
        expect_error(&r, case, 404, "not_found");
    }
    // The boundaries themselves are fine: a 50-character display name and a 200-character memo.
    let edge = with(
        &with(&valid, "display_name", Some(json!("나".repeat(50)))),
        "memo",
        Some(json!("m".repeat(200))),
    );
    let sent = app.post("/v1/transfers", &kim.token, edge).await;
    assert_eq!(sent.assert_status(201)["display_name"], json!("나".repeat(50)));
    assert_eq!((app.balance(&kim).await, app.balance(&lee).await), (99_000, 1_000));
}

/// Every cursor-paginated list refuses a bad `limit` or `cursor` the same way, and takes the
/// bounds themselves.
async fn every_list_rejects_bad_page_queries(app: TestApp) {
    let user = app.user("Kim").await;
    let lists = [
        ("/v1/bank-accounts", user.token.as_str()),
        ("/v1/transfers", user.token.as_str()),
        ("/v1/settlements", user.token.as_str()),
        ("/v1/notifications", user.token.as_str()),
        (
            &format!("/v1/accounts/{}/history", user.main_account_id),
            user.token.as_str(),
        ),
        ("/v1/admin/jobs/runs", ADMIN_TOKEN),
    ];
    for (path, token) in lists {
        for (case, query) in [
            ("limit 0", "limit=0"),
            ("limit 201", "limit=201"),
            ("limit -1", "limit=-1"),
            ("limit not a number", "limit=ten"),
            ("cursor not base64", "cursor=!!"),
            // base64url of "x:y" and of "1:abc": decodable, but not a (time, id) this server wrote.
            ("cursor of another shape", "cursor=eDp5"),
            ("cursor with a bad id", "cursor=MTphYmM"),
            ("empty cursor", "cursor="),
            ("unknown parameter", "page=2"),
        ] {
            let r = app.get(&format!("{path}?{query}"), token).await;
            expect_error(&r, &format!("GET {path}?{query} ({case})"), 400, "validation_failed");
        }
        for query in ["limit=1", "limit=200"] {
            let r = app.get(&format!("{path}?{query}"), token).await;
            let page = r.assert_status(200);
            assert!(page["items"].is_array(), "GET {path}?{query}: {page}");
            assert!(
                page.get("next_cursor").is_some(),
                "GET {path}?{query} has next_cursor: {page}"
            );
        }
    }
}

async fn transfer_lists_reject_bad_queries(app: TestApp) {
    let user = app.user("Kim").await;
    for (case, query) in [
        ("direction sideways", "direction=sideways"),
        ("empty direction", "direction="),
        ("status unknown", "status=lost"),
    ] {
        let r = app.get(&format!("/v1/transfers?{query}"), &user.token).await;
        expect_error(&r, case, 400, "validation_failed");
    }
    let r = app
        .get("/v1/transfers?direction=incoming&status=completed", &user.token)
        .await;
    assert_eq!(r.assert_status(200)["items"], json!([]));
}

async fn admin_endpoints_reject_bad_input(app: TestApp) {
    let admin = Some(ADMIN_TOKEN);
    all_rejected(
        &app,
        Method::PUT,
        "/v1/admin/clock",
        admin,
        vec![
            case("now not a time", json!({"now": "yesterday"})),
            case("now without an offset", json!({"now": "2026-11-21T03:00:00"})),
            case("now a number", json!({"now": 1_700_000_000})),
            case("missing now", json!({})),
            case("unknown field", json!({"now": T0, "zone": "Asia/Seoul"})),
        ],
    )
    .await;
    all_rejected(
        &app,
        Method::POST,
        "/v1/admin/clock/advance",
        admin,
        vec![
            case("seconds 1.5", json!({"seconds": 1.5})),
            case("seconds a string", json!({"seconds": "60"})),
            case("missing seconds", json!({})),
            case("seconds beyond ten years", json!({"seconds": 400_000_000})),
            case("seconds beyond ten years back", json!({"seconds": -400_000_000})),
            case("unknown field", json!({"seconds": 60, "minutes": 1})),
        ],
    )
    .await;
    assert_eq!(
        app.admin_get("/v1/admin/clock").await.assert_status(200)["now"],
        json!(T0),
        "rejected clock moves left it where it was"
    );

    all_rejected(
        &app,
        Method::PUT,
        "/v1/admin/bank-sim",
        admin,
        vec![
            case("error_rate 1.5", json!({"error_rate": 1.5})),
            case("error_rate -0.1", json!({"error_rate": -0.1})),
            case("error_rate a string", json!({"error_rate": "0.5"})),
            case("latency_ms 60001", json!({"latency_ms": 60_001})),
            case("latency_ms -1", json!({"latency_ms": -1})),
            case("latency_ms 1.5", json!({"latency_ms": 1.5})),
            case("unknown field", json!({"error_rate": 0.5, "mode": "chaos"})),
        ],
    )
    .await;
    let sim = app.bank_sim().await;
    assert_eq!(
        (sim["latency_ms"].clone(), sim["error_rate"].clone()),
        (json!(0), json!(0.0)),
        "rejected knobs changed nothing"
    );

    // The job body is optional, so an empty one means "now" (operations.rs); anything else
    // that is not `{at?}` is refused.
    let job = "/v1/admin/jobs/charge-recovery/run";
    for (case, body) in [
        ("at not a time", json!({"at": "tomorrow"})),
        ("at without an offset", json!({"at": "2026-11-21T03:00:00"})),
        ("at a number", json!({"at": 0})),
        ("unknown field", json!({"at": T0, "dry_run": true})),
    ] {
        expect_error(&app.admin_post(job, body).await, case, 400, "validation_failed");
    }
    // An `at` outside the supported years is named as `at`, whatever the clock is.
    for at in ["1999-12-31T23:59:59Z", "2100-01-01T00:00:00Z"] {
        let r = app.admin_post(job, json!({"at": at})).await;
        expect_error(&r, at, 400, "validation_failed");
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with("at must lie between"), "{message}");
    }
    for text in MALFORMED_JSON.iter().filter(|t| !t.is_empty()) {
        let r = send_text(&app, Method::POST, job, admin, text).await;
        expect_error(&r, &format!("POST {job} body {text:?}"), 400, "validation_failed");
    }

    // The run history's filter is a job's name (a NUL in it was a 500 on PostgreSQL); a
    // well-formed name this build does not run finds no runs.
    for filter in ["a%00b", "Charge-Recovery", "charge%20recovery", ""] {
        let r = app.admin_get(&format!("/v1/admin/jobs/runs?job={filter}")).await;
        expect_error(&r, filter, 400, "validation_failed");
    }
    let retired = app.admin_get("/v1/admin/jobs/runs?job=retired-job").await;
    assert_eq!(retired.assert_status(200)["items"], json!([]));
}

async fn advancing_the_clock_by_the_smallest_integer_is_a_validation_error(app: TestApp) {
    // Regression: the ten-year bound was checked with `seconds.abs()`, which overflows for
    // i64::MIN (a panic, caught as 500).
    let r = app
        .admin_post("/v1/admin/clock/advance", json!({"seconds": i64::MIN}))
        .await;
    expect_error(&r, "seconds i64::MIN", 400, "validation_failed");
    assert_eq!(
        app.admin_get("/v1/admin/clock").await.assert_status(200)["now"],
        json!(T0)
    );
}

async fn advancing_the_clock_past_the_last_representable_time_is_a_validation_error(app: TestApp) {
    // Regression: moving the manual clock past jiff's range used to panic while holding the
    // clock's lock, poisoning it so every later request answered 500. The clock now stays
    // within 2000..2100 and refuses moves outside it, changing nothing.
    app.admin_put("/v1/admin/clock", json!({"now": "9999-12-30T00:00:00Z"}))
        .await
        .assert_error(400, "validation_failed");
    let last = "2099-12-31T00:00:00Z";
    app.admin_put("/v1/admin/clock", json!({"now": last}))
        .await
        .assert_status(200);
    let r = app
        .admin_post("/v1/admin/clock/advance", json!({"seconds": 3 * 86_400}))
        .await;
    expect_error(&r, "advance past the clock's range", 400, "validation_failed");
    assert_eq!(
        app.admin_get("/v1/admin/clock").await.assert_status(200)["now"],
        json!(last)
    );
    let user = app.user("Kim").await;
    app.get("/v1/users/me", &user.token).await.assert_status(200);
}
