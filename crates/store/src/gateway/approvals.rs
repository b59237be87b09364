//! Approval transactions: written before anything goes upstream, found again by the terminal's
//! keys (a repeated request), routed, finished with the answer the terminal got, and a late
//! answer recorded beside it.

use crate::session::{Db, Session};
use crate::types::DbTime;
use crate::{Result, StoreError};
use jiff::Timestamp;
use uuid::Uuid;

/// A terminal's request as first recorded.
#[derive(Debug, Clone)]
pub struct NewApproval<'a> {
    pub id: Uuid,
    pub terminal_id: &'a str,
    pub merchant_id: Uuid,
    pub seq_no: i64,
    pub sent_at: &'a str,
    pub tx_type: &'a str,
    pub amount: i64,
    pub card_masked: &'a str,
    pub original_id: Option<Uuid>,
    pub received_at: Timestamp,
}

/// An approval transaction as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Approval {
    pub id: Uuid,
    pub terminal_id: String,
    pub merchant_id: Uuid,
    pub seq_no: i64,
    pub sent_at: String,
    pub tx_type: String,
    pub amount: i64,
    pub card_masked: String,
    pub original_id: Option<Uuid>,
    pub issuer: Option<String>,
    pub upstream: Option<String>,
    pub upstream_ref: Option<String>,
    pub status: String,
    pub response_code: Option<String>,
    pub approval_no: Option<String>,
    pub approved_at: Option<String>,
    pub message: Option<String>,
    /// The answer the terminal got, as JSON (replayed to a repeated request).
    pub answer: Option<serde_json::Value>,
    pub upstream_ms: Option<i32>,
    pub event_seq: i32,
    pub late_response_code: Option<String>,
    pub late_approval_no: Option<String>,
    pub late_at: Option<Timestamp>,
    pub received_at: Timestamp,
    pub answered_at: Option<Timestamp>,
}

/// How an approval ended, as the terminal was told.
#[derive(Debug, Clone)]
pub struct ApprovalOutcome<'a> {
    pub status: &'a str,
    pub response_code: &'a str,
    pub approval_no: Option<&'a str>,
    pub approved_at: Option<&'a str>,
    pub message: &'a str,
    pub answer: &'a serde_json::Value,
    pub upstream_ms: Option<i32>,
    pub answered_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct ApprovalRow {
    id: Uuid,
    terminal_id: String,
    merchant_id: Uuid,
    seq_no: i64,
    sent_at: String,
    tx_type: String,
    amount: i64,
    card_masked: String,
    original_id: Option<Uuid>,
    issuer: Option<String>,
    upstream: Option<String>,
    upstream_ref: Option<String>,
    status: String,
    response_code: Option<String>,
    approval_no: Option<String>,
    approved_at: Option<String>,
    message: Option<String>,
    answer: Option<String>,
    upstream_ms: Option<i32>,
    event_seq: i32,
    late_response_code: Option<String>,
    late_approval_no: Option<String>,
    late_at: Option<DbTime>,
    received_at: DbTime,
    answered_at: Option<DbTime>,
}

impl TryFrom<ApprovalRow> for Approval {
    type Error = StoreError;
    fn try_from(r: ApprovalRow) -> Result<Self> {
        let answer = r
            .answer
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| StoreError::corrupt(format!("approval {} answer: {e}", r.id)))?;
        Ok(Self {
            id: r.id,
            terminal_id: r.terminal_id,
            merchant_id: r.merchant_id,
            seq_no: r.seq_no,
            sent_at: r.sent_at,
            tx_type: r.tx_type,
            amount: r.amount,
            card_masked: r.card_masked,
            original_id: r.original_id,
            issuer: r.issuer,
            upstream: r.upstream,
            upstream_ref: r.upstream_ref,
            status: r.status,
            response_code: r.response_code,
            approval_no: r.approval_no,
            approved_at: r.approved_at,
            message: r.message,
            answer,
            upstream_ms: r.upstream_ms,
            event_seq: r.event_seq,
            late_response_code: r.late_response_code,
            late_approval_no: r.late_approval_no,
            late_at: r.late_at.map(|t| t.0),
            received_at: r.received_at.0,
            answered_at: r.answered_at.map(|t| t.0),
        })
    }
}

const COLUMNS: &str = "id, terminal_id, merchant_id, seq_no, sent_at, tx_type, amount, card_masked, original_id,
    issuer, upstream, upstream_ref, status, response_code, approval_no, approved_at, message, answer, upstream_ms,
    event_seq, late_response_code, late_approval_no, late_at, received_at, answered_at";

