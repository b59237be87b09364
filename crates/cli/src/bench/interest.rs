//! `minipay bench interest`: the 04:00 interest run over many savings accounts on PostgreSQL.

use super::{ScratchDatabase, core_at};
use anyhow::{Context, bail};
use serde_json::json;
use sqlx::Connection;
use std::path::PathBuf;
use std::time::Instant;

/// `minipay bench interest`.
#[derive(clap::Args)]
pub struct InterestBench {
    #[command(flatten)]
    pub db: ScratchDatabase,
    /// Savings accounts to seed.
    #[arg(long, default_value_t = 1_000_000)]
    pub accounts: i64,
    /// Where to write the JSON result.
    #[arg(long, default_value = "docs/bench/interest.json")]
    pub out: PathBuf,
}

/// 04:00 in Seoul on the benchmark's business date (2026-11-22), as UTC.
const RUN_AT: &str = "2026-11-21T19:00:00Z";
/// Principals are spread over 10,000 .. 10,000,000 won so the carried fractions vary.
const PRINCIPAL_MIN: i64 = 10_000;

impl InterestBench {
    pub async fn run(self) -> anyhow::Result<()> {
        let this = &self;
        self.db.with(|url| async move { this.measure(&url).await }).await
    }

    async fn measure(&self, url: &str) -> anyhow::Result<()> {
        let core = core_at(url, RUN_AT).await?;
        let seed_started = Instant::now();
        seed(url, self.accounts).await?;
        let seed_secs = seed_started.elapsed().as_secs_f64();
        println!("seeded {} savings accounts in {seed_secs:.1} s", self.accounts);

        let started = Instant::now();
        let report = core.jobs.run_by_hand("savings-interest", RUN_AT.parse()?).await?;
        let run_secs = started.elapsed().as_secs_f64();
        if let Some(e) = report.error {
            bail!("the interest run failed: {e}");
        }
        let rerun_started = Instant::now();
        let rerun = core.jobs.run_by_hand("savings-interest", RUN_AT.parse()?).await?;
        let rerun_secs = rerun_started.elapsed().as_secs_f64();

        // Every account must have been paid exactly one day of its own interest.
        let mut c = sqlx::PgConnection::connect(url).await?;
        let (expected, paid, unpaid): (i64, i64, i64) = sqlx::query_as(
            "SELECT CAST(SUM(principal * CASE product WHEN 'fixed' THEN 500 ELSE 300 END / 3650000) AS BIGINT),
                    CAST(SUM(posted - opening_balance) AS BIGINT),
                    COUNT(*) FILTER (WHERE interest_paid_through IS DISTINCT FROM DATE '2026-11-22')
             FROM accounts WHERE kind = 'savings'",
        )
        .fetch_one(&mut c)
        .await?;
        let audit_started = Instant::now();
        let invariants = core.wallet.store().read().await?.check_invariants().await?;
        let audit_secs = audit_started.elapsed().as_secs_f64();

        let accounts_per_sec = self.accounts as f64 / run_secs;
        println!();
        println!("| measure                         | value |");
        println!("|---------------------------------|-------|");
        println!("| savings accounts                | {} |", self.accounts);
        println!("| interest run (s)                | {run_secs:.2} |");
        println!("| accounts per second             | {accounts_per_sec:.0} |");
        println!("| accounts paid                   | {} |", report.processed);
        println!("| won paid (expected)             | {paid} ({expected}) |");
        println!(
            "| rerun for the same date (s)     | {rerun_secs:.2}, paid {} |",
            rerun.processed
        );
        println!(
            "| ledger audit (s)                | {audit_secs:.1}, {} violations |",
            invariants.violations.len()
        );
        let target_met =
            run_secs < 60.0 && paid == expected && unpaid == 0 && invariants.is_ok() && rerun.processed == 0;
        println!(
            "| target (< 60 s, exact, audited) | {} |",
            if target_met { "met" } else { "NOT met" }
        );
        let out = json!({
            "benchmark": "savings-interest",
            "backend": "postgresql",
            "accounts": self.accounts,
            "seed_seconds": seed_secs,
            "run_seconds": run_secs,
            "accounts_per_second": accounts_per_sec,
            "accounts_paid": report.processed,
            "won_paid": paid,
            "won_expected": expected,
            "accounts_not_paid_through_date": unpaid,
            "rerun_seconds": rerun_secs,
            "rerun_paid": rerun.processed,
            "audit_seconds": audit_secs,
            "invariant_violations": invariants.violations,
            "target_seconds": 60,
            "target_met": target_met,
            "details": report.details,
        });
        std::fs::write(&self.out, serde_json::to_string_pretty(&out)? + "\n")
            .with_context(|| format!("writing {}", self.out.display()))?;
        println!("\nwrote {}", self.out.display());
        if !paid.eq(&expected) || !invariants.is_ok() {
            bail!("the interest run paid the wrong amounts or broke an invariant");
        }
        Ok(())
    }
}

/// Seeds `n` users, each with a main account and one savings account holding principal (as an
/// opening balance carried into the ledger, mirrored on the bank settlement account so the
/// books still balance), paid through the day before the run. Set-based: a few statements.
async fn seed(url: &str, n: i64) -> anyhow::Result<()> {
    let mut c = sqlx::PgConnection::connect(url).await?;
    let mut tx = c.begin().await?;
    let statements = [
        "CREATE TEMP TABLE seed ON COMMIT DROP AS
         SELECT g AS n, gen_random_uuid() AS user_id, gen_random_uuid() AS main_id, gen_random_uuid() AS savings_id,
                CASE WHEN g % 2 = 0 THEN 'fixed' ELSE 'free' END AS product,
                $MIN + (hashtext(g::text)::bigint & 1048575) * 9 AS principal
         FROM generate_series(1, $N) AS g",
        "INSERT INTO users (id, email, name, password_hash, main_account_id, created_at, updated_at)
         SELECT user_id, 'bench' || n || '@example.com', 'Bench ' || n, 'x', main_id, now(), now() FROM seed",
        "INSERT INTO accounts (id, owner_user_id, kind, created_at)
         SELECT main_id, user_id, 'main', now() FROM seed",
        "INSERT INTO accounts (id, owner_user_id, kind, product, daily_amount, posted, opening_balance, principal,
                               interest_basis, interest_paid_through, created_at)
         SELECT savings_id, user_id, 'savings', product, CASE product WHEN 'fixed' THEN 10000 END, principal, principal,
                principal, principal, DATE '2026-11-21', now() - interval '2 days'
         FROM seed",
        "UPDATE accounts SET posted = posted - s.total, opening_balance = opening_balance - s.total
         FROM (SELECT SUM(principal) AS total FROM seed) s WHERE system_code = 'bank_settlement'",
    ];
    for sql in statements {
        let sql = sql
            .replace("$MIN", &PRINCIPAL_MIN.to_string())
            .replace("$N", &n.to_string());
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    sqlx::raw_sql("ANALYZE").execute(&mut c).await?;
    Ok(())
}
