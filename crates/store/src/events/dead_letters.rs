//! Dead letters: work that failed after its last attempt, one row per failing point of an
//! object, retried in rounds by a job until it recovers or a person must decide.

use crate::session::Session;
use crate::types::DbTime;
use crate::{Result, StoreError};
use jiff::Timestamp;
use uuid::Uuid;

/// A failure to record. An open dead letter for the same `(kind, subject_id)` is updated
/// instead (attempts added, the latest error kept), so a failing point has one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeadLetter<'a> {
    pub kind: &'a str,
    pub subject_id: Uuid,
    pub step: &'a str,
    pub consumer: Option<&'a str>,
    pub event_id: Option<Uuid>,
    pub attempts: i32,
    pub error: &'a str,
    pub next_attempt_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub id: Uuid,
    pub kind: String,
    pub subject_id: Uuid,
    pub step: String,
    pub consumer: Option<String>,
    pub event_id: Option<Uuid>,
    pub attempts: i32,
    pub rounds: i32,
    pub last_error: String,
    pub created_at: Timestamp,
    pub next_attempt_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    pub resolution: Option<String>,
}

#[derive(sqlx::FromRow)]
struct DeadLetterRow {
    id: Uuid,
    kind: String,
    subject_id: Uuid,
    step: String,
    consumer: Option<String>,
    event_id: Option<Uuid>,
    attempts: i32,
    rounds: i32,
    last_error: String,
    created_at: DbTime,
    next_attempt_at: Option<DbTime>,
    resolved_at: Option<DbTime>,
    resolution: Option<String>,
}

impl From<DeadLetterRow> for DeadLetter {
    fn from(r: DeadLetterRow) -> Self {
        Self {
            id: r.id,
            kind: r.kind,
            subject_id: r.subject_id,
            step: r.step,
            consumer: r.consumer,
            event_id: r.event_id,
            attempts: r.attempts,
            rounds: r.rounds,
            last_error: r.last_error,
            created_at: r.created_at.0,
            next_attempt_at: r.next_attempt_at.map(|t| t.0),
            resolved_at: r.resolved_at.map(|t| t.0),
            resolution: r.resolution,
        }
    }
}

const COLUMNS: &str = "id, kind, subject_id, step, consumer, event_id, attempts, rounds, last_error, created_at, \
                       next_attempt_at, resolved_at, resolution";

/// Which dead letters to list: of one kind, open or resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeadLetterFilter {
    pub kind: Option<String>,
    pub resolved: Option<bool>,
}