impl Session {
    /// Records a request unless the terminal sent these keys before: `true` when recorded. Its
    /// `received` event takes sequence number 1.
    pub async fn insert_approval(&mut self, a: &NewApproval<'_>) -> Result<bool> {
        self.assert_writable();
        let done = on_db!(self, c => sqlx::query(
            "INSERT INTO approvals (id, terminal_id, merchant_id, seq_no, sent_at, tx_type, amount, card_masked,
                 original_id, status, event_seq, received_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'received', 1, $10)
             ON CONFLICT (terminal_id, seq_no, sent_at) DO NOTHING"
        )
        .bind(a.id)
        .bind(a.terminal_id)
        .bind(a.merchant_id)
        .bind(a.seq_no)
        .bind(a.sent_at)
        .bind(a.tx_type)
        .bind(a.amount)
        .bind(a.card_masked)
        .bind(a.original_id)
        .bind(DbTime(a.received_at))
        .execute(c)
        .await.map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// The request a terminal sent with these keys.
    pub async fn approval_by_request(
        &mut self,
        terminal_id: &str,
        seq_no: i64,
        sent_at: &str,
    ) -> Result<Option<Approval>> {
        let row: Option<ApprovalRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM approvals WHERE terminal_id = $1 AND seq_no = $2 AND sent_at = $3"
        )))
        .bind(terminal_id)
        .bind(seq_no)
        .bind(sent_at)
        .fetch_optional(c)
        .await)?;
        row.map(Approval::try_from).transpose()
    }

    pub async fn approval(&mut self, id: Uuid) -> Result<Option<Approval>> {
        let row: Option<ApprovalRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM approvals WHERE id = $1"
        )))
        .bind(id)
        .fetch_optional(c)
        .await)?;
        row.map(Approval::try_from).transpose()
    }

    /// A merchant's approved sale with this approval number (what a customer's cancel names).
    pub async fn approved_sale(&mut self, merchant_id: Uuid, approval_no: &str) -> Result<Option<Approval>> {
        let row: Option<ApprovalRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM approvals
             WHERE merchant_id = $1 AND approval_no = $2 AND status IN ('approved', 'canceled')
               AND tx_type IN ('card_approval', 'cash_receipt')
             ORDER BY received_at DESC LIMIT 1"
        )))
        .bind(merchant_id)
        .bind(approval_no)
        .fetch_optional(c)
        .await)?;
        row.map(Approval::try_from).transpose()
    }

    /// Names the upstream a request goes to (again, when the previous one could not be reached)
    /// and takes `events` sequence numbers for its events: the first of them.
    pub async fn route_approval(
        &mut self,
        id: Uuid,
        issuer: Option<&str>,
        upstream: &str,
        upstream_ref: &str,
        events: i32,
    ) -> Result<i32> {
        self.assert_writable();
        let seq: i32 = on_db!(self, c => sqlx::query_scalar(
            "UPDATE approvals SET issuer = $2, upstream = $3, upstream_ref = $4, status = 'sent',
                 event_seq = event_seq + $5
             WHERE id = $1 RETURNING event_seq"
        )
        .bind(id)
        .bind(issuer)
        .bind(upstream)
        .bind(upstream_ref)
        .bind(events)
        .fetch_one(c)
        .await)?;
        Ok(seq - events + 1)
    }

    /// Records how the request ended (once: an approval already answered is left alone; with
    /// `after`, only if its latest event is still that one) and takes `events` sequence numbers:
    /// the first of them, or `None` if nothing was recorded.
    pub async fn finish_approval(
        &mut self,
        id: Uuid,
        o: &ApprovalOutcome<'_>,
        events: i32,
        after: Option<i32>,
    ) -> Result<Option<i32>> {
        self.assert_writable();
        let seq: Option<i32> = on_db!(self, c => sqlx::query_scalar(
            "UPDATE approvals SET status = $2, response_code = $3, approval_no = $4, approved_at = $5, message = $6,
                 answer = $7, upstream_ms = $8, answered_at = $9, event_seq = event_seq + $10
             WHERE id = $1 AND answer IS NULL
               AND (CAST($11 AS INTEGER) IS NULL OR event_seq = CAST($11 AS INTEGER))
             RETURNING event_seq"
        )
        .bind(id)
        .bind(o.status)
        .bind(o.response_code)
        .bind(o.approval_no)
        .bind(o.approved_at)
        .bind(o.message)
        .bind(o.answer.to_string())
        .bind(o.upstream_ms)
        .bind(DbTime(o.answered_at))
        .bind(events)
        .bind(after)
        .fetch_optional(c)
        .await)?;
        Ok(seq.map(|s| s - events + 1))
    }

    /// Marks an approved sale canceled by its customer.
    pub async fn mark_sale_canceled(&mut self, id: Uuid) -> Result<bool> {
        self.assert_writable();
        let done = on_db!(self, c => sqlx::query(
            "UPDATE approvals SET status = 'canceled' WHERE id = $1 AND status = 'approved'"
        )
        .bind(id)
        .execute(c)
        .await.map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Takes `events` sequence numbers of an approval's events: the first of them.
    pub async fn take_event_seq(&mut self, id: Uuid, events: i32) -> Result<i32> {
        self.assert_writable();
        let seq: i32 = on_db!(self, c => sqlx::query_scalar(
            "UPDATE approvals SET event_seq = event_seq + $2 WHERE id = $1 RETURNING event_seq"
        )
        .bind(id)
        .bind(events)
        .fetch_one(c)
        .await)?;
        Ok(seq - events + 1)
    }

    /// Records an answer that came after its request was given up on: the approval it belongs
    /// to and the sequence number of its `late_answer` event, or `None` if no such request.
    pub async fn record_late_answer(
        &mut self,
        upstream: &str,
        upstream_ref: &str,
        response_code: &str,
        approval_no: Option<&str>,
        at: Timestamp,
    ) -> Result<Option<(Uuid, i32)>> {
        self.assert_writable();
        let row: Option<(Uuid, i32)> = on_db!(self, c => sqlx::query_as(
            "UPDATE approvals SET late_response_code = $3, late_approval_no = $4, late_at = $5,
                 event_seq = event_seq + 1
             WHERE id = (SELECT id FROM approvals WHERE upstream = $1 AND upstream_ref = $2
                         ORDER BY received_at DESC LIMIT 1)
             RETURNING id, event_seq"
        )
        .bind(upstream)
        .bind(upstream_ref)
        .bind(response_code)
        .bind(approval_no)
        .bind(DbTime(at))
        .fetch_optional(c)
        .await)?;
        Ok(row)
    }

    /// Per upstream, since `since`: requests, approvals, declines, timeouts, and the latest
    /// `latencies_max` upstream latencies (ms) for percentiles.
    pub async fn upstream_counts(&mut self, since: Timestamp) -> Result<Vec<UpstreamCounts>> {
        let rows: Vec<UpstreamCounts> = on_db!(self, c => sqlx::query_as(
            "SELECT upstream,
                    COUNT(*) AS requests,
                    SUM(CASE WHEN status IN ('approved', 'canceled') THEN 1 ELSE 0 END) AS approvals,
                    SUM(CASE WHEN status = 'declined' THEN 1 ELSE 0 END) AS declines,
                    SUM(CASE WHEN status = 'timeout' THEN 1 ELSE 0 END) AS timeouts
             FROM approvals WHERE upstream IS NOT NULL AND received_at >= $1
             GROUP BY upstream ORDER BY upstream"
        )
        .bind(DbTime(since))
        .fetch_all(c)
        .await)?;
        Ok(rows)
    }

    /// The latest `limit` upstream latencies (ms) of an upstream.
    pub async fn upstream_latencies(&mut self, upstream: &str, limit: u32) -> Result<Vec<i32>> {
        let rows: Vec<i32> = on_db!(self, c => sqlx::query_scalar(
            "SELECT upstream_ms FROM approvals WHERE upstream = $1 AND upstream_ms IS NOT NULL
             ORDER BY received_at DESC LIMIT $2"
        )
        .bind(upstream)
        .bind(i64::from(limit))
        .fetch_all(c)
        .await)?;
        Ok(rows)
    }
    /// Each upstream's traffic per minute since `since` (minute 0 starts at `since`); minutes
    /// without traffic are absent.
    pub async fn upstream_minutes(&mut self, since: Timestamp) -> Result<Vec<UpstreamMinute>> {
        let minute = match self.db() {
            Db::Pg(_) => "FLOOR(EXTRACT(EPOCH FROM (received_at - $1)) / 60)::BIGINT",
            Db::Sqlite(_) => "(received_at - $1) / 60000000",
        };
        let rows: Vec<UpstreamMinute> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT upstream, {minute} AS minute,
                    COUNT(*) AS requests,
                    SUM(CASE WHEN status IN ('timeout', 'error') THEN 1 ELSE 0 END) AS errors,
                    COUNT(upstream_ms) AS timed,
                    COALESCE(SUM(upstream_ms), 0) AS total_ms,
                    MAX(upstream_ms) AS max_ms
             FROM approvals WHERE upstream IS NOT NULL AND received_at >= $1
             GROUP BY upstream, minute ORDER BY upstream, minute"
        )))
        .bind(DbTime(since))
        .fetch_all(c)
        .await)?;
        Ok(rows)
    }
}

/// One minute of an upstream's traffic.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UpstreamMinute {
    pub upstream: String,
    /// Whole minutes since the window's start.
    pub minute: i64,
    pub requests: i64,
    /// Timeouts and errors (what trips the breaker).
    pub errors: i64,
    /// Requests with a measured upstream latency, and their sum and maximum (ms).
    pub timed: i64,
    pub total_ms: i64,
    pub max_ms: Option<i32>,
}

/// An upstream's request counts.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UpstreamCounts {
    pub upstream: String,
    pub requests: i64,
    pub approvals: i64,
    pub declines: i64,
    pub timeouts: i64,
}
