//! Alerts for operators: raised once per cause, listed newest first, acknowledged by a person.

use crate::session::Session;
use crate::types::DbTime;
use crate::{Result, StoreError};
use jiff::Timestamp;
use uuid::Uuid;

/// An alert to raise; a cause already raised is not raised again.
/// Which alerts to list (every field optional), newest first.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    pub kind: Option<String>,
    /// `true`: only acknowledged ones; `false`: only those still open.
    pub acknowledged: Option<bool>,
    /// Raised at or after.
    pub since: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct NewAlert<'a> {
    pub kind: &'a str,
    /// What makes it unique, e.g. `remittance_stuck:<id>`.
    pub cause: &'a str,
    pub subject_id: Option<Uuid>,
    pub message: &'a str,
    pub data: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub id: Uuid,
    pub kind: String,
    pub cause: String,
    pub subject_id: Option<Uuid>,
    pub message: String,
    pub data: serde_json::Value,
    pub created_at: Timestamp,
    pub acknowledged_at: Option<Timestamp>,
}

#[derive(sqlx::FromRow)]
struct AlertRow {
    id: Uuid,
    kind: String,
    cause: String,
    subject_id: Option<Uuid>,
    message: String,
    data: String,
    created_at: DbTime,
    acknowledged_at: Option<DbTime>,
}

impl TryFrom<AlertRow> for Alert {
    type Error = StoreError;
    fn try_from(r: AlertRow) -> Result<Self> {
        Ok(Self {
            id: r.id,
            kind: r.kind,
            cause: r.cause,
            subject_id: r.subject_id,
            message: r.message,
            data: serde_json::from_str(&r.data).map_err(StoreError::corrupt)?,
            created_at: r.created_at.0,
            acknowledged_at: r.acknowledged_at.map(|t| t.0),
        })
    }
}

const COLUMNS: &str = "id, kind, cause, subject_id, message, data, created_at, acknowledged_at";

impl Session {
    /// Raises an alert unless its cause was raised before: the new alert, or `None`.
    pub async fn insert_alert(&mut self, a: &NewAlert<'_>, now: Timestamp) -> Result<Option<Alert>> {
        self.assert_writable();
        let row: Option<AlertRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO alerts (id, kind, cause, subject_id, message, data, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (cause) DO NOTHING RETURNING {COLUMNS}"
        )))
        .bind(Uuid::now_v7())
        .bind(a.kind)
        .bind(a.cause)
        .bind(a.subject_id)
        .bind(a.message)
        .bind(a.data.to_string())
        .bind(DbTime(now))
        .fetch_optional(c)
        .await)?;
        row.map(Alert::try_from).transpose()
    }

    /// Alerts, newest first, after the keyset cursor; `kind` and `acknowledged` filter.
    pub async fn alerts(
        &mut self,
        filter: &AlertFilter,
        after: Option<(Timestamp, Uuid)>,
        limit: u32,
    ) -> Result<Vec<Alert>> {
        let (after_at, after_id) = after.map_or((DbTime(Timestamp::MAX), Uuid::max()), |(t, id)| (DbTime(t), id));
        let rows: Vec<AlertRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM alerts
             WHERE (created_at, id) < ($1, $2) AND ($3 IS NULL OR kind = $3)
               AND ($4 IS NULL OR (acknowledged_at IS NOT NULL) = ($4 = 1))
               AND ($6 IS NULL OR created_at >= $6)
             ORDER BY created_at DESC, id DESC LIMIT $5"
        )))
        .bind(after_at)
        .bind(after_id)
        .bind(filter.kind.as_deref())
        .bind(filter.acknowledged.map(i32::from))
        .bind(i64::from(limit))
        .bind(filter.since.map(DbTime))
        .fetch_all(c)
        .await)?;
        rows.into_iter().map(Alert::try_from).collect()
    }

    /// Acknowledges an alert (once: a second acknowledgement keeps the first time).
    pub async fn acknowledge_alert(&mut self, id: Uuid, now: Timestamp) -> Result<Option<Alert>> {
        self.assert_writable();
        let row: Option<AlertRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE alerts SET acknowledged_at = COALESCE(acknowledged_at, $2) WHERE id = $1 RETURNING {COLUMNS}"
        )))
        .bind(id)
        .bind(DbTime(now))
        .fetch_optional(c)
        .await)?;
        row.map(Alert::try_from).transpose()
    }
}
