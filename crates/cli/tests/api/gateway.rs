//! The card approval gateway end to end (API-gateway.md): terminals over HTTP (HMAC) and TCP
//! (the POS wire format, encrypted and compressed), routing to in-process VAN and card-company
//! simulators, every timeout kind and its network cancel, the shared breaker on the manual
//! clock, repeated requests, and malformed frames.

use crate::for_both_backends;
use crate::helpers::{Backend, TestApp, fresh_registration_number, run_with, start_twin};
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use minipay_gateway::pos_client::{PosAnswer, PosClient};
use minipay_gateway::request::{ApprovalInput, CardInput, OriginalInput, TxType};
use minipay_gateway::sim::{SimConfig, SimFaults, SimHandle, SimKind, Simulator};
use minipay_server::Settings;
use minipay_wire::{Flags, PosFrame, TerminalKey};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

for_both_backends!(
    an_approval_over_http_is_recorded_and_answered,
    a_decline_is_a_decline_and_never_an_upstream_error,
    a_repeated_request_gets_the_first_answer_and_goes_upstream_once,
    a_bad_signature_or_an_unknown_terminal_is_refused,
    encrypted_and_compressed_frames_round_trip_many_in_flight,
    no_answer_is_a_timeout_and_a_network_cancel,
    a_late_approval_is_canceled_and_its_answer_recorded,
    a_closed_connection_is_a_timeout_and_a_network_cancel,
    a_cancel_is_resent_until_acknowledged,
    a_cancel_never_acknowledged_fails_with_an_alert,
    a_single_van_sends_no_network_cancel,
    ten_errors_open_the_breaker_nine_do_not_and_a_probe_closes_it,
    declines_never_open_the_breaker,
    an_unreachable_upstream_moves_the_request_to_the_next,
    a_customer_cancel_goes_to_the_upstream_that_approved,
    a_direct_card_company_gets_its_cards,
    malformed_frames_never_crash_the_listener,
    a_disabled_terminal_is_refused_over_tcp,
    two_instances_share_one_breaker,
    weights_70_30_split_ten_thousand_requests,
    approvals_in_flight_share_commits_and_keep_their_own_events,
    with_grouping_off_each_approval_commits_on_its_own,
    a_terminal_that_hangs_up_does_not_abandon_its_request,
);

/// The gateway's upstream timeout in these tests.
pub(crate) const UPSTREAM_TIMEOUT_MS: u64 = 300;
/// When the simulators answer a `0005` card (after the gateway gave up).
const LATE_AFTER_MS: u64 = 600;

pub(crate) const APPROVED_CARD: &str = "9410123412340001";
pub(crate) const DECLINED_CARD: &str = "9410123412340002";
const SYSTEM_ERROR_CARD: &str = "9410123412340003";
pub(crate) const NO_ANSWER_CARD: &str = "9410123412340004";
pub(crate) const LATE_CARD: &str = "9410123412340005";
const CLOSING_CARD: &str = "9410123412340006";
/// A card of the direct card company's BIN.
const DIRECT_CARD: &str = "5555441234560001";

pub(crate) fn gateway_settings(s: &mut Settings) {
    s.pos_listen = Some("127.0.0.1:0".into());
    s.upstream_timeout_ms = UPSTREAM_TIMEOUT_MS;
}

/// Simulators, a merchant and a terminal on one test server.
pub(crate) struct Rig {
    pub(crate) app: TestApp,
    /// VAN simulators in the order given (weights as given).
    pub(crate) vans: Vec<SimHandle>,
    card: SimHandle,
    pub(crate) terminal_id: String,
    key: TerminalKey,
    seq: AtomicU64,
}

async fn sim(id: &str, kind: SimKind, dialect: &str) -> SimHandle {
    let mut config = SimConfig::new(id, kind, minipay_wire::shipped(dialect).unwrap());
    config.late_after = Duration::from_millis(LATE_AFTER_MS);
    // The sims' own time stands at the test servers' start (noon in Seoul), so the business
    // day of what they approve is known and never crosses midnight during a test.
    config.clock = std::sync::Arc::new(minipay_core::ManualClock::new(crate::helpers::T0.parse().unwrap()));
    Simulator::start("127.0.0.1:0".parse().unwrap(), config).await.unwrap()
}

/// `vans`: (id, weight); the card company `card` (BIN 555544, iso8583) is direct when `direct`.
pub(crate) async fn rig(app: &TestApp, vans: &[(&str, u32)], direct: bool, network_cancel: &str) -> Rig {
    let mut sims = Vec::new();
    for (i, (id, _)) in vans.iter().enumerate() {
        let dialect = if i % 2 == 0 { "ksnet" } else { "iso8583" };
        sims.push(sim(id, SimKind::Van, dialect).await);
    }
    let card = sim("card", SimKind::Card, "iso8583").await;
    let routing = json!({
        "card_companies": [{
            "id": "card", "name": "다이렉트카드", "bins": ["555544"], "direct": direct,
            "endpoint": card.addr().to_string(), "dialect": "iso8583",
        }],
        "vans": vans.iter().zip(&sims).enumerate().map(|(i, ((id, weight), s))| json!({
            "id": id, "name": id.to_uppercase(), "weight": weight, "endpoint": s.addr().to_string(),
            "dialect": if i % 2 == 0 { "ksnet" } else { "iso8583" },
        })).collect::<Vec<_>>(),
        "network_cancel": network_cancel,
    });
    app.admin_put("/v1/admin/routing", routing).await.assert_status(200);
    let merchant = app
        .admin_post(
            "/v1/admin/merchants",
            json!({ "name": "편의점", "registration_number": fresh_registration_number() }),
        )
        .await;
    let merchant_id = merchant.assert_status(201)["id"].as_str().unwrap().to_owned();
    let terminal = app
        .admin_post(&format!("/v1/admin/merchants/{merchant_id}/terminals"), json!({}))
        .await;
    let terminal = terminal.assert_status(201);
    let key: [u8; 32] = STANDARD
        .decode(terminal["key"].as_str().unwrap())
        .unwrap()
        .try_into()
        .unwrap();
    Rig {
        app: app.clone(),
        vans: sims,
        card,
        terminal_id: terminal["terminal_id"].as_str().unwrap().to_owned(),
        key: TerminalKey(key),
        seq: AtomicU64::new(1),
    }
}

