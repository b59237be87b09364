//! `minipay bench remittances`: remittances between businesses through the HTTP API, on
//! PostgreSQL + NATS JetStream and on SQLite embedded, with the built-in bank answering at once
//! and 20 ms late: requests accepted per second (the `202`), remittances completed per second,
//! the time from request to `completed`, and afterwards the audit and every bank balance.

use super::{ScratchDatabase, ServerProcess, percentile};
use anyhow::{Context, bail};
use futures_util::StreamExt;
use serde_json::{Value, json};
use sqlx::Connection;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `minipay bench remittances`.
#[derive(clap::Args)]
pub struct RemittancesBench {
    #[command(flatten)]
    pub db: ScratchDatabase,
    /// Remittances per run.
    #[arg(long, default_value_t = 20_000)]
    pub remittances: u32,
    /// Sending businesses, and as many receiving ones.
    #[arg(long, default_value_t = 100)]
    pub businesses: u32,
    /// Requests in flight at once (see docs/bench/remittances.md for 64 against 128).
    #[arg(long, default_value_t = 128)]
    pub concurrency: usize,
    /// Won per remittance.
    #[arg(long, default_value_t = 10_000)]
    pub amount: i64,
    /// NATS with JetStream for the PostgreSQL runs.
    #[arg(long, env = "MINIPAY_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    pub nats_url: String,
    /// The bank's added latency per call, in ms, one run each.
    #[arg(long, value_delimiter = ',', default_value = "0,20")]
    pub latencies_ms: Vec<u64>,
    /// Skip SQLite embedded.
    #[arg(long)]
    pub no_sqlite: bool,
    /// Longest wait for every remittance to complete, in seconds.
    #[arg(long, default_value_t = 600)]
    pub settle_seconds: u64,
    /// Where to write the JSON result.
    #[arg(long, default_value = "docs/bench/remittances.json")]
    pub out: PathBuf,
}

/// One measured run.
#[derive(Debug, Clone, serde::Serialize)]
struct Run {
    system: String,
    bank_latency_ms: u64,
    remittances: u32,
    accepted_per_second: f64,
    accept_p50_ms: f64,
    accept_p99_ms: f64,
    completed_per_second: f64,
    complete_p50_ms: f64,
    complete_p99_ms: f64,
    rejected: u64,
    audit_ok: bool,
    bank_balances_exact: bool,
}

/// A business of the run: its id, key and bank account number.
#[derive(Clone)]
struct Biz {
    id: String,
    key: String,
    account: String,
}

/// Every bank account starts here at the simulator.
const OPENING_WON: i64 = 100_000_000;

impl RemittancesBench {
    pub async fn run(self) -> anyhow::Result<()> {
        let mut runs = Vec::new();
        for &latency in &self.latencies_ms {
            let this = &self;
            let found = Arc::new(Mutex::new(None));
            let slot = found.clone();
            self.db
                .with(|url| async move {
                    let run = this
                        .measure("postgres+jetstream", &url, Some(&this.nats_url), latency)
                        .await?;
                    *slot.lock().expect("slot") = Some(run);
                    Ok(())
                })
                .await?;
            runs.extend(found.lock().expect("slot").take());
            if !self.no_sqlite {
                let dir = std::env::temp_dir().join(format!("minipay-bench-remit-{}", std::process::id()));
                std::fs::create_dir_all(&dir)?;
                let url = format!("sqlite://{}", dir.join("bench.db").display());
                let result = self.measure("sqlite-embedded", &url, None, latency).await;
                let _ = std::fs::remove_dir_all(&dir);
                runs.push(result?);
            }
        }
        self.report(&runs)
    }

