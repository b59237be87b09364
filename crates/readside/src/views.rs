//! What operators see of the read side: a transaction's final state and its timeline.

use jiff::Timestamp;
use jiff::civil::Date;
use minipay_store::{ApprovalView, HistoryStep};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// A transaction's final state as the read side folded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ApprovalSummary {
    pub id: Uuid,
    pub merchant_id: Option<Uuid>,
    pub terminal_id: Option<String>,
    pub seq_no: Option<i64>,
    pub sent_at: Option<String>,
    pub tx_type: Option<String>,
    pub amount: Option<i64>,
    pub card: Option<String>,
    pub original_id: Option<Uuid>,
    /// `received`, `sent`, `approved`, `declined`, `timeout` or `error`.
    pub status: String,
    pub upstream: Option<String>,
    pub response_code: Option<String>,
    pub approval_no: Option<String>,
    /// The upstream's time of approval, `YYYYMMDDhhmmss` Asia/Seoul.
    pub approved_at: Option<String>,
    /// The business day it settles on.
    #[schema(value_type = Option<String>, example = "2026-12-04")]
    pub business_date: Option<Date>,
    /// The network cancel: `none`, `queued`, `sent`, `acknowledged` or `failed`.
    pub cancel_status: String,
    pub cancel_sends: i32,
    pub late_response_code: Option<String>,
    pub late_approval_no: Option<String>,
    /// The highest event sequence number seen.
    pub last_seq: i32,
    /// True while an event below `last_seq` has not arrived.
    pub gaps: bool,
    /// Events that named a sequence number another step had taken (kept apart).
    pub conflicts: i32,
    #[schema(value_type = Option<String>)]
    pub received_at: Option<Timestamp>,
    #[schema(value_type = String)]
    pub updated_at: Timestamp,
}

impl From<ApprovalView> for ApprovalSummary {
    fn from(v: ApprovalView) -> Self {
        Self {
            id: v.transaction_id,
            merchant_id: v.merchant_id,
            terminal_id: v.terminal_id,
            seq_no: v.seq_no,
            sent_at: v.sent_at,
            tx_type: v.tx_type,
            amount: v.amount,
            card: v.card_masked,
            original_id: v.original_id,
            status: v.status,
            upstream: v.upstream,
            response_code: v.response_code,
            approval_no: v.approval_no,
            approved_at: v.approved_at,
            business_date: v.business_date,
            cancel_status: v.cancel_status,
            cancel_sends: v.cancel_sends,
            late_response_code: v.late_response_code,
            late_approval_no: v.late_approval_no,
            last_seq: v.last_seq,
            gaps: v.gaps,
            conflicts: v.conflicts,
            received_at: v.received_at,
            updated_at: v.updated_at,
        }
    }
}

/// One step of a transaction's timeline.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct HistoryStepView {
    pub seq: i32,
    pub step: String,
    pub upstream: Option<String>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
    #[schema(value_type = String)]
    pub at: Timestamp,
    pub event_id: Uuid,
}

/// A transaction's final state with its history, in sequence order.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ApprovalDetail {
    #[serde(flatten)]
    pub approval: ApprovalSummary,
    pub history: Vec<HistoryStepView>,
}

impl ApprovalDetail {
    pub fn new(view: ApprovalView, history: Vec<HistoryStep>) -> Self {
        Self {
            approval: view.into(),
            history: history
                .into_iter()
                .map(|s| HistoryStepView {
                    seq: s.seq,
                    step: s.step,
                    upstream: s.upstream,
                    detail: serde_json::from_str(&s.detail).unwrap_or(serde_json::Value::Null),
                    at: s.at,
                    event_id: s.event_id,
                })
                .collect(),
        }
    }
}
