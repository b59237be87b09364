//! From approval events to the read side's rows, without I/O: an event becomes a history step,
//! a transaction's recorded steps fold (by `core::gateway::projection`) into its final state.

use jiff::Timestamp;
use jiff::civil::Date;
use minipay_core::BusinessDate;
use minipay_core::gateway::{ApprovalHistory, CancelStatus, Recorded, RequestStatus, Step};
use minipay_events::Event;
use minipay_store::{ApprovalView, HistoryStep};
use serde::Deserialize;
use serde_json::Value;
use uuid::Uuid;

/// The response code of an approval.
const APPROVED_CODE: &str = "00";

/// The subjects the projection takes.
pub const APPROVAL_SUBJECTS: &str = "approval.*";

/// An approval event's data, as the gateway writes it.
#[derive(Debug, Deserialize)]
struct ApprovalEventData {
    transaction_id: Uuid,
    seq: i32,
    step: String,
    upstream: Option<String>,
    #[serde(default)]
    detail: Value,
    at: Timestamp,
}

/// Why an event cannot be projected (it is retried, then dead-lettered with this reason).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event {event}: {why}")]
pub struct Unprojectable {
    pub event: Uuid,
    pub why: String,
}

/// The history step an approval event reports.
pub fn history_step(event: &Event) -> Result<HistoryStep, Unprojectable> {
    let bad = |why: String| Unprojectable { event: event.id, why };
    let data: ApprovalEventData = event.data().map_err(|e| bad(format!("not an approval event: {e}")))?;
    if data.seq < 1 {
        return Err(bad(format!("sequence number {} (they start at 1)", data.seq)));
    }
    let step = HistoryStep {
        transaction_id: data.transaction_id,
        seq: data.seq,
        step: data.step,
        upstream: data.upstream,
        detail: data.detail.to_string(),
        at: data.at,
        event_id: event.id,
    };
    core_step(&step).map_err(bad)?;
    Ok(step)
}

fn text(detail: &Value, key: &str) -> Option<String> {
    match detail.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// The step as the core fold knows it.
pub fn core_step(s: &HistoryStep) -> Result<Step, String> {
    let detail: Value = serde_json::from_str(&s.detail).map_err(|e| format!("detail is not JSON: {e}"))?;
    let code = || text(&detail, "response_code").ok_or_else(|| format!("a {} step without response_code", s.step));
    Ok(match s.step.as_str() {
        "received" => Step::Received {
            amount: detail
                .get("amount")
                .and_then(Value::as_i64)
                .ok_or("a received step without amount")?,
        },
        "routed" => Step::Routed {
            upstream: s.upstream.clone().ok_or("a routed step without upstream")?,
        },
        "approved" => Step::Approved {
            approval_no: text(&detail, "approval_no").unwrap_or_default(),
        },
        "declined" => Step::Declined { response_code: code()? },
        "timed_out" => Step::TimedOut,
        "failed" => Step::Failed { response_code: code()? },
        "cancel_queued" => Step::CancelQueued,
        "cancel_sent" => Step::CancelSent,
        "cancel_acknowledged" => Step::CancelAcknowledged,
        "cancel_failed" => Step::CancelFailed,
        "late_answer" => Step::LateAnswer { response_code: code()? },
        other => return Err(format!("unknown step {other:?}")),
    })
}

/// A transaction's recorded steps, and which of `arrived` conflict with them (another step
/// under a sequence number already taken). `recorded` are one transaction's, in order.
pub fn conflicts<'a>(recorded: &[HistoryStep], arrived: &'a [HistoryStep]) -> Vec<&'a HistoryStep> {
    let mut history = history_of(recorded);
    arrived
        .iter()
        .filter(|a| recorded.iter().any(|r| r.seq == a.seq && r.event_id != a.event_id))
        .filter(|a| core_step(a).is_ok_and(|step| history.record(seq_of(a), step) == Recorded::Conflicting))
        .collect()
}

fn seq_of(s: &HistoryStep) -> u32 {
    u32::try_from(s.seq).expect("recorded sequence numbers are positive")
}

fn history_of(steps: &[HistoryStep]) -> ApprovalHistory {
    let mut history = ApprovalHistory::new();
    for s in steps {
        if let Ok(step) = core_step(s) {
            history.record(seq_of(s), step);
        }
    }
    history
}

