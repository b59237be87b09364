//! The gateway's operator API (API-gateway.md): merchants with the registration-number check,
//! terminals with keys stored only sealed, disabling them, and the versioned routing.

use crate::helpers::{ADMIN_TOKEN, Backend, Resp, T0, TestApp, fresh_registration_number, join_all};
use crate::on_both_backends;
use minipay_gateway::DEV_TERMINAL_KEY_SECRET;
use minipay_gateway::keys::KeySealer;
use reqwest::Method;
use serde_json::{Value, json};

on_both_backends!(
    onboarding_a_merchant_answers_the_contract_fields,
    merchant_registration_numbers_are_check_digit_verified_and_unique,
    merchant_onboarding_rejects_bad_input_and_creates_nothing,
    the_merchant_list_is_a_cursor_page,
    issued_terminals_have_an_id_and_a_key_shown_once,
    terminal_keys_are_stored_only_sealed,
    disabling_a_terminal_is_idempotent,
    routing_round_trips_and_every_change_is_kept,
    invalid_routing_is_refused_and_changes_nothing,
    concurrent_routing_changes_get_distinct_versions,
    gateway_admin_routes_need_the_admin_token,
    openapi_documents_the_gateway_admin_paths,
);

const MERCHANTS: &str = "/v1/admin/merchants";
const ROUTING: &str = "/v1/admin/routing";
const VERSIONS: &str = "/v1/admin/routing/versions";
/// Terminal id characters: no `0`, `1`, `I`, `L`, `O`.
const TERMINAL_ID_CHARS: &str = "ABCDEFGHJKMNPQRSTUVWXYZ23456789";

fn keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v.as_object().expect("an object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

fn merchant_body(name: &str) -> Value {
    json!({"name": name, "registration_number": fresh_registration_number()})
}

async fn onboard(app: &TestApp, name: &str) -> Value {
    app.admin_post(MERCHANTS, merchant_body(name))
        .await
        .assert_status(201)
        .clone()
}

async fn merchant_count(app: &TestApp) -> usize {
    let page = app.admin_get(&format!("{MERCHANTS}?limit=200")).await;
    page.assert_status(200)["items"].as_array().unwrap().len()
}

async fn issue(app: &TestApp, merchant_id: &str) -> Resp {
    app.admin_post(&format!("{MERCHANTS}/{merchant_id}/terminals"), json!({}))
        .await
}

async fn disable(app: &TestApp, terminal_id: &str) -> Resp {
    app.admin_post(&format!("/v1/admin/terminals/{terminal_id}/disable"), json!({}))
        .await
}

/// Decodes standard, padded base64 (the terminal key's form); `None` if it is not that.
fn base64_standard(text: &str) -> Option<Vec<u8>> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let unpadded = text.trim_end_matches('=');
    if text.len() - unpadded.len() > 2 {
        return None;
    }
    let mut bits = 0u32;
    let mut count = 0;
    let mut out = Vec::new();
    for c in unpadded.bytes() {
        bits = (bits << 6) | ALPHABET.iter().position(|&a| a == c)? as u32;
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
        }
    }
    Some(out)
}

/// The terminal's row behind the API: its sealed key and when it was disabled (microseconds
/// on SQLite, a timestamp on PostgreSQL: only whether it is set is compared).
async fn stored_terminal(app: &TestApp, terminal_id: &str) -> (Vec<u8>, bool) {
    use sqlx::Connection;
    let sql = "SELECT key_sealed, disabled_at IS NOT NULL FROM terminals WHERE terminal_id = $1";
    match app.backend {
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(app.db_url()).await.unwrap();
            sqlx::query_as(sql).bind(terminal_id).fetch_one(&mut c).await.unwrap()
        }
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(app.db_url()).await.unwrap();
            sqlx::query_as(sql).bind(terminal_id).fetch_one(&mut c).await.unwrap()
        }
    }
}

