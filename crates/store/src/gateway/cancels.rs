//! Network cancels (망취소): stored before the first send, each send recorded before it goes
//! out, acknowledged or given up after the last send.

use crate::Result;
use crate::session::{Db, Session};
use crate::types::DbTime;
use jiff::Timestamp;
use uuid::Uuid;

/// A network cancel with what its message needs from the original request.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct NetworkCancel {
    pub approval_id: Uuid,
    pub upstream: String,
    pub status: String,
    pub sends: i32,
    pub terminal_id: String,
    pub merchant_id: Uuid,
    pub seq_no: i64,
    pub sent_at: String,
    pub amount: i64,
    pub upstream_ref: Option<String>,
    /// The approval number, if one ever came (a late approval's).
    pub approval_no: Option<String>,
    pub last_error: Option<String>,
}

const COLUMNS: &str = "n.approval_id, n.upstream, n.status, n.sends, a.terminal_id, a.merchant_id, a.seq_no,
    a.sent_at, a.amount, a.upstream_ref, COALESCE(a.approval_no, a.late_approval_no) AS approval_no, n.last_error";

impl Session {
    /// Queues a network cancel of an approval, due at once: `true` when queued (not before).
    pub async fn queue_network_cancel(&mut self, approval_id: Uuid, upstream: &str, now: Timestamp) -> Result<bool> {
        self.assert_writable();
        let done = on_db!(self, c => sqlx::query(
            "INSERT INTO network_cancels (approval_id, upstream, status, next_send_at, created_at)
             VALUES ($1, $2, 'queued', $3, $3) ON CONFLICT (approval_id) DO NOTHING"
        )
        .bind(approval_id)
        .bind(upstream)
        .bind(DbTime(now))
        .execute(c)
        .await.map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    /// Claims up to `limit` cancels due at `now`: each one's send is counted and its next send
    /// set to `next_send_at` in this transaction, before anything is sent (store and forward).
    /// Returns them with `sends` as it was before this send.
    pub async fn claim_due_network_cancels(
        &mut self,
        now: Timestamp,
        next_send_at: Timestamp,
        limit: u32,
    ) -> Result<Vec<NetworkCancel>> {
        self.assert_writable();
        let lock = match self.db() {
            Db::Pg(_) => "FOR UPDATE OF n SKIP LOCKED",
            Db::Sqlite(_) => "",
        };
        let due: Vec<NetworkCancel> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM network_cancels n JOIN approvals a ON a.id = n.approval_id
             WHERE n.next_send_at IS NOT NULL AND n.next_send_at <= $1
             ORDER BY n.next_send_at LIMIT $2 {lock}"
        )))
        .bind(DbTime(now))
        .bind(i64::from(limit))
        .fetch_all(c)
        .await)?;
        for d in &due {
            on_db!(self, c => sqlx::query(
                "UPDATE network_cancels SET status = 'sent', sends = sends + 1, next_send_at = $2 WHERE approval_id = $1"
            )
            .bind(d.approval_id)
            .bind(DbTime(next_send_at))
            .execute(c)
            .await.map(|r| r.rows_affected()))?;
        }
        Ok(due)
    }

    /// The upstream acknowledged the cancel: `true` the first time.
    pub async fn acknowledge_network_cancel(&mut self, approval_id: Uuid, now: Timestamp) -> Result<bool> {
        self.finish_network_cancel(approval_id, "acknowledged", None, now).await
    }

    /// No acknowledgement after the last send: `true` the first time.
    pub async fn fail_network_cancel(&mut self, approval_id: Uuid, error: &str, now: Timestamp) -> Result<bool> {
        self.finish_network_cancel(approval_id, "failed", Some(error), now)
            .await
    }

    /// Notes why a send was not acknowledged (the cancel stays due for its next send).
    pub async fn note_network_cancel_error(&mut self, approval_id: Uuid, error: &str) -> Result<()> {
        self.assert_writable();
        on_db!(self, c => sqlx::query("UPDATE network_cancels SET last_error = $2 WHERE approval_id = $1")
            .bind(approval_id)
            .bind(error)
            .execute(c)
            .await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    async fn finish_network_cancel(
        &mut self,
        approval_id: Uuid,
        status: &str,
        error: Option<&str>,
        now: Timestamp,
    ) -> Result<bool> {
        self.assert_writable();
        let done = on_db!(self, c => sqlx::query(
            "UPDATE network_cancels SET status = $2, last_error = COALESCE($3, last_error), next_send_at = NULL,
                 finished_at = $4
             WHERE approval_id = $1 AND status IN ('queued', 'sent')"
        )
        .bind(approval_id)
        .bind(status)
        .bind(error)
        .bind(DbTime(now))
        .execute(c)
        .await.map(|r| r.rows_affected()))?;
        Ok(done == 1)
    }

    pub async fn network_cancel(&mut self, approval_id: Uuid) -> Result<Option<NetworkCancel>> {
        let row: Option<NetworkCancel> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM network_cancels n JOIN approvals a ON a.id = n.approval_id WHERE n.approval_id = $1"
        )))
        .bind(approval_id)
        .fetch_optional(c)
        .await)?;
        Ok(row)
    }

    /// The operators' queue: every network cancel still being sent (oldest first), then the
    /// latest `failed_limit` that were given up (newest first).
    pub async fn network_cancel_queue(&mut self, limit: u32, failed_limit: u32) -> Result<Vec<QueuedCancel>> {
        let mut rows = self
            .queued_cancels("n.next_send_at IS NOT NULL ORDER BY n.created_at", limit)
            .await?;
        rows.extend(
            self.queued_cancels("n.status = 'failed' ORDER BY n.finished_at DESC", failed_limit)
                .await?,
        );
        rows.into_iter().map(QueuedCancel::try_from).collect()
    }

    async fn queued_cancels(&mut self, filter_and_order: &str, limit: u32) -> Result<Vec<QueuedCancelRow>> {
        let rows: Vec<QueuedCancelRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT n.approval_id, n.upstream, n.status, n.sends, a.terminal_id, a.amount, n.last_error,
                    n.created_at, n.next_send_at, n.finished_at
             FROM network_cancels n JOIN approvals a ON a.id = n.approval_id
             WHERE {filter_and_order} LIMIT $1"
        )))
        .bind(i64::from(limit))
        .fetch_all(c)
        .await)?;
        Ok(rows)
    }
}

