//! Webhooks to businesses: one row per final status (written once), claimed for each attempt
//! with a lease so two instances never post it at the same time, and one row per attempt.

use crate::session::Session;
use crate::types::DbTime;
use crate::{Result, StoreError};
use jiff::Timestamp;
use minipay_core::BusinessId;
use uuid::Uuid;

/// A webhook to record.
#[derive(Debug, Clone)]
pub struct NewWebhook<'a> {
    pub id: Uuid,
    pub business_id: BusinessId,
    pub kind: &'a str,
    pub object_id: Uuid,
    pub url: &'a str,
    pub body: &'a str,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
struct WebhookRow {
    id: Uuid,
    business_id: Uuid,
    #[sqlx(rename = "type")]
    kind: String,
    object_id: Uuid,
    url: String,
    body: String,
    created_at: DbTime,
    attempts: i32,
}

/// A webhook claimed for an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub id: Uuid,
    pub business_id: BusinessId,
    pub kind: String,
    pub object_id: Uuid,
    pub url: String,
    pub body: String,
    pub created_at: Timestamp,
    /// Attempts made before this one.
    pub attempts: i32,
}

impl From<WebhookRow> for Webhook {
    fn from(r: WebhookRow) -> Self {
        Self {
            id: r.id,
            business_id: BusinessId::from_uuid(r.business_id),
            kind: r.kind,
            object_id: r.object_id,
            url: r.url,
            body: r.body,
            created_at: r.created_at.0,
            attempts: r.attempts,
        }
    }
}

const COLUMNS: &str = "id, business_id, type, object_id, url, body, created_at, attempts";

/// How an attempt ended, and what comes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookNext {
    /// The receiver took it: done.
    Delivered,
    /// Try again at this time.
    RetryAt(Timestamp),
    /// No more attempts (the retry window is over).
    GiveUp,
}

/// One attempt, as recorded.
#[derive(Debug, Clone)]
pub struct WebhookAttempt<'a> {
    pub status_code: Option<u16>,
    pub error: Option<&'a str>,
    pub duration_ms: i64,
    pub at: Timestamp,
}

/// One attempt, as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct WebhookDelivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
    #[sqlx(rename = "type")]
    pub kind: String,
    pub object_id: Uuid,
    pub attempt: i32,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub delivered: bool,
    pub duration_ms: i64,
    #[sqlx(try_from = "DbTime")]
    pub attempted_at: Timestamp,
}

impl Session {
    /// Records a webhook due now; `false` (nothing written) if this status of this object has
    /// one already.
    pub async fn insert_webhook(&mut self, w: &NewWebhook<'_>) -> Result<bool> {
        self.assert_writable();
        let n = on_db!(self, c => sqlx::query(
            "INSERT INTO webhooks (id, business_id, type, object_id, url, body, created_at, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)
             ON CONFLICT (type, object_id) DO NOTHING",
        )
        .bind(w.id)
        .bind(w.business_id.as_uuid())
        .bind(w.kind)
        .bind(w.object_id)
        .bind(w.url)
        .bind(w.body)
        .bind(DbTime(w.at))
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Claims a webhook due at `now` for one attempt, pushing its due time to `lease_until`
    /// (so nobody else posts it meanwhile; a crash mid-attempt leaves it due again then).
    pub async fn claim_webhook(&mut self, id: Uuid, now: Timestamp, lease_until: Timestamp) -> Result<Option<Webhook>> {
        self.assert_writable();
        let row: Option<WebhookRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE webhooks SET next_attempt_at = $3
             WHERE id = $1 AND next_attempt_at IS NOT NULL AND next_attempt_at <= $2
             RETURNING {COLUMNS}"
        )))
        .bind(id)
        .bind(DbTime(now))
        .bind(DbTime(lease_until))
        .fetch_optional(c)
        .await)?;
        Ok(row.map(Webhook::from))
    }

    /// Webhooks due at `now`, oldest due first.
    pub async fn due_webhooks(&mut self, now: Timestamp, limit: u32) -> Result<Vec<Uuid>> {
        let ids: Vec<Uuid> = on_db!(self, c => sqlx::query_scalar(
            "SELECT id FROM webhooks WHERE next_attempt_at IS NOT NULL AND next_attempt_at <= $1
             ORDER BY next_attempt_at, id LIMIT $2",
        )
        .bind(DbTime(now))
        .bind(i64::from(limit))
        .fetch_all(c)
        .await)?;
        Ok(ids)
    }

    /// Records attempt number `w.attempts + 1` of a claimed webhook and what comes next.
    pub async fn record_webhook_attempt(
        &mut self,
        w: &Webhook,
        attempt: &WebhookAttempt<'_>,
        next: WebhookNext,
    ) -> Result<()> {
        self.assert_writable();
        let delivered = next == WebhookNext::Delivered;
        on_db!(self, c => sqlx::query(
            "INSERT INTO webhook_deliveries (id, webhook_id, business_id, attempt, status_code, error, delivered,
                 duration_ms, attempted_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(Uuid::now_v7())
        .bind(w.id)
        .bind(w.business_id.as_uuid())
        .bind(w.attempts + 1)
        .bind(attempt.status_code.map(i32::from))
        .bind(attempt.error)
        .bind(delivered)
        .bind(attempt.duration_ms)
        .bind(DbTime(attempt.at))
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        let (next_at, delivered_at, gave_up_at) = match next {
            WebhookNext::Delivered => (None, Some(DbTime(attempt.at)), None),
            WebhookNext::RetryAt(t) => (Some(DbTime(t)), None, None),
            WebhookNext::GiveUp => (None, None, Some(DbTime(attempt.at))),
        };
        let n = on_db!(self, c => sqlx::query(
            "UPDATE webhooks SET attempts = attempts + 1, next_attempt_at = $3, delivered_at = $4, gave_up_at = $5
             WHERE id = $1 AND attempts = $2",
        )
        .bind(w.id)
        .bind(w.attempts)
        .bind(next_at)
        .bind(delivered_at)
        .bind(gave_up_at)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        if n != 1 {
            return Err(StoreError::LostUpdate(format!(
                "webhook {} (attempted meanwhile)",
                w.id
            )));
        }
        Ok(())
    }

    /// A business's delivery log, newest first, after the keyset cursor `after`.
    pub async fn webhook_deliveries(
        &mut self,
        business: BusinessId,
        after: Option<(Timestamp, Uuid)>,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>> {
        let (after_at, after_id) = after.map_or((DbTime(Timestamp::MAX), Uuid::max()), |(t, id)| (DbTime(t), id));
        let rows: Vec<WebhookDelivery> = on_db!(self, c => sqlx::query_as(
            "SELECT d.id, d.webhook_id, w.type, w.object_id, d.attempt, d.status_code, d.error, d.delivered,
                    d.duration_ms, d.attempted_at
             FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
             WHERE d.business_id = $1 AND (d.attempted_at, d.id) < ($2, $3)
             ORDER BY d.attempted_at DESC, d.id DESC LIMIT $4",
        )
        .bind(business.as_uuid())
        .bind(after_at)
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(c)
        .await)?;
        Ok(rows)
    }
}
