//! The VAN and card-company simulators over real TCP, for both shipped upstream dialects.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use jiff::Timestamp;
use minipay_core::ManualClock;
use minipay_gateway::sim::{
    ApprovalStatus, CancelKind, SimConfig, SimFaults, SimHandle, SimKind, Simulator, http_router,
};
use minipay_wire::{Dialect, Direction, LinkCodec, Message};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use tower::ServiceExt;

/// How long a test waits for something that should happen.
const WAIT: Duration = Duration::from_secs(3);
/// How long a test waits to be sure something does not happen.
const QUIET: Duration = Duration::from_millis(300);
/// 09:30:00 in Seoul on 2026-03-01.
const NOW: &str = "2026-03-01T00:30:00Z";
const NOW_SEOUL: &str = "20260301093000";
const SENT_AT: &str = "20260301092959";
const TERMINAL: &str = "T0000001";
const AMOUNT: u64 = 15_000;

fn dialect(name: &str) -> Dialect {
    minipay_wire::shipped(name).expect("a shipped dialect")
}

async fn start_sim(dialect_name: &str, kind: SimKind) -> SimHandle {
    let mut config = SimConfig::new(format!("{dialect_name}-sim"), kind, dialect(dialect_name));
    config.late_after = Duration::from_millis(200);
    config.issuer = "TESTCARD".into();
    config.clock = Arc::new(ManualClock::new(NOW.parse::<Timestamp>().unwrap()));
    Simulator::start("127.0.0.1:0".parse().unwrap(), config)
        .await
        .expect("the sim starts")
}

/// A gateway-side link to a sim.
struct Client {
    link: Framed<TcpStream, LinkCodec>,
    dialect: Dialect,
}

impl Client {
    async fn connect(sim: &SimHandle, dialect_name: &str) -> Self {
        let dialect = dialect(dialect_name);
        let stream = TcpStream::connect(sim.addr()).await.expect("connects");
        let link = Framed::new(stream, LinkCodec::new(dialect.framing(), 9_999));
        Self { link, dialect }
    }

    async fn send(&mut self, msg: &Message) {
        let bytes = self.dialect.encode(msg).expect("the request encodes");
        self.link.send(Bytes::from(bytes)).await.expect("sent");
    }

    /// The next answer, or `None` if none comes within `within` (or the link closed).
    async fn recv(&mut self, within: Duration) -> Option<Message> {
        let frame = tokio::time::timeout(within, self.link.next()).await.ok()??;
        let frame = frame.ok()?;
        let msg = self.dialect.decode(&frame).expect("the answer decodes");
        assert_eq!(msg.direction, Direction::Answer);
        Some(msg)
    }

    async fn answer(&mut self) -> Message {
        self.recv(WAIT).await.expect("an answer")
    }

    async fn exchange(&mut self, msg: &Message) -> Message {
        self.send(msg).await;
        let answer = self.answer().await;
        assert_eq!(answer.get("upstream_ref"), msg.get("upstream_ref"));
        answer
    }

    /// Whether the sim closes the link within `within`.
    async fn is_closed(&mut self, within: Duration) -> bool {
        match tokio::time::timeout(within, self.link.next()).await {
            Ok(None | Some(Err(_))) => true,
            Ok(Some(Ok(_))) => panic!("an unexpected frame"),
            Err(_) => false,
        }
    }
}

fn upstream_ref(n: u64) -> String {
    format!("{n:012}")
}

fn seq_no(n: u64) -> String {
    format!("{n:010}")
}

fn pan(last4: &str) -> String {
    format!("941012345678{last4}")
}

fn approval(n: u64, last4: &str) -> Message {
    Message::new("card_approval", Direction::Request)
        .with("upstream_ref", upstream_ref(n))
        .with("terminal_id", TERMINAL)
        .with("merchant_id", "M000000001")
        .with("seq_no", seq_no(n))
        .with("sent_at", SENT_AT)
        .with("amount", AMOUNT.to_string())
        .with("pan", pan(last4))
        .with("expiry", "2812")
        .with("installment_months", "00")
}

fn network_cancel(n: u64, original: u64, approval_no: Option<&str>) -> Message {
    let msg = Message::new("network_cancel", Direction::Request)
        .with("upstream_ref", upstream_ref(n))
        .with("terminal_id", TERMINAL)
        .with("merchant_id", "M000000001")
        .with("seq_no", seq_no(original))
        .with("sent_at", SENT_AT)
        .with("amount", AMOUNT.to_string())
        .with("pan", pan("0010"))
        .with("expiry", "2812")
        .with("installment_months", "00")
        .with("repeat", "0");
    match approval_no {
        Some(no) => msg.with("original_approval_no", no),
        None => msg,
    }
}