impl Session {
    /// Records a failure as a dead letter (or adds it to the failing point's open one).
    pub async fn insert_dead_letter(&mut self, d: &NewDeadLetter<'_>, now: Timestamp) -> Result<DeadLetter> {
        self.assert_writable();
        let row: DeadLetterRow = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO dead_letters (id, kind, subject_id, step, consumer, event_id, attempts, last_error,
                                       created_at, next_attempt_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (kind, subject_id) WHERE resolved_at IS NULL DO UPDATE
               SET attempts = dead_letters.attempts + excluded.attempts, last_error = excluded.last_error,
                   step = excluded.step, next_attempt_at = excluded.next_attempt_at
             RETURNING {COLUMNS}"
        )))
        .bind(Uuid::now_v7())
        .bind(d.kind)
        .bind(d.subject_id)
        .bind(d.step)
        .bind(d.consumer)
        .bind(d.event_id)
        .bind(d.attempts)
        .bind(d.error)
        .bind(DbTime(now))
        .bind(d.next_attempt_at.map(DbTime))
        .fetch_one(c)
        .await)?;
        Ok(row.into())
    }

    /// Open dead letters of kinds starting with `kind_prefix` due for a retry round at `now`,
    /// oldest first, locked for this transaction (PostgreSQL skips those another run holds).
    pub async fn due_dead_letters(&mut self, kind_prefix: &str, now: Timestamp, limit: u32) -> Result<Vec<DeadLetter>> {
        self.assert_writable();
        let lock = match self.kind() {
            crate::BackendKind::Postgres => " FOR UPDATE SKIP LOCKED",
            crate::BackendKind::Sqlite => "",
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM dead_letters
             WHERE resolved_at IS NULL AND next_attempt_at <= $1 AND substr(kind, 1, length($2)) = $2
             ORDER BY next_attempt_at, id LIMIT $3{lock}"
        );
        let rows: Vec<DeadLetterRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()))
            .bind(DbTime(now))
            .bind(kind_prefix)
            .bind(i64::from(limit))
            .fetch_all(c)
            .await)?;
        Ok(rows.into_iter().map(DeadLetter::from).collect())
    }

    /// Records a failed retry round: one more attempt and round, the error, and when to try
    /// again (`None`: the retry job gives up on it; it stays open until resolved).
    pub async fn dead_letter_round_failed(
        &mut self,
        id: Uuid,
        error: &str,
        next_attempt_at: Option<Timestamp>,
    ) -> Result<DeadLetter> {
        self.assert_writable();
        let row: Option<DeadLetterRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE dead_letters SET attempts = attempts + 1, rounds = rounds + 1, last_error = $2, next_attempt_at = $3
             WHERE id = $1 AND resolved_at IS NULL RETURNING {COLUMNS}"
        )))
        .bind(id)
        .bind(error)
        .bind(next_attempt_at.map(DbTime))
        .fetch_optional(c)
        .await)?;
        row.map(DeadLetter::from)
            .ok_or_else(|| StoreError::corrupt(format!("dead letter {id} is not open")))
    }

    /// Closes the open dead letters of an object's failing points (`kind` exact, or every kind
    /// when `None`); how many were open.
    pub async fn resolve_dead_letters(
        &mut self,
        subject_id: Uuid,
        kind: Option<&str>,
        resolution: &str,
        now: Timestamp,
    ) -> Result<u64> {
        self.assert_writable();
        let n = on_db!(self, c => sqlx::query(
            "UPDATE dead_letters SET resolved_at = $3, resolution = $4, next_attempt_at = NULL
             WHERE subject_id = $1 AND ($2 IS NULL OR kind = $2) AND resolved_at IS NULL",
        )
        .bind(subject_id)
        .bind(kind)
        .bind(DbTime(now))
        .bind(resolution)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n)
    }

    /// Dead letters, newest first, after the keyset cursor `after`.
    pub async fn dead_letters(
        &mut self,
        filter: &DeadLetterFilter,
        after: Option<(Timestamp, Uuid)>,
        limit: u32,
    ) -> Result<Vec<DeadLetter>> {
        let (after_at, after_id) = after.map_or((DbTime(Timestamp::MAX), Uuid::max()), |(t, id)| (DbTime(t), id));
        let resolved = filter.resolved.map(i32::from);
        let rows: Vec<DeadLetterRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM dead_letters
             WHERE (created_at, id) < ($1, $2)
               AND ($3 IS NULL OR kind = $3)
               AND ($4 IS NULL OR (resolved_at IS NOT NULL) = ($4 = 1))
             ORDER BY created_at DESC, id DESC LIMIT $5"
        )))
        .bind(after_at)
        .bind(after_id)
        .bind(filter.kind.as_deref())
        .bind(resolved)
        .bind(i64::from(limit))
        .fetch_all(c)
        .await)?;
        Ok(rows.into_iter().map(DeadLetter::from).collect())
    }

    /// Open dead letters by kind, for the audit and metrics.
    pub async fn open_dead_letter_counts(&mut self) -> Result<Vec<(String, i64)>> {
        let rows: Vec<(String, i64)> = on_db!(self, c => sqlx::query_as(
            "SELECT kind, COUNT(*) FROM dead_letters WHERE resolved_at IS NULL GROUP BY kind ORDER BY kind",
        )
        .fetch_all(c)
        .await)?;
        Ok(rows)
    }
}