pub(crate) fn sale(seq_no: u64, pan: &str) -> ApprovalInput {
    ApprovalInput {
        tx_type: TxType::CardApproval,
        seq_no,
        sent_at: "20261204120000".into(),
        amount: 15_000,
        card: Some(CardInput {
            track2: None,
            pan: Some(pan.into()),
            expiry: Some("2912".into()),
        }),
        installment_months: None,
        original: None,
        cash_receipt: None,
    }
}

impl Rig {
    pub(crate) fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed)
    }

    /// Sends `body` as this terminal over HTTP, signed with `key`.
    async fn post_signed(&self, body: &Value, terminal_id: &str, key: &[u8]) -> crate::helpers::Resp {
        let bytes = serde_json::to_vec(body).unwrap();
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), &bytes);
        let res = self
            .app
            .http
            .post(format!("{}/v1/pos/approvals", self.app.base))
            .header(
                "Authorization",
                format!("Terminal {terminal_id}:{}", STANDARD.encode(tag.as_ref())),
            )
            .header("Content-Type", "application/json")
            .body(bytes)
            .send()
            .await
            .unwrap();
        crate::helpers::Resp::read(res).await
    }

    /// A card sale over HTTP; the answer's JSON.
    pub(crate) async fn http_sale(&self, pan: &str) -> Value {
        let body = serde_json::to_value(sale(self.next_seq(), pan)).unwrap();
        self.post_signed(&body, &self.terminal_id, &self.key.0)
            .await
            .assert_status(200)
            .clone()
    }

    pub(crate) async fn tcp(&self, flags: Flags) -> PosClient {
        let addr = self.app.pos_addr.as_deref().expect("the POS listener is on");
        PosClient::connect(addr, &self.terminal_id, self.key.clone(), flags)
            .await
            .unwrap()
    }

    /// A card sale over TCP (encrypted and compressed).
    pub(crate) async fn tcp_sale(&self, pan: &str) -> PosAnswer {
        let client = self.tcp(SEALED).await;
        client.send(&sale(self.next_seq(), pan)).await.unwrap()
    }

    /// The column of the approval with this transaction id.
    pub(crate) async fn approval_column(&self, id: &str, column: &str) -> Option<String> {
        let sql = format!("SELECT CAST({column} AS TEXT) FROM approvals WHERE id = $1");
        query_text(&self.app, &sql, id).await
    }

    async fn cancel_column(&self, id: &str, column: &str) -> Option<String> {
        let sql = format!("SELECT CAST({column} AS TEXT) FROM network_cancels WHERE approval_id = $1");
        query_text(&self.app, &sql, id).await
    }

    /// Waits until the network cancel of `id` has `status`.
    pub(crate) async fn wait_cancel(&self, id: &str, status: &str) {
        for _ in 0..200 {
            if self.cancel_column(id, "status").await.as_deref() == Some(status) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "the network cancel of {id} never became {status} (it is {:?})",
            self.cancel_column(id, "status").await
        );
    }

    /// Waits until the network cancel of `id` was sent `sends` times and its send has ended.
    pub(crate) async fn wait_sends(&self, id: &str, sends: &str) {
        for _ in 0..200 {
            if self.cancel_column(id, "sends").await.as_deref() == Some(sends) {
                // The send's answer window must pass before the next advance of the clock.
                tokio::time::sleep(Duration::from_millis(UPSTREAM_TIMEOUT_MS + 150)).await;
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("the network cancel of {id} was never sent {sends} times");
    }
}

pub(crate) const SEALED: Flags = Flags {
    deflate: true,
    encrypted: true,
};

/// One text value (or none) from a query with `$1` bound to the UUID `id`.
async fn query_text(app: &TestApp, sql: &str, id: &str) -> Option<String> {
    use sqlx::Connection;
    let id = uuid::Uuid::parse_str(id).unwrap();
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match app.backend {
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(app.db_url()).await.unwrap();
            sqlx::query_scalar::<_, Option<String>>(sql)
                .bind(id)
                .fetch_optional(&mut c)
                .await
                .unwrap()
                .flatten()
        }
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(app.db_url()).await.unwrap();
            sqlx::query_scalar::<_, Option<String>>(sql)
                .bind(id)
                .fetch_optional(&mut c)
                .await
                .unwrap()
                .flatten()
        }
    }
}

