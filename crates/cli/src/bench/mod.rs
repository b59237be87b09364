//! `minipay bench ...`: benchmarks that print a table and write a JSON result (not tests).

mod approvals;
mod history;
mod interest;
mod payments;
mod readside;
mod remittances;
mod transfers;

pub use approvals::ApprovalsBench;
pub use history::HistoryBench;
pub use interest::InterestBench;
pub use payments::PaymentsBench;
pub use readside::ReadsideBench;
pub use remittances::RemittancesBench;
pub use transfers::TransfersBench;

use anyhow::{Context, bail};
use minipay_server::{ClockKind, Core, Settings};
use serde_json::Value;
use sqlx::Connection;
use std::future::Future;
use std::process::Stdio;
use tokio::io::AsyncBufReadExt;

/// Nearest-rank percentile `p` (0..=1) of `samples`; 0 when there are none.
pub fn percentile(samples: &[f64], p: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let mut v = samples.to_vec();
    v.sort_by(f64::total_cmp);
    let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

/// Writes a benchmark's machine-readable result to `path` (its folder made if missing).
pub fn write_result(path: &std::path::Path, result: &Value) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, serde_json::to_string_pretty(result)? + "\n")?;
    println!("wrote {}", path.display());
    Ok(())
}

/// Where a benchmark makes its scratch database.
#[derive(clap::Args)]
pub struct ScratchDatabase {
    /// A PostgreSQL URL through which a scratch database is created and dropped.
    #[arg(
        long = "database-url",
        value_name = "URL",
        env = "MINIPAY_BENCH_DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub admin_url: String,
    /// Keep the scratch database afterwards.
    #[arg(long)]
    pub keep: bool,
}

impl ScratchDatabase {
    /// Runs `body` on a fresh scratch database (dropped afterwards unless `--keep`), handing
    /// it the database's URL.
    pub async fn with<F, Fut>(&self, body: F) -> anyhow::Result<()>
    where
        F: FnOnce(String) -> Fut,
        Fut: Future<Output = anyhow::Result<()>>,
    {
        with_scratch_database(&self.admin_url, self.keep, body).await
    }
}

/// The application on `url`, migrated, on a manual clock standing at `now`, with no scheduler
/// (the benchmark runs jobs by hand).
pub async fn core_at(url: &str, now: &str) -> anyhow::Result<Core> {
    let settings = Settings {
        database_url: url.to_owned(),
        clock: ClockKind::Manual,
        clock_start: Some(now.parse()?),
        scheduler: false,
        ..Settings::default()
    };
    Core::build(&settings).await
}

async fn with_scratch_database<F, Fut>(admin_url: &str, keep: bool, body: F) -> anyhow::Result<()>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    if !admin_url.starts_with("postgres") {
        bail!("benchmarks run on PostgreSQL (give --database-url postgres://...)");
    }
    let name = format!("minipay_bench_{}", jiff::Timestamp::now().as_second());
    let base = admin_url.rsplit_once('/').map_or(admin_url, |(b, _)| b);
    let url = format!("{base}/{name}");
    let mut admin = sqlx::PgConnection::connect(admin_url).await.context("connecting")?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut admin)
        .await?;
    let result = body(url).await;
    if keep {
        println!("kept the scratch database {name}");
    } else {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")))
            .execute(&mut admin)
            .await?;
    }
    result
}

/// PostgreSQL's WAL segment files, counted through `pg_ls_waldir()` (superuser or
/// `pg_monitor`). When the server needs a segment it has none to recycle for, it makes one
/// while it writes the WAL — zero-fills 16 MB and syncs it under the WAL write lock — and
/// every commit waits for that (30–65 ms in a machine's first run of the payments bench; too
/// short to see in later runs, docs/bench/payments.md run 13). The count grows by the
/// segments made; a recycled segment is renamed, so it does not count (and a checkpoint that
/// removes old segments in between lowers it: the difference of two counts is net).
pub struct WalSegments {
    conn: sqlx::PgConnection,
}

impl WalSegments {
    pub async fn watch(database_url: &str) -> anyhow::Result<Self> {
        let conn = sqlx::PgConnection::connect(database_url).await.context("connecting")?;
        Ok(Self { conn })
    }

    /// The segment files now; `None` when this role may not list them.
    pub async fn count(&mut self) -> Option<i64> {
        sqlx::query_scalar("SELECT COUNT(*) FROM pg_ls_waldir() WHERE name ~ '^[0-9A-F]{24}$'")
            .fetch_one(&mut self.conn)
            .await
            .ok()
    }

    /// The settings that decide how many segments are kept to recycle: `min_wal_size` (kept
    /// even when unused) and `max_wal_size`.
    pub async fn settings(&mut self) -> Value {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT name, current_setting(name) FROM pg_settings WHERE name IN ('min_wal_size', 'max_wal_size')",
        )
        .fetch_all(&mut self.conn)
        .await
        .unwrap_or_default();
        rows.into_iter().map(|(k, v)| (k, Value::String(v))).collect()
    }
}

/// `minipay serve` as a child process (killed when dropped).
pub struct ServerProcess {
    child: tokio::process::Child,
    pub base: String,
}

impl ServerProcess {
    /// Starts it on `database_url` with `env` added to the usual settings.
    pub async fn start(database_url: &str, admin_token: &str, env: &[(&str, &str)]) -> anyhow::Result<Self> {
        let jwt = uuid::Uuid::now_v7().simple().to_string() + "-bench-jwt-secret";
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .arg("serve")
            .envs(env.iter().copied())
            .env("MINIPAY_LISTEN", "127.0.0.1:0")
            .env("MINIPAY_DATABASE_URL", database_url)
            .env("MINIPAY_ADMIN_TOKEN", admin_token)
            .env("MINIPAY_JWT_SECRET", jwt)
            .env("MINIPAY_SCHEDULER", "false")
            .env("MINIPAY_LOG", "error")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting minipay serve")?;
        let mut lines = tokio::io::BufReader::new(child.stdout.take().context("stdout")?).lines();
        let base = loop {
            match lines.next_line().await? {
                Some(l) => {
                    if let Some(addr) = l.split("listening on ").nth(1) {
                        break addr.trim().to_owned();
                    }
                }
                None => bail!("minipay serve exited before listening"),
            }
        };
        // Keep reading stdout so that the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Self { child, base })
    }

    pub async fn get(&self, client: &reqwest::Client, path: &str, token: &str) -> anyhow::Result<Value> {
        Ok(client
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
