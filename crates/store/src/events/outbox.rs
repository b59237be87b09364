//! The transactional outbox: events written with the change they report, read in order by the
//! relay, marked published; and the relay's leadership (one publisher at a time, in order).

use crate::session::{Backend, Db, Session, Store};
use crate::types::DbTime;
use crate::{Result, StoreError};
use jiff::Timestamp;
use sqlx::Connection;
use uuid::Uuid;

/// An event to write in the caller's transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub id: Uuid,
    /// Relative to the configured prefix, e.g. `remittance.credited`.
    pub subject: String,
    pub payload: serde_json::Value,
    pub created_at: Timestamp,
}

/// An outbox row, in publish order (`seq`).
#[derive(Debug, Clone, PartialEq)]
pub struct OutboxEvent {
    pub seq: i64,
    pub id: Uuid,
    pub subject: String,
    /// The JSON payload as written (published byte for byte).
    pub payload: String,
    pub created_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    seq: i64,
    id: Uuid,
    subject: String,
    payload: String,
    created_at: DbTime,
}

impl From<OutboxRow> for OutboxEvent {
    fn from(r: OutboxRow) -> Self {
        Self {
            seq: r.seq,
            id: r.id,
            subject: r.subject,
            payload: r.payload,
            created_at: r.created_at.0,
        }
    }
}

const SELECT_UNPUBLISHED: &str = "SELECT seq, id, subject, payload, created_at FROM outbox
     WHERE published_at IS NULL ORDER BY seq LIMIT $1";