    fn report(&self, runs: &[Run]) -> anyhow::Result<()> {
        println!(
            "\n{:<20} {:>6} {:>11} {:>9} {:>9} {:>12} {:>10} {:>10} {:>6} {:>6}",
            "system", "bank", "accepted/s", "p50 ms", "p99 ms", "completed/s", "p50 ms", "p99 ms", "audit", "banks"
        );
        for r in runs {
            println!(
                "{:<20} {:>4}ms {:>11.1} {:>9.2} {:>9.2} {:>12.1} {:>10.1} {:>10.1} {:>6} {:>6}",
                r.system,
                r.bank_latency_ms,
                r.accepted_per_second,
                r.accept_p50_ms,
                r.accept_p99_ms,
                r.completed_per_second,
                r.complete_p50_ms,
                r.complete_p99_ms,
                r.audit_ok,
                r.bank_balances_exact
            );
        }
        let result = json!({
            "benchmark": "remittances",
            "remittances": self.remittances,
            "businesses": self.businesses,
            "concurrency": self.concurrency,
            "amount": self.amount,
            "runs": runs,
            "machine": { "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0) },
        });
        super::write_result(&self.out, &result)?;
        Ok(())
    }

    /// One run: a server on `database_url`, businesses onboarded, the bank slowed by
    /// `latency_ms`, every remittance sent, waited for, and checked.
    async fn measure(
        &self,
        system: &str,
        database_url: &str,
        nats: Option<&str>,
        latency_ms: u64,
    ) -> anyhow::Result<Run> {
        let admin = uuid::Uuid::now_v7().simple().to_string() + "-bench-admin";
        let tag = uuid::Uuid::now_v7().simple().to_string();
        let (stream, prefix) = (format!("BENCH{tag}"), format!("bench{tag}"));
        let mut env = vec![("MINIPAY_EVENTS_POLL_MS", "50")];
        if let Some(url) = nats {
            env.extend([
                ("MINIPAY_NATS_URL", url),
                ("MINIPAY_NATS_STREAM", stream.as_str()),
                ("MINIPAY_NATS_SUBJECT_PREFIX", prefix.as_str()),
            ]);
        }
        let server = ServerProcess::start(database_url, &admin, &env).await?;
        let client = minipay_loadtest::http_client(self.concurrency)?;
        println!(
            "{system} (bank +{latency_ms} ms): onboarding {} businesses ...",
            2 * self.businesses
        );
        let businesses = self.onboard(&client, &server.base, &admin).await?;
        let (senders, receivers) = businesses.split_at(self.businesses as usize);
        put(
            &client,
            &server.base,
            &admin,
            "/v1/admin/bank-sim",
            json!({"latency_ms": latency_ms}),
        )
        .await?;

        println!("{system}: sending {} remittances ...", self.remittances);
        let sent = self.send(&client, &server.base, senders, receivers).await;
        let completion =
            wait_completed(database_url, self.remittances, Duration::from_secs(self.settle_seconds)).await?;
        put(
            &client,
            &server.base,
            &admin,
            "/v1/admin/bank-sim",
            json!({"latency_ms": 0}),
        )
        .await?;
        let audit = minipay_loadtest::audit(&client, &server.base, &admin).await?;
        let exact = balances_exact(&client, &server.base, &admin, &businesses, &sent.moved).await?;
        drop(server);
        if nats.is_some() {
            delete_stream(&self.nats_url, &stream).await;
        }
        let accepted = sent.latencies_ms.len() as f64;
        let run = Run {
            system: system.into(),
            bank_latency_ms: latency_ms,
            remittances: self.remittances,
            accepted_per_second: accepted / sent.elapsed.as_secs_f64(),
            accept_p50_ms: percentile(&sent.latencies_ms, 0.50),
            accept_p99_ms: percentile(&sent.latencies_ms, 0.99),
            completed_per_second: completion.per_second,
            complete_p50_ms: completion.p50_ms,
            complete_p99_ms: completion.p99_ms,
            rejected: sent.rejected,
            audit_ok: audit["ok"] == json!(true),
            bank_balances_exact: exact,
        };
        if !run.audit_ok || !exact || run.rejected > 0 {
            bail!("{system}: the run does not add up: {run:?}, audit {audit}");
        }
        Ok(run)
    }

    async fn onboard(&self, client: &reqwest::Client, base: &str, admin: &str) -> anyhow::Result<Vec<Biz>> {
        let total = 2 * self.businesses;
        let made = futures_util::stream::iter(0..total)
            .map(|i| async move {
                let account = format!(
                    "77{:010}1",
                    u64::from(i) + 1_000 * u64::from(std::process::id() % 1_000)
                );
                let prefix = format!("{:09}", 300_000_000 + u64::from(i));
                let number = minipay_core::business::RegistrationNumber::with_check_digit(&prefix)?.to_string();
                let body = json!({"name": format!("bench {i}"), "registration_number": number, "bank_code": "004",
                                  "account_number": account, "holder_name": format!("bench {i}")});
                let res = client
                    .post(format!("{base}/v1/admin/businesses"))
                    .bearer_auth(admin)
                    .json(&body)
                    .send()
                    .await?;
                let status = res.status();
                let b: Value = res.json().await?;
                if status != 201 {
                    bail!("onboarding answered {status}: {b}");
                }
                Ok(Biz {
                    id: b["id"].as_str().context("id")?.to_owned(),
                    key: b["api_key"].as_str().context("api_key")?.to_owned(),
                    account,
                })
            })
            .buffer_unordered(self.concurrency.min(16))
            .collect::<Vec<anyhow::Result<Biz>>>()
            .await;
        made.into_iter().collect()
    }

    /// Sends every remittance (`concurrency` in flight), sender `i % senders` to receiver
    /// `(i * 7 + 3) % receivers`, each under its own key.
    async fn send(&self, client: &reqwest::Client, base: &str, senders: &[Biz], receivers: &[Biz]) -> Sent {
        let moved = Arc::new(Mutex::new(HashMap::<String, i64>::new()));
        let started = Instant::now();
        let outcomes: Vec<Option<f64>> = futures_util::stream::iter(0..self.remittances as usize)
            .map(|i| {
                let (from, to) = (&senders[i % senders.len()], &receivers[(i * 7 + 3) % receivers.len()]);
                let moved = moved.clone();
                async move {
                    let body = json!({"amount": self.amount, "to_business_id": to.id});
                    let sent = Instant::now();
                    let res = client
                        .post(format!("{base}/v1/biz/remittances"))
                        .bearer_auth(&from.key)
                        .header("Idempotency-Key", format!("bench-{i}"))
                        .json(&body)
                        .send()
                        .await;
                    let ms = sent.elapsed().as_secs_f64() * 1_000.0;
                    match res {
                        Ok(r) if r.status() == 202 => {
                            let mut moved = moved.lock().expect("moved");
                            *moved.entry(from.account.clone()).or_default() -= self.amount;
                            *moved.entry(to.account.clone()).or_default() += self.amount;
                            Some(ms)
                        }
                        _ => None,
                    }
                }
            })
            .buffer_unordered(self.concurrency)
            .collect()
            .await;
        let elapsed = started.elapsed();
        let rejected = outcomes.iter().filter(|o| o.is_none()).count() as u64;
        let latencies_ms = outcomes.into_iter().flatten().collect();
        let moved = Arc::try_unwrap(moved)
            .map(|m| m.into_inner().expect("moved"))
            .unwrap_or_default();
        Sent {
            latencies_ms,
            elapsed,
            rejected,
            moved,
        }
    }
}

struct Sent {
    latencies_ms: Vec<f64>,
    elapsed: Duration,
    rejected: u64,
    /// Won each bank account should have gained (or lost).
    moved: HashMap<String, i64>,
}

struct Completion {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Waits until `n` remittances are completed (read off the database: the benchmark only
/// reads), then measures from the server's own timestamps: the first request to the last
/// completion, and each remittance's request-to-completed time.
async fn wait_completed(database_url: &str, n: u32, max: Duration) -> anyhow::Result<Completion> {
    let started = Instant::now();
    loop {
        let done: i64 = query_scalar(
            database_url,
            "SELECT COUNT(*) FROM remittances WHERE status = 'completed'",
        )
        .await?;
        if done >= i64::from(n) {
            break;
        }
        if started.elapsed() > max {
            bail!("only {done} of {n} remittances completed in {max:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let spans = completion_spans(database_url).await?;
    let span_ms: f64 = query_scalar::<f64>(
        database_url,
        if database_url.starts_with("sqlite") {
            "SELECT CAST(MAX(completed_at) - MIN(created_at) AS REAL) / 1000.0 FROM remittances"
        } else {
            "SELECT CAST(EXTRACT(EPOCH FROM MAX(completed_at) - MIN(created_at)) * 1000 AS DOUBLE PRECISION) FROM remittances"
        },
    )
    .await?;
    Ok(Completion {
        per_second: f64::from(n) / (span_ms / 1_000.0),
        p50_ms: percentile(&spans, 0.50),
        p99_ms: percentile(&spans, 0.99),
    })
}

/// Each remittance's time from request to completed, in ms.
async fn completion_spans(database_url: &str) -> anyhow::Result<Vec<f64>> {
    if database_url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(database_url).await?;
        let rows: Vec<(f64,)> = sqlx::query_as(
            "SELECT CAST(completed_at - created_at AS REAL) / 1000.0 FROM remittances WHERE completed_at IS NOT NULL",
        )
        .fetch_all(&mut c)
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    } else {
        let mut c = sqlx::PgConnection::connect(database_url).await?;
        let rows: Vec<(f64,)> = sqlx::query_as(
            "SELECT CAST(EXTRACT(EPOCH FROM completed_at - created_at) * 1000 AS DOUBLE PRECISION) FROM remittances
             WHERE completed_at IS NOT NULL",
        )
        .fetch_all(&mut c)
        .await?;
        Ok(rows.into_iter().map(|r| r.0).collect())
    }
}

pub(super) async fn query_scalar<T>(database_url: &str, sql: &str) -> anyhow::Result<T>
where
    T: Send + Unpin + for<'r> sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
    T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    if database_url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(database_url).await?;
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut c)
            .await?)
    } else {
        let mut c = sqlx::PgConnection::connect(database_url).await?;
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut c)
            .await?)
    }
}

