//! `minipay bench history`: account history at volume on PostgreSQL — the naive design (one
//! unpartitioned table, primary-key indexes only, OFFSET pages) against the tuned one (monthly
//! partitions, one covering index, keyset pages), side by side on the same seeded entries.

use super::{ScratchDatabase, core_at};
use anyhow::{Context, bail, ensure};
use minipay_core::{AccountId, BusinessMonth, EntryId};
use minipay_store::{HistoryFilter, Session};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection, Row};
use std::path::PathBuf;
use std::time::Instant;
use uuid::Uuid;

/// Runs `query` `n` times over `inputs` (cycling) and returns each run's time in milliseconds.
macro_rules! time_each {
    ($n:expr, $inputs:expr, |$a:pat_param| $query:expr) => {{
        let mut out: Vec<f64> = Vec::with_capacity($n);
        for &$a in $inputs.iter().cycle().take($n) {
            let started = Instant::now();
            $query.await?;
            out.push(started.elapsed().as_secs_f64() * 1e3);
        }
        out
    }};
}

/// `minipay bench history`.
#[derive(clap::Args)]
pub struct HistoryBench {
    #[command(flatten)]
    pub db: ScratchDatabase,
    /// Ledger entries to seed (in pairs: each transfer is one journal of two entries).
    #[arg(long, default_value_t = 20_000_000)]
    pub entries: i64,
    /// Accounts they are spread over (the 1,000 heaviest hold 28% of them).
    #[arg(long, default_value_t = 100_000)]
    pub accounts: i64,
    /// Timed runs of each tuned query.
    #[arg(long, default_value_t = 1_000)]
    pub samples: usize,
    /// Timed runs of each naive query (each scans the whole table).
    #[arg(long, default_value_t = 10)]
    pub naive_samples: usize,
    /// Where to write the JSON result.
    #[arg(long, default_value = "docs/bench/history.json")]
    pub out: PathBuf,
}

/// The benchmark's "now": noon in Seoul on 2026-11-21.
const NOW: &str = "2026-11-21T03:00:00Z";
/// History starts here, so that October 2025 is more than 12 months old at `NOW`.
const HISTORY_START: &str = "2025-10-01T00:00:00+09:00";
const RETIRED_MONTH: &str = "2025-10";
/// A page, as the API's default would be for a phone screen.
const PAGE_LEN: u32 = 20;
const DEEP_PAGE: u32 = 1_000;
/// The date-range page: the first page of one week in June 2026.
const RANGE: (&str, &str) = ("2026-06-01T00:00:00+09:00", "2026-06-08T00:00:00+09:00");
const STATEMENT_MONTH: &str = "2026-06";
/// The heavy tiers: the 10 heaviest accounts hold 1% of all entries each, the next 90 0.1%.
const HEAVY_ACCOUNTS: i64 = 100;

const NAIVE_COLUMNS: &str = "id, journal_id, account_id, owner_user_id, occurred_at, kind, amount, balance_after, \
counterparty_name, counterparty_user_id, counterparty_account_id, memo";

impl HistoryBench {
    pub async fn run(self) -> anyhow::Result<()> {
        ensure!(self.entries % 2 == 0, "--entries must be even (entries come in pairs)");
        ensure!(
            self.accounts > 1_000,
            "--accounts must be more than 1,000 (the heavy tiers)"
        );
        ensure!(
            self.entries >= self.accounts * 20,
            "--entries must be at least 20 per account"
        );
        let this = &self;
        self.db.with(|url| async move { this.measure(&url).await }).await
    }