/// Runs `scenario` on a fresh server with the POS listener on and a short upstream timeout.
pub(crate) async fn on_gateway<F, Fut>(backend: Backend, scenario: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: Future<Output = ()>,
{
    run_with(backend, gateway_settings, scenario).await
}

async fn an_approval_over_http_is_recorded_and_answered(backend: Backend) {
    on_gateway(backend, an_approval_over_http_is_recorded_and_answered_on).await
}

async fn an_approval_over_http_is_recorded_and_answered_on(app: TestApp) {
    let r = rig(&app, &[("vana", 1)], false, "auto").await;
    let answer = r.http_sale(APPROVED_CARD).await;
    assert_eq!(answer["result"], "approved", "{answer}");
    assert_eq!(answer["response_code"], "00");
    assert_eq!(answer["upstream"], "vana");
    let approval_no = answer["approval_no"].as_str().unwrap();
    assert_eq!(approval_no.len(), 8);
    let id = answer["transaction_id"].as_str().unwrap();
    assert_eq!(r.approval_column(id, "status").await.as_deref(), Some("approved"));
    assert_eq!(
        r.approval_column(id, "card_masked").await.as_deref(),
        Some("941012******0001")
    );
    assert_eq!(r.approval_column(id, "approval_no").await.as_deref(), Some(approval_no));
    let made = r.vans[0].approvals();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].approval_no, approval_no);
    // Every step is an event with the transaction's own sequence numbers.
    let sql = format!(
        "SELECT CAST(COUNT(*) AS TEXT) FROM outbox WHERE subject LIKE 'approval.%' AND payload LIKE '%{id}%' \
         AND $1 IS NOT NULL"
    );
    let seqs = query_text(&app, &sql, id).await;
    assert_eq!(seqs.as_deref(), Some("3"), "received, routed, approved");
    assert_eq!(r.approval_column(id, "event_seq").await.as_deref(), Some("3"));
}

async fn a_decline_is_a_decline_and_never_an_upstream_error(backend: Backend) {
    on_gateway(backend, a_decline_is_a_decline_and_never_an_upstream_error_on).await
}

async fn a_decline_is_a_decline_and_never_an_upstream_error_on(app: TestApp) {
    let r = rig(&app, &[("vana", 1)], false, "auto").await;
    let answer = r.http_sale(DECLINED_CARD).await;
    assert_eq!(answer["result"], "declined", "{answer}");
    assert_eq!(answer["response_code"], "51");
    assert!(answer["approval_no"].is_null());
    let errors = app.admin_get("/v1/admin/upstreams").await;
    let vana = errors
        .assert_status(200)
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == "vana")
        .cloned()
        .unwrap();
    assert_eq!(vana["errors_in_window"], 0);
    assert_eq!(vana["declines"], 1);
    assert_eq!(vana["state"], "closed");
}

async fn a_repeated_request_gets_the_first_answer_and_goes_upstream_once(backend: Backend) {
    on_gateway(
        backend,
        a_repeated_request_gets_the_first_answer_and_goes_upstream_once_on,
    )
    .await
}

async fn a_repeated_request_gets_the_first_answer_and_goes_upstream_once_on(app: TestApp) {
    let r = rig(&app, &[("vana", 1)], false, "auto").await;
    let body = serde_json::to_value(sale(77, APPROVED_CARD)).unwrap();
    let first = r
        .post_signed(&body, &r.terminal_id, &r.key.0)
        .await
        .assert_status(200)
        .clone();
    let again = r
        .post_signed(&body, &r.terminal_id, &r.key.0)
        .await
        .assert_status(200)
        .clone();
    assert_eq!(first, again);
    // Over TCP too, with the same keys.
    let tcp = r.tcp(SEALED).await.send(&sale(77, APPROVED_CARD)).await.unwrap();
    assert_eq!(tcp.approval_no.as_deref(), first["approval_no"].as_str());
    // Ten at once (on ten connections): one upstream call between them all.
    let repeat = sale(78, APPROVED_CARD);
    let sends = (0..10).map(|_| async {
        let client = r.tcp(SEALED).await;
        client.send(&repeat).await
    });
    let answers = futures_util::future::join_all(sends).await;
    let numbers: std::collections::HashSet<_> = answers.into_iter().map(|a| a.unwrap().approval_no).collect();
    assert_eq!(numbers.len(), 1, "{numbers:?}");
    assert_eq!(r.vans[0].requests_seen(), 2);
    assert_eq!(r.vans[0].approvals().len(), 2);
}

async fn a_bad_signature_or_an_unknown_terminal_is_refused(backend: Backend) {
    on_gateway(backend, a_bad_signature_or_an_unknown_terminal_is_refused_on).await
}

