//! Server settings: what API.md's "Running the server" table lists, plus operational knobs,
//! with the checks that production mode makes.

use minipay_services::auth::Secret;
use serde::Deserialize;

/// How the server reads time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClockKind {
    #[default]
    System,
    /// Stands still until moved through `/v1/admin/clock`. Refused in production mode.
    Manual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RunMode {
    #[default]
    Dev,
    /// Refuses generated secrets and the manual clock.
    Production,
}

/// Everything `minipay serve` needs. Every field has a safe default for a local run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free port.
    pub listen: String,
    /// `sqlite://PATH` (created if missing) or `postgres://...`.
    pub database_url: String,
    /// Bearer token for `/v1/admin/*`; generated and logged in dev mode when unset.
    pub admin_token: Option<Secret>,
    /// Signs access tokens; generated in dev mode when unset.
    pub jwt_secret: Option<Secret>,
    pub clock: ClockKind,
    /// Where the manual clock starts (default: the system time at start).
    pub clock_start: Option<jiff::Timestamp>,
    pub mode: RunMode,
    /// Base URL of an external open-banking API; unset = the built-in bank simulator.
    pub bank_url: Option<String>,
    /// Run scheduled jobs in this instance (any number of instances may: each slot runs once).
    pub scheduler: bool,
    /// How often the scheduler looks for due slots.
    pub scheduler_tick_ms: u64,
    /// PostgreSQL pool size.
    pub db_connections_max: u32,
    /// PostgreSQL connections opened at start and kept open (warm for the first requests).
    pub db_connections_min: u32,
    /// Where the history-retention job archives each month (gzip CSV) before retiring it.
    /// Unset: months are retired without an archive (export them by hand first).
    pub history_archive_dir: Option<std::path::PathBuf>,
    /// Entries retired per transaction on SQLite (PostgreSQL drops a month whole).
    pub history_retire_slice_max: u32,
    /// Most transfers and charge postings grouped into one database transaction; 1 turns batching off.
    pub transfer_batch_max: u32,
    /// Longest a transfer or charge posting waits for others to join its batch, in microseconds.
    pub transfer_batch_wait_us: u64,
    /// Batches one instance runs at once (the next reads its keys and users while one commits).
    pub transfer_batches_in_flight: u32,
    /// `nats://HOST:PORT`: events go through NATS JetStream; unset: the embedded dispatcher
    /// hands the outbox straight to this process's consumers.
    pub nats_url: Option<String>,
    /// The JetStream stream (created if missing).
    pub nats_stream: String,
    /// Subjects are `<prefix>.<area>.<event>`; the stream takes `<prefix>.>`.
    pub nats_subject_prefix: String,
    /// How often the relay and the consumers look for work nobody woke them for, in ms.
    pub events_poll_ms: u64,
    /// Longest a consumer's batch waits while the intake is at capacity, in ms (0: never).
    pub events_yield_max_ms: u64,
    /// How long JetStream waits for a message's ack before offering it again, in ms: how
    /// soon the work of an instance that died mid-attempt is taken up by another.
    pub nats_ack_wait_ms: u64,
    /// Attempts per remittance step before it is dead-lettered.
    pub remit_attempts: u32,
    /// Between a remittance step's attempts, in ms.
    pub remit_retry_delay_ms: u64,
    /// Where every raised alert is POSTed (a chat or paging webhook); unset: alerts are only
    /// listed at `GET /v1/admin/alerts`.
    pub alert_webhook_url: Option<String>,
    /// Seals terminal keys at rest (the gateway); dev mode uses a fixed development value,
    /// production refuses to run without one.
    pub terminal_key_secret: Option<Secret>,
    /// Where POS terminals connect over TCP (the POS wire format); unset: no TCP intake.
    pub pos_listen: Option<String>,
    /// How long an upstream (VAN, card company) may take to answer before it is a timeout.
    pub upstream_timeout_ms: u64,
    /// Most card approvals recorded (and, separately, answered) in one database transaction;
    /// 1 records each on its own.
    pub approval_batch_max: u32,
    /// Longest an approval waits for others to join its group, in microseconds (0: a group
    /// goes as soon as a commit slot is free).
    pub approval_batch_wait_us: u64,
    /// Approval groups of each kind one instance commits at once.
    pub approval_batches_in_flight: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            database_url: "sqlite://minipay.db".into(),
            admin_token: None,
            jwt_secret: None,
            clock: ClockKind::System,
            clock_start: None,
            mode: RunMode::Dev,
            bank_url: None,
            scheduler: true,
            scheduler_tick_ms: 1_000,
            db_connections_max: 16,
            db_connections_min: 0,
            history_archive_dir: None,
            history_retire_slice_max: 10_000,
            transfer_batch_max: 128,
            transfer_batch_wait_us: 1_000,
            transfer_batches_in_flight: 2,
            nats_url: None,
            nats_stream: "MINIPAY".into(),
            nats_subject_prefix: "minipay".into(),
            events_poll_ms: 250,
            events_yield_max_ms: 0,
            nats_ack_wait_ms: 60_000,
            remit_attempts: 3,
            remit_retry_delay_ms: 10_000,
            alert_webhook_url: None,
            terminal_key_secret: None,
            pos_listen: None,
            upstream_timeout_ms: 5_000,
            approval_batch_max: 256,
            approval_batch_wait_us: 0,
            approval_batches_in_flight: 2,
        }
    }
}

