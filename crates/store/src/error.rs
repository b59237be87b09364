//! Store errors, with constraint violations told apart so services can map them to domain errors.

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
                _ => {}
            }
        }
        Self::Database(err)
    }
}

impl StoreError {
    pub(crate) fn corrupt(what: impl std::fmt::Display) -> Self {
        Self::Corrupt(what.to_string())
    }
}
