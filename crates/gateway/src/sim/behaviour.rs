//! What a simulator does with one decoded request: the test-card behaviours, faults, and the
//! approval and cancel book-keeping.

use super::ledger::{ApprovalStatus, CancelOutcome, OriginalKeys, SimApproval, mask_pan};
use super::{SimKind, SimState};
use minipay_core::time::SEOUL;
use minipay_wire::{Direction, Message};
use std::time::Duration;

/// What to do after reading a request.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Send this answer once `delay` has passed.
    Answer { answer: Message, delay: Duration },
    /// Never answer.
    Silent,
    /// Close the connection.
    Close,
}

/// A test card's behaviour, chosen by the last 4 digits of its PAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CardBehaviour {
    Approve,
    Decline,
    SystemError,
    NoAnswer,
    LateApproval,
    CloseConnection,
}

impl CardBehaviour {
    fn of(pan: Option<&str>) -> Self {
        let last4 = pan.and_then(|p| p.get(p.len().saturating_sub(4)..));
        match last4 {
            Some("0002") => Self::Decline,
            Some("0003") => Self::SystemError,
            Some("0004") => Self::NoAnswer,
            Some("0005") => Self::LateApproval,
            Some("0006") => Self::CloseConnection,
            _ => Self::Approve,
        }
    }
}

/// Answer codes and texts (KSNET-style; the dialect maps them to its own if it must).
const CODE_APPROVED: &str = "00";
const CODE_NO_ORIGINAL: &str = "14";
const CODE_DECLINED_LIMIT: &str = "51";
const CODE_SYSTEM_ERROR: &str = "96";
const CODE_UNKNOWN_TX: &str = "12";
const TEXT_APPROVED: &str = "정상승인";
const TEXT_CANCELED: &str = "취소완료";
const TEXT_NO_ORIGINAL: &str = "원거래없음";
const TEXT_DECLINED_LIMIT: &str = "한도초과";
const TEXT_SYSTEM_ERROR: &str = "시스템오류";
const TEXT_UNKNOWN_TX: &str = "거래불가";

/// Request fields every answer echoes when the request has them.
const ECHOED: &[&str] = &[
    "upstream_ref",
    "terminal_id",
    "merchant_id",
    "seq_no",
    "sent_at",
    "amount",
    "installment_months",
    "original_approval_no",
    "original_approved_at",
    "transaction_id",
];

/// Decides the outcome of one request and records what it approves or cancels.
pub(crate) fn handle(state: &SimState, req: &Message) -> Outcome {
    let outcome = match req.tx_type.as_str() {
        "card_approval" | "cash_receipt" => approve(state, req),
        "card_cancel" | "cash_receipt_cancel" => customer_cancel(state, req),
        "network_cancel" => network_cancel(state, req),
        _ => answer_now(answer_to(req, CODE_UNKNOWN_TX, TEXT_UNKNOWN_TX)),
    };
    with_latency(outcome, state.faults().latency_ms)
}

fn with_latency(outcome: Outcome, latency_ms: u64) -> Outcome {
    match outcome {
        Outcome::Answer { answer, delay } => Outcome::Answer {
            answer,
            delay: delay + Duration::from_millis(latency_ms),
        },
        other => other,
    }
}

fn answer_now(answer: Message) -> Outcome {
    Outcome::Answer {
        answer,
        delay: Duration::ZERO,
    }
}

fn approve(state: &SimState, req: &Message) -> Outcome {
    let pan = card_number(req);
    match CardBehaviour::of(pan.as_deref()) {
        CardBehaviour::Decline => answer_now(answer_to(req, CODE_DECLINED_LIMIT, TEXT_DECLINED_LIMIT)),
        CardBehaviour::SystemError => answer_now(system_error(req)),
        CardBehaviour::NoAnswer => Outcome::Silent,
        CardBehaviour::CloseConnection => Outcome::Close,
        CardBehaviour::LateApproval => Outcome::Answer {
            answer: record_approval(state, req, pan.as_deref()),
            delay: state.config.late_after,
        },
        CardBehaviour::Approve if fastrand::f64() < state.faults().error_rate => answer_now(system_error(req)),
        CardBehaviour::Approve => answer_now(record_approval(state, req, pan.as_deref())),
    }
}

fn system_error(req: &Message) -> Message {
    answer_to(req, CODE_SYSTEM_ERROR, TEXT_SYSTEM_ERROR)
}

/// Makes and records the approval (the upstream approves at once, even when its answer is
/// late), and returns its answer.
fn record_approval(state: &SimState, req: &Message, pan: Option<&str>) -> Message {
    let approved_at = now_text(state);
    let mut ledger = state.ledger();
    let approval_no = ledger.next_approval_no();
    ledger.record_approval(SimApproval {
        upstream_ref: field(req, "upstream_ref"),
        tx_type: req.tx_type.clone(),
        terminal_id: field(req, "terminal_id"),
        seq_no: field(req, "seq_no"),
        sent_at: field(req, "sent_at"),
        amount: field(req, "amount"),
        pan_masked: pan.map(mask_pan).unwrap_or_default(),
        approval_no: approval_no.clone(),
        approved_at: approved_at.clone(),
        status: ApprovalStatus::Approved,
        canceled_at: None,
    });
    drop(ledger);
    let issuer = issuer(state, pan);
    answer_to(req, CODE_APPROVED, TEXT_APPROVED)
        .with("approval_no", approval_no)
        .with("approved_at", approved_at)
        .with("issuer", issuer)
}