async fn a_bad_signature_or_an_unknown_terminal_is_refused_on(app: TestApp) {
    let r = rig(&app, &[("vana", 1)], false, "auto").await;
    let body = serde_json::to_value(sale(1, APPROVED_CARD)).unwrap();
    r.post_signed(&body, &r.terminal_id, &[7u8; 32])
        .await
        .assert_error(401, "unauthorized");
    r.post_signed(&body, "NOSUCH01", &r.key.0)
        .await
        .assert_error(401, "unauthorized");
    let unsigned = app
        .http
        .post(format!("{}/v1/pos/approvals", app.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    // A signed request that is not a valid request: 400, and nothing goes upstream.
    let mut bad = body.clone();
    bad["amount"] = json!(0);
    r.post_signed(&bad, &r.terminal_id, &r.key.0)
        .await
        .assert_error(400, "validation_failed");
    let mut unknown = body.clone();
    unknown["surprise"] = json!(1);
    r.post_signed(&unknown, &r.terminal_id, &r.key.0)
        .await
        .assert_error(400, "validation_failed");
    assert_eq!(r.vans[0].requests_seen(), 0);
}

async fn encrypted_and_compressed_frames_round_trip_many_in_flight(backend: Backend) {
    on_gateway(backend, |app| async move {
        let r = rig(&app, &[("vana", 1)], false, "auto").await;
        r.vans[0].set_faults(SimFaults {
            latency_ms: 50,
            ..SimFaults::default()
        });
        for flags in [
            Flags {
                deflate: false,
                encrypted: true,
            },
            SEALED,
        ] {
            let client = r.tcp(flags).await;
            let sends = (0..20).map(|_| {
                let seq = r.next_seq();
                let client = &client;
                async move { (seq, client.send(&sale(seq, APPROVED_CARD)).await.unwrap()) }
            });
            for (seq, answer) in futures_util::future::join_all(sends).await {
                assert_eq!(answer.seq_no, seq);
                assert_eq!(answer.response_code, "00", "{answer:?}");
                assert_eq!(answer.tx_code, "0110");
                assert_eq!(answer.encrypted, flags.encrypted);
                assert_eq!(answer.message, "정상승인", "EUC-KR text round-trips");
            }
        }
        assert_eq!(r.vans[0].approvals().len(), 40);
        // A clear frame is not authenticated: refused, whoever it claims to be from.
        for flags in [
            Flags::default(),
            Flags {
                deflate: true,
                encrypted: false,
            },
        ] {
            let answer = r
                .tcp(flags)
                .await
                .send(&sale(r.next_seq(), APPROVED_CARD))
                .await
                .unwrap();
            assert_eq!(answer.response_code, "TE", "{answer:?}");
        }
        assert_eq!(r.vans[0].requests_seen(), 40);
    })
    .await
}

async fn no_answer_is_a_timeout_and_a_network_cancel(backend: Backend) {
    on_gateway(backend, |app| async move {
        let r = rig(&app, &[("vana", 1), ("vanb", 1)], false, "auto").await;
        let answer = r.tcp_sale(NO_ANSWER_CARD).await;
        assert_eq!(answer.response_code, "TO", "{answer:?}");
        let id = answer.transaction_id.unwrap().to_string();
        r.wait_cancel(&id, "acknowledged").await;
        let van = r
            .vans
            .iter()
            .find(|v| Some(v.id()) == answer.upstream.as_deref())
            .unwrap();
        let cancels = van.cancels();
        assert_eq!(cancels.len(), 1, "{cancels:?}");
        assert!(!cancels[0].repeat);
        assert!(!cancels[0].found, "the approval was not made");
        // The other VAN never saw the request: a sent request is never re-sent elsewhere.
        let other = r
            .vans
            .iter()
            .find(|v| Some(v.id()) != answer.upstream.as_deref())
            .unwrap();
        assert_eq!(other.requests_seen(), 0);
        assert_eq!(r.approval_column(&id, "status").await.as_deref(), Some("timeout"));
    })
    .await
}

async fn a_late_approval_is_canceled_and_its_answer_recorded(backend: Backend) {
    on_gateway(backend, |app| async move {
        let r = rig(&app, &[("vana", 1), ("vanb", 0)], false, "auto").await;
        let answer = r.tcp_sale(LATE_CARD).await;
        assert_eq!(answer.result, Some(minipay_gateway::request::ApprovalResult::Timeout));
        let id = answer.transaction_id.unwrap().to_string();
        r.wait_cancel(&id, "acknowledged").await;
        // The late answer arrives after LATE_AFTER_MS and is recorded beside the approval.
        for _ in 0..100 {
            if r.approval_column(&id, "late_response_code").await.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        assert_eq!(
            r.approval_column(&id, "late_response_code").await.as_deref(),
            Some("00")
        );
        let made = r.vans[0].approvals();
        assert_eq!(made.len(), 1);
        assert_eq!(
            r.approval_column(&id, "late_approval_no").await.as_deref(),
            Some(made[0].approval_no.as_str())
        );
        assert_eq!(format!("{:?}", made[0].status), "NetworkCanceled");
        // The terminal's answer stays what it was.
        assert_eq!(r.approval_column(&id, "status").await.as_deref(), Some("timeout"));
    })
    .await
}

async fn a_closed_connection_is_a_timeout_and_a_network_cancel(backend: Backend) {
    on_gateway(backend, |app| async move {
        let r = rig(&app, &[("vana", 1), ("vanb", 0)], false, "on").await;
        let answer = r.tcp_sale(CLOSING_CARD).await;
        assert_eq!(answer.response_code, "TO", "{answer:?}");
        let id = answer.transaction_id.unwrap().to_string();
        r.wait_cancel(&id, "acknowledged").await;
        assert_eq!(r.vans[0].cancels().len(), 1);
        // The link reconnects for the next request.
        assert_eq!(r.tcp_sale(APPROVED_CARD).await.response_code, "00");
    })
    .await
}

async fn a_cancel_is_resent_until_acknowledged(backend: Backend) {
    on_gateway(backend, |app| async move {
        let r = rig(&app, &[("vana", 1), ("vanb", 0)], false, "auto").await;
        r.vans[0].set_faults(SimFaults {
            drop_cancels: true,
            ..SimFaults::default()
        });
        let id = r.tcp_sale(NO_ANSWER_CARD).await.transaction_id.unwrap().to_string();
        r.wait_sends(&id, "1").await;
        app.advance_clock(10).await;
        r.wait_sends(&id, "2").await;
        r.vans[0].set_faults(SimFaults::default());
        app.advance_clock(10).await;
        r.wait_cancel(&id, "acknowledged").await;
        let repeats: Vec<bool> = r.vans[0].cancels().iter().map(|c| c.repeat).collect();
        assert_eq!(
            repeats,
            [false, true, true],
            "the first send is not a repeat, the others are"
        );
        assert!(app.alerts("cancel_failed").await.is_empty());
    })
    .await
}

async fn a_cancel_never_acknowledged_fails_with_an_alert(backend: Backend) {
    on_gateway(backend, |app| async move {
        let r = rig(&app, &[("vana", 1), ("vanb", 0)], false, "auto").await;
        r.vans[0].set_faults(SimFaults {
            drop_cancels: true,
            ..SimFaults::default()
        });
        let id = r.tcp_sale(NO_ANSWER_CARD).await.transaction_id.unwrap().to_string();
        for sends in 1..=5 {
            r.wait_sends(&id, &sends.to_string()).await;
            if sends < 5 {
                app.advance_clock(10).await;
            }
        }
        r.wait_cancel(&id, "failed").await;
        assert_eq!(r.vans[0].cancels().len(), 5);
        let alerts = app.alerts("cancel_failed").await;
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        assert_eq!(alerts[0]["subject_id"], id.as_str());
        // Nothing more is sent, however long we wait.
        app.advance_clock(60).await;
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(r.vans[0].cancels().len(), 5);
    })
    .await
}

async fn a_single_van_sends_no_network_cancel(backend: Backend) {
    on_gateway(backend, |app| async move {
        let r = rig(&app, &[("vana", 1)], false, "auto").await;
        let answer = r.tcp_sale(NO_ANSWER_CARD).await;
        assert_eq!(answer.response_code, "TO");
        let id = answer.transaction_id.unwrap().to_string();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(r.cancel_column(&id, "status").await, None);
        assert!(r.vans[0].cancels().is_empty());
    })
    .await
}

/// The breaker state of `upstream` as `GET /v1/admin/upstreams` shows it.
async fn upstream(app: &TestApp, id: &str) -> Value {
    let all = app.admin_get("/v1/admin/upstreams").await;
    all.assert_status(200)
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("no upstream {id}"))
}

async fn ten_errors_open_the_breaker_nine_do_not_and_a_probe_closes_it(backend: Backend) {
    on_gateway(backend, |app| async move {
        // vanb has weight 0: everything goes to vana while its breaker is closed.
        let r = rig(&app, &[("vana", 1), ("vanb", 0)], false, "auto").await;
        for _ in 0..9 {
            assert_eq!(r.http_sale(SYSTEM_ERROR_CARD).await["response_code"], "96");
        }
        assert_eq!(upstream(&app, "vana").await["state"], "closed");
        assert_eq!(upstream(&app, "vana").await["errors_in_window"], 9);
        assert_eq!(
            r.http_sale(APPROVED_CARD).await["upstream"],
            "vana",
            "9 errors do not open it"
        );
        assert_eq!(r.http_sale(SYSTEM_ERROR_CARD).await["upstream"], "vana");
        assert_eq!(upstream(&app, "vana").await["state"], "open");
        let eleventh = r.http_sale(APPROVED_CARD).await;
        assert_eq!(eleventh["upstream"], "vanb", "{eleventh}");
        assert_eq!(eleventh["result"], "approved");
        assert_eq!(app.alerts("upstream_circuit_open").await.len(), 1);
        r.http_sale(APPROVED_CARD).await;
        assert_eq!(
            app.alerts("upstream_circuit_open").await.len(),
            1,
            "one alert per opening"
        );
        // After 30 s: half-open, one probe; its success closes the breaker.
        app.advance_clock(30).await;
        assert_eq!(upstream(&app, "vana").await["state"], "half_open");
        let probe = r.http_sale(APPROVED_CARD).await;
        assert_eq!(probe["upstream"], "vana", "{probe}");
        assert_eq!(upstream(&app, "vana").await["state"], "closed");
        assert_eq!(app.alerts("upstream_circuit_closed").await.len(), 1);
        assert_eq!(r.http_sale(APPROVED_CARD).await["upstream"], "vana");
    })
    .await
}

async fn declines_never_open_the_breaker(backend: Backend) {
    on_gateway(backend, |app| async move {
        let r = rig(&app, &[("vana", 1), ("vanb", 0)], false, "auto").await;
        for _ in 0..15 {
            assert_eq!(r.http_sale(DECLINED_CARD).await["result"], "declined");
        }
        assert_eq!(upstream(&app, "vana").await["state"], "closed");
        assert_eq!(r.http_sale(APPROVED_CARD).await["upstream"], "vana");
        assert!(app.alerts("upstream_circuit_open").await.is_empty());
    })
    .await
}

async fn an_unreachable_upstream_moves_the_request_to_the_next(backend: Backend) {
    on_gateway(backend, |app| async move {
        let r = rig(&app, &[("vana", 1), ("vanb", 0)], false, "auto").await;
        r.vans[0].set_faults(SimFaults {
            down: true,
            ..SimFaults::default()
        });
        r.vans[0].shutdown();
        let answer = r.http_sale(APPROVED_CARD).await;
        assert_eq!(answer["upstream"], "vanb", "{answer}");
        assert_eq!(answer["result"], "approved");
        assert_eq!(upstream(&app, "vana").await["errors_in_window"], 1);
    })
    .await
}

async fn a_customer_cancel_goes_to_the_upstream_that_approved(backend: Backend) {
    on_gateway(backend, |app| async move {
        let r = rig(&app, &[("vana", 1), ("vanb", 1)], false, "auto").await;
        let sold = r.http_sale(APPROVED_CARD).await;
        let approval_no = sold["approval_no"].as_str().unwrap().to_owned();
        let upstream = sold["upstream"].as_str().unwrap().to_owned();
        let mut cancel = sale(r.next_seq(), APPROVED_CARD);
        cancel.tx_type = TxType::CardCancel;
        cancel.original = Some(OriginalInput {
            approval_no: approval_no.clone(),
            approved_at: "20261204120000".into(),
        });
        for _ in 0..5 {
            // Whatever the draw: the cancel goes where the sale went.
            let mut again = cancel.clone();
            again.seq_no = r.next_seq();
            let answer = r.tcp(SEALED).await.send(&again).await.unwrap();
            assert_eq!(answer.upstream.as_deref(), Some(upstream.as_str()), "{answer:?}");
        }
        let van = r.vans.iter().find(|v| v.id() == upstream).unwrap();
        assert_eq!(format!("{:?}", van.approvals()[0].status), "Canceled");
        let id = sold["transaction_id"].as_str().unwrap();
        assert_eq!(r.approval_column(id, "status").await.as_deref(), Some("canceled"));
        // A cancel of a sale nobody made: answered here, sent nowhere.
        let mut unknown = cancel.clone();
        unknown.seq_no = r.next_seq();
        unknown.original.as_mut().unwrap().approval_no = "99999999".into();
        let answer = r.tcp(SEALED).await.send(&unknown).await.unwrap();
        assert_eq!(answer.response_code, "NO");
    })
    .await
}

async fn a_direct_card_company_gets_its_cards(backend: Backend) {
    on_gateway(backend, |app| async move {
        let r = rig(&app, &[("vana", 1)], true, "auto").await;
        let answer = r.http_sale(DIRECT_CARD).await;
        assert_eq!(answer["upstream"], "card", "{answer}");
        assert_eq!(
            answer["issuer"],
            minipay_gateway::sim::ISSUER_DEFAULT,
            "the issuer names itself"
        );
        assert_eq!(r.card.approvals().len(), 1);
        assert_eq!(r.http_sale(APPROVED_CARD).await["upstream"], "vana");
    })
    .await
}

async fn malformed_frames_never_crash_the_listener(backend: Backend) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    on_gateway(backend, |app| async move {
        let r = rig(&app, &[("vana", 1)], false, "auto").await;
        let addr = app.pos_addr.clone().unwrap();
        // Garbage, a bad length, a truncated frame then EOF: the connection is closed.
        for bytes in [
            b"\x00\xff garbage garbage".to_vec(),
            b"12a4hello".to_vec(),
            b"0100short".to_vec(),
            b"0000".to_vec(),
        ] {
            let mut raw = tokio::net::TcpStream::connect(&addr).await.unwrap();
            raw.write_all(&bytes).await.unwrap();
            raw.shutdown().await.unwrap();
            let mut rest = Vec::new();
            let read = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut rest)).await;
            assert!(read.is_ok(), "the connection closes");
        }
        let client = r.tcp(SEALED).await;
        // A tampered frame and a wrong key: an error answer, in the clear.
        let mut tampered = client.request_frame(&sale(500, APPROVED_CARD)).unwrap();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let answer = client.send_raw(500, tampered).await.unwrap();
        assert_eq!(answer.response_code, "TE");
        assert!(!answer.encrypted);
        let stranger = PosClient::connect(&addr, &r.terminal_id, TerminalKey([9; 32]), SEALED)
            .await
            .unwrap();
        assert_eq!(
            stranger.send(&sale(501, APPROVED_CARD)).await.unwrap().response_code,
            "TE"
        );
        // A header that names an unknown terminal.
        let nobody = PosClient::connect(&addr, "NOBODY01", r.key.clone(), SEALED)
            .await
            .unwrap();
        assert_eq!(
            nobody.send(&sale(502, APPROVED_CARD)).await.unwrap().response_code,
            "TE"
        );
        // An authentic frame whose body is not the layout: format error.
        let good = client.request_frame(&sale(503, APPROVED_CARD)).unwrap();
        let header = minipay_wire::PosHeader::decode(&good).unwrap();
        let garbage = PosFrame {
            header,
            body: b"not a body".to_vec(),
        };
        let frame = minipay_wire::encode_pos_frame(&garbage, Some(&r.key)).unwrap();
        assert_eq!(client.send_raw(503, frame).await.unwrap().response_code, "FE");
        // Nothing went upstream, and the listener still serves.
        assert_eq!(r.vans[0].requests_seen(), 0);
        assert_eq!(r.tcp_sale(APPROVED_CARD).await.response_code, "00");
        assert_eq!(
            client.send(&sale(504, APPROVED_CARD)).await.unwrap().response_code,
            "00"
        );
    })
    .await
}

