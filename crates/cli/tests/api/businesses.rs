//! Businesses and their credentials (API-business.md): onboarding with the registration-number
//! check, API keys stored only as hashes, rotation, and business auth on `/v1/biz/*`.

use crate::helpers::{
    ADMIN_TOKEN, Backend, Resp, T0, TestApp, fresh_bank_account_number, fresh_registration_number, join_all,
};
use crate::on_both_backends;
use reqwest::Method;
use serde_json::{Value, json};

on_both_backends!(
    onboarding_answers_the_contract_fields_and_a_working_key,
    only_a_hash_of_the_api_key_is_stored,
    rotating_the_key_stops_the_old_one_at_once,
    registration_numbers_are_check_digit_verified_and_unique,
    a_bank_refusal_stores_nothing,
    concurrent_onboardings_of_one_number_make_one_business,
    onboarding_rejects_bad_input_and_creates_nothing,
    business_auth_tells_other_callers_apart,
    keys_sent_together_are_each_matched_to_their_own_business,
    a_business_sees_only_itself,
    business_admin_endpoints_need_the_admin_token,
    the_business_list_is_a_cursor_page,
    openapi_documents_the_business_paths,
);

const ONBOARD: &str = "/v1/admin/businesses";

/// Every field of the onboarding answer, and nothing more.
const ONBOARDED_FIELDS: [&str; 8] = [
    "api_key",
    "bank_account",
    "created_at",
    "id",
    "name",
    "registration_number",
    "webhook_secret",
    "webhook_url",
];

fn keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v.as_object().expect("an object").keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

async fn onboard(app: &TestApp, body: Value) -> Resp {
    app.admin_post(ONBOARD, body).await
}

/// How many businesses exist (the admin list, which is small in these tests).
async fn business_count(app: &TestApp) -> usize {
    let page = app.admin_get(&format!("{ONBOARD}?limit=200")).await;
    page.assert_status(200)["items"].as_array().unwrap().len()
}

async fn biz_me(app: &TestApp, token: Option<&str>) -> Resp {
    app.request(Method::GET, "/v1/biz/me", token, None, None).await
}

async fn onboarding_answers_the_contract_fields_and_a_working_key(app: TestApp) {
    let mut body = TestApp::business_body("가나상사");
    body["account_number"] = json!("1234567890");
    body["webhook_url"] = json!("https://shop.example.com/minipay");
    let created = onboard(&app, body.clone()).await;
    let b = created.assert_status(201);
    assert_eq!(keys(b), ONBOARDED_FIELDS, "{b}");
    assert_eq!(b["name"], json!("가나상사"));
    assert_eq!(b["registration_number"], body["registration_number"]);
    assert_eq!(
        b["bank_account"],
        json!({"bank_code": "004", "account_number_masked": "******7890"})
    );
    assert_eq!(b["webhook_url"], json!("https://shop.example.com/minipay"));
    assert_eq!(b["created_at"], json!(T0));
    let api_key = b["api_key"].as_str().unwrap();
    let secret = b["webhook_secret"].as_str().unwrap();
    assert!(api_key.starts_with("mpk_") && api_key.len() >= 40, "{api_key}");
    assert!(secret.starts_with("whsec_") && secret.len() >= 40, "{secret}");

    // The key works at once, and no later answer shows a secret again.
    let me = biz_me(&app, Some(api_key)).await;
    let seen = me.assert_status(200);
    let id = b["id"].as_str().unwrap();
    assert_eq!(seen["id"], json!(id));
    let admin_view = app.admin_get(&format!("{ONBOARD}/{id}")).await;
    let listed = app.admin_get(ONBOARD).await;
    for view in [&me, &admin_view, &listed] {
        view.assert_status(200);
        assert!(
            !view.text.contains(api_key) && !view.text.contains(secret),
            "a secret shown again: {}",
            view.text
        );
    }
    for view in [seen, &admin_view.body] {
        assert_eq!(
            keys(view),
            [
                "bank_account",
                "created_at",
                "id",
                "key_rotated_at",
                "name",
                "registration_number",
                "webhook_url"
            ]
        );
        assert_eq!(view["key_rotated_at"], Value::Null);
        assert_eq!(view["bank_account"], b["bank_account"]);
    }
    assert_eq!(listed.body["items"][0]["id"], json!(id));

    // The webhook URL is optional.
    let plain = onboard(&app, TestApp::business_body("다라상사")).await;
    assert_eq!(plain.assert_status(201)["webhook_url"], Value::Null);
}

