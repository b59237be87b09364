//! The load generator (the project's nGrinder): sets up users over the API, then drives one
//! scenario with virtual users, a ramp and a duration, and reports against thresholds.

mod population;
mod report;
mod scenario;

pub use population::{Population, VirtualAccount, populate};
pub use report::{ActionStats, Report, Threshold};
pub use scenario::{Scenario, drive};

use std::path::PathBuf;
use std::time::Duration;

/// One load test: what to run, how hard, for how long, and what counts as a pass.
#[derive(Debug, Clone, clap::Args)]
pub struct LoadTest {
    /// Base URL of a running minipay server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// What the virtual users do.
    #[arg(long, value_enum, default_value = "uniform")]
    pub scenario: Scenario,
    /// Concurrent virtual users (each sends its next request when the last one is answered).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub users: u32,
    /// Users set up (signed up, bank account registered, charged) before the run.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u32).range(2..=100_000))]
    pub accounts: u32,
    /// Won each account is charged with before the run (at most the 3,000,000 daily limit;
    /// what is left of the limit is for the mix scenario's charges).
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(i64).range(1..=3_000_000))]
    pub funds: i64,
    /// Won per transfer.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(i64).range(1..=1_000_000))]
    pub amount: i64,
    /// Seconds over which the virtual users start, one after another (not measured).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(0..=3_600))]
    pub ramp_seconds: u64,
    /// Seconds measured after the ramp.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub duration_seconds: u64,
    /// Fail if the p99 of any action exceeds this many milliseconds.
    #[arg(long)]
    pub max_p99_ms: Option<f64>,
    /// Fail if more than this share of requests errs (0 = none may).
    #[arg(long, default_value_t = 0.0)]
    pub max_error_rate: f64,
    /// Fail if fewer transfers than this complete per second.
    #[arg(long)]
    pub min_transfers_per_second: Option<f64>,
    /// The server's admin token: with it, the ledger audit runs after the load.
    #[arg(long, env = "MINIPAY_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Where `report.json` and `report.html` are written.
    #[arg(long, default_value = "loadtest-report")]
    pub report_dir: PathBuf,
}

impl LoadTest {
    pub fn ramp(&self) -> Duration {
        Duration::from_secs(self.ramp_seconds)
    }

    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.duration_seconds)
    }

    /// The thresholds this test is judged by.
    pub fn thresholds(&self) -> Vec<Threshold> {
        let mut t = vec![Threshold::MaxErrorRate(self.max_error_rate)];
        t.extend(self.max_p99_ms.map(Threshold::MaxP99Ms));
        t.extend(self.min_transfers_per_second.map(Threshold::MinTransfersPerSecond));
        t
    }
}

/// Sets up the population, runs the load and (with an admin token) the audit.
pub async fn run(test: &LoadTest) -> anyhow::Result<Report> {
    let client = http_client(test.users as usize)?;
    eprintln!("setting up {} users on {} ...", test.accounts, test.target);
    let population = populate(&client, &test.target, test.accounts as usize, test.funds).await?;
    eprintln!(
        "running {} with {} users: {} s ramp, {} s measured",
        test.scenario.name(),
        test.users,
        test.ramp_seconds,
        test.duration_seconds
    );
    let mut report = scenario::drive(&client, test, &population).await;
    if let Some(token) = &test.admin_token {
        report.audit = Some(audit(&client, &test.target, token).await?);
    }
    Ok(report)
}

/// An HTTP client sized for `users` concurrent requests.
pub fn http_client(users: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(users.max(1))
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(60))
        .build()?)
}

/// The ledger audit's answer (`GET /v1/admin/ledger/audit`).
pub async fn audit(client: &reqwest::Client, target: &str, admin_token: &str) -> anyhow::Result<serde_json::Value> {
    let res = client
        .get(format!("{target}/v1/admin/ledger/audit"))
        .bearer_auth(admin_token)
        .send()
        .await?;
    anyhow::ensure!(res.status().is_success(), "audit answered {}", res.status());
    Ok(res.json().await?)
}

/// A small deterministic generator (SplitMix64): each virtual user has its own.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub(crate) fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Two different indexes below `n` (n ≥ 2).
    pub(crate) fn pair(&mut self, n: usize) -> (usize, usize) {
        let a = self.below(n);
        let b = self.below(n - 1);
        (a, if b >= a { b + 1 } else { b })
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn pairs_are_two_different_accounts_in_range() {
        let mut rng = Rng::new(7);
        for n in 2..50 {
            for _ in 0..200 {
                let (a, b) = rng.pair(n);
                assert!(a < n && b < n && a != b);
            }
        }
    }
}
