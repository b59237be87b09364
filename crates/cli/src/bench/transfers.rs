//! `minipay bench transfers`: the classic pessimistic transfer in pgbench against minipay end
//! to end over HTTP, uniform and hot receiver, on PostgreSQL (and minipay on SQLite).

use super::{ScratchDatabase, ServerProcess};
use anyhow::{Context, bail};
use minipay_loadtest::{LoadTest, Population, Report, Scenario};
use serde_json::{Value, json};
use sqlx::Connection;
use std::path::{Path, PathBuf};

/// `minipay bench transfers`.
#[derive(clap::Args)]
pub struct TransfersBench {
    #[command(flatten)]
    pub db: ScratchDatabase,
    /// Accounts (users) transfers run between.
    #[arg(long, default_value_t = 1_000)]
    pub accounts: u32,
    /// Concurrent clients: pgbench connections, and minipay's virtual users.
    #[arg(long, default_value_t = 90)]
    pub concurrency: u32,
    /// Seconds measured per run.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Seconds of warm-up before each minipay run is measured.
    #[arg(long, default_value_t = 3)]
    pub ramp: u64,
    /// Won per transfer.
    #[arg(long, default_value_t = 1_000)]
    pub amount: i64,
    /// Skip minipay on SQLite.
    #[arg(long)]
    pub no_sqlite: bool,
    /// Skip the naive baseline (for iterating on minipay alone: no ratios are computed).
    #[arg(long)]
    pub no_naive: bool,
    /// Where to write the JSON result.
    #[arg(long, default_value = "docs/bench/transfers.json")]
    pub out: PathBuf,
}

/// One measured run.
#[derive(Debug, Clone, serde::Serialize)]
struct Run {
    system: String,
    workload: String,
    transfers_per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

impl TransfersBench {
    pub async fn run(self) -> anyhow::Result<()> {
        let this = &self;
        self.db.with(|url| async move { this.measure(&url).await }).await
    }