/// The row behind the API: the key's hash and every text column.
async fn stored_business(app: &TestApp, id: &str) -> (Vec<u8>, Vec<Option<String>>) {
    use sqlx::Connection;
    type Row = (
        Vec<u8>,
        String,
        String,
        String,
        String,
        String,
        String,
        Option<String>,
        String,
    );
    let sql = "SELECT api_key_hash, name, registration_number, bank_code, account_number_masked, holder_name,
                      fintech_use_num, webhook_url, webhook_secret FROM businesses WHERE id = $1";
    let id = uuid::Uuid::parse_str(id).unwrap();
    let row: Row = match app.backend {
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(app.db_url()).await.unwrap();
            sqlx::query_as(sql).bind(id).fetch_one(&mut c).await.unwrap()
        }
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(app.db_url()).await.unwrap();
            sqlx::query_as(sql).bind(id).fetch_one(&mut c).await.unwrap()
        }
    };
    let (hash, name, number, code, masked, holder, fin, url, secret) = row;
    let texts = vec![
        Some(name),
        Some(number),
        Some(code),
        Some(masked),
        Some(holder),
        Some(fin),
        url,
        Some(secret),
    ];
    (hash, texts)
}

fn sha256(text: &str) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes())
        .as_ref()
        .to_vec()
}

async fn only_a_hash_of_the_api_key_is_stored(app: TestApp) {
    let business = app.onboard_business("가나상사").await;
    let (hash, texts) = stored_business(&app, &business.id).await;
    assert_eq!(hash, sha256(&business.api_key), "the stored hash is SHA-256 of the key");
    for text in texts.iter().flatten() {
        assert!(!text.contains(&business.api_key), "the key is stored in clear: {text}");
    }
    // The webhook secret is kept (webhooks are signed with it), the registration number in
    // its ten digits.
    assert!(texts.contains(&Some(business.webhook_secret.clone())));
    assert!(texts.contains(&Some(business.registration_number.replace('-', ""))));

    let rotated = app
        .admin_post(&format!("{ONBOARD}/{}/rotate-key", business.id), json!({}))
        .await;
    let new_key = rotated.assert_status(200)["api_key"].as_str().unwrap().to_owned();
    let (hash, texts) = stored_business(&app, &business.id).await;
    assert_eq!(hash, sha256(&new_key));
    assert!(texts.iter().flatten().all(|t| !t.contains(&new_key)));
}

async fn rotating_the_key_stops_the_old_one_at_once(app: TestApp) {
    let business = app.onboard_business("가나상사").await;
    let rotate = format!("{ONBOARD}/{}/rotate-key", business.id);
    let rotated = app.admin_post(&rotate, json!({})).await;
    let r = rotated.assert_status(200).clone();
    assert_eq!(keys(&r), ["api_key", "id", "rotated_at"]);
    assert_eq!(r["id"], json!(business.id));
    assert_eq!(r["rotated_at"], json!(T0));
    let new_key = r["api_key"].as_str().unwrap();
    assert_ne!(new_key, business.api_key);

    biz_me(&app, Some(&business.api_key))
        .await
        .assert_error(401, "unauthorized");
    assert_eq!(
        biz_me(&app, Some(new_key)).await.assert_status(200)["id"],
        json!(business.id)
    );
    let view = app.admin_get(&format!("{ONBOARD}/{}", business.id)).await;
    assert_eq!(view.assert_status(200)["key_rotated_at"], json!(T0));

    // A second rotation retires the first rotated key too; the answer has no body to send.
    app.advance_clock(60).await;
    let again = app.request(Method::POST, &rotate, Some(ADMIN_TOKEN), None, None).await;
    let newest = again.assert_status(200)["api_key"].as_str().unwrap().to_owned();
    biz_me(&app, Some(new_key)).await.assert_error(401, "unauthorized");
    biz_me(&app, Some(&newest)).await.assert_status(200);

    let missing = uuid::Uuid::now_v7();
    for path in [
        format!("{ONBOARD}/{missing}/rotate-key"),
        format!("{ONBOARD}/not-an-id/rotate-key"),
    ] {
        app.admin_post(&path, json!({})).await.assert_error(404, "not_found");
    }
    for path in [format!("{ONBOARD}/{missing}"), format!("{ONBOARD}/not-an-id")] {
        app.admin_get(&path).await.assert_error(404, "not_found");
    }
}