/// Secrets shorter than this are refused in production.
const SECRET_LEN_MIN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("production mode needs {0} to be set (a generated value would change at every start)")]
    MissingSecret(&'static str),
    #[error("production mode refuses {0} shorter than {SECRET_LEN_MIN} characters")]
    WeakSecret(&'static str),
    #[error("production mode refuses the manual clock")]
    ManualClockInProduction,
    #[error("MINIPAY_DB_CONNECTIONS_MIN ({min}) is more than the pool's MINIPAY_DB_CONNECTIONS_MAX ({max})")]
    MoreConnectionsKeptThanPooled { min: u32, max: u32 },
}

impl Settings {
    /// Checks the settings against each other and the run mode.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.db_connections_min > self.db_connections_max {
            return Err(SettingsError::MoreConnectionsKeptThanPooled {
                min: self.db_connections_min,
                max: self.db_connections_max,
            });
        }
        if self.mode == RunMode::Production {
            for (name, secret) in [
                ("MINIPAY_ADMIN_TOKEN", &self.admin_token),
                ("MINIPAY_JWT_SECRET", &self.jwt_secret),
                ("MINIPAY_TERMINAL_KEY_SECRET", &self.terminal_key_secret),
            ] {
                match secret {
                    None => return Err(SettingsError::MissingSecret(name)),
                    Some(s) if s.expose().len() < SECRET_LEN_MIN => return Err(SettingsError::WeakSecret(name)),
                    Some(_) => {}
                }
            }
            if self.clock == ClockKind::Manual {
                return Err(SettingsError::ManualClockInProduction);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_refuses_insecure_defaults() {
        let mut s = Settings {
            mode: RunMode::Production,
            ..Settings::default()
        };
        assert!(matches!(s.validate(), Err(SettingsError::MissingSecret(_))));
        s.admin_token = Some(Secret::new("x".repeat(40)));
        s.jwt_secret = Some(Secret::new("short"));
        assert!(matches!(
            s.validate(),
            Err(SettingsError::WeakSecret("MINIPAY_JWT_SECRET"))
        ));
        s.jwt_secret = Some(Secret::new("y".repeat(40)));
        assert!(matches!(
            s.validate(),
            Err(SettingsError::MissingSecret("MINIPAY_TERMINAL_KEY_SECRET"))
        ));
        s.terminal_key_secret = Some(Secret::new("z".repeat(40)));
        assert!(s.validate().is_ok());
        s.clock = ClockKind::Manual;
        assert!(matches!(s.validate(), Err(SettingsError::ManualClockInProduction)));
        assert!(
            Settings {
                clock: ClockKind::Manual,
                ..Settings::default()
            }
            .validate()
            .is_ok()
        );
    }
}

/// One layer of settings (a config file, or flags and environment variables): every field
/// optional. Layers stack — flags and `MINIPAY_*` variables over the file over the defaults.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsLayer {
    pub listen: Option<String>,
    pub database_url: Option<String>,
    pub admin_token: Option<String>,
    pub jwt_secret: Option<String>,
    pub clock: Option<ClockKind>,
    pub clock_start: Option<jiff::Timestamp>,
    pub mode: Option<RunMode>,
    pub bank_url: Option<String>,
    pub scheduler: Option<bool>,
    pub scheduler_tick_ms: Option<u64>,
    pub db_connections_max: Option<u32>,
    pub db_connections_min: Option<u32>,
    pub history_archive_dir: Option<std::path::PathBuf>,
    pub history_retire_slice_max: Option<u32>,
    pub transfer_batch_max: Option<u32>,
    pub transfer_batch_wait_us: Option<u64>,
    pub transfer_batches_in_flight: Option<u32>,
    pub nats_url: Option<String>,
    pub nats_stream: Option<String>,
    pub nats_subject_prefix: Option<String>,
    pub events_poll_ms: Option<u64>,
    pub events_yield_max_ms: Option<u64>,
    pub nats_ack_wait_ms: Option<u64>,
    pub remit_attempts: Option<u32>,
    pub remit_retry_delay_ms: Option<u64>,
    pub alert_webhook_url: Option<String>,
    pub terminal_key_secret: Option<String>,
    pub pos_listen: Option<String>,
    pub upstream_timeout_ms: Option<u64>,
    pub approval_batch_max: Option<u32>,
    pub approval_batch_wait_us: Option<u64>,
    pub approval_batches_in_flight: Option<u32>,
}

impl SettingsLayer {
    /// The keys a config file may hold: the field names above, in order (a test keeps the two
    /// in step, and `serve --help` prints these).
    pub const FILE_KEYS: &[&str] = &[
        "listen",
        "database_url",
        "admin_token",
        "jwt_secret",
        "clock",
        "clock_start",
        "mode",
        "bank_url",
        "scheduler",
        "scheduler_tick_ms",
        "db_connections_max",
        "db_connections_min",
        "history_archive_dir",
        "history_retire_slice_max",
        "transfer_batch_max",
        "transfer_batch_wait_us",
        "transfer_batches_in_flight",
        "nats_url",
        "nats_stream",
        "nats_subject_prefix",
        "events_poll_ms",
        "events_yield_max_ms",
        "nats_ack_wait_ms",
        "remit_attempts",
        "remit_retry_delay_ms",
        "alert_webhook_url",
        "terminal_key_secret",
        "pos_listen",
        "upstream_timeout_ms",
        "approval_batch_max",
        "approval_batch_wait_us",
        "approval_batches_in_flight",
    ];

    /// Reads a TOML file whose keys are the field names above.
    pub fn from_toml_file(path: &std::path::Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))
    }

    /// `self` where set, else `lower`.
    pub fn over(self, lower: Self) -> Self {
        Self {
            listen: self.listen.or(lower.listen),
            database_url: self.database_url.or(lower.database_url),
            admin_token: self.admin_token.or(lower.admin_token),
            jwt_secret: self.jwt_secret.or(lower.jwt_secret),
            clock: self.clock.or(lower.clock),
            clock_start: self.clock_start.or(lower.clock_start),
            mode: self.mode.or(lower.mode),
            bank_url: self.bank_url.or(lower.bank_url),
            scheduler: self.scheduler.or(lower.scheduler),
            scheduler_tick_ms: self.scheduler_tick_ms.or(lower.scheduler_tick_ms),
            db_connections_max: self.db_connections_max.or(lower.db_connections_max),
            db_connections_min: self.db_connections_min.or(lower.db_connections_min),
            history_archive_dir: self.history_archive_dir.or(lower.history_archive_dir),
            history_retire_slice_max: self.history_retire_slice_max.or(lower.history_retire_slice_max),
            transfer_batch_max: self.transfer_batch_max.or(lower.transfer_batch_max),
            transfer_batch_wait_us: self.transfer_batch_wait_us.or(lower.transfer_batch_wait_us),
            transfer_batches_in_flight: self.transfer_batches_in_flight.or(lower.transfer_batches_in_flight),
            nats_url: self.nats_url.or(lower.nats_url),
            nats_stream: self.nats_stream.or(lower.nats_stream),
            nats_subject_prefix: self.nats_subject_prefix.or(lower.nats_subject_prefix),
            events_poll_ms: self.events_poll_ms.or(lower.events_poll_ms),
            events_yield_max_ms: self.events_yield_max_ms.or(lower.events_yield_max_ms),
            nats_ack_wait_ms: self.nats_ack_wait_ms.or(lower.nats_ack_wait_ms),
            remit_attempts: self.remit_attempts.or(lower.remit_attempts),
            remit_retry_delay_ms: self.remit_retry_delay_ms.or(lower.remit_retry_delay_ms),
            alert_webhook_url: self.alert_webhook_url.or(lower.alert_webhook_url),
            terminal_key_secret: self.terminal_key_secret.or(lower.terminal_key_secret),
            pos_listen: self.pos_listen.or(lower.pos_listen),
            upstream_timeout_ms: self.upstream_timeout_ms.or(lower.upstream_timeout_ms),
            approval_batch_max: self.approval_batch_max.or(lower.approval_batch_max),
            approval_batch_wait_us: self.approval_batch_wait_us.or(lower.approval_batch_wait_us),
            approval_batches_in_flight: self.approval_batches_in_flight.or(lower.approval_batches_in_flight),
        }
    }

    /// Fills what is still unset with the defaults.
    pub fn into_settings(self) -> Settings {
        let d = Settings::default();
        let non_empty = |s: Option<String>| s.filter(|s| !s.is_empty());
        Settings {
            listen: self.listen.unwrap_or(d.listen),
            database_url: self.database_url.unwrap_or(d.database_url),
            admin_token: non_empty(self.admin_token).map(Secret::new),
            jwt_secret: non_empty(self.jwt_secret).map(Secret::new),
            clock: self.clock.unwrap_or(d.clock),
            clock_start: self.clock_start.or(d.clock_start),
            mode: self.mode.unwrap_or(d.mode),
            bank_url: non_empty(self.bank_url),
            scheduler: self.scheduler.unwrap_or(d.scheduler),
            scheduler_tick_ms: self.scheduler_tick_ms.unwrap_or(d.scheduler_tick_ms),
            db_connections_max: self.db_connections_max.unwrap_or(d.db_connections_max),
            db_connections_min: self.db_connections_min.unwrap_or(d.db_connections_min),
            history_archive_dir: self.history_archive_dir.or(d.history_archive_dir),
            history_retire_slice_max: self.history_retire_slice_max.unwrap_or(d.history_retire_slice_max),
            transfer_batch_max: self.transfer_batch_max.unwrap_or(d.transfer_batch_max),
            transfer_batch_wait_us: self.transfer_batch_wait_us.unwrap_or(d.transfer_batch_wait_us),
            transfer_batches_in_flight: self.transfer_batches_in_flight.unwrap_or(d.transfer_batches_in_flight),
            nats_url: non_empty(self.nats_url),
            nats_stream: non_empty(self.nats_stream).unwrap_or(d.nats_stream),
            nats_subject_prefix: non_empty(self.nats_subject_prefix).unwrap_or(d.nats_subject_prefix),
            events_poll_ms: self.events_poll_ms.unwrap_or(d.events_poll_ms),
            events_yield_max_ms: self.events_yield_max_ms.unwrap_or(d.events_yield_max_ms),
            nats_ack_wait_ms: self.nats_ack_wait_ms.unwrap_or(d.nats_ack_wait_ms),
            remit_attempts: self.remit_attempts.unwrap_or(d.remit_attempts),
            remit_retry_delay_ms: self.remit_retry_delay_ms.unwrap_or(d.remit_retry_delay_ms),
            alert_webhook_url: non_empty(self.alert_webhook_url),
            terminal_key_secret: non_empty(self.terminal_key_secret).map(Secret::new),
            pos_listen: non_empty(self.pos_listen),
            upstream_timeout_ms: self.upstream_timeout_ms.unwrap_or(d.upstream_timeout_ms),
            approval_batch_max: self.approval_batch_max.unwrap_or(d.approval_batch_max),
            approval_batch_wait_us: self.approval_batch_wait_us.unwrap_or(d.approval_batch_wait_us),
            approval_batches_in_flight: self.approval_batches_in_flight.unwrap_or(d.approval_batches_in_flight),
        }
    }
}