fn card_cancel(n: u64, original_approval_no: &str) -> Message {
    Message::new("card_cancel", Direction::Request)
        .with("upstream_ref", upstream_ref(n))
        .with("terminal_id", TERMINAL)
        .with("merchant_id", "M000000001")
        .with("seq_no", seq_no(n))
        .with("sent_at", SENT_AT)
        .with("amount", AMOUNT.to_string())
        .with("pan", pan("0010"))
        .with("expiry", "2812")
        .with("installment_months", "00")
        .with("original_approval_no", original_approval_no)
        .with("original_approved_at", NOW_SEOUL)
}

fn code(answer: &Message) -> &str {
    answer.get("response_code").expect("a response code").trim()
}

fn text(answer: &Message) -> &str {
    answer.get("message").unwrap_or_default().trim()
}

async fn approves_with_an_8_digit_number(d: &str) {
    let sim = start_sim(d, SimKind::Card).await;
    let mut c = Client::connect(&sim, d).await;
    let answer = c.exchange(&approval(1, "0010")).await;
    assert_eq!(code(&answer), "00");
    assert_eq!(text(&answer), "정상승인");
    let no = answer.get("approval_no").expect("an approval number");
    assert!(no.len() == 8 && no.bytes().all(|b| b.is_ascii_digit()), "{no}");
    assert_eq!(answer.get("approved_at").map(str::trim), Some(NOW_SEOUL));
    let approvals = sim.approvals();
    assert_eq!(approvals.len(), 1);
    let a = &approvals[0];
    assert_eq!(a.approval_no, no);
    assert_eq!(a.status, ApprovalStatus::Approved);
    assert_eq!(a.approved_at, NOW_SEOUL);
    assert_eq!(a.pan_masked, "941012******0010");
    assert_eq!(a.amount.parse::<u64>().unwrap(), AMOUNT);
    assert_eq!(sim.requests_seen(), 1);
}

async fn answers_each_test_card(d: &str) {
    let sim = start_sim(d, SimKind::Van).await;
    let mut c = Client::connect(&sim, d).await;
    let declined = c.exchange(&approval(2, "0002")).await;
    assert_eq!((code(&declined), text(&declined)), ("51", "한도초과"));
    let error = c.exchange(&approval(3, "0003")).await;
    assert_eq!((code(&error), text(&error)), ("96", "시스템오류"));
    c.send(&approval(4, "0004")).await;
    assert!(c.recv(QUIET).await.is_none(), "0004 is never answered");
    assert!(sim.approvals().is_empty(), "none of these is approved");
    assert_eq!(sim.requests_seen(), 3);
}

async fn answers_0005_late_but_approves(d: &str) {
    let sim = start_sim(d, SimKind::Card).await;
    let mut c = Client::connect(&sim, d).await;
    let started = Instant::now();
    let answer = c.exchange(&approval(5, "0005")).await;
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(code(&answer), "00");
    assert_eq!(sim.approvals().len(), 1);
}

async fn closes_on_0006(d: &str) {
    let sim = start_sim(d, SimKind::Card).await;
    let mut c = Client::connect(&sim, d).await;
    c.send(&approval(6, "0006")).await;
    assert!(c.is_closed(WAIT).await);
    assert!(sim.approvals().is_empty());
    assert_eq!(sim.requests_seen(), 1);
}

async fn matches_many_in_flight_by_upstream_ref(d: &str) {
    let sim = start_sim(d, SimKind::Van).await;
    sim.set_faults(SimFaults {
        latency_ms: 50,
        ..SimFaults::default()
    });
    let mut c = Client::connect(&sim, d).await;
    let sent: BTreeSet<String> = (100..120).map(upstream_ref).collect();
    for n in 100..120 {
        c.send(&approval(n, "0010")).await;
    }
    let mut answered = BTreeSet::new();
    for _ in 0..20 {
        let answer = c.answer().await;
        assert_eq!(code(&answer), "00");
        let r = answer.get("upstream_ref").unwrap().to_owned();
        let a = sim.approvals().into_iter().find(|a| a.upstream_ref == r).unwrap();
        assert_eq!(answer.get("approval_no"), Some(a.approval_no.as_str()));
        answered.insert(r);
    }
    assert_eq!(answered, sent);
    let numbers: BTreeSet<String> = sim.approvals().into_iter().map(|a| a.approval_no).collect();
    assert_eq!(numbers.len(), 20, "approval numbers are unique");
}

