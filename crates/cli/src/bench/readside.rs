//! `minipay bench readside`: reconciliation (대사) of one upstream's day of approvals on a
//! scratch PostgreSQL database — the read side seeded with `--approvals` approved sales, the
//! settlement file made from the same sales with mismatches of each kind planted, then the
//! reconciliation timed end to end and step by step; and the day's settlement. (The
//! projection's lag under load is measured by `minipay bench approvals`.)

use super::ScratchDatabase;
use anyhow::{Context, bail};
use jiff::civil::Date;
use minipay_core::SystemClock;
use minipay_core::gateway::reconciliation::SETTLEMENT_FILE_HEADER;
use minipay_core::gateway::{parse_settlement_file, reconcile};
use minipay_events::EventsConfig;
use minipay_readside::ReadSide;
use minipay_store::{Store, StoreOptions};
use serde_json::json;
use sqlx::Connection;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Instant;

#[derive(clap::Args)]
pub struct ReadsideBench {
    #[command(flatten)]
    pub db: ScratchDatabase,
    /// Approved sales of the reconciled day.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..=20_000_000))]
    pub approvals: u64,
    /// Mismatches of each kind planted in the file (missing here, missing there, amount).
    #[arg(long, default_value_t = 100)]
    pub planted: u64,
    /// Where to write the JSON result.
    #[arg(long, default_value = "docs/bench/readside.json")]
    pub output: PathBuf,
}

const UPSTREAM: &str = "benchvan";
const DAY: Date = jiff::civil::date(2026, 12, 4);
const MERCHANTS: u64 = 1_000;

/// One measured run.
#[derive(Debug, Clone, serde::Serialize)]
struct Run {
    approvals: u64,
    file_lines: u64,
    planted_each: u64,
    read_ours_s: f64,
    parse_file_s: f64,
    match_s: f64,
    /// The whole `reconcile` call: read, parse, match, store the outcome and its alert.
    reconcile_total_s: f64,
    matched: i64,
    missing_here: i64,
    missing_there: i64,
    amount_mismatch: i64,
    found_as_planted: bool,
    /// Every merchant's settlement of the day.
    settle_day_s: f64,
    merchants_settled: usize,
}

/// The amount of sale `g` (the same in the seed and the file).
fn amount_of(g: u64) -> u64 {
    1_000 + g % 50_000
}

impl ReadsideBench {
    pub async fn run(self) -> anyhow::Result<()> {
        if self.planted.saturating_mul(3) > self.approvals {
            bail!("--planted must be at most a third of --approvals");
        }
        let slot = Arc::new(Mutex::new(None));
        let found = slot.clone();
        let this = &self;
        self.db
            .with(|url| async move {
                let run = this.measure(&url).await?;
                *found.lock().expect("slot") = Some(run);
                Ok(())
            })
            .await?;
        let run = slot.lock().expect("slot").take().context("no run")?;
        self.report(&run)?;
        if !run.found_as_planted {
            bail!("the reconciliation did not find what was planted");
        }
        Ok(())
    }

    async fn measure(&self, url: &str) -> anyhow::Result<Run> {
        let store = Store::connect(url, &StoreOptions::default()).await?;
        store.migrate().await?;
        println!("seeding {} approved sales of {DAY} ...", self.approvals);
        seed(url, self.approvals).await?;
        let file = self.settlement_file();
        let file_lines = file.lines().count() as u64 - 1;

        // Step by step (the same work `reconcile` does, timed apart).
        let started = Instant::now();
        let ours = store.read().await?.settled_records(DAY, Some(UPSTREAM), None).await?;
        let read_ours_s = started.elapsed().as_secs_f64();
        let started = Instant::now();
        let theirs = parse_settlement_file(&file)?;
        let parse_file_s = started.elapsed().as_secs_f64();
        let ours: Vec<_> = ours
            .into_iter()
            .map(|r| minipay_core::gateway::SettledRecord {
                record_type: minipay_core::gateway::RecordType::Approval,
                terminal_id: r.terminal_id,
                seq_no: r.seq_no,
                sent_at: r.sent_at,
                amount: r.amount,
                approval_no: r.approval_no,
            })
            .collect();
        let started = Instant::now();
        let outcome = reconcile(&ours, &theirs);
        let match_s = started.elapsed().as_secs_f64();
        drop((ours, theirs, outcome));

        println!(
            "reconciling {} approvals against {file_lines} lines ...",
            self.approvals
        );
        let readside = ReadSide::new(store, Arc::new(SystemClock), EventsConfig::default());
        let started = Instant::now();
        let r = readside
            .reconcile(UPSTREAM, DAY, Some(file))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let reconcile_total_s = started.elapsed().as_secs_f64();
        let p = i64::try_from(self.planted)?;
        let found_as_planted = (r.missing_here, r.missing_there, r.amount_mismatch) == (p, p, p)
            && r.matched == i64::try_from(self.approvals)? - 2 * p;

        let started = Instant::now();
        let settled = readside
            .settlements(DAY, None)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let settle_day_s = started.elapsed().as_secs_f64();
        Ok(Run {
            approvals: self.approvals,
            file_lines,
            planted_each: self.planted,
            read_ours_s,
            parse_file_s,
            match_s,
            reconcile_total_s,
            matched: r.matched,
            missing_here: r.missing_here,
            missing_there: r.missing_there,
            amount_mismatch: r.amount_mismatch,
            found_as_planted,
            settle_day_s,
            merchants_settled: settled.len(),
        })
    }

