//! Store errors, with constraint violations told apart so services can map them to domain errors,
//! and lost lock conflicts so that they can be retried.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint rejected the write (e.g. a duplicate email).
    #[error("unique constraint violated: {0}")]
    Unique(String),
    /// A CHECK constraint rejected the write — e.g. a user account below zero available. The
    /// services check every rule under the row lock first, so this means a bug or a race the
    /// locks should have prevented; the transaction is rolled back.
    #[error("check constraint violated: {0}")]
    Check(String),
    /// A balance write found the row changed since it was locked: a locking bug.
    #[error("lost update on account {0}")]
    LostUpdate(String),
    /// A row that cannot be turned back into a domain value.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    /// The transaction lost on a lock and was rolled back, writing nothing: PostgreSQL chose it
    /// to break a deadlock, its wait passed `lock_timeout`, or (above READ COMMITTED) it could
    /// not be serialised; SQLite found the database busy or locked. Running it again can succeed.
    #[error("lock conflict")]
    LockConflict(#[source] sqlx::Error),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("database error")]
    Database(#[source] sqlx::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(err: sqlx::Error) -> Self {
        if let Some(db) = err.as_database_error() {
            let what = db
                .constraint()
                .map(str::to_owned)
                .unwrap_or_else(|| db.message().to_owned());
            match db.kind() {
                sqlx::error::ErrorKind::UniqueViolation => return Self::Unique(what),
                sqlx::error::ErrorKind::CheckViolation => return Self::Check(what),
                _ if is_lock_conflict(db) => return Self::LockConflict(err),
                _ => {}
            }
        }
        Self::Database(err)
    }
}

/// PostgreSQL SQLSTATEs of a transaction that lost on a lock: `deadlock_detected`,
/// `lock_not_available` (`lock_timeout`, `NOWAIT`) and `serialization_failure`.
const PG_LOCK_CONFLICTS: [&str; 3] = ["40P01", "55P03", "40001"];
/// SQLite primary result codes `SQLITE_BUSY` and `SQLITE_LOCKED` (the low byte of the
/// extended codes sqlx reports, e.g. `SQLITE_BUSY_SNAPSHOT`).
const SQLITE_LOCK_CONFLICTS: [i32; 2] = [5, 6];

fn is_lock_conflict(db: &dyn sqlx::error::DatabaseError) -> bool {
    let Some(code) = db.code() else { return false };
    if db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some() {
        PG_LOCK_CONFLICTS.contains(&code.as_ref())
    } else {
        db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some()
            && code
                .parse::<i32>()
                .is_ok_and(|c| SQLITE_LOCK_CONFLICTS.contains(&(c & 0xff)))
    }
}

impl StoreError {
    /// Whether the transaction lost on a lock (see [`Self::LockConflict`]): worth running again.
    pub fn is_lock_conflict(&self) -> bool {
        matches!(self, Self::LockConflict(_))
    }

    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        Self::Corrupt(what.to_string())
    }
}