async fn onboarding_a_merchant_answers_the_contract_fields(app: TestApp) {
    let body = merchant_body("  가나마트  ");
    let created = app.admin_post(MERCHANTS, body.clone()).await;
    let m = created.assert_status(201);
    assert_eq!(keys(m), ["created_at", "id", "name", "registration_number"]);
    assert_eq!(m["name"], json!("가나마트"), "the name is trimmed");
    assert_eq!(m["registration_number"], body["registration_number"]);
    assert_eq!(m["created_at"], json!(T0));
    let id = m["id"].as_str().unwrap();

    let seen = app.admin_get(&format!("{MERCHANTS}/{id}")).await;
    assert_eq!(seen.assert_status(200), m);
    let listed = app.admin_get(MERCHANTS).await;
    assert_eq!(listed.assert_status(200)["items"], json!([m]));

    let missing = uuid::Uuid::now_v7();
    for path in [format!("{MERCHANTS}/{missing}"), format!("{MERCHANTS}/not-an-id")] {
        app.admin_get(&path).await.assert_error(404, "not_found");
    }
}

async fn merchant_registration_numbers_are_check_digit_verified_and_unique(app: TestApp) {
    let number = fresh_registration_number();
    let digits = number.replace('-', "");
    let last = digits.chars().last().unwrap().to_digit(10).unwrap();
    let wrong = format!("{}{}", &number[..11], (last + 1) % 10);
    for bad in [
        wrong.clone(),
        wrong.replace('-', ""),
        format!("{}-{}", &digits[..2], &digits[2..]),
        number.replace('-', " "),
        format!("{number}0"),
    ] {
        let r = app
            .admin_post(MERCHANTS, json!({"name": "가나마트", "registration_number": bad}))
            .await;
        r.assert_error(400, "validation_failed");
        let message = r.body["error"]["message"].as_str().unwrap();
        assert!(message.contains("registration_number"), "{bad:?}: {message}");
    }
    assert_eq!(merchant_count(&app).await, 0);

    let created = app
        .admin_post(MERCHANTS, json!({"name": "가나마트", "registration_number": digits}))
        .await;
    assert_eq!(created.assert_status(201)["registration_number"], json!(number));
    for same in [number.clone(), digits.clone()] {
        app.admin_post(MERCHANTS, json!({"name": "다른마트", "registration_number": same}))
            .await
            .assert_error(409, "conflict");
    }
    assert_eq!(merchant_count(&app).await, 1);
}

async fn merchant_onboarding_rejects_bad_input_and_creates_nothing(app: TestApp) {
    let valid = merchant_body("가나마트");
    let cases: Vec<(&str, Option<Value>)> = vec![
        ("name", None),
        ("name", Some(json!(""))),
        ("name", Some(json!("   "))),
        ("name", Some(json!("가".repeat(101)))),
        ("name", Some(json!(42))),
        ("name", Some(Value::Null)),
        ("registration_number", None),
        ("registration_number", Some(json!(""))),
        ("registration_number", Some(json!(1_248_100_998_i64))),
        ("bank_code", Some(json!("004"))),
    ];
    for (field, value) in cases {
        let mut body = valid.clone();
        let object = body.as_object_mut().unwrap();
        match &value {
            Some(v) => object.insert(field.to_owned(), v.clone()),
            None => object.remove(field),
        };
        let r = app.admin_post(MERCHANTS, body).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "validation_failed"),
            "{field} = {value:?}: {}",
            r.text
        );
    }
    for text in ["", "{", "[]", "null", "42"] {
        let r = app
            .http
            .post(format!("{}{MERCHANTS}", app.base))
            .bearer_auth(ADMIN_TOKEN)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(text)
            .send()
            .await
            .unwrap();
        Resp::read(r).await.assert_error(400, "validation_failed");
    }
    let plain = app
        .http
        .post(format!("{}{MERCHANTS}", app.base))
        .bearer_auth(ADMIN_TOKEN)
        .body(valid.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(Resp::read(plain).await.status, 415, "a body that is not JSON-typed");
    assert_eq!(merchant_count(&app).await, 0, "a rejected onboarding stored a merchant");
    // 100 characters is still a name.
    let mut longest = valid;
    longest["name"] = json!("가".repeat(100));
    app.admin_post(MERCHANTS, longest).await.assert_status(201);
}