async fn registration_numbers_are_check_digit_verified_and_unique(app: TestApp) {
    let number = fresh_registration_number();
    let digits = number.replace('-', "");
    let last = digits.chars().last().unwrap().to_digit(10).unwrap();
    let wrong = format!("{}{}", &number[..11], (last + 1) % 10);
    for bad in [
        wrong.clone(),
        wrong.replace('-', ""),
        format!("{}-{}", &digits[..2], &digits[2..]),
        format!("{}-{}-{}", &digits[..2], &digits[2..5], &digits[5..]),
        number.replace('-', " "),
        format!(" {number}"),
    ] {
        let mut body = TestApp::business_body("가나상사");
        body["registration_number"] = json!(bad);
        let r = onboard(&app, body).await;
        assert_eq!((r.status, r.code()), (400, "validation_failed"), "{bad:?}: {}", r.text);
        assert!(
            r.body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("registration_number"),
            "{}",
            r.text
        );
    }
    assert_eq!(business_count(&app).await, 0);

    // Written without dashes, it is stored and shown in the dashed form.
    let mut body = TestApp::business_body("가나상사");
    body["registration_number"] = json!(digits);
    let created = onboard(&app, body).await;
    assert_eq!(created.assert_status(201)["registration_number"], json!(number));

    // The same number, however written, is a conflict; nothing more is stored.
    for same in [number.clone(), digits.clone()] {
        let mut body = TestApp::business_body("다른상사");
        body["registration_number"] = json!(same);
        onboard(&app, body).await.assert_error(409, "conflict");
    }
    assert_eq!(business_count(&app).await, 1);
}

async fn a_bank_refusal_stores_nothing(app: TestApp) {
    let mut body = TestApp::business_body("가나상사");
    body["account_number"] = json!("1002000009");
    onboard(&app, body.clone()).await.assert_error(422, "bank_declined");
    assert_eq!(business_count(&app).await, 0);

    // The refusal kept nothing: the same registration number onboards with a good account.
    body["account_number"] = json!(fresh_bank_account_number());
    let created = onboard(&app, body.clone()).await;
    assert_eq!(
        created.assert_status(201)["registration_number"],
        body["registration_number"]
    );
    assert_eq!(business_count(&app).await, 1);
}

/// Onboardings racing past the early duplicate check meet at the unique registration number:
/// one business, every other answer `409 conflict`, never a 500.
async fn concurrent_onboardings_of_one_number_make_one_business(app: TestApp) {
    let body = TestApp::business_body("가나상사");
    let attempts = (0..8).map(|_| {
        let (app, body) = (app.clone(), body.clone());
        async move { onboard(&app, body).await }
    });
    let answers = join_all(attempts).await;
    let mut statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409, 409, 409, 409, 409, 409, 409]);
    for r in answers.iter().filter(|r| r.status == 409) {
        r.assert_error(409, "conflict");
    }
    assert_eq!(business_count(&app).await, 1);
}