impl Session {
    /// Writes events in the caller's transaction: they exist iff the change commits (one
    /// statement on PostgreSQL).
    pub async fn insert_events(&mut self, events: &[NewEvent]) -> Result<()> {
        self.assert_writable();
        const INSERT: &str = "INSERT INTO outbox (id, subject, payload, created_at)";
        match self.db() {
            Db::Pg(c) if events.len() > 1 => {
                let ids: Vec<Uuid> = events.iter().map(|e| e.id).collect();
                let subjects: Vec<&str> = events.iter().map(|e| e.subject.as_str()).collect();
                let payloads: Vec<String> = events.iter().map(|e| e.payload.to_string()).collect();
                let at: Vec<DbTime> = events.iter().map(|e| DbTime(e.created_at)).collect();
                // WITH ORDINALITY keeps the events' order in `seq`.
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{INSERT} SELECT id, subject, payload, at
                     FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::timestamptz[]) WITH ORDINALITY
                          AS t(id, subject, payload, at, n) ORDER BY n"
                )))
                .bind(&ids)
                .bind(&subjects)
                .bind(&payloads)
                .bind(&at)
                .execute(c)
                .await?;
            }
            _ => {
                for e in events {
                    on_db!(self, c => sqlx::query(sqlx::AssertSqlSafe(format!("{INSERT} VALUES ($1, $2, $3, $4)")))
                        .bind(e.id)
                        .bind(&e.subject)
                        .bind(e.payload.to_string())
                        .bind(DbTime(e.created_at))
                        .execute(&mut *c)
                        .await
                        .map(|r| r.rows_affected()))?;
                }
            }
        }
        Ok(())
    }

    /// The oldest unpublished events, in order, without locking them (the relay that reads
    /// them holds the leadership; a duplicate publish is dropped by JetStream's window anyway).
    pub async fn unpublished_events(&mut self, limit: u32) -> Result<Vec<OutboxEvent>> {
        let rows: Vec<OutboxRow> = on_db!(self, c => sqlx::query_as(SELECT_UNPUBLISHED)
            .bind(i64::from(limit))
            .fetch_all(c)
            .await)?;
        Ok(rows.into_iter().map(OutboxEvent::from).collect())
    }

    /// Events of subjects starting with `subject_prefix`, published or not, after outbox
    /// position `after_seq`, in order: what a read side rebuilds itself from.
    pub async fn outbox_events_after(
        &mut self,
        subject_prefix: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<OutboxEvent>> {
        let pattern = format!("{}%", subject_prefix.replace('%', "\\%").replace('_', "\\_"));
        let rows: Vec<OutboxRow> = on_db!(self, c => sqlx::query_as(
            "SELECT seq, id, subject, payload, created_at FROM outbox
             WHERE seq > $1 AND subject LIKE $2 ESCAPE '\\' ORDER BY seq LIMIT $3",
        )
        .bind(after_seq)
        .bind(&pattern)
        .bind(i64::from(limit))
        .fetch_all(c)
        .await)?;
        Ok(rows.into_iter().map(OutboxEvent::from).collect())
    }

    /// The oldest unpublished events, locked for this transaction; PostgreSQL skips rows
    /// another dispatcher holds, so several instances dispatch disjoint events.
    pub async fn claim_unpublished_events(&mut self, limit: u32) -> Result<Vec<OutboxEvent>> {
        self.assert_writable();
        let rows: Vec<OutboxRow> = match self.db() {
            Db::Pg(c) => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "{SELECT_UNPUBLISHED} FOR UPDATE SKIP LOCKED"
                )))
                .bind(i64::from(limit))
                .fetch_all(c)
                .await?
            }
            Db::Sqlite(c) => {
                sqlx::query_as(SELECT_UNPUBLISHED)
                    .bind(i64::from(limit))
                    .fetch_all(c)
                    .await?
            }
        };
        Ok(rows.into_iter().map(OutboxEvent::from).collect())
    }

    /// Marks events published (already published ones stay as they were).
    pub async fn mark_events_published(&mut self, seqs: &[i64], now: Timestamp) -> Result<u64> {
        self.assert_writable();
        let marked = match self.db() {
            // One statement for the batch.
            Db::Pg(c) => {
                sqlx::query("UPDATE outbox SET published_at = $2 WHERE seq = ANY($1) AND published_at IS NULL")
                    .bind(seqs)
                    .bind(DbTime(now))
                    .execute(c)
                    .await?
                    .rows_affected()
            }
            // In-process: a statement per row costs no round trip.
            Db::Sqlite(c) => {
                let mut marked = 0;
                for seq in seqs {
                    marked +=
                        sqlx::query("UPDATE outbox SET published_at = $2 WHERE seq = $1 AND published_at IS NULL")
                            .bind(seq)
                            .bind(DbTime(now))
                            .execute(&mut *c)
                            .await?
                            .rows_affected();
                }
                marked
            }
        };
        Ok(marked)
    }

    /// When the oldest unpublished event was written (the outbox lag), if any.
    pub async fn oldest_unpublished_event_at(&mut self) -> Result<Option<Timestamp>> {
        let at: Option<DbTime> = on_db!(self, c => sqlx::query_scalar(
            "SELECT created_at FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT 1",
        )
        .fetch_optional(c)
        .await)?;
        Ok(at.map(|t| t.0))
    }

    /// Counts of the outbox: `(unpublished, published)`.
    pub async fn outbox_counts(&mut self) -> Result<(i64, i64)> {
        let row: (i64, i64) = on_db!(self, c => sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(CASE WHEN published_at IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN published_at IS NULL THEN 0 ELSE 1 END), 0) AS BIGINT)
             FROM outbox",
        )
        .fetch_one(c)
        .await)?;
        Ok(row)
    }
}

/// The right to publish the outbox, held by one process at a time so events go out in order.
/// PostgreSQL: a session advisory lock on a connection taken out of the pool, so the lock dies
/// with the process (a crashed leader is replaced at once, with no lease to wait out). SQLite:
/// one process owns the file, so leadership is always granted.
pub struct Leadership {
    conn: Option<sqlx::PgConnection>,
}

impl Leadership {
    /// Whether leadership is still held (the PostgreSQL connection still answers).
    pub async fn is_held(&mut self) -> bool {
        match &mut self.conn {
            None => true,
            Some(c) => c.ping().await.is_ok(),
        }
    }
}

impl Store {
    /// Tries to become the one publisher named by `key`; `None` when another process is.
    pub async fn try_leadership(&self, key: i64) -> Result<Option<Leadership>> {
        match self.backend() {
            Backend::Postgres(pool) => {
                let mut conn = pool.acquire().await?.detach();
                let won: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(key)
                    .fetch_one(&mut conn)
                    .await
                    .map_err(StoreError::from)?;
                Ok(won.then_some(Leadership { conn: Some(conn) }))
            }
            Backend::Sqlite { .. } => Ok(Some(Leadership { conn: None })),
        }
    }
}