async fn the_merchant_list_is_a_cursor_page(app: TestApp) {
    let mut ids = Vec::new();
    for name in ["가", "나", "다"] {
        ids.push(onboard(&app, name).await["id"].clone());
        app.advance_clock(1).await;
    }
    let first = app.admin_get(&format!("{MERCHANTS}?limit=2")).await;
    let first = first.assert_status(200);
    let page: Vec<&Value> = first["items"].as_array().unwrap().iter().map(|m| &m["id"]).collect();
    assert_eq!(page, [&ids[2], &ids[1]], "newest first");
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = app.admin_get(&format!("{MERCHANTS}?limit=2&cursor={cursor}")).await;
    let second = second.assert_status(200);
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["items"][0]["id"], ids[0]);
    assert_eq!(second["next_cursor"], Value::Null);
    for query in ["limit=0", "limit=201", "limit=x", "cursor=nonsense", "sort=name"] {
        app.admin_get(&format!("{MERCHANTS}?{query}"))
            .await
            .assert_error(400, "validation_failed");
    }
}

/// A terminal's key: 32 bytes of standard base64.
fn key_bytes(issued: &Value) -> Vec<u8> {
    let key = issued["key"].as_str().unwrap();
    let bytes = base64_standard(key).unwrap_or_else(|| panic!("the key is not standard base64: {key}"));
    assert_eq!(bytes.len(), 32, "{key}");
    bytes
}

async fn issued_terminals_have_an_id_and_a_key_shown_once(app: TestApp) {
    let merchant = onboard(&app, "가나마트").await;
    let merchant_id = merchant["id"].as_str().unwrap();
    let first = issue(&app, merchant_id).await;
    let t = first.assert_status(201).clone();
    assert_eq!(keys(&t), ["created_at", "key", "merchant_id", "terminal_id"]);
    assert_eq!((&t["merchant_id"], &t["created_at"]), (&json!(merchant_id), &json!(T0)));
    let terminal_id = t["terminal_id"].as_str().unwrap();
    assert_eq!(terminal_id.len(), 8, "{terminal_id}");
    assert!(
        terminal_id.chars().all(|c| TERMINAL_ID_CHARS.contains(c)),
        "{terminal_id}"
    );
    let key = key_bytes(&t);

    // Each terminal gets its own id and key; an empty request works as `{}` does.
    let other = app
        .request(
            Method::POST,
            &format!("{MERCHANTS}/{merchant_id}/terminals"),
            Some(ADMIN_TOKEN),
            None,
            None,
        )
        .await;
    let other = other.assert_status(201);
    assert_ne!(other["terminal_id"], t["terminal_id"]);
    assert_ne!(key_bytes(other), key);

    // No other answer shows the key again.
    let key_text = t["key"].as_str().unwrap();
    for r in [
        app.admin_get(&format!("{MERCHANTS}/{merchant_id}")).await,
        app.admin_get(MERCHANTS).await,
    ] {
        assert!(!r.assert_status(200).to_string().contains(key_text));
    }
    let missing = uuid::Uuid::now_v7().to_string();
    for id in [missing.as_str(), "not-an-id"] {
        issue(&app, id).await.assert_error(404, "not_found");
    }
}

async fn terminal_keys_are_stored_only_sealed(app: TestApp) {
    let merchant = onboard(&app, "가나마트").await;
    let issued = issue(&app, merchant["id"].as_str().unwrap()).await;
    let issued = issued.assert_status(201);
    let key = key_bytes(issued);
    let (sealed, disabled) = stored_terminal(&app, issued["terminal_id"].as_str().unwrap()).await;
    assert!(!disabled);
    assert!(
        !sealed.windows(key.len()).any(|w| w == key.as_slice()),
        "the key is stored in the clear"
    );
    let key_text = issued["key"].as_str().unwrap().as_bytes();
    assert!(!sealed.windows(key_text.len()).any(|w| w == key_text));
    // Sealed under the server's secret (the development default in tests), and nothing else.
    let opened = KeySealer::new(DEV_TERMINAL_KEY_SECRET).open(&sealed).expect("it opens");
    assert_eq!(opened.0.as_slice(), key.as_slice());
    assert!(KeySealer::new("another secret").open(&sealed).is_err());
}