#[cfg(test)]
mod layer_tests {
    use super::*;

    #[test]
    fn flags_over_file_over_defaults() {
        let file: SettingsLayer =
            toml::from_str("listen = \"0.0.0.0:9000\"\nclock = \"manual\"\nscheduler_tick_ms = 5").unwrap();
        let flags = SettingsLayer {
            listen: Some("127.0.0.1:1".into()),
            ..Default::default()
        };
        let s = flags.over(file).into_settings();
        assert_eq!(s.listen, "127.0.0.1:1");
        assert_eq!(s.clock, ClockKind::Manual);
        assert_eq!(s.scheduler_tick_ms, 5);
        assert!(s.scheduler);
        assert_eq!(s.database_url, "sqlite://minipay.db");
        assert!(toml::from_str::<SettingsLayer>("no_such_key = 1").is_err());
    }

    #[test]
    fn file_keys_are_exactly_the_fields() {
        // A field missing from FILE_KEYS: the Debug output of a default layer names every field.
        let fields: Vec<String> = format!("{:?}", SettingsLayer::default())
            .split(['{', ','])
            .skip(1)
            .filter_map(|f| f.split(':').next())
            .map(|f| f.trim().to_owned())
            .collect();
        assert_eq!(fields, SettingsLayer::FILE_KEYS);
        // A key in FILE_KEYS that the file would refuse: each parses on its own.
        for key in SettingsLayer::FILE_KEYS {
            let value = match *key {
                "clock" => "\"manual\"",
                "mode" => "\"dev\"",
                "clock_start" => "\"2026-11-21T00:00:00Z\"",
                "scheduler" => "true",
                k if ["_max", "_min", "_ms", "_us", "_flight", "_attempts"]
                    .iter()
                    .any(|s| k.ends_with(s)) =>
                {
                    "1"
                }
                _ => "\"x\"",
            };
            let parsed = toml::from_str::<SettingsLayer>(&format!("{key} = {value}"));
            assert!(parsed.is_ok(), "{key}: {parsed:?}");
        }
    }
}