async fn network_cancel_marks_the_original(d: &str) {
    let sim = start_sim(d, SimKind::Van).await;
    let mut c = Client::connect(&sim, d).await;
    let approved = c.exchange(&approval(7, "0010")).await;
    let no = approved.get("approval_no").unwrap().to_owned();
    let wrong_number = c.exchange(&network_cancel(8, 7, Some("99999999"))).await;
    assert_eq!(code(&wrong_number), "00", "answered even when nothing is found");
    assert_eq!(sim.approvals()[0].status, ApprovalStatus::Approved);
    let cancel = network_cancel(9, 7, Some(&no)).with("repeat", "1");
    assert_eq!(code(&c.exchange(&cancel).await), "00");
    let a = &sim.approvals()[0];
    assert_eq!(a.status, ApprovalStatus::NetworkCanceled);
    assert_eq!(a.canceled_at.as_deref(), Some(NOW_SEOUL));
    let cancels = sim.cancels();
    assert_eq!(cancels.len(), 2);
    assert!(cancels.iter().all(|k| k.kind == CancelKind::Network));
    assert!(!cancels[0].found && cancels[1].found && cancels[1].repeat);
}

async fn card_cancel_by_original_approval_no(d: &str) {
    let sim = start_sim(d, SimKind::Card).await;
    let mut c = Client::connect(&sim, d).await;
    let approved = c.exchange(&approval(10, "0010")).await;
    let no = approved.get("approval_no").unwrap().to_owned();
    assert_eq!(code(&c.exchange(&card_cancel(11, &no)).await), "00");
    assert_eq!(sim.approvals()[0].status, ApprovalStatus::Canceled);
    let again = c.exchange(&card_cancel(12, &no)).await;
    assert_eq!(code(&again), "14", "already canceled");
    assert_eq!(code(&c.exchange(&card_cancel(13, "00000001")).await), "14");
    let cancels = sim.cancels();
    assert_eq!(cancels.iter().filter(|k| k.found).count(), 1);
    assert!(cancels.iter().all(|k| k.kind == CancelKind::Customer));
}

fn cash_receipt(n: u64, tx_type: &str) -> Message {
    Message::new(tx_type, Direction::Request)
        .with("upstream_ref", upstream_ref(n))
        .with("terminal_id", TERMINAL)
        .with("seq_no", seq_no(n))
        .with("sent_at", SENT_AT)
        .with("amount", AMOUNT.to_string())
        .with("cash_receipt_id_type", "1")
        .with("cash_receipt_id_number", "01012345678")
}

async fn cash_receipts_are_approved_and_canceled(d: &str) {
    let sim = start_sim(d, SimKind::Van).await;
    let mut c = Client::connect(&sim, d).await;
    let approved = c.exchange(&cash_receipt(40, "cash_receipt")).await;
    assert_eq!(code(&approved), "00");
    let no = approved.get("approval_no").unwrap().to_owned();
    let cancel = cash_receipt(41, "cash_receipt_cancel").with("original_approval_no", &no);
    assert_eq!(code(&c.exchange(&cancel).await), "00");
    let a = &sim.approvals()[0];
    assert_eq!(
        (a.tx_type.as_str(), a.status),
        ("cash_receipt", ApprovalStatus::Canceled)
    );
    assert_eq!(a.pan_masked, "");
}

async fn error_rate_answers_96(d: &str) {
    let sim = start_sim(d, SimKind::Card).await;
    sim.set_faults(SimFaults {
        error_rate: 1.0,
        ..SimFaults::default()
    });
    let mut c = Client::connect(&sim, d).await;
    assert_eq!(code(&c.exchange(&approval(14, "0010")).await), "96");
    assert!(sim.approvals().is_empty());
}

async fn down_closes_links(d: &str) {
    let sim = start_sim(d, SimKind::Van).await;
    let mut open = Client::connect(&sim, d).await;
    sim.set_faults(SimFaults {
        down: true,
        ..SimFaults::default()
    });
    assert!(open.is_closed(WAIT).await, "an open link is closed");
    if let Ok(stream) = TcpStream::connect(sim.addr()).await {
        let dialect = dialect(d);
        let link = Framed::new(stream, LinkCodec::new(dialect.framing(), 9_999));
        assert!(Client { link, dialect }.is_closed(WAIT).await, "a new link is closed");
    }
    sim.set_faults(SimFaults::default());
    let mut c = Client::connect(&sim, d).await;
    assert_eq!(code(&c.exchange(&approval(15, "0010")).await), "00");
}

async fn drop_cancels_leaves_them_unanswered(d: &str) {
    let sim = start_sim(d, SimKind::Van).await;
    let mut c = Client::connect(&sim, d).await;
    c.exchange(&approval(16, "0010")).await;
    sim.set_faults(SimFaults {
        drop_cancels: true,
        ..SimFaults::default()
    });
    c.send(&network_cancel(17, 16, None)).await;
    assert!(c.recv(QUIET).await.is_none());
    assert_eq!(sim.cancels().len(), 1, "read and recorded");
    assert_eq!(code(&c.exchange(&approval(18, "0010")).await), "00");
}