async fn disabling_a_terminal_is_idempotent(app: TestApp) {
    let merchant = onboard(&app, "가나마트").await;
    let merchant_id = merchant["id"].as_str().unwrap();
    let issued = issue(&app, merchant_id).await.assert_status(201).clone();
    let keep = issue(&app, merchant_id).await.assert_status(201).clone();
    let terminal_id = issued["terminal_id"].as_str().unwrap();
    app.advance_clock(60).await;
    let first = disable(&app, terminal_id).await;
    let d = first.assert_status(200).clone();
    assert_eq!(keys(&d), ["disabled_at", "terminal_id"]);
    assert_eq!(d["terminal_id"], json!(terminal_id));
    assert_eq!(d["disabled_at"], json!("2026-11-21T03:01:00Z"));
    assert!(stored_terminal(&app, terminal_id).await.1);

    // Again, later: nothing changes, and the answer keeps the first instant.
    app.advance_clock(60).await;
    assert_eq!(disable(&app, terminal_id).await.assert_status(200), &d);
    let body_less = app
        .request(
            Method::POST,
            &format!("/v1/admin/terminals/{terminal_id}/disable"),
            Some(ADMIN_TOKEN),
            None,
            None,
        )
        .await;
    assert_eq!(body_less.assert_status(200), &d);
    assert!(
        !stored_terminal(&app, keep["terminal_id"].as_str().unwrap()).await.1,
        "only that one"
    );

    for unknown in ["ZZZZZZZZ", "short", "not a terminal"] {
        disable(&app, unknown).await.assert_error(404, "not_found");
    }
}

fn routing_body() -> Value {
    json!({
        "card_companies": [
            {"id": "shinhan", "name": "신한카드", "bins": ["451842", "9410"], "direct": true,
             "endpoint": "127.0.0.1:9100", "dialect": "iso8583", "fee_rate_bp": 120},
            {"id": "kb", "name": "KB국민카드", "bins": ["5409"], "direct": false,
             "endpoint": "kb.example.com:9101", "dialect": "iso8583"}
        ],
        "vans": [
            {"id": "ksnet", "name": "KSNET", "weight": 70, "endpoint": "127.0.0.1:9200", "dialect": "ksnet"},
            {"id": "nice", "name": "NICE", "weight": 30, "endpoint": "van.example.com:9201", "dialect": "ksnet",
             "fee_rate_bp": 80}
        ],
        "network_cancel": "auto"
    })
}

async fn routing_round_trips_and_every_change_is_kept(app: TestApp) {
    app.admin_get(ROUTING).await.assert_error(404, "not_found");
    assert_eq!(
        app.admin_get(VERSIONS).await.assert_status(200),
        &json!({"items": [], "next_cursor": null})
    );

    let first = app.admin_put(ROUTING, routing_body()).await;
    let v1 = first.assert_status(200).clone();
    assert_eq!(keys(&v1), ["changed_at", "changed_by", "config", "version"]);
    assert_eq!(
        (&v1["version"], &v1["changed_by"], &v1["changed_at"]),
        (&json!(1), &json!("admin"), &json!(T0))
    );
    assert_eq!(v1["config"], routing_body());
    assert_eq!(app.admin_get(ROUTING).await.assert_status(200), &v1);

    // A change applies at once and is kept beside the first; the omitted mode is `auto`.
    app.advance_clock(60).await;
    let mut changed = routing_body();
    changed["vans"][0]["weight"] = json!(10);
    changed.as_object_mut().unwrap().remove("network_cancel");
    let v2 = app.admin_put(ROUTING, changed.clone()).await.assert_status(200).clone();
    assert_eq!(
        (&v2["version"], &v2["changed_at"]),
        (&json!(2), &json!("2026-11-21T03:01:00Z"))
    );
    assert_eq!(v2["config"]["vans"][0]["weight"], json!(10));
    assert_eq!(v2["config"]["network_cancel"], json!("auto"));
    assert_eq!(app.admin_get(ROUTING).await.assert_status(200), &v2);
    app.advance_clock(60).await;
    changed["network_cancel"] = json!("off");
    let v3 = app.admin_put(ROUTING, changed).await.assert_status(200).clone();
    assert_eq!(v3["version"], json!(3));

    let all = app.admin_get(VERSIONS).await;
    assert_eq!(
        all.assert_status(200)["items"],
        json!([v3, v2, v1]),
        "newest first, every change"
    );
    let page = app.admin_get(&format!("{VERSIONS}?limit=2")).await;
    let page = page.assert_status(200);
    assert_eq!(page["items"], json!([v3, v2]));
    let cursor = page["next_cursor"].as_str().expect("a next page");
    let rest = app.admin_get(&format!("{VERSIONS}?limit=2&cursor={cursor}")).await;
    assert_eq!(rest.assert_status(200), &json!({"items": [v1], "next_cursor": null}));
    for query in ["limit=0", "cursor=nonsense", "version=1"] {
        app.admin_get(&format!("{VERSIONS}?{query}"))
            .await
            .assert_error(400, "validation_failed");
    }
}