    async fn measure(&self, url: &str) -> anyhow::Result<()> {
        let core = core_at(url, NOW).await?;
        let now: jiff::Timestamp = NOW.parse()?;
        let mut month = BusinessMonth::containing(HISTORY_START.parse()?);
        while month <= BusinessMonth::containing(now) {
            let mut tx = core.wallet.store().begin().await?;
            tx.ensure_history_partition(month).await?;
            tx.commit().await?;
            month = month.next();
        }

        let started = Instant::now();
        seed(url, self.accounts, self.entries).await?;
        let seed_secs = started.elapsed().as_secs_f64();
        println!("seeded in {seed_secs:.0} s");

        let mut c = PgConnection::connect(url).await?;
        let (entries, heaviest, sizes): (i64, i64, String) = sqlx::query_as(
            "SELECT CAST(SUM(entries) AS BIGINT), MAX(entries),
                    CAST(json_build_object('top_10', CAST(SUM(entries) FILTER (WHERE n <= 10) AS BIGINT),
                                      'accounts_with_100k_or_more', COUNT(*) FILTER (WHERE entries >= 100000),
                                      'accounts_with_20k_or_more', COUNT(*) FILTER (WHERE entries >= 20000),
                                      'median', percentile_disc(0.5) WITHIN GROUP (ORDER BY entries)) AS TEXT)
             FROM bench_accounts",
        )
        .fetch_one(&mut c)
        .await?;
        let sizes: Value = serde_json::from_str(&sizes)?;
        let heavy: Vec<Uuid> = sqlx::query_scalar("SELECT account_id FROM bench_accounts WHERE n <= $1 ORDER BY n")
            .bind(HEAVY_ACCOUNTS)
            .fetch_all(&mut c)
            .await?;
        let typical: Vec<Uuid> =
            sqlx::query_scalar("SELECT account_id FROM bench_accounts WHERE n > $1 ORDER BY hashint8(n) LIMIT 1000")
                .bind(HEAVY_ACCOUNTS)
                .fetch_all(&mut c)
                .await?;
        // Half the samples from the heavy accounts, half from ordinary ones.
        let mixed: Vec<Uuid> = heavy.iter().zip(&typical).flat_map(|(h, t)| [*h, *t]).collect();
        let min_heavy: i64 = sqlx::query_scalar("SELECT MIN(entries) FROM bench_accounts WHERE n <= $1")
            .bind(HEAVY_ACCOUNTS)
            .fetch_one(&mut c)
            .await?;
        let deep_page = DEEP_PAGE.min((min_heavy / i64::from(PAGE_LEN)) as u32);

        let mut s = core.wallet.store().read().await?;
        let range = (RANGE.0.parse::<jiff::Timestamp>()?, RANGE.1.parse::<jiff::Timestamp>()?);
        let statement_month = BusinessMonth::parse(STATEMENT_MONTH)?;

        // The cursor a client paging down would hold when asking for the deep page.
        let mut deep_cursors = Vec::new();
        for a in &heavy {
            let offset = i64::from((deep_page - 1) * PAGE_LEN) - 1;
            let (micros, id): (i64, Uuid) = sqlx::query_as(
                "SELECT CAST(EXTRACT(EPOCH FROM occurred_at) * 1000000 AS BIGINT), id FROM entries WHERE account_id = $1
                 ORDER BY occurred_at DESC, id DESC OFFSET $2 LIMIT 1",
            )
            .bind(a)
            .bind(offset)
            .fetch_one(&mut c)
            .await?;
            deep_cursors.push((*a, (jiff::Timestamp::from_microsecond(micros)?, EntryId::from_uuid(id))));
        }

        // Both designs must give the same answers before their speed means anything.
        for (i, (a, cursor)) in deep_cursors.iter().enumerate().take(10) {
            let offset = i64::from((deep_page - 1) * PAGE_LEN);
            let tuned = tuned_page(&mut s, *a, HistoryFilter::default(), Some(*cursor)).await?;
            let naive = naive_page(&mut c, *a, offset, None).await?;
            ensure!(tuned == naive, "page {deep_page} differs for heavy account {i}");
            let tuned = tuned_page(&mut s, *a, range_filter(range), None).await?;
            let naive = naive_page(&mut c, *a, 0, Some(range)).await?;
            ensure!(tuned == naive, "the range page differs for heavy account {i}");
            let t = s.month_totals(AccountId::from_uuid(*a), statement_month).await?;
            let n = naive_statement(&mut c, *a, statement_month).await?;
            ensure!(
                (t.opening_balance, t.total_in, t.total_out, t.count) == n,
                "the statement differs"
            );
        }

        // Warm both up (the naive table is read once whole, so it is as cached as it can be).
        for a in mixed.iter().take(50) {
            tuned_page(&mut s, *a, HistoryFilter::default(), None).await?;
        }
        naive_page(&mut c, heavy[0], 0, None).await?;

        let mut rows = Vec::new();
        let tuned_n = self.samples;
        let naive_n = self.naive_samples;

        let first_tuned = time_each!(tuned_n, mixed, |a| tuned_page(
            &mut s,
            a,
            HistoryFilter::default(),
            None
        ));
        let first_naive = time_each!(naive_n, mixed, |a| naive_page(&mut c, a, 0, None));
        rows.push(("first page", first_naive, first_tuned));

        let deep_offset = i64::from((deep_page - 1) * PAGE_LEN);
        let deep_tuned = time_each!(tuned_n, deep_cursors, |(a, cur)| tuned_page(
            &mut s,
            a,
            HistoryFilter::default(),
            Some(cur)
        ));
        let deep_naive = time_each!(naive_n, heavy, |a| naive_page(&mut c, a, deep_offset, None));
        rows.push(("deep page", deep_naive, deep_tuned));

        let range_tuned = time_each!(tuned_n, mixed, |a| tuned_page(&mut s, a, range_filter(range), None));
        let range_naive = time_each!(naive_n, mixed, |a| naive_page(&mut c, a, 0, Some(range)));
        rows.push(("date-range page", range_naive, range_tuned));

        let statement_tuned = time_each!(tuned_n, mixed, |a| s
            .month_totals(AccountId::from_uuid(a), statement_month));
        let statement_naive = time_each!(naive_n, mixed, |a| naive_statement(&mut c, a, statement_month));
        rows.push(("statement", statement_naive, statement_tuned));

        let plans = json!({
            "tuned_deep_page": explain(&mut c, &format!(
                "SELECT {NAIVE_COLUMNS} FROM entries WHERE account_id = '{}' AND (occurred_at, id) < ('{}', '{}')
                 AND occurred_at <= '{}' AND occurred_at >= '1970-01-01Z' ORDER BY occurred_at DESC, id DESC LIMIT {}",
                deep_cursors[0].0, deep_cursors[0].1.0, deep_cursors[0].1.1, deep_cursors[0].1.0, PAGE_LEN + 1)).await?,
            "tuned_range_page": explain(&mut c, &format!(
                "SELECT {NAIVE_COLUMNS} FROM entries WHERE account_id = '{}' AND (occurred_at, id) < ('{}', '{}')
                 AND occurred_at <= '{}' AND occurred_at >= '{}' ORDER BY occurred_at DESC, id DESC LIMIT {}",
                heavy[0], range.1, Uuid::nil(), range.1, range.0, PAGE_LEN + 1)).await?,
            "naive_deep_page": explain(&mut c, &format!(
                "SELECT {NAIVE_COLUMNS} FROM naive_entries WHERE account_id = '{}'
                 ORDER BY occurred_at DESC, id DESC LIMIT {} OFFSET {deep_offset}", heavy[0], PAGE_LEN + 1)).await?,
        });
        drop(s);

        // Retiring the month past retention: archive it, then DELETE (naive) vs DROP (tuned).
        let retired_month = BusinessMonth::parse(RETIRED_MONTH)?;
        let archive = std::env::temp_dir().join(format!("minipay-bench-{RETIRED_MONTH}.csv.gz"));
        let started = Instant::now();
        let exported = minipay_services::history::export_month(core.wallet.store(), retired_month, &archive).await?;
        let export_secs = started.elapsed().as_secs_f64();
        let archive_bytes = std::fs::metadata(&archive)?.len();
        std::fs::remove_file(&archive)?;

        let started = Instant::now();
        let mut tx = c.begin().await?;
        sqlx::query(
            "UPDATE naive_accounts a SET opening_balance = a.opening_balance + t.total
             FROM (SELECT account_id, SUM(amount) AS total FROM naive_entries
                   WHERE occurred_at >= $1::timestamptz AND occurred_at < $2::timestamptz GROUP BY account_id) t
             WHERE a.id = t.account_id",
        )
        .bind(retired_month.starts_at().to_string())
        .bind(retired_month.ends_at().to_string())
        .execute(&mut *tx)
        .await?;
        let naive_deleted = sqlx::query(
            "DELETE FROM naive_entries WHERE occurred_at >= $1::timestamptz AND occurred_at < $2::timestamptz",
        )
        .bind(retired_month.starts_at().to_string())
        .bind(retired_month.ends_at().to_string())
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        let naive_retire_secs = started.elapsed().as_secs_f64();

        let started = Instant::now();
        let job = core.jobs.run_by_hand("history-retention", now).await?;
        let tuned_total_secs = started.elapsed().as_secs_f64();
        if let Some(e) = &job.error {
            bail!("history-retention failed: {e}");
        }
        let d = &job.details;
        ensure!(d["months"] == json!([RETIRED_MONTH]), "retired {}", d["months"]);
        ensure!(
            job.processed == naive_deleted,
            "tuned retired {}, naive deleted {naive_deleted}",
            job.processed
        );
        ensure!(
            exported == naive_deleted,
            "exported {exported}, retired {naive_deleted}"
        );
        let prepare_secs = d["prepare_seconds"].as_f64().unwrap_or(f64::NAN);
        let retire_secs = d["retire_seconds"].as_f64().unwrap_or(f64::NAN);
        let openings_differ: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM account_openings a JOIN naive_accounts n ON n.id = a.account_id
             WHERE a.opening_balance <> n.opening_balance",
        )
        .fetch_one(&mut c)
        .await?;
        ensure!(
            openings_differ == 0,
            "{openings_differ} opening balances differ between the designs"
        );

        let started = Instant::now();
        let audit = core.wallet.store().read().await?.check_invariants().await?;
        let audit_secs = started.elapsed().as_secs_f64();

        // The table.
        println!();
        println!(
            "{entries} entries over {} accounts (heaviest {heaviest}); {tuned_n} tuned / {naive_n} naive samples per query",
            self.accounts
        );
        println!();
        println!("| query | naive p50 (ms) | naive p99 (ms) | tuned p50 (ms) | tuned p99 (ms) | speed-up (p50) |");
        println!("|---|---|---|---|---|---|");
        let mut results = Vec::new();
        for (name, naive, tuned) in &rows {
            let (np50, np99, tp50, tp99) = (
                super::percentile(naive, 0.5),
                super::percentile(naive, 0.99),
                super::percentile(tuned, 0.5),
                super::percentile(tuned, 0.99),
            );
            let label = if *name == "deep page" {
                format!("page {deep_page}")
            } else {
                (*name).to_owned()
            };
            println!(
                "| {label} | {np50:.1} | {np99:.1} | {tp50:.3} | {tp99:.3} | {:.0}x |",
                np50 / tp50
            );
            results.push(json!({"query": label, "naive_ms": {"p50": np50, "p99": np99, "samples": naive.len()},
                                "tuned_ms": {"p50": tp50, "p99": tp99, "samples": tuned.len()}, "speedup_p50": np50 / tp50}));
        }
        println!();
        println!("| retiring {RETIRED_MONTH} ({naive_deleted} entries) | seconds |");
        println!("|---|---|");
        println!("| naive: one DELETE transaction (opening balances + rows) | {naive_retire_secs:.2} |");
        println!("| tuned: balances carried ahead, no locks held | {prepare_secs:.2} |");
        println!("| tuned: retiring transaction (mark moved, partitions dropped) | {retire_secs:.3} |");
        println!("| tuned: whole job | {tuned_total_secs:.2} |");
        println!(
            "| export of the month to gzip CSV ({:.1} MB) | {export_secs:.1} |",
            archive_bytes as f64 / 1e6
        );
        println!(
            "| ledger audit afterwards ({} violations) | {audit_secs:.0} |",
            audit.violations.len()
        );

        let tuned_p99_ok = rows[..3].iter().all(|(_, _, t)| super::percentile(t, 0.99) < 5.0);
        let deep_speedup = super::percentile(&rows[1].1, 0.5) / super::percentile(&rows[1].2, 0.5);
        let targets = json!({
            "tuned_p99_under_5ms": tuned_p99_ok,
            "deep_page_speedup_at_least_100x": deep_speedup >= 100.0,
            "retiring_transaction_under_1s": retire_secs < 1.0,
            "whole_retention_job_under_1s": tuned_total_secs < 1.0,
            "audit_clean": audit.is_ok(),
        });
        println!();
        println!("targets: {targets}");
        let out = json!({
            "benchmark": "history",
            "backend": "postgresql",
            "entries": entries,
            "accounts": self.accounts,
            "account_sizes": sizes,
            "heaviest_account_entries": heaviest,
            "page_len": PAGE_LEN,
            "deep_page": deep_page,
            "seed_seconds": seed_secs,
            "queries": results,
            "retire": {
                "month": RETIRED_MONTH,
                "entries": naive_deleted,
                "naive_delete_seconds": naive_retire_secs,
                "tuned_prepare_seconds": prepare_secs,
                "tuned_retire_transaction_seconds": retire_secs,
                "tuned_job_seconds": tuned_total_secs,
                "export_seconds": export_secs,
                "export_bytes": archive_bytes,
            },
            "audit_seconds": audit_secs,
            "invariant_violations": audit.violations,
            "targets": targets,
            "plans": plans,
        });
        std::fs::write(&self.out, serde_json::to_string_pretty(&out)? + "\n")
            .with_context(|| format!("writing {}", self.out.display()))?;
        println!("\nwrote {}", self.out.display());
        ensure!(audit.is_ok(), "the ledger audit failed after retention");
        Ok(())
    }
}

fn range_filter(range: (jiff::Timestamp, jiff::Timestamp)) -> HistoryFilter {
    HistoryFilter {
        from: Some(range.0),
        to: Some(range.1),
        kind: None,
    }
}

/// A page through the store, exactly as the API reads it (one more than a page, to know
/// whether there is a next one). Returns the ids.
async fn tuned_page(
    s: &mut Session,
    account: Uuid,
    filter: HistoryFilter,
    after: Option<(jiff::Timestamp, EntryId)>,
) -> anyhow::Result<Vec<Uuid>> {
    let rows = s
        .history(AccountId::from_uuid(account), filter, after, PAGE_LEN + 1)
        .await?;
    Ok(rows.iter().map(|e| e.id.as_uuid()).collect())
}

/// The naive page: OFFSET over the unpartitioned table with primary-key indexes only.
async fn naive_page(
    c: &mut PgConnection,
    account: Uuid,
    offset: i64,
    range: Option<(jiff::Timestamp, jiff::Timestamp)>,
) -> anyhow::Result<Vec<Uuid>> {
    let rows = match range {
        None => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {NAIVE_COLUMNS} FROM naive_entries WHERE account_id = $1
                 ORDER BY occurred_at DESC, id DESC LIMIT $2 OFFSET $3"
            )))
            .bind(account)
            .bind(i64::from(PAGE_LEN + 1))
            .bind(offset)
            .fetch_all(&mut *c)
            .await?
        }
        Some((from, to)) => {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {NAIVE_COLUMNS} FROM naive_entries
                 WHERE account_id = $1 AND occurred_at >= $2::timestamptz AND occurred_at < $3::timestamptz
                 ORDER BY occurred_at DESC, id DESC LIMIT $4 OFFSET $5"
            )))
            .bind(account)
            .bind(from.to_string())
            .bind(to.to_string())
            .bind(i64::from(PAGE_LEN + 1))
            .bind(offset)
            .fetch_all(&mut *c)
            .await?
        }
    };
    Ok(rows.iter().map(|r| r.get::<Uuid, _>("id")).collect())
}

