//! The VAN and card-company simulators (API-gateway.md "Simulators").
//!
//! A simulator listens on TCP and speaks one dialect (`minipay_wire::Dialect`) over that
//! dialect's framing. The gateway is the client: it keeps several requests in flight on one
//! connection; each request carries `upstream_ref` and each answer echoes it. Answers go out as
//! each request completes, in any order.
//!
//! Approvals (`card_approval`, `cash_receipt`) behave by the last 4 digits of the PAN (`pan`,
//! or the part of `track2` before `=`):
//!
//! | ends in | answer |
//! |---|---|
//! | anything else | `00` 정상승인, a new 8-digit `approval_no`, recorded |
//! | `0002` | `51` 한도초과 (a card decline), nothing recorded |
//! | `0003` | `96` 시스템오류, nothing recorded |
//! | `0004` | no answer ever, nothing recorded |
//! | `0005` | recorded at once, answered `00` after `late_after` (a late approval) |
//! | `0006` | the connection is closed after the request is read, nothing recorded |
//!
//! `card_cancel` / `cash_receipt_cancel` cancel the approval named by `original_approval_no`
//! (`00`; an unknown or no longer approved original is `14`). `network_cancel` (망취소) finds
//! the original by `terminal_id` + `seq_no` + `sent_at` + `amount` (+ `original_approval_no`, or
//! `approval_no`, when given), marks it `network_canceled` if it is still approved, and always answers `00`. Every cancel
//! received is recorded with its `repeat` flag and whether it found its original.
//!
//! Faults ([`SimFaults`]) are set with [`SimHandle::set_faults`] or `PUT /v1/admin/sims/{id}`
//! (see [`http_router`]). With `drop_cancels`, network cancels are still applied and recorded
//! but never answered (the answer is "lost"), so the gateway resends them.
//!
//! # Settlement file
//!
//! `GET /sim/settlement-file?date=YYYY-MM-DD[&sim=ID]` ([`SimHandle::settlement_file`]) is
//! `text/csv`, UTF-8, `\n` line ends, a header line then one line per record settled on that
//! business date (the Asia/Seoul date of `approved_at` for approvals, of `canceled_at` for
//! cancels), approvals first, each group in the order the sim recorded them:
//!
//! ```text
//! record_type,approval_no,terminal_id,seq_no,sent_at,amount,approved_at,canceled_at
//! approval,10000001,T0000001,1,20260301093000,15000,20260301093001,
//! cancel,10000001,T0000001,1,20260301093000,15000,20260301093001,20260301100000
//! ```
//!
//! `record_type` is `approval` or `cancel`; an approval line is written for every approval
//! made that day, canceled later or not; a cancel line repeats the original approval's keys
//! (terminal, sequence number, its `sent_at`, amount, approval number, `approved_at`) and adds
//! `canceled_at`, for customer cancels and network cancels alike. Times are `YYYYMMDDhhmmss` in
//! Asia/Seoul; `canceled_at` is empty on approval lines; `seq_no` and `amount` (won) are plain
//! decimal numbers without padding zeros, whatever the dialect's padding.

mod behaviour;
mod http;
mod ledger;
mod link;
mod standalone;

pub use http::http_router;
pub use ledger::{ApprovalStatus, CancelKind, SimApproval, SimCancel};
pub use standalone::run_standalone;

use ledger::Ledger;
use minipay_core::{Clock, SystemClock};
use minipay_wire::Dialect;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Which kind of upstream a simulator plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimKind {
    /// A VAN: answers for every issuer; `issuer` in answers is derived from the BIN.
    Van,
    /// A card company with a direct contract: answers with its own name as `issuer`.
    Card,
}

/// How a simulator is set up.
#[derive(Clone)]
pub struct SimConfig {
    /// Names the sim in `PUT /v1/admin/sims/{id}` and in logs.
    pub id: String,
    pub kind: SimKind,
    /// The message format on the link, with its framing.
    pub dialect: Dialect,
    /// How long a `…0005` card waits before its (late) approval is answered.
    pub late_after: Duration,
    /// The `issuer` a card-company sim puts in its answers.
    pub issuer: String,
    /// The sim's own time (`approved_at`, `canceled_at`, the settlement date).
    pub clock: Arc<dyn Clock>,
}

/// The contract's default for [`SimConfig::late_after`]: past the gateway's 5 s timeout.
pub const LATE_AFTER_DEFAULT: Duration = Duration::from_secs(6);

/// The issuer a card-company sim names when none is configured.
pub const ISSUER_DEFAULT: &str = "MINICARD";

impl SimConfig {
    /// A sim with the defaults: late answers after 6 s, issuer `MINICARD`, the system clock.
    pub fn new(id: impl Into<String>, kind: SimKind, dialect: Dialect) -> Self {
        Self {
            id: id.into(),
            kind,
            dialect,
            late_after: LATE_AFTER_DEFAULT,
            issuer: ISSUER_DEFAULT.to_owned(),
            clock: Arc::new(SystemClock),
        }
    }
}

impl std::fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimConfig")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("dialect", &self.dialect.name())
            .field("late_after", &self.late_after)
            .field("issuer", &self.issuer)
            .finish_non_exhaustive()
    }
}

