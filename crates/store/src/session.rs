//! Connecting, migrating, and the `Session` every query runs in (a transaction or a read).

use crate::Result;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::pool::{PoolConnection, PoolOptions};
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, PgConnection, PgPool, Postgres, SqlStr, Sqlite, SqliteConnection, SqlitePool, Transaction};
use std::str::FromStr;
use std::time::Duration;

/// Which engine a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Postgres,
    Sqlite,
}

/// Pool settings. Every limit is named with its unit.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// PostgreSQL: connections in the pool.
    pub pg_connections_max: u32,
    /// PostgreSQL: connections opened before `connect` returns and kept open (at most
    /// `pg_connections_max`): the first requests find them ready instead of each opening one.
    pub pg_connections_min: u32,
    /// SQLite: connections for reads (writes use one connection: SQLite has one writer).
    pub sqlite_readers_max: u32,
    /// How long a request waits for a free connection before failing.
    pub acquire_timeout_ms: u64,
    /// SQLite: how long a statement waits for another process's write lock.
    pub sqlite_busy_timeout_ms: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            pg_connections_max: 16,
            pg_connections_min: 0,
            sqlite_readers_max: 4,
            acquire_timeout_ms: 30_000,
            sqlite_busy_timeout_ms: 10_000,
        }
    }
}

/// A pooled connection that idled at least this long is pinged before it is handed out, and
/// replaced if the database has closed it meanwhile; one used more recently is handed out as
/// it is (HikariCP's alive-bypass window, 500 ms). sqlx by default pings on every acquire: a
/// round trip to the database before every session, however busy the connection.
pub const IDLE_BEFORE_PING: Duration = Duration::from_millis(500);

/// A pool of at most `max` connections, waiting at most `acquire` for one, that pings only
/// connections idle for [`IDLE_BEFORE_PING`] or more before handing them out.
fn pool_options<DB: sqlx::Database>(max: u32, acquire: Duration) -> PoolOptions<DB> {
    PoolOptions::new()
        .max_connections(max)
        .acquire_timeout(acquire)
        .test_before_acquire(false)
        .before_acquire(|conn: &mut DB::Connection, meta| {
            Box::pin(async move {
                if meta.idle_for >= IDLE_BEFORE_PING {
                    conn.ping().await?;
                }
                Ok(true)
            })
        })
}

#[derive(Debug, Clone)]
pub(crate) enum Backend {
    Postgres(PgPool),
    /// SQLite allows one writer at a time; a one-connection writer pool makes writers queue
    /// fairly in the pool instead of spinning on SQLITE_BUSY. Readers run beside it (WAL).
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
    },
}

/// The database: a pool (or two, on SQLite). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Store {
    backend: Backend,
}

