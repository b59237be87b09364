//! `minipay bench approvals`: card approvals from many POS terminals over TCP (the POS wire
//! format, deflate + AES-256-GCM under each terminal's key) through the gateway to the VAN
//! simulator, on PostgreSQL and on SQLite: approvals per second, the latency at the terminal,
//! and the gateway's own added latency (terminal latency minus the simulator's time); afterwards
//! every approval is checked in the database and at the simulator. Optionally, idle terminal
//! connections are held open against the server and its resident memory is read.
//!
//! The server runs in this process (so its RSS is this process's `VmRSS`); the idle
//! connections' client ends are held by a child process (`--hold-idle`), so that this process
//! only pays for the server's ends of them.

use super::{ScratchDatabase, percentile};
use anyhow::{Context, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use futures_util::StreamExt;
use minipay_gateway::pos_client::{PosAnswer, PosClient, PosError};
use minipay_gateway::request::{ApprovalInput, CardInput, TxType};
use minipay_gateway::sim::{SimConfig, SimFaults, SimHandle, SimKind, Simulator};
use minipay_server::{Application, Settings};
use minipay_services::auth::Secret;
use minipay_wire::{Flags, TerminalKey};
use serde_json::{Value, json};
use sqlx::Connection;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

/// Which database(s) the gateway runs on.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum BackendChoice {
    Postgres,
    Sqlite,
    Both,
}

/// `minipay bench approvals`.
#[derive(clap::Args)]
pub struct ApprovalsBench {
    #[command(flatten)]
    pub db: ScratchDatabase,
    /// The gateway's database: a scratch PostgreSQL database, a scratch SQLite file, or both
    /// (one run each).
    #[arg(long, value_enum, default_value_t = BackendChoice::Both)]
    pub backend: BackendChoice,
    /// POS terminals (10 per merchant).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub terminals: u32,
    /// TCP connections each terminal keeps to the POS listener.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub connections_per_terminal: u32,
    /// Requests each terminal keeps in flight (unpaced runs).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub in_flight: u32,
    /// Approval requests measured, over all terminals.
    #[arg(long, default_value_t = 20_000)]
    pub requests: u64,
    /// Send at this many requests per second, open loop (to measure the added latency at a
    /// given load) [default: unpaced, as fast as the gateway answers].
    #[arg(long)]
    pub rate: Option<f64>,
    /// The VAN simulator's time per request, in ms.
    #[arg(long, default_value_t = 0)]
    pub sim_latency_ms: u64,
    /// After the run, open this many idle terminal connections to the POS listener, hold them
    /// and read the server's resident memory (needs `ulimit -n` above it).
    #[arg(long, default_value_t = 0)]
    pub idle_connections: u32,
    /// PostgreSQL: past approvals written (and the database analyzed) before the run, so that
    /// it runs on a table with history and statistics as a running gateway's is.
    #[arg(long, default_value_t = 200_000)]
    pub history: u64,
    /// The gateway's PostgreSQL pool size.
    #[arg(long, default_value_t = 16)]
    pub db_connections_max: u32,
    /// The gateway's `approval_batch_max` (1: every approval in transactions of its own).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub approval_batch_max: u32,
    /// The gateway's `approval_batch_wait_us`.
    #[arg(long, default_value_t = 0)]
    pub approval_batch_wait_us: u64,
    /// The gateway's `approval_batches_in_flight`.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub approval_batches_in_flight: u32,
    /// Where to write the JSON result (runs with the same label are replaced, others kept).
    #[arg(long, default_value = "docs/bench/approvals.json")]
    pub output: PathBuf,
    /// Internal: hold `--idle-connections` idle connections to ADDR until killed.
    #[arg(long, hide = true, value_name = "ADDR")]
    pub hold_idle: Option<SocketAddr>,
}

/// One measured run.
#[derive(Debug, Clone, serde::Serialize)]
struct Run {
    label: String,
    backend: String,
    terminals: u32,
    connections_per_terminal: u32,
    /// Per terminal; `null` in a paced run (open loop).
    in_flight: Option<u32>,
    requests: u64,
    /// Requests per second asked for; `null` when unpaced.
    rate: Option<f64>,
    sim_latency_ms: u64,
    elapsed_s: f64,
    approvals_per_second: f64,
    terminal_p50_ms: f64,
    terminal_p99_ms: f64,
    terminal_max_ms: f64,
    /// Terminal latency minus the simulator's time.
    added_p50_ms: f64,
    added_p99_ms: f64,
    /// The gateway's own measure of the upstream exchange (`approvals.upstream_ms`, whole ms).
    upstream_p50_ms: f64,
    upstream_p99_ms: f64,
    /// Answers other than `00`, by response code.
    not_approved: BTreeMap<String, u64>,
    /// Requests without an answer (the connection failed).
    failed: u64,
    /// Approvals sent before the measured ones (one per terminal), counted in the checks.
    warmup: u64,
    db_approved: i64,
    sim_approvals: u64,
    persisted_ok: bool,
    idle: Option<Idle>,
    /// The gateway's group commits: `approval_batch_max`, `_wait_us`, `approval_batches_in_flight`.
    approval_batch_max: u32,
    approval_batch_wait_us: u64,
    approval_batches_in_flight: u32,
    /// `GET /v1/admin/approval-groups` after the run (warm-up included).
    groups: Value,
    /// The read side: how long after the last answer it held every approval, and each
    /// approval's lag from its `approved` event to its projection, in ms.
    readside: ReadsideLag,
}