async fn onboarding_rejects_bad_input_and_creates_nothing(app: TestApp) {
    let valid = TestApp::business_body("가나상사");
    let long_url = format!("https://shop.example.com/{}", "a".repeat(2_048));
    let cases: Vec<(&str, Option<Value>)> = vec![
        ("name", None),
        ("name", Some(json!(""))),
        ("name", Some(json!("   "))),
        ("name", Some(json!("가".repeat(101)))),
        ("name", Some(json!(42))),
        ("registration_number", None),
        ("registration_number", Some(json!(""))),
        ("registration_number", Some(json!(1_248_100_998_i64))),
        ("registration_number", Some(Value::Null)),
        ("bank_code", None),
        ("bank_code", Some(json!("04"))),
        ("bank_code", Some(json!("0a4"))),
        ("bank_code", Some(json!(4))),
        ("account_number", None),
        ("account_number", Some(json!("12345"))),
        ("account_number", Some(json!("1".repeat(21)))),
        ("account_number", Some(json!("12-3456"))),
        ("holder_name", None),
        ("holder_name", Some(json!(""))),
        ("holder_name", Some(json!("가".repeat(51)))),
        ("webhook_url", Some(json!(""))),
        ("webhook_url", Some(json!("not a url"))),
        ("webhook_url", Some(json!("shop.example.com/hooks"))),
        ("webhook_url", Some(json!("ftp://shop.example.com/hooks"))),
        ("webhook_url", Some(json!("https://user:pw@shop.example.com/"))),
        ("webhook_url", Some(json!("https://shop.example.com/#fragment"))),
        ("webhook_url", Some(json!(long_url))),
        ("webhook_url", Some(json!(true))),
        ("currency", Some(json!("KRW"))),
    ];
    for (field, value) in cases {
        let mut body = valid.clone();
        let object = body.as_object_mut().unwrap();
        match &value {
            Some(v) => object.insert(field.to_owned(), v.clone()),
            None => object.remove(field),
        };
        let r = onboard(&app, body).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "validation_failed"),
            "{field} = {value:?}: {}",
            r.text
        );
    }
    for text in ["", "{", "[]", "null", "\"text\"", "42"] {
        let r = app
            .http
            .post(format!("{}{ONBOARD}", app.base))
            .bearer_auth(ADMIN_TOKEN)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(text)
            .send()
            .await
            .unwrap();
        Resp::read(r).await.assert_error(400, "validation_failed");
    }
    assert_eq!(business_count(&app).await, 0, "a rejected onboarding stored a business");
    onboard(&app, valid).await.assert_status(201);
}

async fn business_auth_tells_other_callers_apart(app: TestApp) {
    let business = app.onboard_business("가나상사").await;
    let user = app.user("Kim").await;
    let unknown_key = format!("mpk_{}", "A".repeat(43));
    biz_me(&app, None).await.assert_error(401, "unauthorized");
    for bad in ["garbage", unknown_key.as_str(), &business.webhook_secret] {
        biz_me(&app, Some(bad)).await.assert_error(401, "unauthorized");
    }
    biz_me(&app, Some(&user.token)).await.assert_error(403, "forbidden");
    biz_me(&app, Some(ADMIN_TOKEN)).await.assert_error(403, "forbidden");
    // Only the Bearer scheme carries a key.
    let basic = app
        .http
        .get(format!("{}/v1/biz/me", app.base))
        .header("authorization", format!("Basic {}", business.api_key))
        .send()
        .await
        .unwrap();
    Resp::read(basic).await.assert_error(401, "unauthorized");
    // A business's key is not a user's token either.
    app.get("/v1/users/me", &business.api_key)
        .await
        .assert_error(401, "unauthorized");
    biz_me(&app, Some(&business.api_key)).await.assert_status(200);
}

/// Concurrent requests' keys are matched together (one lookup for many): each request is
/// still answered for its own key — its business, or `401` for an unknown or rotated-out key.
async fn keys_sent_together_are_each_matched_to_their_own_business(app: TestApp) {
    let mut businesses = Vec::new();
    for name in ["가나상사", "다라상사", "마바상사", "사아상사"] {
        businesses.push(app.onboard_business(name).await);
    }
    let retired = app.onboard_business("자차상사").await;
    app.admin_post(&format!("{ONBOARD}/{}/rotate-key", retired.id), json!({}))
        .await
        .assert_status(200);
    let unknown_key = format!("mpk_{}", "B".repeat(43));
    // (key, the business it must be answered for; `None`: 401)
    let mut calls: Vec<(String, Option<String>)> = Vec::new();
    for round in 0..12 {
        for b in &businesses {
            calls.push((b.api_key.clone(), Some(b.id.clone())));
        }
        if round % 3 == 0 {
            calls.push((unknown_key.clone(), None));
            calls.push((retired.api_key.clone(), None));
        }
    }
    let answers = join_all(calls.iter().cloned().map(|(key, _)| {
        let app = app.clone();
        async move { biz_me(&app, Some(&key)).await }
    }))
    .await;
    for ((_, owner), answer) in calls.iter().zip(&answers) {
        match owner {
            Some(id) => assert_eq!(answer.assert_status(200)["id"], json!(id)),
            None => {
                answer.assert_error(401, "unauthorized");
            }
        }
    }
}

