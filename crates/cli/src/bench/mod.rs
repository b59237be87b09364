//! `minipay bench ...`: benchmarks that print a table and write a JSON result (not tests).

mod history;
mod interest;
mod transfers;

pub use history::HistoryBench;
pub use interest::InterestBench;
pub use transfers::TransfersBench;

use anyhow::{Context, bail};
use minipay_server::{ClockKind, Core, Settings};
use sqlx::Connection;
use std::future::Future;

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