fn customer_cancel(state: &SimState, req: &Message) -> Outcome {
    let original = field(req, "original_approval_no");
    let at = now_text(state);
    let outcome = state
        .ledger()
        .cancel_by_approval_no(&original, &at, &field(req, "upstream_ref"));
    let answer = match outcome {
        CancelOutcome::Canceled => answer_to(req, CODE_APPROVED, TEXT_CANCELED)
            .with("approval_no", original)
            .with("approved_at", at),
        CancelOutcome::NotFound => answer_to(req, CODE_NO_ORIGINAL, TEXT_NO_ORIGINAL),
    };
    answer_now(answer)
}

fn network_cancel(state: &SimState, req: &Message) -> Outcome {
    let keys = OriginalKeys {
        terminal_id: field(req, "terminal_id"),
        seq_no: field(req, "seq_no"),
        sent_at: field(req, "sent_at"),
        amount: field(req, "amount"),
        approval_no: original_approval_no(req),
    };
    let repeat = req.get("repeat").map(str::trim) == Some("1");
    let at = now_text(state);
    let found = state
        .ledger()
        .network_cancel(&keys, repeat, &at, &field(req, "upstream_ref"));
    tracing::debug!(sim = %state.config.id, found, repeat, "network cancel");
    if state.faults().drop_cancels {
        return Outcome::Silent;
    }
    // Answered "00" whether or not the original was found: the gateway only needs to know
    // that no approval stands.
    answer_now(answer_to(req, CODE_APPROVED, TEXT_CANCELED))
}

/// The original's approval number a network cancel names, if any (`original_approval_no`, or
/// `approval_no`); blank or all-zero means "not known".
fn original_approval_no(req: &Message) -> Option<String> {
    let known = |no: &&str| !no.is_empty() && no.bytes().any(|b| b != b'0');
    ["original_approval_no", "approval_no"]
        .iter()
        .find_map(|name| req.get(name).map(str::trim).filter(known))
        .map(str::to_owned)
}

/// The answer to `req` with the request's keys echoed.
fn answer_to(req: &Message, code: &str, text: &str) -> Message {
    let mut answer = Message::new(req.tx_type.clone(), Direction::Answer);
    for name in ECHOED {
        if let Some(value) = req.get(name) {
            answer.set(name, value);
        }
    }
    answer.with("response_code", code).with("message", text)
}

/// A request field, trimmed of the padding a fixed layout may leave; empty if absent.
fn field(req: &Message, name: &str) -> String {
    req.get(name).map(str::trim).unwrap_or_default().to_owned()
}

/// The PAN from `pan`, or from `track2` before its `=` separator.
fn card_number(req: &Message) -> Option<String> {
    let pan = req.get("pan").map(str::trim).filter(|p| !p.is_empty());
    let from_track2 = || {
        let track2 = req.get("track2")?.trim();
        let pan = track2.split(['=', 'D', 'd']).next()?;
        let pan = pan.trim_start_matches(';');
        (!pan.is_empty()).then_some(pan)
    };
    pan.or_else(from_track2).map(str::to_owned)
}

fn now_text(state: &SimState) -> String {
    let now = state.config.clock.now().to_zoned(SEOUL.clone());
    now.strftime("%Y%m%d%H%M%S").to_string()
}

fn issuer(state: &SimState, pan: Option<&str>) -> String {
    match state.config.kind {
        SimKind::Card => state.config.issuer.clone(),
        SimKind::Van => issuer_of_bin(pan.unwrap_or_default()).to_owned(),
    }
}

/// A made-up BIN table for the VAN sim: any fixed name per prefix is enough for tests.
fn issuer_of_bin(pan: &str) -> &'static str {
    match pan.as_bytes().first() {
        Some(b'3') => "AMEX",
        Some(b'4') => "VISA",
        Some(b'5') => "MASTER",
        Some(b'6') => "UNIONPAY",
        Some(b'9') => "BC",
        _ => "LOCAL",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviour_by_last_four_digits() {
        assert_eq!(CardBehaviour::of(Some("9410123456780002")), CardBehaviour::Decline);
        assert_eq!(
            CardBehaviour::of(Some("9410123456780006")),
            CardBehaviour::CloseConnection
        );
        assert_eq!(CardBehaviour::of(Some("9410123456780010")), CardBehaviour::Approve);
        assert_eq!(CardBehaviour::of(Some("12")), CardBehaviour::Approve);
        assert_eq!(CardBehaviour::of(None), CardBehaviour::Approve);
    }

    #[test]
    fn pan_from_track2() {
        let req = Message::new("card_approval", Direction::Request).with("track2", "9410123456780005=2812101");
        assert_eq!(card_number(&req).as_deref(), Some("9410123456780005"));
    }
}