/// Whether every business's balance at the bank is its opening balance plus what it was sent
/// minus what it sent, and the platform's own account is back to what it started with.
async fn balances_exact(
    client: &reqwest::Client,
    base: &str,
    admin: &str,
    businesses: &[Biz],
    moved: &HashMap<String, i64>,
) -> anyhow::Result<bool> {
    let sim = get(client, base, admin, "/v1/admin/bank-sim").await?;
    let mut exact = sim["platform_balance"] == json!(0);
    for b in businesses {
        let view = get(
            client,
            base,
            admin,
            &format!("/v1/admin/bank-sim/accounts/{}", b.account),
        )
        .await?;
        let expected = OPENING_WON + moved.get(&b.account).copied().unwrap_or(0);
        if view["balances"]["004"] != json!(expected) {
            eprintln!(
                "bank balance of {}: {} (expected {expected})",
                b.account, view["balances"]
            );
            exact = false;
        }
    }
    Ok(exact)
}

pub(super) async fn get(client: &reqwest::Client, base: &str, admin: &str, path: &str) -> anyhow::Result<Value> {
    Ok(client
        .get(format!("{base}{path}"))
        .bearer_auth(admin)
        .send()
        .await?
        .json()
        .await?)
}

async fn put(client: &reqwest::Client, base: &str, admin: &str, path: &str, body: Value) -> anyhow::Result<()> {
    let res = client
        .put(format!("{base}{path}"))
        .bearer_auth(admin)
        .json(&body)
        .send()
        .await?;
    if !res.status().is_success() {
        bail!("PUT {path} answered {}", res.status());
    }
    Ok(())
}

pub(super) async fn delete_stream(nats_url: &str, stream: &str) {
    if let Ok(client) = async_nats::connect(nats_url).await {
        let _ = async_nats::jetstream::new(client).delete_stream(stream).await;
    }
}