async fn a_business_sees_only_itself(app: TestApp) {
    let a = app.onboard_business("가나상사").await;
    let b = app.onboard_business("다라상사").await;
    for (me, other) in [(&a, &b), (&b, &a)] {
        let seen = biz_me(&app, Some(&me.api_key)).await;
        let seen = seen.assert_status(200);
        assert_eq!(
            (&seen["id"], &seen["name"], &seen["registration_number"]),
            (&json!(me.id), &json!(me.name), &json!(me.registration_number))
        );
        assert!(!seen.to_string().contains(&other.id));
        // The business API is not the admin API.
        app.get(&format!("{ONBOARD}/{}", other.id), &me.api_key)
            .await
            .assert_error(403, "forbidden");
    }
}

async fn business_admin_endpoints_need_the_admin_token(app: TestApp) {
    let business = app.onboard_business("가나상사").await;
    let user = app.user("Kim").await;
    let rotate = format!("{ONBOARD}/{}/rotate-key", business.id);
    let view = format!("{ONBOARD}/{}", business.id);
    let attempts = [
        (Method::POST, ONBOARD, Some(TestApp::business_body("다라상사"))),
        (Method::GET, ONBOARD, None),
        (Method::GET, view.as_str(), None),
        (Method::POST, rotate.as_str(), Some(json!({}))),
    ];
    let callers = [
        (None, 401, "unauthorized"),
        (Some("not-the-admin-token"), 401, "unauthorized"),
        (Some(user.token.as_str()), 403, "forbidden"),
        (Some(business.api_key.as_str()), 403, "forbidden"),
    ];
    for (method, path, body) in attempts {
        for (token, status, code) in callers {
            let r = app.request(method.clone(), path, token, None, body.clone()).await;
            assert_eq!((r.status, r.code()), (status, code), "{method} {path}: {}", r.text);
        }
    }
    // Nothing was onboarded or rotated by the refused calls.
    assert_eq!(business_count(&app).await, 1);
    biz_me(&app, Some(&business.api_key)).await.assert_status(200);
}

async fn the_business_list_is_a_cursor_page(app: TestApp) {
    let mut ids = Vec::new();
    for name in ["가", "나", "다"] {
        ids.push(app.onboard_business(name).await.id);
        app.advance_clock(1).await;
    }
    let first = app.admin_get(&format!("{ONBOARD}?limit=2")).await;
    let first = first.assert_status(200);
    let page: Vec<&Value> = first["items"].as_array().unwrap().iter().map(|b| &b["id"]).collect();
    assert_eq!(page, [&json!(ids[2]), &json!(ids[1])], "newest first");
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = app.admin_get(&format!("{ONBOARD}?limit=2&cursor={cursor}")).await;
    let second = second.assert_status(200);
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert_eq!(second["items"][0]["id"], json!(ids[0]));
    assert_eq!(second["next_cursor"], Value::Null);

    for query in ["limit=0", "limit=201", "limit=x", "cursor=nonsense", "sort=name"] {
        app.admin_get(&format!("{ONBOARD}?{query}"))
            .await
            .assert_error(400, "validation_failed");
    }
}

async fn openapi_documents_the_business_paths(app: TestApp) {
    let doc = app.request(Method::GET, "/openapi.json", None, None, None).await;
    let paths = &doc.assert_status(200)["paths"];
    for (path, method) in [
        ("/v1/admin/businesses", "post"),
        ("/v1/admin/businesses", "get"),
        ("/v1/admin/businesses/{id}", "get"),
        ("/v1/admin/businesses/{id}/rotate-key", "post"),
        ("/v1/biz/me", "get"),
    ] {
        assert!(paths[path][method].is_object(), "{method} {path} is not documented");
    }
    let onboard_statuses = &paths["/v1/admin/businesses"]["post"]["responses"];
    for status in ["201", "400", "401", "403", "409", "422"] {
        assert!(
            onboard_statuses[status].is_object(),
            "onboarding does not document {status}"
        );
    }
    let params = paths["/v1/admin/businesses"]["get"]["parameters"].as_array().unwrap();
    for name in ["limit", "cursor"] {
        let param = params.iter().find(|p| p["name"] == json!(name)).unwrap();
        assert_eq!(param["in"], json!("query"), "{name}");
    }
}
