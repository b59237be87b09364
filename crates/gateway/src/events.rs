//! The approval events (`minipay.approval.*`): every step of every transaction, each with the
//! transaction's own sequence number so a read side can order them and drop redeliveries.

use jiff::Timestamp;
use minipay_events::emit;
use minipay_store::{Session, StoreError};
use serde::Serialize;
use uuid::Uuid;

pub const RECEIVED: &str = "approval.received";
pub const ROUTED: &str = "approval.routed";
pub const APPROVED: &str = "approval.approved";
pub const DECLINED: &str = "approval.declined";
pub const TIMED_OUT: &str = "approval.timed_out";
/// Not sent anywhere: refused before (or instead of) reaching an upstream.
pub const FAILED: &str = "approval.failed";
pub const CANCEL_QUEUED: &str = "approval.cancel_queued";
pub const CANCEL_SENT: &str = "approval.cancel_sent";
pub const CANCEL_ACKNOWLEDGED: &str = "approval.cancel_acknowledged";
pub const CANCEL_FAILED: &str = "approval.cancel_failed";
pub const LATE_ANSWER: &str = "approval.late_answer";

/// An approval event's data.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalEvent<'a> {
    pub transaction_id: Uuid,
    /// 1 for the first event of the transaction, one more for each next one.
    pub seq: i32,
    pub step: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<&'a str>,
    /// What the step carries (terminal keys and amount on `received`, codes on answers...).
    pub detail: serde_json::Value,
    pub at: Timestamp,
}

/// Writes the step `subject` of transaction `id` as its event number `seq`.
pub(crate) async fn record(
    tx: &mut Session,
    subject: &str,
    id: Uuid,
    seq: i32,
    upstream: Option<&str>,
    detail: serde_json::Value,
    now: Timestamp,
) -> Result<(), StoreError> {
    emit(tx, subject, &data(subject, id, seq, upstream, detail, now), now).await?;
    Ok(())
}

/// The data of step `subject` of transaction `id` as its event number `seq` (what [`record`]
/// writes; a group of them goes out with `emit_all`).
pub(crate) fn data(
    subject: &str,
    id: Uuid,
    seq: i32,
    upstream: Option<&str>,
    detail: serde_json::Value,
    now: Timestamp,
) -> serde_json::Value {
    let step = subject.strip_prefix("approval.").unwrap_or(subject);
    let event = ApprovalEvent {
        transaction_id: id,
        seq,
        step,
        upstream,
        detail,
        at: now,
    };
    serde_json::to_value(&event).expect("an approval event is plain JSON")
}