async fn a_disabled_terminal_is_refused_over_tcp(backend: Backend) {
    on_gateway(backend, |app| async move {
        let r = rig(&app, &[("vana", 1)], false, "auto").await;
        app.admin_post(&format!("/v1/admin/terminals/{}/disable", r.terminal_id), json!({}))
            .await
            .assert_status(200);
        assert_eq!(r.tcp_sale(APPROVED_CARD).await.response_code, "TE");
        let body = serde_json::to_value(sale(9, APPROVED_CARD)).unwrap();
        r.post_signed(&body, &r.terminal_id, &r.key.0)
            .await
            .assert_error(401, "unauthorized");
        assert_eq!(r.vans[0].requests_seen(), 0);
    })
    .await
}

async fn two_instances_share_one_breaker(backend: Backend) {
    on_gateway(backend, |app| async move {
        let r = rig(&app, &[("vana", 1), ("vanb", 0)], false, "auto").await;
        let twin = start_twin(&app).await;
        let r2 = Rig {
            app: twin.clone(),
            vans: Vec::new(),
            card: r.card.clone(),
            terminal_id: r.terminal_id.clone(),
            key: r.key.clone(),
            seq: AtomicU64::new(10_000),
        };
        // The twin picks the routing up within its reload interval.
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        for _ in 0..5 {
            r.http_sale(SYSTEM_ERROR_CARD).await;
            r2.http_sale(SYSTEM_ERROR_CARD).await;
        }
        assert_eq!(r.http_sale(APPROVED_CARD).await["upstream"], "vanb");
        assert_eq!(r2.http_sale(APPROVED_CARD).await["upstream"], "vanb");
        assert_eq!(app.alerts("upstream_circuit_open").await.len(), 1);
        twin.teardown().await;
    })
    .await
}