/// How far the approval projection trailed the gateway.
#[derive(Debug, Clone, serde::Serialize)]
struct ReadsideLag {
    caught_up_after_s: f64,
    lag_p50_ms: f64,
    lag_p99_ms: f64,
    lag_max_ms: f64,
}

/// The server's memory with idle terminal connections held open.
#[derive(Debug, Clone, serde::Serialize)]
struct Idle {
    connections: u32,
    rss_before_mb: f64,
    rss_after_mb: f64,
    rss_added_mb: f64,
    kb_per_connection: f64,
}

/// A terminal of the run.
struct Terminal {
    id: String,
    key: TerminalKey,
}

/// How one request ended.
enum Outcome {
    Approved,
    Answered(String),
    Failed(String),
}

struct Sample {
    ms: f64,
    outcome: Outcome,
}

impl Sample {
    fn of(started: Instant, result: Result<PosAnswer, PosError>) -> Self {
        let ms = started.elapsed().as_secs_f64() * 1_000.0;
        let outcome = match result {
            Ok(a) if a.response_code == "00" => Outcome::Approved,
            Ok(a) => Outcome::Answered(a.response_code),
            Err(e) => Outcome::Failed(e.to_string()),
        };
        Self { ms, outcome }
    }
}

/// A card the simulator approves (it does not end in 0002–0006).
const APPROVED_CARD: &str = "9410123412340001";
const AMOUNT_WON: i64 = 15_000;
const TERMINALS_PER_MERCHANT: u32 = 10;
/// Client TCP connections opened at once when holding idle connections.
const IDLE_CONNECTS_AT_ONCE: usize = 128;

fn sale(seq_no: u64, sent_at: &str) -> ApprovalInput {
    ApprovalInput {
        tx_type: TxType::CardApproval,
        seq_no,
        sent_at: sent_at.to_owned(),
        amount: AMOUNT_WON,
        card: Some(CardInput {
            track2: None,
            pan: Some(APPROVED_CARD.into()),
            expiry: Some("2912".into()),
        }),
        installment_months: None,
        original: None,
        cash_receipt: None,
    }
}