impl Store {
    /// Connects to `postgres://...` or `sqlite://PATH` (the file is created if missing).
    pub async fn connect(url: &str, opts: &StoreOptions) -> Result<Self> {
        let acquire = Duration::from_millis(opts.acquire_timeout_ms);
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let connect = PgConnectOptions::from_str(url)?.application_name("minipay");
            let pool = pool_options::<Postgres>(opts.pg_connections_max, acquire)
                .min_connections(opts.pg_connections_min.min(opts.pg_connections_max))
                .connect_with(connect)
                .await?;
            Backend::Postgres(pool)
        } else if url.starts_with("sqlite:") {
            let connect = SqliteConnectOptions::from_str(url)?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: an acknowledged payment survives a power cut, not just a crash.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_millis(opts.sqlite_busy_timeout_ms));
            let writer = pool_options::<Sqlite>(1, acquire).connect_with(connect.clone()).await?;
            let reader = pool_options::<Sqlite>(opts.sqlite_readers_max, acquire)
                .connect_with(connect.read_only(true))
                .await?;
            Backend::Sqlite { writer, reader }
        } else {
            return Err(crate::StoreError::Corrupt(format!(
                "unsupported database URL (expected postgres:// or sqlite://): {url}"
            )));
        };
        Ok(Self { backend })
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }

    pub fn kind(&self) -> BackendKind {
        match self.backend {
            Backend::Postgres(_) => BackendKind::Postgres,
            Backend::Sqlite { .. } => BackendKind::Sqlite,
        }
    }

    /// Applies the embedded migrations for this backend. Safe to run from several
    /// instances at once (the migrator takes a database lock).
    #[tracing::instrument(name = "minipay.store.migrate", skip_all, err(level = "debug"))]
    pub async fn migrate(&self) -> Result<()> {
        match &self.backend {
            Backend::Postgres(pool) => migrator(BackendKind::Postgres).run(pool).await?,
            Backend::Sqlite { writer, .. } => migrator(BackendKind::Sqlite).run(writer).await?,
        }
        Ok(())
    }

    /// Starts a write transaction. PostgreSQL: READ COMMITTED, with money rows locked
    /// explicitly (see docs/decisions.md). SQLite: `BEGIN IMMEDIATE` on the single writer.
    pub async fn begin(&self) -> Result<Session> {
        let conn = match &self.backend {
            Backend::Postgres(pool) => Conn::PgTx(pool.begin().await?),
            Backend::Sqlite { writer, .. } => Conn::SqliteTx(writer.begin_with("BEGIN IMMEDIATE").await?),
        };
        Ok(Session { conn })
    }

    /// [`Self::begin`], with every lock wait of the transaction (a row, a key another
    /// transaction is inserting) failing after `lock_wait_max` instead of waiting on. Set in
    /// the same round trip as `BEGIN`. SQLite: the same as `begin` (its one writer never waits
    /// inside a transaction).
    pub async fn begin_with_lock_wait(&self, lock_wait_max: Duration) -> Result<Session> {
        let conn = match &self.backend {
            Backend::Postgres(pool) => {
                let begin = format!(
                    "BEGIN; SET LOCAL lock_timeout = '{}ms'",
                    lock_wait_max.as_millis().max(1)
                );
                // A number we formatted: nothing from outside reaches this statement.
                Conn::PgTx(pool.begin_with(sqlx::AssertSqlSafe(begin)).await?)
            }
            Backend::Sqlite { .. } => return self.begin().await,
        };
        Ok(Session { conn })
    }

    /// A connection for reads outside any transaction (each statement sees committed data).
    pub async fn read(&self) -> Result<Session> {
        let conn = match &self.backend {
            Backend::Postgres(pool) => Conn::PgRead(pool.acquire().await?),
            Backend::Sqlite { reader, .. } => Conn::SqliteRead(reader.acquire().await?),
        };
        Ok(Session { conn })
    }

    /// A session for one write statement, atomic by itself: on PostgreSQL a pooled connection
    /// outside any transaction (no `BEGIN` and `COMMIT` round trips: a worker polling an empty
    /// queue costs one), on SQLite a transaction on the single writer. Run exactly one write in
    /// it (or, after a write that failed and so wrote nothing, one more), then `commit` (a no-op
    /// on PostgreSQL).
    pub async fn one_statement(&self) -> Result<Session> {
        match self.autocommit_pg().await? {
            Some(c) => Ok(Session {
                conn: Conn::PgOneStatement(c),
            }),
            None => self.begin().await,
        }
    }

    /// PostgreSQL: a pooled connection outside any transaction, for a write that is one
    /// statement (and so atomic by itself) — no `BEGIN` and `COMMIT` round trips. `None` on
    /// SQLite. Only this crate's single-statement writes use it.
    pub(crate) async fn autocommit_pg(&self) -> Result<Option<sqlx::pool::PoolConnection<sqlx::Postgres>>> {
        match &self.backend {
            Backend::Postgres(pool) => Ok(Some(pool.acquire().await?)),
            Backend::Sqlite { .. } => Ok(None),
        }
    }

    /// Whether the database answers (for `/health/ready`).
    pub async fn ping(&self) -> Result<()> {
        let mut s = self.read().await?;
        on_db!(s, c => sqlx::query("SELECT 1").execute(c).await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn close(&self) {
        match &self.backend {
            Backend::Postgres(pool) => pool.close().await,
            Backend::Sqlite { writer, reader } => {
                writer.close().await;
                reader.close().await;
            }
        }
    }
}

/// The embedded migrations of one backend: `(version, file stem)` pairs under
/// `migrations/<backend>/`, in order. Both backends have the same versions.
macro_rules! migrations {
    ($dir:literal: $($version:literal => $stem:literal),+ $(,)?) => {
        &[$(($version, $stem, include_str!(concat!("../migrations/", $dir, "/", $stem, ".sql")))),+]
    };
}

fn migrator(kind: BackendKind) -> Migrator {
    let files: &[(i64, &str, &'static str)] = match kind {
        BackendKind::Postgres => migrations!("postgres":
            1 => "0001_wallet",
            2 => "0002_entry_order_and_fin_accounts",
            3 => "0003_jobs_pending_savings_settlements",
            4 => "0004_interest_basis",
            5 => "0005_backfill_savings_and_heartbeats",
            6 => "0006_history_partitions",
            7 => "0007_carried_balances",
            8 => "0008_businesses",
            9 => "0009_events",
            10 => "0010_remittances",
            11 => "0011_gateway",
            12 => "0012_readside",
            13 => "0013_payments",
            14 => "0014_webhooks",
            15 => "0015_payouts",
            16 => "0016_payments_hot_updates",
        ),
        BackendKind::Sqlite => migrations!("sqlite":
            1 => "0001_wallet",
            2 => "0002_entry_order_and_fin_accounts",
            3 => "0003_jobs_pending_savings_settlements",
            4 => "0004_interest_basis",
            5 => "0005_backfill_savings_and_heartbeats",
            6 => "0006_history_partitions",
            7 => "0007_carried_balances",
            8 => "0008_businesses",
            9 => "0009_events",
            10 => "0010_remittances",
            11 => "0011_gateway",
            12 => "0012_readside",
            13 => "0013_payments",
            14 => "0014_webhooks",
            15 => "0015_payouts",
            16 => "0016_payments_hot_updates",
        ),
    };
    Migrator::with_migrations(
        files
            .iter()
            .map(|&(version, name, sql)| {
                Migration::new(
                    version,
                    name.into(),
                    MigrationType::Simple,
                    SqlStr::from_static(sql),
                    false,
                )
            })
            .collect(),
    )
}

enum Conn {
    PgTx(Transaction<'static, Postgres>),
    PgRead(PoolConnection<Postgres>),
    /// Outside any transaction, for one write statement ([`Store::one_statement`]).
    PgOneStatement(PoolConnection<Postgres>),
    SqliteTx(Transaction<'static, Sqlite>),
    SqliteRead(PoolConnection<Sqlite>),
}

/// A unit of work: a write transaction from [`Store::begin`], a read connection from
/// [`Store::read`], or one write statement's connection from [`Store::one_statement`]. Every query in this crate is a method on `Session`, so any write can
/// join the caller's transaction (a posting, its entries and its idempotency record commit
/// together). Dropping a transaction without `commit` rolls it back.
pub struct Session {
    conn: Conn,
}

/// The connection a query runs on, by engine.
pub(crate) enum Db<'a> {
    Pg(&'a mut PgConnection),
    Sqlite(&'a mut SqliteConnection),
}

impl Session {
    pub(crate) fn db(&mut self) -> Db<'_> {
        match &mut self.conn {
            Conn::PgTx(tx) => Db::Pg(tx),
            Conn::PgRead(c) | Conn::PgOneStatement(c) => Db::Pg(c),
            Conn::SqliteTx(tx) => Db::Sqlite(tx),
            Conn::SqliteRead(c) => Db::Sqlite(c),
        }
    }

    /// The rows of `select` (`SELECT … FROM t`, its `WHERE` to come) whose `id` is one of
    /// `ids` and that match `and` (`""` or ` AND …`), in no particular order.
    pub(crate) async fn rows_with_ids<R>(&mut self, select: &str, and: &str, ids: &[uuid::Uuid]) -> Result<Vec<R>>
    where
        R: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + Send
            + Unpin,
    {
        self.rows_where_in(select, "id", and, ids).await
    }

    /// The rows of `select` whose `column` is one of `values` and that match `and`, in no
    /// particular order: one statement on PostgreSQL (`column = ANY($1)`: one text whatever
    /// the count, so prepared once per connection), one `column = $1` lookup per value on
    /// SQLite.
    pub(crate) async fn rows_where_in<R, V>(
        &mut self,
        select: &str,
        column: &str,
        and: &str,
        values: &[V],
    ) -> Result<Vec<R>>
    where
        R: for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
            + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
            + Send
            + Unpin,
        V: for<'q> sqlx::Encode<'q, sqlx::Postgres>
            + sqlx::Type<sqlx::Postgres>
            + sqlx::postgres::PgHasArrayType
            + for<'q> sqlx::Encode<'q, sqlx::Sqlite>
            + sqlx::Type<sqlx::Sqlite>
            + Clone
            + Send
            + Sync,
    {
        if values.is_empty() {
            return Ok(Vec::new());
        }
        Ok(match self.db() {
            Db::Pg(c) => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!("{select} WHERE {column} = ANY($1){and}")))
                    .bind(values)
                    .fetch_all(c)
                    .await?
            }
            Db::Sqlite(c) => {
                let one = format!("{select} WHERE {column} = $1{and}");
                let mut rows = Vec::with_capacity(values.len());
                for value in values {
                    rows.extend(
                        sqlx::query_as(sqlx::AssertSqlSafe(one.as_str()))
                            .bind(value.clone())
                            .fetch_optional(&mut *c)
                            .await?,
                    );
                }
                rows
            }
        })
    }

    pub fn kind(&self) -> BackendKind {
        match self.conn {
            Conn::PgTx(_) | Conn::PgRead(_) | Conn::PgOneStatement(_) => BackendKind::Postgres,
            Conn::SqliteTx(_) | Conn::SqliteRead(_) => BackendKind::Sqlite,
        }
    }

    /// Commits a transaction; a no-op for a read session (and a one-statement session on
    /// PostgreSQL, whose statement committed by itself).
    pub async fn commit(self) -> Result<()> {
        match self.conn {
            Conn::PgTx(tx) => tx.commit().await?,
            Conn::SqliteTx(tx) => tx.commit().await?,
            Conn::PgRead(_) | Conn::PgOneStatement(_) | Conn::SqliteRead(_) => {}
        }
        Ok(())
    }

    /// Rolls a transaction back explicitly (dropping does the same, later).
    pub async fn rollback(self) -> Result<()> {
        match self.conn {
            Conn::PgTx(tx) => tx.rollback().await?,
            Conn::SqliteTx(tx) => tx.rollback().await?,
            Conn::PgRead(_) | Conn::PgOneStatement(_) | Conn::SqliteRead(_) => {}
        }
        Ok(())
    }

    /// Whether each statement commits by itself (PostgreSQL's [`Store::one_statement`]).
    pub(crate) fn is_one_statement(&self) -> bool {
        matches!(self.conn, Conn::PgOneStatement(_))
    }

    pub(crate) fn assert_writable(&self) {
        assert!(
            matches!(self.conn, Conn::PgTx(_) | Conn::PgOneStatement(_) | Conn::SqliteTx(_)),
            "writes must run inside a transaction (or a one-statement session)"
        );
    }
}