async fn weights_70_30_split_ten_thousand_requests(backend: Backend) {
    // Timeouts are not what this test is about: on a loaded machine a 300 ms wait for the
    // in-process simulator can pass, and a timed-out sale is rightly not sent elsewhere.
    let patient = |s: &mut Settings| {
        gateway_settings(s);
        s.upstream_timeout_ms = 10_000;
    };
    run_with(backend, patient, |app| async move {
        const REQUESTS: u64 = 10_000;
        const TERMINAL_IN_FLIGHT: u64 = 32;
        let r = rig(&app, &[("vana", 70), ("vanb", 30)], false, "auto").await;
        let client = r.tcp(SEALED).await;
        let streams = (0..TERMINAL_IN_FLIGHT).map(|lane| {
            let client = &client;
            async move {
                let mut to_a = 0u64;
                for n in (lane..REQUESTS).step_by(TERMINAL_IN_FLIGHT as usize) {
                    let answer = client.send(&sale(n + 1, APPROVED_CARD)).await.unwrap();
                    assert_eq!(answer.response_code, "00", "{answer:?}");
                    to_a += u64::from(answer.upstream.as_deref() == Some("vana"));
                }
                to_a
            }
        });
        let to_a: u64 = futures_util::future::join_all(streams).await.into_iter().sum();
        let share = to_a as f64 / REQUESTS as f64;
        assert!((0.67..=0.73).contains(&share), "vana got {share:.4} of {REQUESTS}");
        assert_eq!(r.vans[0].approvals().len() as u64, to_a);
        assert_eq!(r.vans[1].approvals().len() as u64, REQUESTS - to_a);
    })
    .await
}