/// Routing bodies that must be refused, each with what is wrong.
fn invalid_routings() -> Vec<(&'static str, Value)> {
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut body = routing_body();
        f(&mut body);
        body
    };
    vec![
        ("duplicate id", edit(&|b| b["vans"][1]["id"] = json!("shinhan"))),
        (
            "BIN claimed twice",
            edit(&|b| b["card_companies"][1]["bins"] = json!(["451842"])),
        ),
        ("no VAN", edit(&|b| b["vans"] = json!([]))),
        (
            "no weighted VAN",
            edit(&|b| {
                b["vans"][0]["weight"] = json!(0);
                b["vans"][1]["weight"] = json!(0);
            }),
        ),
        ("unknown dialect", edit(&|b| b["vans"][0]["dialect"] = json!("kicc"))),
        (
            "the terminal's dialect",
            edit(&|b| b["vans"][0]["dialect"] = json!("pos")),
        ),
        (
            "endpoint without port",
            edit(&|b| b["vans"][0]["endpoint"] = json!("127.0.0.1")),
        ),
        (
            "endpoint as URL",
            edit(&|b| b["card_companies"][0]["endpoint"] = json!("http://x:80/")),
        ),
        (
            "endpoint port 0",
            edit(&|b| b["vans"][1]["endpoint"] = json!("van.example.com:0")),
        ),
        ("bad BIN", edit(&|b| b["card_companies"][0]["bins"] = json!(["45a1"]))),
        ("bad id", edit(&|b| b["vans"][0]["id"] = json!("KSNET"))),
        ("empty name", edit(&|b| b["vans"][0]["name"] = json!(" "))),
        ("fee over 100%", edit(&|b| b["vans"][0]["fee_rate_bp"] = json!(10_001))),
        ("negative weight", edit(&|b| b["vans"][0]["weight"] = json!(-1))),
        ("unknown mode", edit(&|b| b["network_cancel"] = json!("sometimes"))),
        ("unknown field", edit(&|b| b["priority"] = json!(1))),
        (
            "unknown upstream field",
            edit(&|b| b["vans"][0]["timeout_ms"] = json!(5000)),
        ),
        (
            "missing field",
            edit(&|b| {
                b["card_companies"][0].as_object_mut().unwrap().remove("direct");
            }),
        ),
        (
            "missing vans",
            edit(&|b| {
                b.as_object_mut().unwrap().remove("vans");
            }),
        ),
    ]
}

async fn invalid_routing_is_refused_and_changes_nothing(app: TestApp) {
    // Before any configuration, and on top of one.
    for (what, body) in invalid_routings().into_iter().take(3) {
        let r = app.admin_put(ROUTING, body).await;
        assert_eq!((r.status, r.code()), (400, "validation_failed"), "{what}: {}", r.text);
    }
    app.admin_get(ROUTING).await.assert_error(404, "not_found");
    let v1 = app.admin_put(ROUTING, routing_body()).await.assert_status(200).clone();
    for (what, body) in invalid_routings() {
        let r = app.admin_put(ROUTING, body).await;
        assert_eq!((r.status, r.code()), (400, "validation_failed"), "{what}: {}", r.text);
    }
    assert_eq!(app.admin_get(ROUTING).await.assert_status(200), &v1);
    let history = app.admin_get(VERSIONS).await;
    assert_eq!(history.assert_status(200)["items"], json!([v1]));
}

