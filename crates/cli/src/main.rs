//! The `minipay` binary: parses the command line and hands over to the library crates.

mod bench;
mod pos;

use anyhow::Context;
use clap::{Args, Parser, Subcommand, ValueEnum};
use minipay_bank::BankSimulator;
use minipay_gateway::sim::SimKind;
use minipay_server::config::SettingsLayer;
use minipay_server::{Application, ClockKind, Core, RunMode};
use minipay_store::{Store, StoreOptions};
use std::path::PathBuf;
use std::sync::Arc;

/// mimalloc rather than glibc's malloc: the server allocates and frees per request and per
/// batch from every worker thread, where glibc's arenas spent a fifth of its CPU (bench
/// payments, run 8).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "minipay",
    version,
    about = "A payments platform server: wallet, bank link, remittance, card gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (embedded SQLite and the built-in bank simulator by default).
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate {
        #[arg(long, env = "MINIPAY_DATABASE_URL", default_value = "sqlite://minipay.db")]
        database_url: String,
    },
    /// Run a simulator of an outside system.
    Sim {
        #[command(subcommand)]
        system: SimCommand,
    },
    /// Act as a POS terminal: send one request to the gateway over TCP and print its answer.
    Pos(pos::PosArgs),
    /// Run a scheduled job by hand, or list them.
    Jobs {
        #[command(subcommand)]
        action: JobsCommand,
    },
    /// The approval read side.
    Readside {
        #[command(subcommand)]
        action: ReadsideCommand,
    },
    /// Transaction history.
    History {
        #[command(subcommand)]
        action: HistoryCommand,
    },
    /// Drive a running server with virtual users (sign-ups first), print a table and write
    /// an HTML and a JSON report; exits 1 when a threshold is missed.
    Loadtest(minipay_loadtest::LoadTest),
    /// Benchmarks (they print a table and write a JSON result; they are not tests).
    Bench {
        #[command(subcommand)]
        which: BenchCommand,
    },
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start
enum ReadsideCommand {
    /// Forget the read side and project every approval event again from zero; prints what it
    /// did. Safe while servers run (the fold is order-free, so the live projection and the
    /// rebuild end the same).
    Rebuild {
        /// `outbox`: every event ever written (the default); `stream`: the JetStream stream
        /// (it keeps a week of events; needs MINIPAY_NATS_URL).
        #[arg(long, value_enum, default_value = "outbox")]
        from: ReplayArg,
        #[command(flatten)]
        serve: ServeArgs,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ReplayArg {
    Outbox,
    Stream,
}

#[derive(Subcommand)]
enum HistoryCommand {
    /// Write every entry of a month (Asia/Seoul) to a gzip-compressed CSV, for archiving
    /// before retention drops it.
    Export {
        /// YYYY-MM.
        #[arg(long)]
        month: String,
        #[arg(long)]
        out: PathBuf,
        #[arg(long, env = "MINIPAY_DATABASE_URL", default_value = "sqlite://minipay.db")]
        database_url: String,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Account history at volume, naive against tuned, on a scratch PostgreSQL database.
    History(bench::HistoryBench),
    /// The 04:00 interest run over many savings accounts, on a scratch PostgreSQL database.
    Interest(bench::InterestBench),
    /// Transfers/s and latency: the classic pessimistic transfer in pgbench against minipay
    /// end to end over HTTP (uniform pairs and a hot receiver), with the ledger checked after.
    Transfers(bench::TransfersBench),
    /// Business remittances through the API on PostgreSQL + JetStream and SQLite embedded,
    /// with the bank at 0 and 20 ms: accepted/s, completed/s, latency, audit, bank balances.
    Remittances(bench::RemittancesBench),
    /// Payments from wallet users to businesses and refunds through the API on PostgreSQL +
    /// JetStream: accepted/s, settled/s, latency, audit, bank and business balances.
    Payments(bench::PaymentsBench),
    /// Card approvals from many POS terminals over TCP (encrypted) through the gateway to the
    /// VAN simulator, on PostgreSQL and SQLite: approvals/s, terminal p50/p99, added latency.
    Approvals(bench::ApprovalsBench),
    /// The approval read side on a scratch PostgreSQL database: a day of approvals (1,000,000
    /// by default) reconciled against a settlement file with planted mismatches, and settled.
    Readside(bench::ReadsideBench),
}

#[derive(Subcommand)]
#[allow(clippy::large_enum_variant)] // parsed once at start
enum JobsCommand {
    /// Run job NAME once "as of" a time (default now), recorded in the run history.
    Run {
        name: String,
        /// RFC 3339 instant, e.g. 2026-11-22T04:00:00+09:00 [default: now].
        #[arg(long)]
        at: Option<jiff::Timestamp>,
        #[command(flatten)]
        serve: ServeArgs,
    },
    /// List the jobs and when they run. Takes the settings `run` takes (so one command line
    /// serves both); they are checked, not used.
    List {
        #[command(flatten)]
        serve: ServeArgs,
    },
}

#[derive(Subcommand)]
enum SimCommand {
    /// The open-banking bank simulator over HTTP (account numbers choose its behaviour).
    Bank {
        #[arg(long, env = "MINIPAY_SIM_LISTEN", default_value = "127.0.0.1:9090")]
        listen: String,
    },
    /// A VAN simulator over TCP (the last 4 digits of the PAN choose its behaviour).
    Van(UpstreamSimArgs),
    /// A card-company simulator over TCP (direct approvals).
    Card(UpstreamSimArgs),
}

/// Where an upstream simulator listens and what it speaks.
#[derive(clap::Args)]
struct UpstreamSimArgs {
    /// TCP address for the gateway's requests.
    #[arg(long, default_value = "127.0.0.1:9200")]
    listen: std::net::SocketAddr,
    /// The dialect: `ksnet` or `iso8583` (shipped in specs/), or the path of a dialect file.
    #[arg(long, default_value = "ksnet")]
    dialect: String,
    /// HTTP address for `PUT /v1/admin/sims/{id}` (faults) and `GET /sim/settlement-file`.
    #[arg(long)]
    http: Option<std::net::SocketAddr>,
    /// The simulator's id (as in the gateway's routing).
    #[arg(long, default_value = "sim")]
    id: String,
}

#[derive(Clone, Copy, ValueEnum)]
enum ClockArg {
    System,
    Manual,
}

#[derive(Clone, Copy, ValueEnum)]
enum ModeArg {
    Dev,
    Production,
}

/// Each flag can also be given as its `MINIPAY_*` variable; both beat the config file.
#[derive(Args)]
struct ServeArgs {
    /// TOML file with the same settings (its keys are listed below).
    #[arg(long, env = "MINIPAY_CONFIG", long_help = config_help())]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080]; port 0 picks a free port.
    #[arg(long, env = "MINIPAY_LISTEN")]
    listen: Option<String>,
    /// sqlite://PATH or postgres://... [default: sqlite://minipay.db].
    #[arg(long, env = "MINIPAY_DATABASE_URL")]
    database_url: Option<String>,
    /// Bearer token for /v1/admin/* [default: generated and logged, dev mode only].
    #[arg(long, env = "MINIPAY_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Key that signs access tokens [default: generated, dev mode only].
    #[arg(long, env = "MINIPAY_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// `manual` enables the manual clock (refused in production mode) [default: system].
    #[arg(long, env = "MINIPAY_CLOCK", value_enum)]
    clock: Option<ClockArg>,
    /// Where the manual clock starts, RFC 3339 [default: the system time at start].
    #[arg(long, env = "MINIPAY_CLOCK_START")]
    clock_start: Option<jiff::Timestamp>,
    /// `production` refuses generated secrets and the manual clock [default: dev].
    #[arg(long, env = "MINIPAY_MODE", value_enum)]
    mode: Option<ModeArg>,
    /// Base URL of an external open-banking API [default: the built-in simulator].
    #[arg(long, env = "MINIPAY_BANK_URL")]
    bank_url: Option<String>,
    /// Run scheduled jobs in this instance: `true` or `false` [default: true]. Each slot
    /// runs once however many instances schedule.
    #[arg(long, env = "MINIPAY_SCHEDULER")]
    scheduler: Option<bool>,
    /// How often the scheduler looks for due slots, in milliseconds [default: 1000].
    #[arg(long, env = "MINIPAY_SCHEDULER_TICK_MS")]
    scheduler_tick_ms: Option<u64>,
    /// PostgreSQL connection pool size [default: 16].
    #[arg(long, env = "MINIPAY_DB_CONNECTIONS_MAX")]
    db_connections_max: Option<u32>,
    /// PostgreSQL connections opened at start and kept open, at most the pool size [default: 0, opened as needed].
    #[arg(long, env = "MINIPAY_DB_CONNECTIONS_MIN")]
    db_connections_min: Option<u32>,
    /// Where history retention archives each month (gzip CSV) before retiring it [default: not archived].
    #[arg(long, env = "MINIPAY_HISTORY_ARCHIVE_DIR")]
    history_archive_dir: Option<PathBuf>,
    /// Entries retired per transaction on SQLite; smaller slices let writers in more often
    /// [default: 10000].
    #[arg(long, env = "MINIPAY_HISTORY_RETIRE_SLICE_MAX", value_parser = clap::value_parser!(u32).range(1..))]
    history_retire_slice_max: Option<u32>,
    /// Most transfers grouped into one database transaction (1 = no batching).
    #[arg(long, env = "MINIPAY_TRANSFER_BATCH_MAX", value_parser = clap::value_parser!(u32).range(1..=1024))]
    transfer_batch_max: Option<u32>,
    /// Longest a transfer waits for others to join its batch, in microseconds.
    #[arg(long, env = "MINIPAY_TRANSFER_BATCH_WAIT_US", value_parser = clap::value_parser!(u64).range(0..=100_000))]
    transfer_batch_wait_us: Option<u64>,
    /// Batches one instance runs at once [default: 2].
    #[arg(long, env = "MINIPAY_TRANSFER_BATCHES_IN_FLIGHT", value_parser = clap::value_parser!(u32).range(1..=16))]
    transfer_batches_in_flight: Option<u32>,
    /// nats://HOST:PORT: events through NATS JetStream [default: unset, the embedded dispatcher].
    #[arg(long, env = "MINIPAY_NATS_URL")]
    nats_url: Option<String>,
    /// The JetStream stream, created if missing [default: MINIPAY].
    #[arg(long, env = "MINIPAY_NATS_STREAM")]
    nats_stream: Option<String>,
    /// Subjects are <prefix>.<area>.<event> [default: minipay].
    #[arg(long, env = "MINIPAY_NATS_SUBJECT_PREFIX")]
    nats_subject_prefix: Option<String>,
    /// How often the event relay and consumers look for work nobody woke them for, in ms [default: 250].
    #[arg(long, env = "MINIPAY_EVENTS_POLL_MS", value_parser = clap::value_parser!(u64).range(1..=60_000))]
    events_poll_ms: Option<u64>,
    /// Longest a consumer's batch waits while the intake is at capacity, in ms; 0: never [default: 0].
    #[arg(long, env = "MINIPAY_EVENTS_YIELD_MAX_MS", value_parser = clap::value_parser!(u64).range(0..=600_000))]
    events_yield_max_ms: Option<u64>,
    /// How long JetStream waits for a message's ack before offering it again, in ms: how soon a
    /// crashed instance's work is taken up [default: 60000].
    #[arg(long, env = "MINIPAY_NATS_ACK_WAIT_MS", value_parser = clap::value_parser!(u64).range(1_000..=3_600_000))]
    nats_ack_wait_ms: Option<u64>,
    /// Attempts per remittance step before it is dead-lettered [default: 3].
    #[arg(long, env = "MINIPAY_REMIT_ATTEMPTS", value_parser = clap::value_parser!(u32).range(1..=100))]
    remit_attempts: Option<u32>,
    /// Between a remittance step's attempts, in ms [default: 10000].
    #[arg(long, env = "MINIPAY_REMIT_RETRY_DELAY_MS", value_parser = clap::value_parser!(u64).range(0..=86_400_000))]
    remit_retry_delay_ms: Option<u64>,
    /// Where every raised alert is POSTed as JSON [default: unset, alerts are only listed].
    #[arg(long, env = "MINIPAY_ALERT_WEBHOOK_URL")]
    alert_webhook_url: Option<String>,
    /// Seals terminal keys at rest; required in production [default: a development value].
    #[arg(long, env = "MINIPAY_TERMINAL_KEY_SECRET", hide_env_values = true)]
    terminal_key_secret: Option<String>,
    /// Where POS terminals connect over TCP, e.g. 127.0.0.1:9100 [default: unset, no TCP intake].
    #[arg(long, env = "MINIPAY_POS_LISTEN")]
    pos_listen: Option<String>,
    /// How long a VAN or card company may take to answer before it is a timeout, in ms [default: 5000].
    #[arg(long, env = "MINIPAY_UPSTREAM_TIMEOUT_MS", value_parser = clap::value_parser!(u64).range(1..=120_000))]
    upstream_timeout_ms: Option<u64>,
    /// Most card approvals recorded (and, separately, answered) in one database transaction; 1 records each on its own [default: 256].
    #[arg(long, env = "MINIPAY_APPROVAL_BATCH_MAX", value_parser = clap::value_parser!(u32).range(1..=10_000))]
    approval_batch_max: Option<u32>,
    /// Longest an approval waits for others to join its group, in µs; 0: a group goes as soon as a commit slot is free [default: 0].
    #[arg(long, env = "MINIPAY_APPROVAL_BATCH_WAIT_US", value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    approval_batch_wait_us: Option<u64>,
    /// Approval groups of each kind one instance commits at once [default: 2].
    #[arg(long, env = "MINIPAY_APPROVAL_BATCHES_IN_FLIGHT", value_parser = clap::value_parser!(u32).range(1..=64))]
    approval_batches_in_flight: Option<u32>,
}

/// `--config`'s long help: every key a config file may hold.
fn config_help() -> String {
    format!(
        "TOML file with the same settings; its keys: {}",
        SettingsLayer::FILE_KEYS.join(", ")
    )
}

impl ServeArgs {
    /// Flags and variables over the config file over the defaults.
    fn settings(self) -> anyhow::Result<minipay_server::Settings> {
        let (config, flags) = self.into_layer();
        let file = match config {
            Some(path) => SettingsLayer::from_toml_file(&path)?,
            None => SettingsLayer::default(),
        };
        Ok(flags.over(file).into_settings())
    }

    fn into_layer(self) -> (Option<PathBuf>, SettingsLayer) {
        let layer = SettingsLayer {
            listen: self.listen,
            database_url: self.database_url,
            admin_token: self.admin_token,
            jwt_secret: self.jwt_secret,
            clock: self.clock.map(|c| match c {
                ClockArg::System => ClockKind::System,
                ClockArg::Manual => ClockKind::Manual,
            }),
            clock_start: self.clock_start,
            mode: self.mode.map(|m| match m {
                ModeArg::Dev => RunMode::Dev,
                ModeArg::Production => RunMode::Production,
            }),
            bank_url: self.bank_url,
            scheduler: self.scheduler,
            scheduler_tick_ms: self.scheduler_tick_ms,
            db_connections_max: self.db_connections_max,
            db_connections_min: self.db_connections_min,
            history_archive_dir: self.history_archive_dir,
            history_retire_slice_max: self.history_retire_slice_max,
            transfer_batch_max: self.transfer_batch_max,
            transfer_batch_wait_us: self.transfer_batch_wait_us,
            transfer_batches_in_flight: self.transfer_batches_in_flight,
            nats_url: self.nats_url,
            nats_stream: self.nats_stream,
            nats_subject_prefix: self.nats_subject_prefix,
            events_poll_ms: self.events_poll_ms,
            events_yield_max_ms: self.events_yield_max_ms,
            nats_ack_wait_ms: self.nats_ack_wait_ms,
            remit_attempts: self.remit_attempts,
            remit_retry_delay_ms: self.remit_retry_delay_ms,
            alert_webhook_url: self.alert_webhook_url,
            terminal_key_secret: self.terminal_key_secret,
            pos_listen: self.pos_listen,
            upstream_timeout_ms: self.upstream_timeout_ms,
            approval_batch_max: self.approval_batch_max,
            approval_batch_wait_us: self.approval_batch_wait_us,
            approval_batches_in_flight: self.approval_batches_in_flight,
        };
        (self.config, layer)
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("MINIPAY_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    init_logging();
    match Cli::parse().command {
        Command::Serve(args) => {
            let app = Application::build(args.settings()?).await?;
            println!("listening on http://{}", app.local_addr());
            app.run_until(shutdown_signal()).await
        }
        Command::Migrate { database_url } => {
            let store = Store::connect(&database_url, &StoreOptions::default())
                .await
                .with_context(|| format!("connecting to {}", minipay_server::redact_url(&database_url)))?;
            store.migrate().await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Jobs {
            action: JobsCommand::List { serve },
        } => {
            serve.settings()?.validate()?;
            let schedules = minipay_services::jobs::SCHEDULES
                .iter()
                .chain(minipay_business::remittance::SCHEDULES)
                .chain(minipay_payments::SCHEDULES)
                .chain(minipay_events::webhooks::SCHEDULES)
                .chain(minipay_readside::SCHEDULES);
            for (name, when) in schedules {
                println!("{name:<22} {when}");
            }
            Ok(())
        }
        Command::Jobs {
            action: JobsCommand::Run { name, at, serve },
        } => {
            let settings = serve.settings()?;
            let core = Core::build(&settings).await?;
            let at = at.unwrap_or_else(|| core.wallet.clock().now());
            let report = core.jobs.run_by_hand(&name, at).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            match report.error {
                Some(e) => anyhow::bail!("job {name} failed: {e}"),
                None => Ok(()),
            }
        }
        Command::Readside {
            action: ReadsideCommand::Rebuild { from, serve },
        } => {
            let source = match from {
                ReplayArg::Outbox => minipay_events::ReplaySource::Outbox,
                ReplayArg::Stream => minipay_events::ReplaySource::Stream,
            };
            let report = minipay_server::rebuild_read_side(&serve.settings()?, source).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::History {
            action:
                HistoryCommand::Export {
                    month,
                    out,
                    database_url,
                },
        } => {
            let month = minipay_core::BusinessMonth::parse(&month)?;
            let store = Store::connect(&database_url, &StoreOptions::default())
                .await
                .with_context(|| format!("connecting to {}", minipay_server::redact_url(&database_url)))?;
            let n = minipay_services::history::export_month(&store, month, &out).await?;
            println!("exported {n} entries of {month} to {}", out.display());
            Ok(())
        }
        Command::Loadtest(test) => {
            let report = minipay_loadtest::run(&test).await?;
            print!("{}", report.table());
            report.write(&test.report_dir)?;
            println!("report: {}", test.report_dir.join("report.html").display());
            if !report.passed() {
                anyhow::bail!("the load test missed a threshold");
            }
            Ok(())
        }
        Command::Bench {
            which: BenchCommand::History(b),
        } => b.run().await,
        Command::Bench {
            which: BenchCommand::Interest(b),
        } => b.run().await,
        Command::Bench {
            which: BenchCommand::Transfers(b),
        } => b.run().await,
        Command::Bench {
            which: BenchCommand::Remittances(b),
        } => b.run().await,
        Command::Bench {
            which: BenchCommand::Readside(b),
        } => b.run().await,
        Command::Bench {
            which: BenchCommand::Payments(b),
        } => b.run().await,
        Command::Bench {
            which: BenchCommand::Approvals(b),
        } => b.run().await,
        Command::Pos(args) => args.run().await,
        Command::Sim {
            system: SimCommand::Van(a),
        } => minipay_gateway::sim::run_standalone(SimKind::Van, a.listen, a.http, &a.dialect, a.id).await,
        Command::Sim {
            system: SimCommand::Card(a),
        } => minipay_gateway::sim::run_standalone(SimKind::Card, a.listen, a.http, &a.dialect, a.id).await,
        Command::Sim {
            system: SimCommand::Bank { listen },
        } => {
            let sim = Arc::new(BankSimulator::new());
            let (addr, server) = sim.serve(&listen).await.with_context(|| format!("binding {listen}"))?;
            println!("listening on http://{addr}");
            tokio::select! {
                _ = server => Ok(()),
                _ = shutdown_signal() => Ok(()),
            }
        }
    }
}