/// Every approval event in the outbox: (transaction id, seq, step), in outbox order.
async fn approval_events(app: &TestApp) -> Vec<(String, i64, String)> {
    use sqlx::Connection;
    let sql = "SELECT payload FROM outbox WHERE subject LIKE 'approval.%' ORDER BY created_at, id";
    let payloads: Vec<String> = match app.backend {
        Backend::Postgres => {
            let mut c = sqlx::PgConnection::connect(app.db_url()).await.unwrap();
            sqlx::query_scalar(sql).fetch_all(&mut c).await.unwrap()
        }
        Backend::Sqlite => {
            let mut c = sqlx::SqliteConnection::connect(app.db_url()).await.unwrap();
            sqlx::query_scalar(sql).fetch_all(&mut c).await.unwrap()
        }
    };
    payloads
        .iter()
        .map(|p| {
            let e: Value = serde_json::from_str(p).unwrap();
            let id = e["transaction_id"].as_str().unwrap().to_owned();
            (id, e["seq"].as_i64().unwrap(), e["step"].as_str().unwrap().to_owned())
        })
        .collect()
}

/// Each transaction's steps in sequence order, checked to be numbered 1, 2, 3... without gaps.
fn steps_by_transaction(events: &[(String, i64, String)]) -> std::collections::HashMap<String, Vec<String>> {
    let mut by_tx: std::collections::HashMap<String, Vec<(i64, String)>> = std::collections::HashMap::new();
    for (id, seq, step) in events {
        by_tx.entry(id.clone()).or_default().push((*seq, step.clone()));
    }
    by_tx
        .into_iter()
        .map(|(id, mut steps)| {
            steps.sort();
            let seqs: Vec<i64> = steps.iter().map(|(s, _)| *s).collect();
            assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>(), "{id}: {steps:?}");
            (id, steps.into_iter().map(|(_, step)| step).collect())
        })
        .collect()
}