/// Changes racing for the next version number each get their own: none is lost or doubled.
async fn concurrent_routing_changes_get_distinct_versions(app: TestApp) {
    let puts = (0..4_u32).map(|i| {
        let app = app.clone();
        let mut body = routing_body();
        body["vans"][0]["weight"] = json!(i + 1);
        async move { app.admin_put(ROUTING, body).await }
    });
    let answers = join_all(puts).await;
    let mut versions: Vec<i64> = answers
        .iter()
        .map(|r| r.assert_status(200)["version"].as_i64().unwrap())
        .collect();
    versions.sort_unstable();
    assert_eq!(versions, [1, 2, 3, 4]);
    let history = app.admin_get(VERSIONS).await;
    let items = history.assert_status(200)["items"].as_array().unwrap().clone();
    let listed: Vec<&Value> = items.iter().map(|v| &v["version"]).collect();
    assert_eq!(listed, [&json!(4), &json!(3), &json!(2), &json!(1)]);
    let current = app.admin_get(ROUTING).await;
    assert_eq!(current.assert_status(200), &items[0]);
}

async fn gateway_admin_routes_need_the_admin_token(app: TestApp) {
    let merchant = onboard(&app, "가나마트").await;
    let merchant_id = merchant["id"].as_str().unwrap();
    let terminal = issue(&app, merchant_id).await.assert_status(201).clone();
    let user = app.user("Kim").await;
    let one = format!("{MERCHANTS}/{merchant_id}");
    let terminals = format!("{one}/terminals");
    let disable_path = format!(
        "/v1/admin/terminals/{}/disable",
        terminal["terminal_id"].as_str().unwrap()
    );
    let attempts = [
        (Method::POST, MERCHANTS, Some(merchant_body("다라마트"))),
        (Method::GET, MERCHANTS, None),
        (Method::GET, one.as_str(), None),
        (Method::POST, terminals.as_str(), Some(json!({}))),
        (Method::POST, disable_path.as_str(), Some(json!({}))),
        (Method::GET, ROUTING, None),
        (Method::PUT, ROUTING, Some(routing_body())),
        (Method::GET, VERSIONS, None),
    ];
    let callers = [
        (None, 401, "unauthorized"),
        (Some("not-the-admin-token"), 401, "unauthorized"),
        (Some(user.token.as_str()), 403, "forbidden"),
    ];
    for (method, path, body) in attempts {
        for (token, status, code) in callers {
            let r = app.request(method.clone(), path, token, None, body.clone()).await;
            assert_eq!((r.status, r.code()), (status, code), "{method} {path}: {}", r.text);
        }
    }
    // The refused calls changed nothing.
    assert_eq!(merchant_count(&app).await, 1);
    app.admin_get(ROUTING).await.assert_error(404, "not_found");
    let listed = app.admin_get(&format!("{MERCHANTS}?limit=200")).await;
    assert_eq!(listed.assert_status(200)["items"].as_array().unwrap().len(), 1);
    assert!(!stored_terminal(&app, terminal["terminal_id"].as_str().unwrap()).await.1);
}

async fn openapi_documents_the_gateway_admin_paths(app: TestApp) {
    let doc = app.request(Method::GET, "/openapi.json", None, None, None).await;
    let paths = &doc.assert_status(200)["paths"];
    for (path, method) in [
        ("/v1/admin/merchants", "post"),
        ("/v1/admin/merchants", "get"),
        ("/v1/admin/merchants/{id}", "get"),
        ("/v1/admin/merchants/{id}/terminals", "post"),
        ("/v1/admin/terminals/{terminal_id}/disable", "post"),
        ("/v1/admin/routing", "get"),
        ("/v1/admin/routing", "put"),
        ("/v1/admin/routing/versions", "get"),
    ] {
        let operation = &paths[path][method];
        assert!(operation.is_object(), "{method} {path} is not documented");
        assert!(
            operation["responses"]["401"].is_object(),
            "{method} {path} does not document 401"
        );
    }
    for (path, method, status) in [
        ("/v1/admin/merchants", "post", "409"),
        ("/v1/admin/merchants/{id}/terminals", "post", "201"),
        ("/v1/admin/routing", "put", "400"),
        ("/v1/admin/routing", "get", "404"),
    ] {
        assert!(
            paths[path][method]["responses"][status].is_object(),
            "{method} {path}: {status}"
        );
    }
}