/// The naive statement: the same two questions as the tuned one, over the naive table.
async fn naive_statement(
    c: &mut PgConnection,
    account: Uuid,
    month: BusinessMonth,
) -> anyhow::Result<(i64, i64, i64, i64)> {
    let (start, end) = (month.starts_at().to_string(), month.ends_at().to_string());
    let opening: i64 = sqlx::query_scalar(
        "SELECT COALESCE(
             (SELECT balance_after FROM naive_entries WHERE account_id = $1 AND occurred_at < $2::timestamptz
              ORDER BY occurred_at DESC, id DESC LIMIT 1),
             (SELECT opening_balance FROM naive_accounts WHERE id = $1))",
    )
    .bind(account)
    .bind(&start)
    .fetch_one(&mut *c)
    .await?;
    let (total_in, total_out, count): (i64, i64, i64) = sqlx::query_as(
        "SELECT CAST(COALESCE(SUM(amount) FILTER (WHERE amount > 0), 0) AS BIGINT),
                CAST(COALESCE(-SUM(amount) FILTER (WHERE amount < 0), 0) AS BIGINT), COUNT(*)
         FROM naive_entries WHERE account_id = $1 AND occurred_at >= $2::timestamptz AND occurred_at < $3::timestamptz",
    )
    .bind(account)
    .bind(&start)
    .bind(&end)
    .fetch_one(&mut *c)
    .await?;
    Ok((opening, total_in, total_out, count))
}