/// A network cancel as operators follow it.
#[derive(Debug, Clone, PartialEq)]
pub struct QueuedCancel {
    pub approval_id: Uuid,
    pub upstream: String,
    /// `queued`, `sent`, `acknowledged` or `failed`.
    pub status: String,
    pub sends: i32,
    pub terminal_id: String,
    pub amount: i64,
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    /// When the next send is due; `None` once acknowledged or given up.
    pub next_send_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
}

#[derive(sqlx::FromRow)]
struct QueuedCancelRow {
    approval_id: Uuid,
    upstream: String,
    status: String,
    sends: i32,
    terminal_id: String,
    amount: i64,
    last_error: Option<String>,
    created_at: DbTime,
    next_send_at: Option<DbTime>,
    finished_at: Option<DbTime>,
}

impl TryFrom<QueuedCancelRow> for QueuedCancel {
    type Error = crate::StoreError;
    fn try_from(r: QueuedCancelRow) -> Result<Self> {
        Ok(Self {
            approval_id: r.approval_id,
            upstream: r.upstream,
            status: r.status,
            sends: r.sends,
            terminal_id: r.terminal_id,
            amount: r.amount,
            last_error: r.last_error,
            created_at: r.created_at.0,
            next_send_at: r.next_send_at.map(|t| t.0),
            finished_at: r.finished_at.map(|t| t.0),
        })
    }
}