/// The final state of one transaction from its recorded steps (in sequence order); `None`
/// for none.
pub fn view_of(steps: &[HistoryStep]) -> Option<ApprovalView> {
    let first = steps.first()?;
    debug_assert!(steps.iter().all(|s| s.transaction_id == first.transaction_id));
    let state = history_of(steps).state()?;
    let received = steps.iter().find(|s| s.step == "received");
    let intake: Value = received.map_or(Value::Null, |s| serde_json::from_str(&s.detail).unwrap_or_default());
    let approved = steps.iter().rev().find(|s| s.step == "approved");
    let approved_detail: Value = approved.map_or(Value::Null, |s| serde_json::from_str(&s.detail).unwrap_or_default());
    let approved_at = text(&approved_detail, "approved_at");
    let late = steps.iter().rev().find(|s| s.step == "late_answer");
    let late_detail: Value = late.map_or(Value::Null, |s| serde_json::from_str(&s.detail).unwrap_or_default());
    Some(ApprovalView {
        transaction_id: first.transaction_id,
        merchant_id: text(&intake, "merchant_id").and_then(|m| m.parse().ok()),
        terminal_id: text(&intake, "terminal_id"),
        seq_no: intake.get("seq_no").and_then(Value::as_i64),
        sent_at: text(&intake, "sent_at"),
        tx_type: text(&intake, "tx_type"),
        amount: state.amount,
        card_masked: text(&intake, "card"),
        original_id: text(&intake, "original_id").and_then(|o| o.parse().ok()),
        status: status_name(state.status).to_owned(),
        upstream: state.upstream.clone(),
        response_code: state.response_code.clone(),
        approval_no: state.approval_no.clone().filter(|n| !n.is_empty()),
        business_date: match (approved, late) {
            (Some(a), _) => Some(settles_on(approved_at.as_deref(), a.at)),
            // Approved upstream after we gave up: it settles there on the day it came.
            (None, Some(l)) if state.late_response_code.as_deref() == Some(APPROVED_CODE) => {
                Some(settles_on(text(&late_detail, "approved_at").as_deref(), l.at))
            }
            _ => None,
        },
        approved_at,
        cancel_status: cancel_name(state.cancel).to_owned(),
        cancel_date: steps
            .iter()
            .find(|s| s.step == "cancel_acknowledged")
            .map(|s| BusinessDate::containing(s.at).date()),
        cancel_sends: i32::try_from(steps.iter().filter(|s| s.step == "cancel_sent").count()).unwrap_or(i32::MAX),
        late_response_code: state.late_response_code.clone(),
        late_approval_no: text(&late_detail, "approval_no"),
        last_seq: i32::try_from(state.last_seq).expect("sequence numbers fit the column"),
        gaps: state.gaps,
        conflicts: 0,
        received_at: received.map(|s| s.at),
        updated_at: steps.iter().map(|s| s.at).max().expect("at least one step"),
    })
}

/// The business day an approval settles on: the Asia/Seoul date of the upstream's
/// `approved_at` (`YYYYMMDDhhmmss`, Seoul time, as the settlement file dates it), or of our
/// own time of the answer when the upstream gave none.
pub fn settles_on(approved_at: Option<&str>, answered: Timestamp) -> Date {
    approved_at
        .and_then(|a| a.get(..8))
        .and_then(|day| Date::strptime("%Y%m%d", day).ok())
        .unwrap_or_else(|| BusinessDate::containing(answered).date())
}

/// Every name [`status_name`] gives, in the order a transaction goes through them (what the
/// listings filter by).
pub const STATUSES: [&str; 6] = ["received", "sent", "approved", "declined", "timeout", "error"];

/// The status as the approvals table names it.
pub fn status_name(s: RequestStatus) -> &'static str {
    match s {
        RequestStatus::Received => "received",
        RequestStatus::Sent => "sent",
        RequestStatus::Approved => "approved",
        RequestStatus::Declined => "declined",
        RequestStatus::TimedOut => "timeout",
        RequestStatus::Failed => "error",
    }
}

fn cancel_name(c: CancelStatus) -> &'static str {
    match c {
        CancelStatus::None => "none",
        CancelStatus::Queued => "queued",
        CancelStatus::Sent(_) => "sent",
        CancelStatus::Acknowledged => "acknowledged",
        CancelStatus::Failed => "failed",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn step(seq: i32, name: &str, detail: Value) -> HistoryStep {
        HistoryStep {
            transaction_id: Uuid::nil(),
            seq,
            step: name.into(),
            upstream: Some("van_a".into()),
            detail: detail.to_string(),
            at: Timestamp::from_second(1_800_000_000 + i64::from(seq)).unwrap(),
            event_id: Uuid::from_u128(seq as u128),
        }
    }

    #[test]
    fn an_approval_settles_on_the_upstreams_seoul_date() {
        let steps = [
            step(
                1,
                "received",
                json!({"amount": 15000, "tx_type": "card_approval", "terminal_id": "T0000001"}),
            ),
            step(2, "routed", json!({})),
            step(
                3,
                "approved",
                json!({"approval_no": "12345678", "approved_at": "20270115000001"}),
            ),
        ];
        let v = view_of(&steps).unwrap();
        assert_eq!(v.status, "approved");
        assert_eq!(v.approval_no.as_deref(), Some("12345678"));
        assert_eq!(v.business_date, Some(jiff::civil::date(2027, 1, 15)));
        assert_eq!((v.amount, v.last_seq, v.gaps), (Some(15000), 3, false));
    }

    #[test]
    fn a_missing_step_shows_as_a_gap_and_a_timeout_keeps_its_cancel_sends() {
        let steps = [
            step(1, "received", json!({"amount": 1000})),
            step(3, "timed_out", json!({"response_code": "TO"})),
            step(5, "cancel_sent", json!({})),
            step(6, "cancel_sent", json!({})),
            step(7, "cancel_acknowledged", json!({})),
        ];
        let v = view_of(&steps).unwrap();
        assert_eq!(
            (v.status.as_str(), v.cancel_status.as_str(), v.cancel_sends),
            ("timeout", "acknowledged", 2)
        );
        assert!(v.gaps);
        assert_eq!(v.business_date, None);
    }

    #[test]
    fn another_step_under_a_taken_number_conflicts_and_a_redelivery_does_not() {
        let recorded = [
            step(1, "received", json!({"amount": 1000})),
            step(2, "routed", json!({})),
        ];
        let mut other = step(2, "timed_out", json!({}));
        other.event_id = Uuid::from_u128(99);
        let again = recorded[1].clone();
        let arrived = [other.clone(), again];
        assert_eq!(conflicts(&recorded, &arrived), vec![&other]);
    }

    #[test]
    fn every_status_name_is_listed() {
        use RequestStatus::*;
        let names: Vec<&str> = [Received, Sent, Approved, Declined, TimedOut, Failed]
            .map(status_name)
            .to_vec();
        assert_eq!(names, STATUSES);
    }

    #[test]
    fn an_unknown_step_is_refused() {
        assert!(core_step(&step(1, "teleported", json!({}))).is_err());
        assert!(core_step(&step(1, "declined", json!({}))).is_err());
    }
}