    /// The upstream's file of the day: every seeded sale, less the first `planted` (missing
    /// there), the next `planted` with one won more (amount mismatch), and `planted` sales of a
    /// terminal we never saw (missing here), in an order not ours.
    fn settlement_file(&self) -> String {
        let mut out = String::with_capacity(self.approvals as usize * 64);
        out.push_str(SETTLEMENT_FILE_HEADER);
        out.push('\n');
        let p = self.planted;
        let mut line = |terminal: &str, g: u64, amount: u64| {
            // Writing to a String cannot fail.
            let _ = writeln!(
                out,
                "approval,{g:08},{terminal},{g},20261204120000,{amount},20261204120001,"
            );
        };
        for g in (1..=self.approvals).rev() {
            if g <= p {
                continue;
            }
            let bump = u64::from(g <= 2 * p);
            line(&terminal_of(g), g, amount_of(g) + bump);
        }
        for g in 1..=p {
            line("TUNKNOWN", g, amount_of(g));
        }
        out
    }

    fn report(&self, r: &Run) -> anyhow::Result<()> {
        println!(
            "\n{:>10} {:>10} {:>9} {:>9} {:>9} {:>11} {:>9} {:>9}",
            "approvals", "lines", "read s", "parse s", "match s", "reconcile s", "settle s", "as planted"
        );
        println!(
            "{:>10} {:>10} {:>9.2} {:>9.2} {:>9.2} {:>11.2} {:>9.2} {:>9}",
            r.approvals,
            r.file_lines,
            r.read_ours_s,
            r.parse_file_s,
            r.match_s,
            r.reconcile_total_s,
            r.settle_day_s,
            if r.found_as_planted { "yes" } else { "NO" }
        );
        println!(
            "matched {}, missing here {}, missing there {}, amount mismatch {}; {} merchants settled",
            r.matched, r.missing_here, r.missing_there, r.amount_mismatch, r.merchants_settled
        );
        let result = json!({
            "benchmark": "readside",
            "runs": [r],
            "machine": {"cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)},
        });
        super::write_result(&self.output, &result)?;
        Ok(())
    }
}

/// The terminal of sale `g` (10,000 terminals, as the seed's SQL names them).
fn terminal_of(g: u64) -> String {
    format!("T{:07}", g % 10_000)
}

/// `n` approved sales of [`DAY`] through [`UPSTREAM`] in the read side, and the routing
/// configuration naming the upstream; analyzed.
async fn seed(url: &str, n: u64) -> anyhow::Result<()> {
    let mut c = sqlx::PgConnection::connect(url).await?;
    sqlx::query(
        "INSERT INTO routing_versions (version, config, changed_by, changed_at)
         VALUES (1, $1, 'bench', '2026-12-01T00:00:00Z')",
    )
    .bind(
        json!({"card_companies": [], "vans": [{"id": UPSTREAM, "name": "BENCHVAN", "weight": 1,
            "endpoint": "127.0.0.1:9", "dialect": "ksnet", "fee_rate_bp": 120}], "network_cancel": "auto"})
        .to_string(),
    )
    .execute(&mut c)
    .await?;
    sqlx::query(
        "INSERT INTO approval_views (transaction_id, merchant_id, terminal_id, seq_no, sent_at, tx_type, amount,
             card_masked, status, upstream, response_code, approval_no, approved_at, business_date, cancel_status,
             cancel_sends, last_seq, gaps, conflicts, received_at, updated_at)
         SELECT gen_random_uuid(), CAST(lpad(to_hex(g % $2), 32, '0') AS uuid), 'T' || lpad((g % 10000)::text, 7, '0'),
             g, '20261204120000', 'card_approval', 1000 + g % 50000, '941012******0001', 'approved', $3, '00',
             lpad(g::text, 8, '0'), '20261204120001', CAST($4 AS date), 'none', 0, 3, false, 0, now(), now()
         FROM generate_series(1, $1) AS g",
    )
    .bind(i64::try_from(n)?)
    .bind(i64::try_from(MERCHANTS)?)
    .bind(UPSTREAM)
    .bind(DAY.to_string())
    .execute(&mut c)
    .await?;
    sqlx::query("VACUUM (ANALYZE)").execute(&mut c).await?;
    Ok(())
}
