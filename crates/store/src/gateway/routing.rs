//! Routing versions: every change of the routing configuration kept, the highest in force.

use crate::Result;
use crate::session::Session;
use crate::types::DbTime;
use jiff::Timestamp;

/// One version of the routing configuration, its JSON as the gateway wrote it.
#[derive(Debug, Clone)]
pub struct RoutingVersion {
    pub version: i64,
    pub config: String,
    pub changed_by: String,
    pub changed_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct RoutingVersionRow {
    version: i64,
    config: String,
    changed_by: String,
    changed_at: DbTime,
}

impl From<RoutingVersionRow> for RoutingVersion {
    fn from(r: RoutingVersionRow) -> Self {
        Self {
            version: r.version,
            config: r.config,
            changed_by: r.changed_by,
            changed_at: r.changed_at.0,
        }
    }
}

/// `SELECT ... FROM routing_versions` followed by the given clause, as a `&'static str`.
macro_rules! select_versions {
    ($rest:literal) => {
        concat!(
            "SELECT version, config, changed_by, changed_at FROM routing_versions ",
            $rest
        )
    };
}

impl Session {
    /// Records a version. A version number already taken (a concurrent change that committed
    /// first) fails with `StoreError::Unique`.
    pub async fn insert_routing_version(&mut self, v: &RoutingVersion) -> Result<()> {
        self.assert_writable();
        on_db!(self, c => sqlx::query(
            "INSERT INTO routing_versions (version, config, changed_by, changed_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(v.version)
        .bind(&v.config)
        .bind(&v.changed_by)
        .bind(DbTime(v.changed_at))
        .execute(c)
        .await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The version in force (the highest), if routing was ever set.
    pub async fn current_routing_version(&mut self) -> Result<Option<RoutingVersion>> {
        let row: Option<RoutingVersionRow> = on_db!(self, c => sqlx::query_as(select_versions!("ORDER BY version DESC LIMIT 1"))
                .fetch_optional(c)
                .await)?;
        Ok(row.map(RoutingVersion::from))
    }

    /// The version that was in force at `at` (the highest changed at or before it).
    pub async fn routing_version_at(&mut self, at: Timestamp) -> Result<Option<RoutingVersion>> {
        let row: Option<RoutingVersionRow> = on_db!(self, c => sqlx::query_as(select_versions!(
            "WHERE changed_at <= $1 ORDER BY version DESC LIMIT 1"
        ))
        .bind(DbTime(at))
        .fetch_optional(c)
        .await)?;
        Ok(row.map(RoutingVersion::from))
    }

    /// Versions, newest first, below the keyset cursor `before` (a version number).
    pub async fn routing_versions(&mut self, before: Option<i64>, limit: u32) -> Result<Vec<RoutingVersion>> {
        let rows: Vec<RoutingVersionRow> = on_db!(self, c => sqlx::query_as(select_versions!(
            "WHERE version < $1 ORDER BY version DESC LIMIT $2"
        ))
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(c)
        .await)?;
        Ok(rows.into_iter().map(RoutingVersion::from).collect())
    }
}
