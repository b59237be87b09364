//! Upstream breakers: one JSON row per upstream, read by every instance and changed under the
//! row's lock, so that every instance shares one breaker.

use crate::Result;
use crate::session::{Db, Session};
use crate::types::DbTime;
use jiff::Timestamp;

impl Session {
    /// Every stored breaker: (upstream id, breaker JSON).
    pub async fn breakers(&mut self) -> Result<Vec<(String, String)>> {
        let rows: Vec<(String, String)> = on_db!(self, c => sqlx::query_as(
            "SELECT upstream_id, breaker FROM upstream_breakers ORDER BY upstream_id"
        )
        .fetch_all(c)
        .await)?;
        Ok(rows)
    }

    /// One upstream's breaker, locked until the transaction ends (PostgreSQL `FOR UPDATE`;
    /// SQLite's writer lock already serialises writers).
    pub async fn breaker_for_update(&mut self, upstream: &str) -> Result<Option<String>> {
        self.assert_writable();
        let row: Option<String> = match self.db() {
            Db::Pg(c) => {
                sqlx::query_scalar("SELECT breaker FROM upstream_breakers WHERE upstream_id = $1 FOR UPDATE")
                    .bind(upstream)
                    .fetch_optional(c)
                    .await?
            }
            Db::Sqlite(c) => {
                sqlx::query_scalar("SELECT breaker FROM upstream_breakers WHERE upstream_id = $1")
                    .bind(upstream)
                    .fetch_optional(c)
                    .await?
            }
        };
        Ok(row)
    }

    /// Writes an upstream's breaker.
    pub async fn put_breaker(&mut self, upstream: &str, breaker: &str, now: Timestamp) -> Result<()> {
        self.assert_writable();
        on_db!(self, c => sqlx::query(
            "INSERT INTO upstream_breakers (upstream_id, breaker, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (upstream_id) DO UPDATE SET breaker = EXCLUDED.breaker, updated_at = EXCLUDED.updated_at"
        )
        .bind(upstream)
        .bind(breaker)
        .bind(DbTime(now))
        .execute(c)
        .await.map(|r| r.rows_affected()))?;
        Ok(())
    }
}
