//! The approval read side end to end (API-gateway.md "Events and the read side"): approvals
//! through the gateway to the simulators, projected from the event stream into each
//! transaction's final state and history; a rebuild from zero ends identical; settlement per
//! merchant and business day, exact to the won, as JSON and CSV.

use crate::for_both_backends;
use crate::gateway::{
    APPROVED_CARD, DECLINED_CARD, LATE_CARD, NO_ANSWER_CARD, Rig, SEALED, gateway_settings, on_gateway, rig, sale,
};
use crate::helpers::{Backend, Engine, TestApp, TestEvents, run_with};
use minipay_core::SystemClock;
use minipay_events::{EventsConfig, ReplaySource};
use minipay_gateway::request::{OriginalInput, TxType};
use minipay_gateway::sim::http_router;
use minipay_readside::ReadSide;
use minipay_store::{Store, StoreOptions};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;

for_both_backends!(
    every_step_reaches_the_read_side_and_a_rebuild_ends_identical,
    a_merchants_day_settles_to_the_won,
    the_read_side_refuses_bad_queries,
    reconciliation_finds_each_planted_mismatch_and_alerts_once,
    the_projection_follows_jetstream_and_rebuilds_from_the_stream,
);

/// Waits until the read side has every event the gateway wrote for `id`; its detail.
async fn projected(r: &Rig, id: &str) -> Value {
    for _ in 0..400 {
        let written: i64 = r
            .approval_column(id, "event_seq")
            .await
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let got = r.app.admin_get(&format!("/v1/admin/approvals/{id}")).await;
        if got.status == 200 && got.body["last_seq"] == json!(written) && got.body["gaps"] == json!(false) {
            return got.body;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the read side never caught up with {id}");
}

fn steps(detail: &Value) -> Vec<&str> {
    detail["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect()
}

/// Every final state with its history, as operators see them.
async fn snapshot(app: &TestApp) -> Vec<Value> {
    let list = app.admin_get("/v1/admin/approvals?limit=100").await;
    let list = list.assert_status(200);
    assert_eq!(list["next_cursor"], Value::Null);
    let mut out = Vec::new();
    for item in list["items"].as_array().unwrap() {
        let id = item["id"].as_str().unwrap();
        out.push(
            app.admin_get(&format!("/v1/admin/approvals/{id}"))
                .await
                .assert_status(200)
                .clone(),
        );
    }
    out
}

async fn every_step_reaches_the_read_side_and_a_rebuild_ends_identical(backend: Backend) {
    on_gateway(backend, |app| async move {
        let r = rig(&app, &[("vana", 1), ("vanb", 1)], false, "auto").await;
        let approved = r.http_sale(APPROVED_CARD).await;
        let declined = r.http_sale(DECLINED_CARD).await;
        let timed_out = r.tcp_sale(NO_ANSWER_CARD).await;
        let (a, d) = (
            approved["transaction_id"].as_str().unwrap(),
            declined["transaction_id"].as_str().unwrap(),
        );
        let t = timed_out.transaction_id.unwrap().to_string();
        r.wait_cancel(&t, "acknowledged").await;

        let a_view = projected(&r, a).await;
        assert_eq!(a_view["status"], "approved", "{a_view}");
        assert_eq!(a_view["approval_no"], approved["approval_no"]);
        assert_eq!(a_view["upstream"], approved["upstream"]);
        assert_eq!(
            (a_view["amount"].as_i64(), a_view["terminal_id"].as_str()),
            (Some(15_000), Some(r.terminal_id.as_str()))
        );
        assert!(a_view["business_date"].is_string(), "{a_view}");
        assert_eq!(steps(&a_view), ["received", "routed", "approved"]);
        let d_view = projected(&r, d).await;
        assert_eq!(
            (d_view["status"].as_str(), d_view["response_code"].as_str()),
            (Some("declined"), Some("51"))
        );
        assert_eq!(d_view["business_date"], Value::Null, "a decline settles nothing");
        let t_view = projected(&r, &t).await;
        assert_eq!(
            (t_view["status"].as_str(), t_view["cancel_status"].as_str()),
            (Some("timeout"), Some("acknowledged"))
        );
        assert_eq!(
            steps(&t_view),
            [
                "received",
                "routed",
                "timed_out",
                "cancel_queued",
                "cancel_sent",
                "cancel_acknowledged"
            ]
        );

        // Filters.
        let timeouts = app.admin_get("/v1/admin/approvals?status=timeout").await;
        let ids: Vec<&str> = timeouts.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [t.as_str()]);
        let mine = app
            .admin_get(&format!("/v1/admin/approvals?terminal_id={}&limit=2", r.terminal_id))
            .await;
        assert_eq!(mine.body["items"].as_array().unwrap().len(), 2);
        let rest = app
            .admin_get(&format!(
                "/v1/admin/approvals?terminal_id={}&limit=2&cursor={}",
                r.terminal_id,
                mine.body["next_cursor"].as_str().expect("a second page")
            ))
            .await;
        assert_eq!(rest.body["items"].as_array().unwrap().len(), 1);
        let merchant = a_view["merchant_id"].as_str().unwrap();
        let none = app
            .admin_get(&format!(
                "/v1/admin/approvals?merchant_id={merchant}&to=2000-01-01T00:00:00Z"
            ))
            .await;
        assert_eq!(none.body["items"], json!([]));

        // Rebuilt from zero (from the outbox), the read side is what the live projection made.
        let live = snapshot(&app).await;
        assert_eq!(live.len(), 3);
        let store = Store::connect(app.db_url(), &StoreOptions::default()).await.unwrap();
        let readside = ReadSide::new(store, Arc::new(SystemClock), EventsConfig::default());
        let report = readside.rebuild(ReplaySource::Outbox).await.unwrap();
        let written: u64 = live.iter().map(|v| v["last_seq"].as_u64().unwrap()).sum();
        assert_eq!(report.events, written, "{report:?}");
        assert_eq!(snapshot(&app).await, live);
    })
    .await
}

async fn a_merchants_day_settles_to_the_won(backend: Backend) {
    on_gateway(backend, |app| async move {
        let r = rig(&app, &[("vana", 1)], false, "auto").await;
        let mut routing = app.admin_get("/v1/admin/routing").await.assert_status(200)["config"].clone();
        routing["vans"][0]["fee_rate_bp"] = json!(120);
        app.admin_put("/v1/admin/routing", routing).await.assert_status(200);

        let mut sold = Vec::new();
        for _ in 0..3 {
            sold.push(r.http_sale(APPROVED_CARD).await);
        }
        let declined = r.http_sale(DECLINED_CARD).await;
        let mut cancel = sale(r.next_seq(), APPROVED_CARD);
        cancel.tx_type = TxType::CardCancel;
        // A cancel names its sale by approval number; whatever amount it says, the upstream
        // gives back the whole sale, and so does the settlement.
        cancel.amount = 1;
        cancel.original = Some(OriginalInput {
            approval_no: sold[0]["approval_no"].as_str().unwrap().to_owned(),
            approved_at: "20261204120000".into(),
        });
        let canceled = r.tcp(SEALED).await.send(&cancel).await.unwrap();
        assert_eq!(canceled.response_code, "00", "{canceled:?}");

        let mut date = None;
        for s in &sold {
            date = projected(&r, s["transaction_id"].as_str().unwrap()).await["business_date"]
                .as_str()
                .map(str::to_owned);
        }
        projected(&r, declined["transaction_id"].as_str().unwrap()).await;
        let c_view = projected(&r, &canceled.transaction_id.unwrap().to_string()).await;
        assert_eq!(
            (c_view["tx_type"].as_str(), c_view["status"].as_str()),
            (Some("card_cancel"), Some("approved"))
        );
        let date = date.unwrap();

        let settled = app.admin_get(&format!("/v1/admin/settlements?date={date}")).await;
        let items = settled.assert_status(200)["items"].as_array().unwrap().clone();
        assert_eq!(items.len(), 1, "{items:?}");
        let m = &items[0];
        assert_eq!(
            (
                &m["approved_count"],
                &m["approved_amount"],
                &m["canceled_count"],
                &m["canceled_amount"]
            ),
            (&json!(3), &json!(45_000), &json!(1), &json!(15_000))
        );
        // 30,000 won net at 1.20%: 360 won; the merchant is paid 29,640.
        assert_eq!(
            m["upstreams"],
            json!([{"upstream": "vana", "fee_rate_bp": 120, "approved_count": 3,
            "approved_amount": 45_000, "canceled_count": 1, "canceled_amount": 15_000, "net_amount": 30_000,
            "fee": 360}])
        );
        assert_eq!((&m["fee_total"], &m["net_payable"]), (&json!(360), &json!(29_640)));

        let csv = app
            .admin_get(&format!("/v1/admin/settlements?date={date}&format=csv"))
            .await;
        assert_eq!(csv.status, 200);
        assert!(csv.headers["content-type"].to_str().unwrap().starts_with("text/csv"));
        let merchant = m["merchant_id"].as_str().unwrap();
        assert_eq!(
            csv.text,
            format!(
                "{}\n{date},{merchant},vana,120,3,45000,1,15000,30000,360,29640\n",
                minipay_readside::settlement::SETTLEMENT_CSV_HEADER
            )
        );
        let other = app
            .admin_get(&format!(
                "/v1/admin/settlements?date={date}&merchant_id={}",
                uuid::Uuid::now_v7()
            ))
            .await;
        assert_eq!(other.body["items"], json!([]));

        // A day is settled at the fee rates in force that day, whatever changed since.
        app.advance_clock(86_400).await;
        let mut routing = app.admin_get("/v1/admin/routing").await.assert_status(200)["config"].clone();
        routing["vans"][0]["fee_rate_bp"] = json!(200);
        app.admin_put("/v1/admin/routing", routing).await.assert_status(200);
        let again = app.admin_get(&format!("/v1/admin/settlements?date={date}")).await;
        assert_eq!(again.assert_status(200)["items"][0]["fee_total"], json!(360));
    })
    .await
}

async fn the_read_side_refuses_bad_queries(backend: Backend) {
    on_gateway(backend, |app| async move {
        for path in [
            "/v1/admin/approvals?status=lost",
            "/v1/admin/approvals?terminal_id=T1",
            "/v1/admin/approvals?from=2026-12-05T00:00:00Z&to=2026-12-04T00:00:00Z",
            "/v1/admin/approvals?from=yesterday",
            "/v1/admin/approvals?cursor=nonsense",
            "/v1/admin/settlements",
            "/v1/admin/settlements?date=2026-13-01",
            "/v1/admin/settlements?date=2026-12-04&format=xml",
            "/v1/admin/settlements?date=1999-12-31",
            "/v1/admin/approvals?from=1970-01-01T00:00:00Z",
            "/v1/admin/reconciliations?date=2100-01-01",
            "/v1/admin/alerts?since=1900-01-01T00:00:00Z",
        ] {
            app.admin_get(path).await.assert_error(400, "validation_failed");
        }
        let unknown = format!("/v1/admin/approvals/{}", uuid::Uuid::now_v7());
        app.admin_get(&unknown).await.assert_error(404, "not_found");
        let anonymous = app.get("/v1/admin/approvals", "not-the-admin-token").await;
        assert_eq!(anonymous.status, 401);
    })
    .await
}

/// Serves the simulators' settlement files over HTTP, as a VAN would; the base URL.
async fn settlement_server(r: &Rig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = http_router(r.vans.clone());
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}/sim/settlement-file")
}

async fn reconciliation_finds_each_planted_mismatch_and_alerts_once(backend: Backend) {
    on_gateway(backend, |app| async move {
        let r = rig(&app, &[("vana", 1)], false, "on").await;
        let files = settlement_server(&r).await;
        let mut routing = app.admin_get("/v1/admin/routing").await.assert_status(200)["config"].clone();
        routing["vans"][0]["settlement_url"] = json!(format!("{files}?sim=vana"));
        app.admin_put("/v1/admin/routing", routing).await.assert_status(200);

        let mut sold = Vec::new();
        for _ in 0..3 {
            sold.push(r.http_sale(APPROVED_CARD).await);
        }
        r.http_sale(DECLINED_CARD).await;
        let mut cancel = sale(r.next_seq(), APPROVED_CARD);
        cancel.tx_type = TxType::CardCancel;
        cancel.original = Some(OriginalInput {
            approval_no: sold[2]["approval_no"].as_str().unwrap().to_owned(),
            approved_at: "20261204120000".into(),
        });
        let canceled = r.tcp(SEALED).await.send(&cancel).await.unwrap();
        assert_eq!(canceled.response_code, "00");
        // A sale approved after the gateway gave up: network-canceled, its late answer recorded.
        let late = r.tcp_sale(LATE_CARD).await.transaction_id.unwrap().to_string();
        r.wait_cancel(&late, "acknowledged").await;
        let mut late_view = Value::Null;
        for _ in 0..200 {
            late_view = projected(&r, &late).await;
            if late_view["late_response_code"] == "00" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(late_view["late_response_code"], "00", "{late_view}");
        let mut date = String::new();
        for s in &sold {
            date = projected(&r, s["transaction_id"].as_str().unwrap()).await["business_date"]
                .as_str()
                .unwrap()
                .to_owned();
        }
        assert_eq!(late_view["business_date"].as_str(), Some(date.as_str()));
        projected(&r, &canceled.transaction_id.unwrap().to_string()).await;

        // Fetched from the VAN: four approvals (one late), a customer cancel and a network
        // cancel, all matched.
        let clean = app
            .admin_post("/v1/admin/reconciliations", json!({"upstream": "vana", "date": date}))
            .await;
        let clean = clean.assert_status(200);
        assert_eq!(
            (
                &clean["matched"],
                &clean["missing_here"],
                &clean["missing_there"],
                &clean["amount_mismatch"],
                &clean["source"]
            ),
            (&json!(6), &json!(0), &json!(0), &json!(0), &json!("fetched")),
            "{clean}"
        );
        assert_eq!(clean["items"], json!([]));

        // Uploaded with one of each mismatch planted.
        let file = r.vans[0].settlement_file(date.parse().unwrap());
        let mut lines: Vec<String> = file.lines().map(str::to_owned).collect();
        let dropped = lines.remove(1); // the first approval: missing there
        let mut changed: Vec<String> = lines[1].split(',').map(str::to_owned).collect();
        changed[5] = "15001".into(); // the second approval's amount
        lines[1] = changed.join(",");
        lines.push("approval,77777777,T9999999,42,20261204120000,5000,20261204120001,".into()); // missing here
        let planted = lines.join("\n");
        for _ in 0..2 {
            let found = app
                .admin_post(
                    "/v1/admin/reconciliations",
                    json!({"upstream": "vana", "date": date, "file": planted}),
                )
                .await;
            let found = found.assert_status(200);
            assert_eq!(
                (
                    &found["matched"],
                    &found["missing_here"],
                    &found["missing_there"],
                    &found["amount_mismatch"]
                ),
                (&json!(4), &json!(1), &json!(1), &json!(1)),
                "{found}"
            );
            let kinds: Vec<(&str, &str)> = found["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| (i["kind"].as_str().unwrap(), i["terminal_id"].as_str().unwrap()))
                .collect();
            assert!(kinds.contains(&("missing_here", "T9999999")), "{kinds:?}");
            assert!(
                kinds.contains(&("amount_mismatch", r.terminal_id.as_str())),
                "{kinds:?}"
            );
            let missing = found["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["kind"] == "missing_there")
                .unwrap();
            assert_eq!(missing["seq_no"].to_string(), dropped.split(',').nth(3).unwrap());
        }
        let alerts = app.admin_get("/v1/admin/alerts?kind=reconciliation_mismatch").await;
        assert_eq!(
            alerts.body["items"].as_array().unwrap().len(),
            1,
            "one alert per day and upstream: {}",
            alerts.body
        );
        let raised_at = alerts.body["items"][0]["created_at"].as_str().unwrap().to_owned();
        let since = |t: &str| format!("/v1/admin/alerts?kind=reconciliation_mismatch&since={t}");
        assert_eq!(
            app.admin_get(&since(&raised_at)).await.body["items"]
                .as_array()
                .unwrap()
                .len(),
            1
        );
        let later = app.admin_get(&since("2099-01-01T00:00:00Z")).await;
        assert_eq!(later.assert_status(200)["items"], json!([]));
        let listed = app
            .admin_get(&format!("/v1/admin/reconciliations?date={date}&upstream=vana"))
            .await;
        assert_eq!(listed.body["items"].as_array().unwrap().len(), 3);

        // The 06:00 job reconciles the previous day of every upstream with a settlement file.
        let store = Store::connect(app.db_url(), &StoreOptions::default()).await.unwrap();
        let readside = Arc::new(ReadSide::new(store, Arc::new(SystemClock), EventsConfig::default()));
        let job = minipay_readside::jobs(&readside).pop().unwrap();
        assert_eq!(job.name(), "approval-reconciliation");
        let next_morning: jiff::civil::Date = date.parse::<jiff::civil::Date>().unwrap().tomorrow().unwrap();
        let at = next_morning.at(6, 0, 0, 0).in_tz("Asia/Seoul").unwrap().timestamp();
        let outcome = job.run(at).await.unwrap();
        assert_eq!(outcome.processed, 1, "{:?}", outcome.details);
        assert_eq!(
            outcome.details["upstreams"][0]["clean"],
            json!(true),
            "{:?}",
            outcome.details
        );

        // Refusals.
        let refuse = |body: Value| {
            let app = app.clone();
            async move { app.admin_post("/v1/admin/reconciliations", body).await }
        };
        refuse(json!({"upstream": "nobody", "date": date}))
            .await
            .assert_error(404, "not_found");
        refuse(json!({"upstream": "card", "date": date}))
            .await
            .assert_error(409, "invalid_state");
        refuse(json!({"upstream": "vana", "date": date, "file": "not,a,settlement,file"}))
            .await
            .assert_error(400, "validation_failed");
        refuse(json!({"upstream": "vana", "date": "yesterday"}))
            .await
            .assert_error(400, "validation_failed");
        let mut routing = app.admin_get("/v1/admin/routing").await.assert_status(200)["config"].clone();
        for bad in ["ftp://files.example.com/settlement", "not a url", "http://"] {
            routing["vans"][0]["settlement_url"] = json!(bad);
            app.admin_put("/v1/admin/routing", routing.clone())
                .await
                .assert_error(400, "validation_failed");
        }
    })
    .await
}

/// With JetStream, the projection is a durable consumer of `minipay.approval.*`; the stream
/// itself rebuilds the read side to what the live projection made.
async fn the_projection_follows_jetstream_and_rebuilds_from_the_stream(backend: Backend) {
    let Some(events) = TestEvents::on(Engine::JetStream).await else {
        return;
    };
    let config = events.config().cloned().expect("a JetStream configuration");
    let configure = |s: &mut minipay_server::Settings| {
        events.apply(s);
        gateway_settings(s);
    };
    run_with(backend, configure, |app| async move {
        let r = rig(&app, &[("vana", 1), ("vanb", 1)], false, "auto").await;
        let approved = r.http_sale(APPROVED_CARD).await;
        let declined = r.http_sale(DECLINED_CARD).await;
        let timed_out = r.tcp_sale(NO_ANSWER_CARD).await.transaction_id.unwrap().to_string();
        r.wait_cancel(&timed_out, "acknowledged").await;
        for id in [
            approved["transaction_id"].as_str().unwrap(),
            declined["transaction_id"].as_str().unwrap(),
            &timed_out,
        ] {
            projected(&r, id).await;
        }
        let live = snapshot(&app).await;
        assert_eq!(live.len(), 3);

        let store = Store::connect(app.db_url(), &StoreOptions::default()).await.unwrap();
        let readside = ReadSide::new(store, Arc::new(SystemClock), config);
        let report = readside.rebuild(ReplaySource::Stream).await.unwrap();
        let written: u64 = live.iter().map(|v| v["last_seq"].as_u64().unwrap()).sum();
        assert_eq!((report.source, report.events), ("stream", written), "{report:?}");
        assert_eq!(snapshot(&app).await, live);
    })
    .await;
    events.remove().await;
}