impl ApprovalsBench {
    pub async fn run(self) -> anyhow::Result<()> {
        if let Some(addr) = self.hold_idle {
            return hold_idle(addr, self.idle_connections).await;
        }
        if self.rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
            bail!("--rate must be a positive number of requests per second");
        }
        if self.idle_connections > 0 {
            let limit = open_files_limit()?;
            let needed = u64::from(self.idle_connections) + 1_024;
            if limit < needed {
                bail!(
                    "holding {} idle connections needs `ulimit -n` of at least {needed} in this shell (it is {limit})",
                    self.idle_connections
                );
            }
        }
        // SQLite first: the gateway's background workers outlive a run (its terminal
        // connections are not closed at shutdown), and against a kept SQLite file they stay
        // quiet, where against a dropped PostgreSQL database they would log errors.
        let mut runs = Vec::new();
        let dir = std::env::temp_dir().join(format!("minipay-bench-approvals-{}", std::process::id()));
        if matches!(self.backend, BackendChoice::Sqlite | BackendChoice::Both) {
            std::fs::create_dir_all(&dir)?;
            let url = format!("sqlite://{}", dir.join("bench.db").display());
            let result = self.measure("sqlite", &url).await;
            if result.is_err() {
                let _ = std::fs::remove_dir_all(&dir);
            }
            runs.push(result?);
        }
        if matches!(self.backend, BackendChoice::Postgres | BackendChoice::Both) {
            let this = &self;
            let found = Arc::new(Mutex::new(None));
            let slot = found.clone();
            let measured = self
                .db
                .with(|url| async move {
                    let run = this.measure("postgres", &url).await?;
                    *slot.lock().expect("slot") = Some(run);
                    Ok(())
                })
                .await;
            if measured.is_err() {
                let _ = std::fs::remove_dir_all(&dir);
            }
            measured?;
            runs.extend(found.lock().expect("slot").take());
        }
        let _ = std::fs::remove_dir_all(&dir);
        self.report(&runs)?;
        let bad: Vec<&str> = runs
            .iter()
            .filter(|r| !r.persisted_ok || r.failed > 0 || !r.not_approved.is_empty())
            .map(|r| r.label.as_str())
            .collect();
        if !bad.is_empty() {
            bail!("runs that do not add up: {}", bad.join("; "));
        }
        Ok(())
    }

    fn mode(&self) -> String {
        match self.rate {
            Some(r) => format!("{r}/s"),
            None => "unpaced".into(),
        }
    }

    fn label(&self, backend: &str) -> String {
        let idle = if self.idle_connections > 0 {
            format!(", {} idle", self.idle_connections)
        } else {
            String::new()
        };
        let defaults = minipay_server::Settings::default();
        let grouping = if (
            self.approval_batch_max,
            self.approval_batch_wait_us,
            self.approval_batches_in_flight,
        ) == (
            defaults.approval_batch_max,
            defaults.approval_batch_wait_us,
            defaults.approval_batches_in_flight,
        ) {
            String::new()
        } else {
            format!(
                ", groups {}/{} us/{} in flight",
                self.approval_batch_max, self.approval_batch_wait_us, self.approval_batches_in_flight
            )
        };
        format!(
            "{backend}, {}, sim {} ms, {} requests{idle}{grouping}",
            self.mode(),
            self.sim_latency_ms,
            self.requests
        )
    }

    /// One run on `database_url`: simulator, server, merchants and terminals, the load, the
    /// checks, and the idle connections when asked.
    async fn measure(&self, backend: &str, database_url: &str) -> anyhow::Result<Run> {
        let mut sim_config = SimConfig::new(
            "benchvan",
            SimKind::Van,
            minipay_wire::shipped("ksnet").context("ksnet")?,
        );
        sim_config.late_after = Duration::from_secs(6);
        let sim = Simulator::start("127.0.0.1:0".parse()?, sim_config).await?;
        sim.set_faults(SimFaults {
            latency_ms: self.sim_latency_ms,
            ..SimFaults::default()
        });

        let admin = uuid::Uuid::now_v7().simple().to_string() + "-bench-admin";
        let settings = Settings {
            listen: "127.0.0.1:0".into(),
            database_url: database_url.to_owned(),
            admin_token: Some(Secret::new(admin.clone())),
            jwt_secret: Some(Secret::new(
                uuid::Uuid::now_v7().simple().to_string() + "-bench-jwt-secret",
            )),
            scheduler: false,
            pos_listen: Some("127.0.0.1:0".into()),
            db_connections_max: self.db_connections_max,
            approval_batch_max: self.approval_batch_max,
            approval_batch_wait_us: self.approval_batch_wait_us,
            approval_batches_in_flight: self.approval_batches_in_flight,
            ..Settings::default()
        };
        let app = Application::build(settings).await.context("starting the gateway")?;
        let base = format!("http://{}", app.local_addr());
        let pos_addr = app.pos_addr().context("the POS listener is on")?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(app.run_until(async {
            let _ = stopped.await;
        }));

        let result = self
            .measure_on(backend, database_url, &sim, &base, &admin, pos_addr)
            .await;

        let _ = stop.send(());
        match tokio::time::timeout(Duration::from_secs(30), server).await {
            Ok(Ok(Err(e))) => eprintln!("{backend}: the server stopped with an error: {e:#}"),
            Ok(Err(e)) => eprintln!("{backend}: the server task failed: {e}"),
            Err(_) => eprintln!("{backend}: the server did not stop within 30 s"),
            Ok(Ok(Ok(()))) => {}
        }
        sim.shutdown();
        result
    }

    async fn measure_on(
        &self,
        backend: &str,
        database_url: &str,
        sim: &SimHandle,
        base: &str,
        admin: &str,
        pos_addr: SocketAddr,
    ) -> anyhow::Result<Run> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
        let routing = json!({
            "card_companies": [],
            "vans": [{ "id": "benchvan", "name": "BENCHVAN", "weight": 1,
                       "endpoint": sim.addr().to_string(), "dialect": "ksnet" }],
            "network_cancel": "auto",
        });
        send_admin(
            &http,
            reqwest::Method::PUT,
            base,
            admin,
            "/v1/admin/routing",
            routing,
            200,
        )
        .await?;
        println!("{backend}: onboarding {} terminals ...", self.terminals);
        let terminals = self.onboard(&http, base, admin).await?;

        let conns = self.connections_per_terminal as usize;
        let mut clients = Vec::with_capacity(terminals.len() * conns);
        let flags = Flags {
            deflate: true,
            encrypted: true,
        };
        for t in &terminals {
            for _ in 0..conns {
                let c = PosClient::connect(&pos_addr.to_string(), &t.id, t.key.clone(), flags)
                    .await
                    .context("connecting a terminal")?;
                clients.push(Arc::new(c));
            }
        }
        let clients = Arc::new(clients);
        let seqs: Arc<Vec<AtomicU64>> = Arc::new((0..terminals.len()).map(|_| AtomicU64::new(1)).collect());
        let sent_at: Arc<str> = jiff::Zoned::now()
            .with_time_zone(jiff::tz::TimeZone::get("Asia/Seoul")?)
            .strftime("%Y%m%d%H%M%S")
            .to_string()
            .into();

        // Warm-up: one approval per terminal (the upstream links connect, the routing and each
        // connection's terminal are loaded); checked with the rest, not measured.
        let warm = futures_util::future::join_all((0..terminals.len()).map(|t| {
            let (client, seqs, sent_at) = (clients[t * conns].clone(), seqs.clone(), sent_at.clone());
            async move {
                let seq = seqs[t].fetch_add(1, Ordering::Relaxed);
                Sample::of(Instant::now(), client.send(&sale(seq, &sent_at)).await)
            }
        }))
        .await;
        let warm_ok = warm.iter().filter(|s| matches!(s.outcome, Outcome::Approved)).count() as u64;
        if warm_ok != warm.len() as u64 {
            let why = warm
                .iter()
                .find_map(|s| match &s.outcome {
                    Outcome::Answered(c) => Some(format!("answered {c}")),
                    Outcome::Failed(e) => Some(e.clone()),
                    Outcome::Approved => None,
                })
                .unwrap_or_default();
            bail!("{backend}: warm-up: {warm_ok} of {} approved ({why})", warm.len());
        }

        // A gateway that has been running holds history, with statistics on it. A scratch
        // database has neither: the plans PostgreSQL caches on the pool's connections would be
        // those of an empty table (sequential scans of `approvals`) for the whole run, while
        // the run grows it many times over. So: `--history` past (declined) approvals, then
        // `VACUUM (ANALYZE)`, as autovacuum does within a minute on any running system.
        seed_history(database_url, self.history).await?;

        println!("{backend}: sending {} approvals ({}) ...", self.requests, self.mode());
        let started = Instant::now();
        let samples = match self.rate {
            None => self.unpaced(&clients, &seqs, &sent_at).await?,
            Some(rate) => self.paced(rate, &clients, &seqs, &sent_at).await?,
        };
        let elapsed = started.elapsed().as_secs_f64();

        let mut latencies = Vec::with_capacity(samples.len());
        let mut approved = 0u64;
        let mut not_approved = BTreeMap::<String, u64>::new();
        let mut failed = 0u64;
        let mut first_failure = None;
        for s in samples {
            match s.outcome {
                Outcome::Approved => {
                    approved += 1;
                    latencies.push(s.ms);
                }
                Outcome::Answered(code) => {
                    latencies.push(s.ms);
                    *not_approved.entry(code).or_default() += 1;
                }
                Outcome::Failed(e) => {
                    failed += 1;
                    first_failure.get_or_insert(e);
                }
            }
        }
        if let Some(e) = &first_failure {
            eprintln!("{backend}: {failed} requests failed, the first: {e}");
        }
        if !not_approved.is_empty() {
            eprintln!("{backend}: answers other than 00: {not_approved:?}");
        }
        let sim_ms = self.sim_latency_ms as f64;
        let added: Vec<f64> = latencies.iter().map(|ms| ms - sim_ms).collect();

        let db_approved = count_approved(database_url).await?;
        let sim_approvals = sim.approvals().len() as u64;
        let expected = warm_ok + approved;
        let persisted_ok = db_approved == i64::try_from(expected)? && sim_approvals == expected;
        if persisted_ok {
            println!("{backend}: persisted: ok ({db_approved} approved in the database and at the simulator)");
        } else {
            eprintln!(
                "{backend}: persisted: MISMATCH: {expected} approved answers (warm-up included), {db_approved} in the database, {sim_approvals} at the simulator"
            );
        }
        let upstream = upstream_ms(database_url).await?;
        let readside = readside_lag(database_url, i64::try_from(expected)?).await?;
        println!(
            "{backend}: read side: every approval projected {:.2} s after the last answer; lag p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            readside.caught_up_after_s, readside.lag_p50_ms, readside.lag_p99_ms, readside.lag_max_ms
        );
        let groups = send_admin(
            &http,
            reqwest::Method::GET,
            base,
            admin,
            "/v1/admin/approval-groups",
            Value::Null,
            200,
        )
        .await?;

        // The run's connections go before the idle ones are measured.
        drop(clients);
        let idle = if self.idle_connections > 0 {
            Some(self.idle(backend, pos_addr).await?)
        } else {
            None
        };

        Ok(Run {
            label: self.label(backend),
            backend: backend.into(),
            terminals: self.terminals,
            connections_per_terminal: self.connections_per_terminal,
            in_flight: self.rate.is_none().then_some(self.in_flight),
            requests: self.requests,
            rate: self.rate,
            sim_latency_ms: self.sim_latency_ms,
            elapsed_s: elapsed,
            approvals_per_second: approved as f64 / elapsed,
            terminal_p50_ms: percentile(&latencies, 0.50),
            terminal_p99_ms: percentile(&latencies, 0.99),
            terminal_max_ms: percentile(&latencies, 1.0),
            added_p50_ms: percentile(&added, 0.50),
            added_p99_ms: percentile(&added, 0.99),
            upstream_p50_ms: percentile(&upstream, 0.50),
            upstream_p99_ms: percentile(&upstream, 0.99),
            not_approved,
            failed,
            warmup: warm_ok,
            db_approved,
            sim_approvals,
            persisted_ok,
            idle,
            approval_batch_max: self.approval_batch_max,
            approval_batch_wait_us: self.approval_batch_wait_us,
            approval_batches_in_flight: self.approval_batches_in_flight,
            groups,
            readside,
        })
    }

    /// Every terminal keeps `in_flight` requests going until `requests` have been sent.
    async fn unpaced(
        &self,
        clients: &Arc<Vec<Arc<PosClient>>>,
        seqs: &Arc<Vec<AtomicU64>>,
        sent_at: &Arc<str>,
    ) -> anyhow::Result<Vec<Sample>> {
        let next = Arc::new(AtomicU64::new(0));
        let total = self.requests;
        let conns = self.connections_per_terminal as usize;
        let mut workers = Vec::new();
        for t in 0..seqs.len() {
            for k in 0..self.in_flight as usize {
                let client = clients[t * conns + k % conns].clone();
                let (seqs, sent_at, next) = (seqs.clone(), sent_at.clone(), next.clone());
                workers.push(tokio::spawn(async move {
                    let mut out = Vec::new();
                    while next.fetch_add(1, Ordering::Relaxed) < total {
                        let seq = seqs[t].fetch_add(1, Ordering::Relaxed);
                        let req = sale(seq, &sent_at);
                        let started = Instant::now();
                        out.push(Sample::of(started, client.send(&req).await));
                    }
                    out
                }));
            }
        }
        let mut samples = Vec::with_capacity(total as usize);
        for w in workers {
            samples.extend(w.await?);
        }
        Ok(samples)
    }

    /// Request `i` leaves at `i / rate` seconds whatever became of the earlier ones (open
    /// loop), from terminal `i % terminals`; its latency is counted from when it is sent.
    async fn paced(
        &self,
        rate: f64,
        clients: &Arc<Vec<Arc<PosClient>>>,
        seqs: &Arc<Vec<AtomicU64>>,
        sent_at: &Arc<str>,
    ) -> anyhow::Result<Vec<Sample>> {
        let terminals = seqs.len();
        let conns = self.connections_per_terminal as usize;
        let start = tokio::time::Instant::now();
        let mut sent = Vec::with_capacity(self.requests as usize);
        for i in 0..self.requests {
            tokio::time::sleep_until(start + Duration::from_secs_f64(i as f64 / rate)).await;
            let i = i as usize;
            let t = i % terminals;
            let client = clients[t * conns + (i / terminals) % conns].clone();
            let seq = seqs[t].fetch_add(1, Ordering::Relaxed);
            let req = sale(seq, sent_at);
            sent.push(tokio::spawn(async move {
                let started = Instant::now();
                Sample::of(started, client.send(&req).await)
            }));
        }
        let behind = start.elapsed().as_secs_f64() - (self.requests.saturating_sub(1)) as f64 / rate;
        if behind > 0.5 {
            eprintln!("the sender fell {behind:.1} s behind the schedule: the rate was not held");
        }
        let mut samples = Vec::with_capacity(sent.len());
        for s in sent {
            samples.push(s.await?);
        }
        Ok(samples)
    }

    /// Merchants (10 terminals each) and their terminals, through the admin API.
    async fn onboard(&self, http: &reqwest::Client, base: &str, admin: &str) -> anyhow::Result<Vec<Terminal>> {
        let merchants = self.terminals.div_ceil(TERMINALS_PER_MERCHANT);
        let made = futures_util::stream::iter(0..merchants)
            .map(|m| async move {
                let prefix = format!("{:09}", 400_000_000 + u64::from(m));
                let number = minipay_core::business::RegistrationNumber::with_check_digit(&prefix)?.to_string();
                let body = json!({ "name": format!("bench merchant {m}"), "registration_number": number });
                let merchant = send_admin(
                    http,
                    reqwest::Method::POST,
                    base,
                    admin,
                    "/v1/admin/merchants",
                    body,
                    201,
                )
                .await?;
                let id = merchant["id"].as_str().context("merchant id")?.to_owned();
                let first = m * TERMINALS_PER_MERCHANT;
                let mut terminals = Vec::new();
                for _ in first..(first + TERMINALS_PER_MERCHANT).min(self.terminals) {
                    let path = format!("/v1/admin/merchants/{id}/terminals");
                    let t = send_admin(http, reqwest::Method::POST, base, admin, &path, json!({}), 201).await?;
                    let key: [u8; 32] = STANDARD
                        .decode(t["key"].as_str().context("terminal key")?)?
                        .try_into()
                        .map_err(|_| anyhow::anyhow!("a terminal key is not 32 bytes"))?;
                    terminals.push(Terminal {
                        id: t["terminal_id"].as_str().context("terminal_id")?.to_owned(),
                        key: TerminalKey(key),
                    });
                }
                anyhow::Ok(terminals)
            })
            .buffer_unordered(16)
            .collect::<Vec<_>>()
            .await;
        let mut terminals = Vec::new();
        for m in made {
            terminals.extend(m?);
        }
        Ok(terminals)
    }

    /// Opens the idle connections from a child process, waits until the server holds them, and
    /// reads this process's resident memory before and after.
    async fn idle(&self, backend: &str, pos_addr: SocketAddr) -> anyhow::Result<Idle> {
        let n = self.idle_connections;
        // Let the run's connections close and their tasks end.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let fds_before = open_fds()?;
        let rss_before = vm_rss_kb()?;
        println!("{backend}: opening {n} idle terminal connections ...");
        let mut child = tokio::process::Command::new(std::env::current_exe()?)
            .args(["bench", "approvals", "--hold-idle", &pos_addr.to_string()])
            .args(["--idle-connections", &n.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting the idle-connection holder")?;
        let mut lines = tokio::io::BufReader::new(child.stdout.take().context("stdout")?).lines();
        loop {
            match lines.next_line().await? {
                Some(l) if l.starts_with("held ") => break,
                Some(_) => {}
                None => {
                    let status = child.wait().await?;
                    bail!("the idle-connection holder exited ({status}) before holding {n} connections");
                }
            }
        }
        // Wait until the server has accepted them all (each is an open file of this process).
        let waited = Instant::now();
        loop {
            let fds = open_fds()?;
            if fds >= fds_before + n as usize {
                break;
            }
            if waited.elapsed() > Duration::from_secs(60) {
                bail!(
                    "the server accepted {} of {n} idle connections in 60 s (is `ulimit -n` high enough?)",
                    fds.saturating_sub(fds_before)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let rss_after = vm_rss_kb()?;
        let _ = child.start_kill();
        let _ = child.wait().await;
        let mb = |kb: u64| kb as f64 / 1_024.0;
        let added_kb = rss_after.saturating_sub(rss_before);
        let idle = Idle {
            connections: n,
            rss_before_mb: mb(rss_before),
            rss_after_mb: mb(rss_after),
            rss_added_mb: mb(added_kb),
            kb_per_connection: added_kb as f64 / f64::from(n.max(1)),
        };
        println!(
            "{backend}: {n} idle connections held: RSS {:.1} MB -> {:.1} MB (+{:.1} MB, {:.1} KB each)",
            idle.rss_before_mb, idle.rss_after_mb, idle.rss_added_mb, idle.kb_per_connection
        );
        Ok(idle)
    }

    fn report(&self, runs: &[Run]) -> anyhow::Result<()> {
        println!(
            "\n{:<9} {:>9} {:>6} {:>11} {:>9} {:>9} {:>10} {:>10} {:>9} {:>6} {:>9}",
            "backend",
            "load",
            "sim",
            "approvals/s",
            "p50 ms",
            "p99 ms",
            "added p50",
            "added p99",
            "upstr p99",
            "not00",
            "persisted"
        );
        for r in runs {
            println!(
                "{:<9} {:>9} {:>4}ms {:>11.1} {:>9.2} {:>9.2} {:>10.2} {:>10.2} {:>9.0} {:>6} {:>9}",
                r.backend,
                self.mode(),
                r.sim_latency_ms,
                r.approvals_per_second,
                r.terminal_p50_ms,
                r.terminal_p99_ms,
                r.added_p50_ms,
                r.added_p99_ms,
                r.upstream_p99_ms,
                r.not_approved.values().sum::<u64>() + r.failed,
                if r.persisted_ok { "ok" } else { "MISMATCH" }
            );
            println!(
                "{:<9} read side: caught up {:.2} s after the last answer; lag p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                r.backend,
                r.readside.caught_up_after_s,
                r.readside.lag_p50_ms,
                r.readside.lag_p99_ms,
                r.readside.lag_max_ms
            );
            for step in ["intake", "finish"] {
                let g = &r.groups[step];
                if let (Some(groups), Some(requests)) = (g["groups"].as_u64(), g["requests"].as_u64()) {
                    println!(
                        "{:<9} {step} groups: {groups}, {:.1} requests each on average, largest {}",
                        r.backend,
                        requests as f64 / groups.max(1) as f64,
                        g["largest"]
                    );
                }
            }
            if let Some(i) = &r.idle {
                println!(
                    "{:<9} {} idle connections: RSS {:.1} MB before, {:.1} MB with them (+{:.1} MB, {:.1} KB each)",
                    r.backend, i.connections, i.rss_before_mb, i.rss_after_mb, i.rss_added_mb, i.kb_per_connection
                );
            }
        }
        let mut kept: Vec<Value> = std::fs::read_to_string(&self.output)
            .ok()
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .filter(|v| v["benchmark"] == json!("approvals"))
            .and_then(|v| v["runs"].as_array().cloned())
            .unwrap_or_default();
        kept.retain(|old| !runs.iter().any(|r| old["label"] == json!(r.label)));
        for r in runs {
            let mut v = serde_json::to_value(r)?;
            v["command"] = json!(std::env::args().skip(1).collect::<Vec<_>>().join(" "));
            kept.push(v);
        }
        let result = json!({
            "benchmark": "approvals",
            "runs": kept,
            "machine": {
                "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
                "cpu_model": cpu_model(),
            },
        });
        super::write_result(&self.output, &result)?;
        Ok(())
    }
}

/// `--hold-idle`: opens `n` connections to `addr`, says `held n`, and holds them until killed.
async fn hold_idle(addr: SocketAddr, n: u32) -> anyhow::Result<()> {
    let limit = open_files_limit()?;
    if limit < u64::from(n) + 64 {
        bail!(
            "holding {n} connections needs `ulimit -n` of at least {} (it is {limit})",
            u64::from(n) + 64
        );
    }
    let opened = futures_util::stream::iter(0..n)
        .map(|_| tokio::net::TcpStream::connect(addr))
        .buffer_unordered(IDLE_CONNECTS_AT_ONCE)
        .collect::<Vec<_>>()
        .await;
    let mut held = Vec::with_capacity(opened.len());
    for c in opened {
        match c {
            Ok(s) => held.push(s),
            Err(e) if e.raw_os_error() == Some(24) => {
                bail!(
                    "too many open files after {} connections (EMFILE): raise `ulimit -n` above {n}",
                    held.len()
                )
            }
            Err(e) => bail!("connecting to {addr} after {} connections: {e}", held.len()),
        }
    }
    println!("held {}", held.len());
    std::future::pending::<()>().await;
    drop(held);
    Ok(())
}

async fn send_admin(
    http: &reqwest::Client,
    method: reqwest::Method,
    base: &str,
    admin: &str,
    path: &str,
    body: Value,
    expected: u16,
) -> anyhow::Result<Value> {
    let res = http
        .request(method.clone(), format!("{base}{path}"))
        .bearer_auth(admin)
        .json(&body)
        .send()
        .await?;
    let status = res.status();
    let answer: Value = res.json().await.unwrap_or(Value::Null);
    if status.as_u16() != expected {
        bail!("{method} {path} answered {status}: {answer}");
    }
    Ok(answer)
}

const APPROVED_COUNT: &str = "SELECT COUNT(*) FROM approvals WHERE status = 'approved'";
const UPSTREAM_MS: &str = "SELECT upstream_ms FROM approvals WHERE status = 'approved'";

async fn count_approved(database_url: &str) -> anyhow::Result<i64> {
    if database_url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(database_url).await?;
        Ok(sqlx::query_scalar(APPROVED_COUNT).fetch_one(&mut c).await?)
    } else {
        let mut c = sqlx::PgConnection::connect(database_url).await?;
        Ok(sqlx::query_scalar(APPROVED_COUNT).fetch_one(&mut c).await?)
    }
}

/// How long a run waits for the read side to catch up before it gives up.
const READSIDE_WAIT_MAX: Duration = Duration::from_secs(300);
const PROJECTED: &str = "SELECT COUNT(*) FROM approval_views WHERE status = 'approved'";

/// Waits until the read side holds `expected` approvals; then each approval's lag (the
/// projection's record time minus the `approved` event's time), in ms.
async fn readside_lag(database_url: &str, expected: i64) -> anyhow::Result<ReadsideLag> {
    let started = Instant::now();
    loop {
        let projected: i64 = if database_url.starts_with("sqlite") {
            let mut c = sqlx::SqliteConnection::connect(database_url).await?;
            sqlx::query_scalar(PROJECTED).fetch_one(&mut c).await?
        } else {
            let mut c = sqlx::PgConnection::connect(database_url).await?;
            sqlx::query_scalar(PROJECTED).fetch_one(&mut c).await?
        };
        if projected >= expected {
            break;
        }
        if started.elapsed() > READSIDE_WAIT_MAX {
            bail!("the read side holds {projected} of {expected} approvals after {READSIDE_WAIT_MAX:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let caught_up_after_s = started.elapsed().as_secs_f64();
    let lags: Vec<f64> = if database_url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(database_url).await?;
        sqlx::query_scalar("SELECT (recorded_at - at) / 1000.0 FROM approval_history WHERE step = 'approved'")
            .fetch_all(&mut c)
            .await?
    } else {
        let mut c = sqlx::PgConnection::connect(database_url).await?;
        sqlx::query_scalar(
            "SELECT CAST(EXTRACT(EPOCH FROM (recorded_at - at)) * 1000 AS DOUBLE PRECISION)
             FROM approval_history WHERE step = 'approved'",
        )
        .fetch_all(&mut c)
        .await?
    };
    Ok(ReadsideLag {
        caught_up_after_s,
        lag_p50_ms: percentile(&lags, 0.50),
        lag_p99_ms: percentile(&lags, 0.99),
        lag_max_ms: percentile(&lags, 1.0),
    })
}

/// PostgreSQL: `rows` approvals of yesterday (declined, of terminals no one uses, so the run's
/// checks do not count them), then `VACUUM (ANALYZE)` and `CHECKPOINT`. SQLite's planner needs
/// no statistics for its indexes, so its runs start empty.
async fn seed_history(database_url: &str, rows: u64) -> anyhow::Result<()> {
    if database_url.starts_with("sqlite") {
        return Ok(());
    }
    let mut c = sqlx::PgConnection::connect(database_url).await?;
    sqlx::query(
        "INSERT INTO approvals (id, terminal_id, merchant_id, seq_no, sent_at, tx_type, amount, card_masked,
             upstream, upstream_ref, status, response_code, message, answer, event_seq, received_at, answered_at)
         SELECT gen_random_uuid(), 'HIST' || lpad((g % 10000)::text, 4, '0'), gen_random_uuid(), g,
             '20000101000000', 'card_approval', 1000, '941012******0002', 'benchvan', lpad(g::text, 12, '0'),
             'declined', '05', 'history', '{}', 3, now() - interval '1 day', now() - interval '1 day'
         FROM generate_series(1, $1) AS g",
    )
    .bind(i64::try_from(rows)?)
    .execute(&mut c)
    .await?;
    // Vacuumed and checkpointed too, so that neither autovacuum nor the dirty pages of the
    // history run during the measurement (CHECKPOINT needs a superuser: best effort).
    sqlx::query("VACUUM (ANALYZE)").execute(&mut c).await?;
    if let Err(e) = sqlx::query("CHECKPOINT").execute(&mut c).await {
        eprintln!("CHECKPOINT before the run: {e} (continuing)");
    }
    Ok(())
}

/// The gateway's recorded upstream time of every approval, in ms.
async fn upstream_ms(database_url: &str) -> anyhow::Result<Vec<f64>> {
    let rows: Vec<Option<i32>> = if database_url.starts_with("sqlite") {
        let mut c = sqlx::SqliteConnection::connect(database_url).await?;
        sqlx::query_scalar(UPSTREAM_MS).fetch_all(&mut c).await?
    } else {
        let mut c = sqlx::PgConnection::connect(database_url).await?;
        sqlx::query_scalar(UPSTREAM_MS).fetch_all(&mut c).await?
    };
    Ok(rows.into_iter().flatten().map(f64::from).collect())
}

/// This process's resident memory, in KB.
fn vm_rss_kb() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/self/status")
}

/// Files this process has open.
fn open_fds() -> anyhow::Result<usize> {
    Ok(std::fs::read_dir("/proc/self/fd")
        .context("reading /proc/self/fd")?
        .count())
}

/// The soft limit on open files (`ulimit -n`).
fn open_files_limit() -> anyhow::Result<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").context("reading /proc/self/limits")?;
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .context("no open-files limit")?;
    let soft = line
        .trim_start_matches("Max open files")
        .split_whitespace()
        .next()
        .unwrap_or("");
    Ok(if soft == "unlimited" { u64::MAX } else { soft.parse()? })
}

fn cpu_model() -> Option<String> {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
}
