//! Test databases (feature `testing`): a fresh SQLite file or PostgreSQL database per test,
//! removed after it; the PostgreSQL half is skipped with a visible message when PostgreSQL is
//! unreachable, unless it is required (CI, or `MINIPAY_TEST_REQUIRE_POSTGRES=1`).

use crate::BackendKind;
/// The payment group's first statement, for a test of its plans.
pub use crate::payments::PAYMENT_GROUP_STATEMENT;
use sqlx::Connection;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long a test waits for PostgreSQL to answer before skipping (or failing).
const CONNECT_TIMEOUT_SECS: u64 = 5;

/// A database made for one test.
pub struct TestDb {
    pub url: String,
    cleanup: Cleanup,
    /// Set by [`TestDb::remove`]; a database dropped without it is removed on drop (a test
    /// that returned early or panicked leaves nothing behind).
    removed: AtomicBool,
}

enum Cleanup {
    /// Another test's database: it removes it.
    Borrowed,
    File(PathBuf),
    Postgres {
        admin_url: String,
        name: String,
    },
}

/// The PostgreSQL server tests use (`MINIPAY_TEST_POSTGRES_URL`).
pub fn postgres_admin_url() -> String {
    std::env::var("MINIPAY_TEST_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Whether a test must fail rather than skip when a service it needs is missing.
pub fn required(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| v == "1") || std::env::var_os("CI").is_some()
}

impl TestDb {
    /// A fresh database, or `None` when PostgreSQL is unreachable and not required.
    pub async fn create(backend: BackendKind) -> Option<Self> {
        let id = uuid::Uuid::now_v7().simple().to_string();
        match backend {
            BackendKind::Sqlite => {
                let path = std::env::temp_dir().join(format!("minipay-test-{id}.db"));
                Some(Self {
                    url: format!("sqlite://{}", path.display()),
                    cleanup: Cleanup::File(path),
                    removed: AtomicBool::new(false),
                })
            }
            BackendKind::Postgres => {
                let admin_url = postgres_admin_url();
                let connect = tokio::time::timeout(
                    Duration::from_secs(CONNECT_TIMEOUT_SECS),
                    sqlx::PgConnection::connect(&admin_url),
                )
                .await;
                let mut conn = match connect {
                    Ok(Ok(c)) => c,
                    Ok(Err(e)) if !required("MINIPAY_TEST_REQUIRE_POSTGRES") => {
                        return skip(&admin_url, &e.to_string());
                    }
                    Err(_) if !required("MINIPAY_TEST_REQUIRE_POSTGRES") => return skip(&admin_url, "timed out"),
                    other => panic!(
                        "PostgreSQL is required but unreachable at {admin_url}: {:?}",
                        other.err()
                    ),
                };
                let name = format!("minipay_test_{id}");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await
                    .expect("create test database");
                let base = admin_url
                    .rsplit_once('/')
                    .map_or(admin_url.as_str(), |(b, _)| b)
                    .to_owned();
                Some(Self {
                    url: format!("{base}/{name}"),
                    cleanup: Cleanup::Postgres { admin_url, name },
                    removed: AtomicBool::new(false),
                })
            }
        }
    }

    /// The same database, for a second user of it (a second server instance); the first one
    /// removes it.
    pub fn borrow(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            cleanup: Cleanup::Borrowed,
            removed: AtomicBool::new(true),
        }
    }

    pub async fn remove(&self) {
        if self.removed.swap(true, Ordering::SeqCst) {
            return;
        }
        match &self.cleanup {
            Cleanup::Borrowed => {}
            Cleanup::File(path) => {
                for suffix in ["", "-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
            }
            Cleanup::Postgres { admin_url, name } => {
                if let Ok(mut c) = sqlx::PgConnection::connect(admin_url).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .execute(&mut c)
                    .await;
                }
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.removed.load(Ordering::SeqCst) {
            return;
        }
        // Drop may run inside a runtime (which cannot be blocked on), so the removal gets a
        // thread and a runtime of its own.
        let this = Self {
            url: std::mem::take(&mut self.url),
            cleanup: std::mem::replace(&mut self.cleanup, Cleanup::Borrowed),
            removed: AtomicBool::new(false),
        };
        self.removed.store(true, Ordering::SeqCst);
        let removal = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() {
                rt.block_on(this.remove());
            }
        });
        let _ = removal.join();
    }
}

fn skip(url: &str, why: &str) -> Option<TestDb> {
    eprintln!(
        "SKIPPED (PostgreSQL half): no PostgreSQL at {url} ({why}). \
         Set MINIPAY_TEST_POSTGRES_URL, or MINIPAY_TEST_REQUIRE_POSTGRES=1 to make this a failure."
    );
    None
}