async fn explain(c: &mut PgConnection, sql: &str) -> anyhow::Result<String> {
    let lines: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) {sql}"
    )))
    .fetch_all(&mut *c)
    .await?;
    Ok(lines.join("\n"))
}

/// Seeds `accounts` users with a main account each and `entries` ledger entries between them
/// (transfers: one journal, two entries), spread evenly over the 14 months from
/// `HISTORY_START` to `NOW`, with a skew: the 10 heaviest accounts hold 1% of all entries each,
/// the next 90 0.1% each, the next 900 0.01% each, the rest share what remains unevenly (1 to
/// twice their mean). Balances are carried in the entries (`balance_after`) and the accounts
/// (`opening_balance`, `posted`) so that the ledger invariants hold. Set-based SQL, with the
/// indexes built after the load (as a bulk load should), to the same definitions as the
/// migrations. Then the naive copy: one unpartitioned table with a primary key only.
async fn seed(url: &str, accounts: i64, entries: i64) -> anyhow::Result<()> {
    let mut c = PgConnection::connect(url).await?;
    let span_secs = NOW.parse::<jiff::Timestamp>()?.as_second() - HISTORY_START.parse::<jiff::Timestamp>()?.as_second();
    let rest_mean = (entries - entries / 100 * 10 - entries / 1_000 * 90 - entries / 10_000 * 900) / (accounts - 1_000);
    let steps: &[(&str, &str)] = &[
        ("session", "SET work_mem = '1GB'; SET maintenance_work_mem = '2GB'"),
        (
            "accounts",
            "CREATE UNLOGGED TABLE bench_accounts AS
             SELECT g AS n, gen_random_uuid() AS user_id, gen_random_uuid() AS account_id,
                    CAST(CASE WHEN g <= 10 THEN $E / 100 WHEN g <= 100 THEN $E / 1000 WHEN g <= 1000 THEN $E / 10000
                              ELSE 1 + floor(random() * (2 * $REST_MEAN - 1)) END AS BIGINT) AS entries
             FROM generate_series(1, $A) AS g;
             UPDATE bench_accounts SET entries = entries + ($E - (SELECT SUM(entries) FROM bench_accounts)) WHERE n = 1;
             INSERT INTO users (id, email, name, password_hash, main_account_id, created_at, updated_at)
             SELECT user_id, 'bench' || n || '@example.com', 'User ' || n, 'x', account_id, '$START', '$START' FROM bench_accounts;
             INSERT INTO accounts (id, owner_user_id, kind, created_at) SELECT account_id, user_id, 'main', '$START' FROM bench_accounts",
        ),
        (
            "entries shuffled into pairs",
            "CREATE UNLOGGED TABLE bench_sides AS
             SELECT a.account_id, row_number() OVER (ORDER BY random()) - 1 AS rn
             FROM bench_accounts a CROSS JOIN LATERAL generate_series(1, a.entries);
             CREATE UNLOGGED TABLE bench_lines AS
             SELECT account_id, rn, rn / 2 AS j,
                    CASE WHEN rn % 2 = 0 THEN lead(account_id) OVER w ELSE lag(account_id) OVER w END AS partner
             FROM bench_sides WINDOW w AS (ORDER BY rn);
             DROP TABLE bench_sides",
        ),
        (
            "times, amounts and running balances",
            "CREATE UNLOGGED TABLE bench_running AS
             SELECT account_id, partner, rn, j, at, amount,
                    SUM(amount) OVER (PARTITION BY account_id ORDER BY at, rn) AS running
             FROM (SELECT account_id, partner, rn, j,
                          '$START'::timestamptz + make_interval(secs => abs(hashint8(j)) % $SPAN
                                                                + (abs(hashint8(j + 1000000007)) % 1000000) / 1e6) AS at,
                          CASE WHEN rn % 2 = 0 THEN -1 ELSE 1 END * (1000 + abs(hashint8(j * 7 + 3)) % 99000) AS amount
                   FROM bench_lines) t;
             DROP TABLE bench_lines;
             CREATE UNLOGGED TABLE bench_openings AS
             SELECT account_id, GREATEST(0, -MIN(running)) AS opening, SUM(amount) AS total FROM bench_running GROUP BY account_id;
             UPDATE accounts a SET opening_balance = o.opening, posted = o.opening + o.total
             FROM bench_openings o WHERE a.id = o.account_id;
             UPDATE accounts SET opening_balance = opening_balance - s.t, posted = posted - s.t
             FROM (SELECT SUM(opening) AS t FROM bench_openings) s WHERE system_code = 'bank_settlement'",
        ),
        (
            "load journals and entries",
            "ALTER TABLE entries DROP CONSTRAINT entries_pkey;
             DROP INDEX entries_account_time_idx;
             ALTER TABLE journals DROP CONSTRAINT journals_pkey;
             INSERT INTO journals (id, kind, memo, occurred_at)
             SELECT CAST(lpad(to_hex(j), 24, '0') || 'ffffffff' AS UUID), 'transfer', NULL, at FROM bench_running WHERE rn % 2 = 0;
             INSERT INTO entries (id, journal_id, account_id, owner_user_id, kind, amount, balance_after, counterparty_name,
                                  counterparty_user_id, counterparty_account_id, memo, occurred_at)
             SELECT CAST(lpad(to_hex(r.j), 24, '0') || lpad(to_hex(r.rn % 2), 8, '0') AS UUID),
                    CAST(lpad(to_hex(r.j), 24, '0') || 'ffffffff' AS UUID),
                    r.account_id, a.user_id, 'transfer', r.amount, o.opening + r.running, 'User ' || p.n, p.user_id, r.partner,
                    NULL, r.at
             FROM bench_running r
             JOIN bench_accounts a ON a.account_id = r.account_id
             JOIN bench_accounts p ON p.account_id = r.partner
             JOIN bench_openings o ON o.account_id = r.account_id;
             DROP TABLE bench_running;
             DROP TABLE bench_openings",
        ),
        (
            "indexes (as the migrations define them)",
            "ALTER TABLE journals ADD PRIMARY KEY (id, occurred_at);
             ALTER TABLE entries ADD PRIMARY KEY (id, occurred_at);
             CREATE INDEX entries_account_time_idx ON entries (account_id, occurred_at DESC, id DESC)",
        ),
        (
            "naive copy",
            "CREATE TABLE naive_entries (LIKE entries INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
             INSERT INTO naive_entries SELECT * FROM entries;
             ALTER TABLE naive_entries ADD PRIMARY KEY (id);
             CREATE TABLE naive_accounts AS SELECT id, opening_balance FROM accounts;
             ALTER TABLE naive_accounts ADD PRIMARY KEY (id)",
        ),
        ("vacuum and analyze", "VACUUM ANALYZE"),
    ];
    for (name, sql) in steps {
        let started = Instant::now();
        let sql = sql
            .replace("$REST_MEAN", &rest_mean.to_string())
            .replace("$E", &entries.to_string())
            .replace("$A", &accounts.to_string())
            .replace("$START", HISTORY_START)
            .replace("$SPAN", &span_secs.to_string());
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut c)
            .await
            .with_context(|| format!("seeding: {name}"))?;
        println!("  seed: {name}: {:.1} s", started.elapsed().as_secs_f64());
    }
    Ok(())
}