    async fn measure(&self, url: &str) -> anyhow::Result<()> {
        let work = std::env::temp_dir().join(format!("minipay-bench-transfers-{}", std::process::id()));
        std::fs::create_dir_all(&work)?;
        let mut runs = Vec::new();

        // 1. The naive baseline, straight on the database, before any server holds connections.
        if !self.no_naive {
            naive_schema(url, self.accounts).await?;
            for workload in ["uniform", "hot"] {
                settle(url).await?;
                let run = self.pgbench(url, workload, &work).await?;
                println!("{}", line(&run));
                runs.push(run);
            }
            let naive_money = naive_total(url).await?;
            let naive_expected = i64::from(self.accounts) * NAIVE_BALANCE;
            if naive_money != naive_expected {
                bail!("naive baseline: balances sum to {naive_money}, expected {naive_expected}");
            }
        }

        // 2. minipay end to end on PostgreSQL, then on SQLite.
        let mut checks = Vec::new();
        let (pg_runs, pg_check) = self.minipay("minipay-postgres", url).await?;
        runs.extend(pg_runs);
        checks.push(pg_check);
        if !self.no_sqlite {
            let file = work.join("bench.db");
            let sqlite = format!("sqlite://{}", file.display());
            let (lite_runs, lite_check) = self.minipay("minipay-sqlite", &sqlite).await?;
            runs.extend(lite_runs);
            checks.push(lite_check);
        }
        let _ = std::fs::remove_dir_all(&work);

        let ratio = |system: &str, workload: &str| {
            let naive = runs
                .iter()
                .find(|r| r.system == "naive-pgbench" && r.workload == workload)?;
            let ours = runs.iter().find(|r| r.system == system && r.workload == workload)?;
            Some(ours.transfers_per_second / naive.transfers_per_second)
        };
        println!(
            "\n{:<18} {:<8} {:>12} {:>9} {:>9} {:>7} {:>9}",
            "system", "workload", "transfers/s", "p50 ms", "p99 ms", "errors", "vs naive"
        );
        for r in &runs {
            let vs = ratio(&r.system, &r.workload).map_or("-".to_owned(), |x| format!("{x:.2}×"));
            println!("{} {vs:>9}", line(r));
        }
        let result = json!({
            "benchmark": "transfers",
            "accounts": self.accounts,
            "concurrency": self.concurrency,
            "seconds": self.seconds,
            "ramp_seconds": self.ramp,
            "amount": self.amount,
            "runs": runs,
            "ratios": {
                "uniform": ratio("minipay-postgres", "uniform"),
                "hot": ratio("minipay-postgres", "hot"),
            },
            "checks": checks,
            "machine": { "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0) },
        });
        super::write_result(&self.out, &result)?;
        Ok(())
    }

    /// pgbench running the classic transfer script for `seconds`.
    async fn pgbench(&self, url: &str, workload: &str, work: &Path) -> anyhow::Result<Run> {
        let script = work.join(format!("{workload}.sql"));
        std::fs::write(&script, naive_script(workload, self.amount))?;
        let prefix = work.join(format!("log-{workload}"));
        let out = tokio::process::Command::new("pgbench")
            .args(["-n", "-j", "2", "-M", "prepared"])
            .arg("-c")
            .arg(self.concurrency.to_string())
            .arg("-T")
            .arg(self.seconds.to_string())
            .arg("-D")
            .arg(format!("accounts={}", self.accounts))
            .arg("-f")
            .arg(&script)
            .arg("-l")
            .arg(format!("--log-prefix={}", prefix.display()))
            .arg(url)
            .current_dir(work)
            .output()
            .await
            .context("running pgbench (is it installed? Debian: postgresql-client)")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!("pgbench failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
        }
        let tps = stdout
            .lines()
            .find_map(|l| l.strip_prefix("tps = "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
            .context("pgbench printed no tps")?;
        let failed = stdout
            .lines()
            .find_map(|l| l.strip_prefix("number of failed transactions: "))
            .and_then(|l| l.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        // Per-transaction logs: "client transaction latency_us script epoch us".
        let mut latencies = Vec::new();
        for entry in std::fs::read_dir(work)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if name.starts_with(&format!("log-{workload}")) {
                for l in std::fs::read_to_string(&path)?.lines() {
                    if let Some(us) = l.split_whitespace().nth(2).and_then(|v| v.parse::<u64>().ok()) {
                        latencies.push(us);
                    }
                }
            }
        }
        latencies.sort_unstable();
        let ms = |q: f64| {
            latencies
                .get(((latencies.len().max(1) - 1) as f64 * q).round() as usize)
                .map_or(0.0, |&us| us as f64 / 1000.0)
        };
        Ok(Run {
            system: "naive-pgbench".into(),
            workload: workload.into(),
            transfers_per_second: tps,
            p50_ms: ms(0.5),
            p99_ms: ms(0.99),
            errors: failed,
        })
    }

    /// minipay serving `database_url` as its own process; the load tool drives it over HTTP.
    async fn minipay(&self, system: &str, database_url: &str) -> anyhow::Result<(Vec<Run>, Value)> {
        let admin_token = uuid::Uuid::now_v7().simple().to_string() + "-bench-admin";
        let server = ServerProcess::start(database_url, &admin_token, &[]).await?;
        let client = minipay_loadtest::http_client(self.concurrency as usize)?;
        println!("{system}: setting up {} users ...", self.accounts);
        let funds = 3_000_000;
        let population = minipay_loadtest::populate(&client, &server.base, self.accounts as usize, funds).await?;
        let mut runs = Vec::new();
        let mut reports = Vec::new();
        for scenario in [Scenario::Uniform, Scenario::Hot] {
            // The first time, the tables were just filled from empty: the planner gets the
            // statistics a database in service has, rather than whatever it had mid-signup.
            settle(database_url).await?;
            println!("{system}: running {} ...", scenario.name());
            let report = self.drive(&client, &server.base, scenario, &population).await;
            let transfers = report.action("transfer").context("no transfer was measured")?;
            let run = Run {
                system: system.into(),
                workload: scenario.name().into(),
                transfers_per_second: transfers.per_second,
                p50_ms: transfers.p50_ms,
                p99_ms: transfers.p99_ms,
                errors: report.errors(),
            };
            println!("{}", line(&run));
            runs.push(run);
            reports.push(report);
        }
        let audit = minipay_loadtest::audit(&client, &server.base, &admin_token).await?;
        let batches = server.get(&client, "/v1/admin/transfer-batches", &admin_token).await?;
        drop(server);
        let (users_total, charged) = money(database_url).await?;
        let check = json!({
            "system": system,
            "audit_ok": audit["ok"],
            "violations": audit["violations"],
            "users_balance_total": users_total,
            "charged_total": charged,
            "money_adds_up": users_total == charged && charged == i64::from(self.accounts) * funds,
            "transfer_batches": batches,
            "reports": reports,
        });
        if audit["ok"] != json!(true) || users_total != charged {
            bail!("{system}: the ledger does not add up after the run: {check}");
        }
        println!("{system}: audit ok, {users_total} won in users' accounts = {charged} won charged; batches {batches}");
        Ok((runs, check))
    }

    async fn drive(&self, client: &reqwest::Client, base: &str, scenario: Scenario, population: &Population) -> Report {
        let test = LoadTest {
            target: base.to_owned(),
            scenario,
            users: self.concurrency,
            accounts: self.accounts,
            funds: 3_000_000,
            amount: self.amount,
            ramp_seconds: self.ramp,
            duration_seconds: self.seconds,
            max_p99_ms: None,
            max_error_rate: 0.0,
            min_transfers_per_second: None,
            admin_token: None,
            report_dir: PathBuf::new(),
        };
        minipay_loadtest::drive(client, &test, population).await
    }
}

fn line(r: &Run) -> String {
    format!(
        "{:<18} {:<8} {:>12.1} {:>9.2} {:>9.2} {:>7}",
        r.system, r.workload, r.transfers_per_second, r.p50_ms, r.p99_ms, r.errors
    )
}

/// Every naive account starts with this much, so no transfer is ever refused.
const NAIVE_BALANCE: i64 = 1_000_000_000;

/// One table of balances and one of history rows, primary keys only.
async fn naive_schema(url: &str, accounts: u32) -> anyhow::Result<()> {
    let mut c = sqlx::PgConnection::connect(url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE TABLE naive_accounts (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL);
         CREATE TABLE naive_history (id BIGSERIAL PRIMARY KEY, account_id BIGINT NOT NULL,
                                     counterparty_id BIGINT NOT NULL, amount BIGINT NOT NULL,
                                     created_at TIMESTAMPTZ NOT NULL);
         INSERT INTO naive_accounts SELECT g, {NAIVE_BALANCE} FROM generate_series(1, {accounts}) AS g;"
    )))
    .execute(&mut c)
    .await?;
    Ok(())
}

async fn naive_total(url: &str) -> anyhow::Result<i64> {
    let mut c = sqlx::PgConnection::connect(url).await?;
    let (total,): (i64,) = sqlx::query_as("SELECT CAST(SUM(balance) AS BIGINT) FROM naive_accounts")
        .fetch_one(&mut c)
        .await?;
    Ok(total)
}

/// The classic pessimistic transfer: both rows locked in id order, two updates, two history
/// rows, one commit. `hot`: every transfer goes to account 1.
fn naive_script(workload: &str, amount: i64) -> String {
    let pick = match workload {
        "hot" => "\\set a random(2, :accounts)\n\\set b 1\n".to_owned(),
        _ => "\\set a random(1, :accounts)\n\\set b random(1, :accounts - 1)\n\
              \\set b CASE WHEN :b >= :a THEN :b + 1 ELSE :b END\n"
            .to_owned(),
    };
    format!(
        "{pick}\\set lo least(:a, :b)\n\\set hi greatest(:a, :b)\n\
         BEGIN;\n\
         SELECT id, balance FROM naive_accounts WHERE id IN (:lo, :hi) ORDER BY id FOR UPDATE;\n\
         UPDATE naive_accounts SET balance = balance - {amount} WHERE id = :a AND balance >= {amount};\n\
         UPDATE naive_accounts SET balance = balance + {amount} WHERE id = :b;\n\
         INSERT INTO naive_history (account_id, counterparty_id, amount, created_at) VALUES (:a, :b, -{amount}, now());\n\
         INSERT INTO naive_history (account_id, counterparty_id, amount, created_at) VALUES (:b, :a, {amount}, now());\n\
         COMMIT;\n"
    )
}

/// Brings the database to the same state before every measured run, whichever system and
/// run came before: fresh planner statistics and dead row versions cleared (`VACUUM ANALYZE`
/// — what autovacuum does for a database in service; it is off on some machines), and a
/// checkpoint, so that no run starts in the middle of the previous run's checkpoint and its
/// burst of full-page writes. SQLite: `ANALYZE` and a WAL checkpoint.
async fn settle(database_url: &str) -> anyhow::Result<()> {
    if database_url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(database_url).await?;
        sqlx::raw_sql("ANALYZE").execute(&mut c).await?;
        sqlx::raw_sql("PRAGMA wal_checkpoint(PASSIVE)").execute(&mut c).await?;
    } else {
        let mut c = sqlx::PgConnection::connect(database_url).await?;
        // Each on its own: VACUUM cannot run inside a multi-statement string.
        sqlx::raw_sql("VACUUM ANALYZE").execute(&mut c).await?;
        sqlx::raw_sql("CHECKPOINT")
            .execute(&mut c)
            .await
            .context("CHECKPOINT (the benchmark's database user needs the pg_checkpoint role)")?;
    }
    Ok(())
}

/// What users hold (main and savings) and what was charged in from the bank.
async fn money(database_url: &str) -> anyhow::Result<(i64, i64)> {
    const HELD: &str = "SELECT CAST(COALESCE(SUM(posted), 0) AS BIGINT) FROM accounts WHERE kind <> 'system'";
    const CHARGED: &str = "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM charges WHERE status = 'completed'";
    if database_url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(database_url).await?;
        let (held,): (i64,) = sqlx::query_as(HELD).fetch_one(&mut c).await?;
        let (charged,): (i64,) = sqlx::query_as(CHARGED).fetch_one(&mut c).await?;
        Ok((held, charged))
    } else {
        let mut c = sqlx::PgConnection::connect(database_url).await?;
        let (held,): (i64,) = sqlx::query_as(HELD).fetch_one(&mut c).await?;
        let (charged,): (i64,) = sqlx::query_as(CHARGED).fetch_one(&mut c).await?;
        Ok((held, charged))
    }
}