async fn settlement_file_lists_approvals_and_cancels(d: &str) {
    let sim = start_sim(d, SimKind::Card).await;
    let mut c = Client::connect(&sim, d).await;
    let first = c.exchange(&approval(20, "0010")).await;
    let no = first.get("approval_no").unwrap().to_owned();
    c.exchange(&approval(21, "0011")).await;
    c.exchange(&card_cancel(22, &no)).await;
    let file = sim.settlement_file(jiff::civil::date(2026, 3, 1));
    let lines: Vec<&str> = file.lines().collect();
    assert_eq!(
        lines[0],
        "record_type,approval_no,terminal_id,seq_no,sent_at,amount,approved_at,canceled_at"
    );
    assert_eq!(lines.len(), 4, "{file}");
    let cancel = format!("cancel,{no},{TERMINAL},20,{SENT_AT},{AMOUNT},");
    assert!(lines[3].starts_with(&cancel), "{file}");
    assert!(lines[3].ends_with(&format!(",{NOW_SEOUL},{NOW_SEOUL}")), "{file}");
    assert!(lines[1].starts_with(&format!("approval,{no},")), "{file}");
    let other_day = sim.settlement_file(jiff::civil::date(2026, 3, 2));
    assert_eq!(other_day.lines().count(), 1);
}

async fn survives_garbage(d: &str) {
    let sim = start_sim(d, SimKind::Van).await;
    let mut raw = TcpStream::connect(sim.addr()).await.unwrap();
    // A length prefix of `\x00\x07` (Binary2) or `zz\x00\x07` (not digits: Ascii4), then junk.
    raw.write_all(b"\x00\x07zz\x00\x07garbage!").await.unwrap();
    let dialect = dialect(d);
    let link = Framed::new(raw, LinkCodec::new(dialect.framing(), 9_999));
    assert!(Client { link, dialect }.is_closed(WAIT).await);
    let mut c = Client::connect(&sim, d).await;
    assert_eq!(code(&c.exchange(&approval(23, "0010")).await), "00");
}

macro_rules! for_both_dialects {
    ($($test:ident),* $(,)?) => {
        mod ksnet {
            $(#[tokio::test] async fn $test() { super::$test("ksnet").await })*
        }
        mod iso8583 {
            $(#[tokio::test] async fn $test() { super::$test("iso8583").await })*
        }
    };
}

for_both_dialects!(
    approves_with_an_8_digit_number,
    answers_each_test_card,
    answers_0005_late_but_approves,
    closes_on_0006,
    matches_many_in_flight_by_upstream_ref,
    network_cancel_marks_the_original,
    card_cancel_by_original_approval_no,
    cash_receipts_are_approved_and_canceled,
    error_rate_answers_96,
    down_closes_links,
    drop_cancels_leaves_them_unanswered,
    settlement_file_lists_approvals_and_cancels,
    survives_garbage,
);

async fn call(router: &axum::Router, method: &str, uri: &str, body: &str) -> (StatusCode, String) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn http_sets_faults_and_serves_the_settlement_file() {
    let van = start_sim("ksnet", SimKind::Van).await;
    let card = start_sim("iso8583", SimKind::Card).await;
    let router = http_router(vec![van.clone(), card.clone()]);
    let (status, body) = call(
        &router,
        "PUT",
        "/v1/admin/sims/ksnet-sim",
        r#"{"latency_ms":25,"down":true}"#,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let faults: SimFaults = serde_json::from_str(&body).unwrap();
    assert_eq!(
        faults,
        SimFaults {
            latency_ms: 25,
            down: true,
            ..SimFaults::default()
        }
    );
    assert_eq!(van.faults(), faults);
    assert_eq!(card.faults(), SimFaults::default());
    let (status, _) = call(&router, "PUT", "/v1/admin/sims/nope", "{}").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call(&router, "PUT", "/v1/admin/sims/ksnet-sim", r#"{"error_rate":2}"#).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut c = Client::connect(&card, "iso8583").await;
    c.exchange(&approval(30, "0010")).await;
    let uri = "/sim/settlement-file?date=2026-03-01&sim=iso8583-sim";
    let (status, csv) = call(&router, "GET", uri, "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(csv.lines().count(), 2, "{csv}");
    let (status, _) = call(&router, "GET", "/sim/settlement-file?date=2026-03-01", "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "two sims: the id is needed");
}