/// Many approvals in flight are recorded and answered in group commits (fewer transactions
/// than requests), and each still has its own row and its own numbered events.
async fn approvals_in_flight_share_commits_and_keep_their_own_events(backend: Backend) {
    on_gateway(backend, |app| async move {
        const REQUESTS: u64 = 300;
        let r = rig(&app, &[("vana", 1)], false, "auto").await;
        let before = app
            .admin_get("/v1/admin/approval-groups")
            .await
            .assert_status(200)
            .clone();
        assert_eq!(before["enabled"], true, "{before}");
        let clients = [r.tcp(SEALED).await, r.tcp(SEALED).await, r.tcp(SEALED).await];
        let sends = (0..REQUESTS).map(|n| {
            let client = &clients[(n % 3) as usize];
            async move { client.send(&sale(1_000 + n, APPROVED_CARD)).await.unwrap() }
        });
        let answers = futures_util::future::join_all(sends).await;
        assert!(answers.iter().all(|a| a.response_code == "00"), "{answers:?}");
        let numbers: std::collections::HashSet<_> = answers.iter().map(|a| a.approval_no.clone()).collect();
        assert_eq!(numbers.len() as u64, REQUESTS, "one approval each");
        assert_eq!(r.vans[0].approvals().len() as u64, REQUESTS);

        let after = app
            .admin_get("/v1/admin/approval-groups")
            .await
            .assert_status(200)
            .clone();
        for step in ["intake", "finish"] {
            let (groups, requests, largest) = (
                after[step]["groups"].as_u64().unwrap() - before[step]["groups"].as_u64().unwrap(),
                after[step]["requests"].as_u64().unwrap() - before[step]["requests"].as_u64().unwrap(),
                after[step]["largest"].as_u64().unwrap(),
            );
            assert_eq!(
                requests, REQUESTS,
                "{step}: every request went through a group: {after}"
            );
            assert!(
                groups < REQUESTS && largest > 1,
                "{step}: requests shared commits: {after}"
            );
        }

        let steps = steps_by_transaction(&approval_events(&app).await);
        assert_eq!(steps.len() as u64, REQUESTS);
        for (id, steps) in &steps {
            assert_eq!(steps, &["received", "routed", "approved"], "{id}");
        }
        let (any, _) = steps.iter().next().unwrap();
        let sql = "SELECT CAST(COUNT(*) AS TEXT) FROM approvals \
                   WHERE status = 'approved' AND event_seq = 3 AND answer IS NOT NULL AND $1 IS NOT NULL";
        assert_eq!(query_text(&app, sql, any).await, Some(REQUESTS.to_string()));
    })
    .await
}

/// `MINIPAY_APPROVAL_BATCH_MAX=1`: every approval is recorded in transactions of its own, with
/// the same rows and events.
async fn with_grouping_off_each_approval_commits_on_its_own(backend: Backend) {
    let alone = |s: &mut Settings| {
        gateway_settings(s);
        s.approval_batch_max = 1;
    };
    run_with(backend, alone, |app| async move {
        let r = rig(&app, &[("vana", 1)], false, "auto").await;
        let groups = app
            .admin_get("/v1/admin/approval-groups")
            .await
            .assert_status(200)
            .clone();
        assert_eq!(groups, json!({"enabled": false, "intake": null, "finish": null}));
        let client = r.tcp(SEALED).await;
        let sends = (0..20).map(|n| {
            let client = &client;
            async move { client.send(&sale(500 + n, APPROVED_CARD)).await.unwrap() }
        });
        let answers = futures_util::future::join_all(sends).await;
        assert!(answers.iter().all(|a| a.response_code == "00"), "{answers:?}");
        let steps = steps_by_transaction(&approval_events(&app).await);
        assert_eq!(steps.len(), 20);
        assert!(
            steps.values().all(|s| s == &["received", "routed", "approved"]),
            "{steps:?}"
        );
    })
    .await
}

/// An HTTP terminal that hangs up while its sale is with the VAN does not leave it half-way:
/// the sale is answered and recorded all the same, and a repeat gets that answer.
async fn a_terminal_that_hangs_up_does_not_abandon_its_request(backend: Backend) {
    on_gateway(backend, |app| async move {
        let r = rig(&app, &[("vana", 1)], false, "auto").await;
        r.vans[0].set_faults(SimFaults {
            latency_ms: 150,
            ..SimFaults::default()
        });
        let body = serde_json::to_value(sale(4_242, APPROVED_CARD)).unwrap();
        let bytes = serde_json::to_vec(&body).unwrap();
        let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &r.key.0), &bytes);
        let impatient = reqwest::Client::builder()
            .timeout(Duration::from_millis(50))
            .build()
            .unwrap();
        let hung_up = impatient
            .post(format!("{}/v1/pos/approvals", app.base))
            .header(
                "Authorization",
                format!("Terminal {}:{}", r.terminal_id, STANDARD.encode(tag.as_ref())),
            )
            .header("Content-Type", "application/json")
            .body(bytes)
            .send()
            .await;
        assert!(hung_up.is_err(), "the terminal gave up before the answer");

        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(r.vans[0].approvals().len(), 1, "sent once");
        let again = r
            .post_signed(&body, &r.terminal_id, &r.key.0)
            .await
            .assert_status(200)
            .clone();
        assert_eq!(again["result"], "approved", "{again}");
        let id = again["transaction_id"].as_str().unwrap();
        assert_eq!(r.approval_column(id, "status").await.as_deref(), Some("approved"));
        assert_eq!(r.approval_column(id, "event_seq").await.as_deref(), Some("3"));
        assert_eq!(r.vans[0].approvals().len(), 1, "the repeat went nowhere");
    })
    .await
}