/// Faults injected at run time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SimFaults {
    /// Extra delay before every answer.
    pub latency_ms: u64,
    /// The share (0.0–1.0) of approvals answered `96` (system error) instead.
    pub error_rate: f64,
    /// Refuse service: new connections are closed at once and open ones are closed.
    pub down: bool,
    /// Network cancels are applied but never answered (to test resends).
    pub drop_cancels: bool,
}

/// A partial update of [`SimFaults`]: the body of `PUT /v1/admin/sims/{id}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimFaultsPatch {
    pub latency_ms: Option<u64>,
    pub error_rate: Option<f64>,
    pub down: Option<bool>,
    pub drop_cancels: Option<bool>,
}

impl SimFaults {
    /// These faults with the patch's fields applied; `error_rate` is kept within 0.0–1.0.
    pub fn patched(self, patch: SimFaultsPatch) -> Self {
        Self {
            latency_ms: patch.latency_ms.unwrap_or(self.latency_ms),
            error_rate: patch.error_rate.unwrap_or(self.error_rate),
            down: patch.down.unwrap_or(self.down),
            drop_cancels: patch.drop_cancels.unwrap_or(self.drop_cancels),
        }
        .clamped()
    }

    fn clamped(self) -> Self {
        let error_rate = if self.error_rate.is_nan() {
            0.0
        } else {
            self.error_rate.clamp(0.0, 1.0)
        };
        Self { error_rate, ..self }
    }
}

/// What every connection and request task of one sim shares.
pub(crate) struct SimState {
    pub(crate) config: SimConfig,
    faults: Mutex<SimFaults>,
    ledger: Mutex<Ledger>,
    requests_seen: AtomicU64,
    /// Bumped to close every open connection (`down`, shutdown).
    kill: watch::Sender<u64>,
    shutdown: watch::Sender<bool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values are updated in single statements: a panic cannot leave them torn.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SimState {
    pub(crate) fn faults(&self) -> SimFaults {
        *lock(&self.faults)
    }

    pub(crate) fn ledger(&self) -> MutexGuard<'_, Ledger> {
        lock(&self.ledger)
    }

    pub(crate) fn count_request(&self) {
        self.requests_seen.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn kill_watch(&self) -> watch::Receiver<u64> {
        self.kill.subscribe()
    }

    fn close_connections(&self) {
        self.kill.send_modify(|generation| *generation += 1);
    }
}

/// Starts simulators.
pub struct Simulator;

impl Simulator {
    /// Binds `listen` (port 0 picks a free port) and serves until [`SimHandle::shutdown`].
    pub async fn start(listen: SocketAddr, config: SimConfig) -> std::io::Result<SimHandle> {
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(SimState {
            ledger: Mutex::new(Ledger::new(&config.id)),
            config,
            faults: Mutex::new(SimFaults::default()),
            requests_seen: AtomicU64::new(0),
            kill: watch::channel(0).0,
            shutdown: watch::channel(false).0,
        });
        tokio::spawn(link::accept_loop(listener, Arc::clone(&state)));
        tracing::info!(sim = %state.config.id, %addr, dialect = state.config.dialect.name(), "simulator listening");
        Ok(SimHandle { addr, state })
    }
}

/// A running simulator; clones share it.
#[derive(Clone)]
pub struct SimHandle {
    addr: SocketAddr,
    state: Arc<SimState>,
}

impl SimHandle {
    /// Where the sim listens (the real port when started on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn id(&self) -> &str {
        &self.state.config.id
    }

    pub fn kind(&self) -> SimKind {
        self.state.config.kind
    }

    /// Replaces the faults; `down` closes every open connection at once.
    pub fn set_faults(&self, faults: SimFaults) {
        let faults = faults.clamped();
        *lock(&self.state.faults) = faults;
        if faults.down {
            self.state.close_connections();
        }
        tracing::info!(sim = %self.id(), ?faults, "simulator faults set");
    }

    /// Applies a partial update and returns the faults now in force.
    pub fn patch_faults(&self, patch: SimFaultsPatch) -> SimFaults {
        let faults = self.faults().patched(patch);
        self.set_faults(faults);
        faults
    }

    pub fn faults(&self) -> SimFaults {
        self.state.faults()
    }

    /// Every approval made, in order, with its current status.
    pub fn approvals(&self) -> Vec<SimApproval> {
        self.state.ledger().approvals().to_vec()
    }

    /// Every cancel received (customer and network), in order.
    pub fn cancels(&self) -> Vec<SimCancel> {
        self.state.ledger().cancels().to_vec()
    }

    /// Every request read and decoded, whatever became of it.
    pub fn requests_seen(&self) -> u64 {
        self.state.requests_seen.load(Ordering::Relaxed)
    }

    /// The settlement file of a business date (format in the module docs).
    pub fn settlement_file(&self, date: jiff::civil::Date) -> String {
        self.state.ledger().settlement_file(date)
    }

    /// Stops accepting and closes every connection; answers still pending are dropped.
    pub fn shutdown(&self) {
        self.state.shutdown.send_replace(true);
        self.state.close_connections();
    }
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle")
            .field("id", &self.id())
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}
