//! The bank simulator: an in-memory open-banking bank, used in-process or served over HTTP.
//!
//! The last four digits of an account number choose what the bank does with it:
//!
//! | ends in    | behaviour |
//! |------------|-----------|
//! | `0002`     | balance 0; every pull is declined |
//! | `0003`     | every pull answers Unavailable (503); nothing moves, nothing is recorded |
//! | `0004`     | every pull times out with the money NOT taken (recorded Failed) |
//! | `0005`     | every pull times out AFTER the money is taken (recorded Completed) |
//! | `0006`     | a closed account: every push is declined (pulls work) |
//! | `0009`     | registration is refused |
//! | otherwise  | 100,000,000 won; pulls and pushes succeed |
//!
//! The fintech use number is derived from the bank code and account number, so a restarted
//! simulator still knows every account it ever registered.
//!
//! Money really moves: a pull takes it from the account into the platform's own account at
//! this bank, a push pays it from there into the account. The platform's account starts at 0
//! and a push it cannot cover is declined, so money the platform never collected cannot leave.
//!
//! Tests can also fault one operation (`pull`, `push`, `inquiry`) of one account, for the next
//! N calls or until replaced (`AccountFault`). Faults are keyed by the account number alone,
//! whatever the bank code, like the behaviour suffixes above.

use crate::client::wire;
use crate::{Bank, BankError, FinAccount, RegisterAccount, TransferReceipt, TransferRequest, TransferStatus};
use async_trait::async_trait;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, HashMap};
use std::hash::BuildHasher;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// What an account starts with, in won, unless its number says otherwise.
const INITIAL_BALANCE_WON: i64 = 100_000_000;
const BANK_CODE_DIGITS: usize = 3;
/// The account number is left-padded with zeros to this width inside the fintech use number.
const FIN_NUM_ACCOUNT_DIGITS: usize = 21;
const FIN_NUM_DIGITS: usize = BANK_CODE_DIGITS + FIN_NUM_ACCOUNT_DIGITS;
/// How many trailing digits of the account number choose its behaviour.
const BEHAVIOUR_SUFFIX_DIGITS: usize = 4;

const ADMIN_FAULTS_PATH: &str = "/admin/faults";
const ADMIN_STATS_PATH: &str = "/admin/stats";
/// One account's injected faults and balances (`GET`), or a change to its faults (`PUT`).
const ADMIN_ACCOUNT_PATH: &str = "/admin/accounts/{account_number}";

/// Faults injected into every call, for load and failure tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SimFaults {
    /// Extra delay on every call. Transfers are applied before the delay, so a caller that
    /// gives up waiting must ask the status inquiry what happened.
    pub latency_ms: u64,
    /// Probability (0.0..=1.0) that a call answers Unavailable without doing anything.
    pub error_rate: f64,
    /// Status inquiries answer Unavailable: with `0005` accounts this leaves a pull's outcome
    /// unknown to the caller, for exercising recovery.
    pub inquiries_unavailable: bool,
    /// Pulls are lost on the way: the bank never sees them (nothing recorded, nothing moved)
    /// and the caller times out. Only the status inquiry and a cancel can settle such a pull.
    pub pulls_lost: bool,
}

impl SimFaults {
    /// Out-of-range rates are clamped rather than refused: a fault knob should never fail.
    fn clamped(self) -> Self {
        let error_rate = if self.error_rate.is_nan() {
            0.0
        } else {
            self.error_rate.clamp(0.0, 1.0)
        };
        Self { error_rate, ..self }
    }
}

/// Calls the simulator has seen. `pulls`/`pushes` count every attempt, including replays and
/// injected failures; `*_executed` count only transfers that moved money.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStats {
    pub registrations: u64,
    pub balance_inquiries: u64,
    pub pulls: u64,
    pub pulls_executed: u64,
    pub pushes: u64,
    pub pushes_executed: u64,
    pub status_inquiries: u64,
    pub cancels: u64,
}

/// What the bank does with one call of one operation on one account, injected for tests.
///
/// Chosen so that a retry under the SAME transfer id recovers, since that is how the platform
/// retries: a call the bank did not process leaves no record, so a later call under that id
/// executes normally; a call the bank processed is remembered, so a repeat never moves money
/// twice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountFault {
    /// No fault: the account's usual behaviour.
    #[default]
    Ok,
    /// The bank processes the transfer and refuses it: recorded Failed under its id (a repeat
    /// replays the refusal), nothing moves. On an inquiry: answers Unavailable, as an inquiry
    /// cannot be refused.
    Decline,
    /// Not processed, not recorded: answers Unavailable (503).
    Unavailable,
    /// Not processed, not recorded, and no answer: the caller times out and the status
    /// inquiry says NotFound. On an inquiry: times out.
    TimeoutNotExecuted,
    /// Processed as usual (money moves, recorded), but the answer is lost: the caller times
    /// out and the status inquiry tells what happened. On an inquiry: times out.
    TimeoutExecuted,
}

/// The fault on one operation of an account, and for how many more calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OperationFault {
    pub fault: AccountFault,
    /// Calls left before the fault turns back to `ok`; `None` while it stays until replaced.
    pub times_left: Option<u32>,
}

impl OperationFault {
    /// `ok` carries no count: there is nothing to wear off.
    fn new(fault: AccountFault, times: Option<u32>) -> Self {
        match fault {
            AccountFault::Ok => Self::default(),
            fault => Self {
                fault,
                times_left: times,
            },
        }
    }

    /// The fault for the call being made now, which counts against `times_left`.
    fn take(&mut self) -> AccountFault {
        let fault = self.fault;
        if let Some(left) = &mut self.times_left {
            *left = left.saturating_sub(1);
            if *left == 0 {
                *self = Self::default();
            }
        }
        fault
    }
}

/// The faults injected into one account's calls. `pull` applies to pulls from the account,
/// `push` to pushes into it, `inquiry` to status inquiries and cancels of its transfers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountFaults {
    pub pull: OperationFault,
    pub push: OperationFault,
    pub inquiry: OperationFault,
}

impl AccountFaults {
    /// These faults with `change` applied: the operations it names get its fault, for the
    /// next `times` calls of each (or until replaced); the others keep theirs.
    pub fn changed(self, change: AccountFaultsChange) -> Result<Self, SimAdminError> {
        let named = [change.pull, change.push, change.inquiry];
        match change.times {
            Some(0) => return Err(SimAdminError::TimesZero),
            Some(_) if named.iter().all(Option::is_none) => return Err(SimAdminError::TimesWithoutOperation),
            _ => {}
        }
        let set = |current: OperationFault, fault: Option<AccountFault>| {
            fault.map_or(current, |fault| OperationFault::new(fault, change.times))
        };
        Ok(Self {
            pull: set(self.pull, change.pull),
            push: set(self.push, change.push),
            inquiry: set(self.inquiry, change.inquiry),
        })
    }

    fn transfer_mut(&mut self, kind: TransferKind) -> &mut OperationFault {
        match kind {
            TransferKind::Pull => &mut self.pull,
            TransferKind::Push => &mut self.push,
        }
    }
}

/// A change to an account's faults as the admin APIs take it: `{pull?, push?, inquiry?,
/// times?}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountFaultsChange {
    pub pull: Option<AccountFault>,
    pub push: Option<AccountFault>,
    pub inquiry: Option<AccountFault>,
    /// The named faults apply to the next `times` calls of each operation, then turn back to
    /// `ok`; without it they stay until replaced. At least 1.
    pub times: Option<u32>,
}

/// One account number as the simulator's admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimAccountView {
    pub account_number: String,
    #[serde(flatten)]
    pub faults: AccountFaults,
    /// The balance, in won, of each account the bank holds under this number, by bank code.
    pub balances: BTreeMap<String, i64>,
}

/// Why the simulator's admin API refused a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimAdminError {
    #[error("account_number must be 1 to 21 digits")]
    InvalidAccountNumber,
    #[error("times must be at least 1")]
    TimesZero,
    #[error("times counts calls of a fault: name pull, push or inquiry with it")]
    TimesWithoutOperation,
}

/// What the bank does with an account, chosen by the account number's last digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AccountBehaviour {
    Normal,
    /// `0002`: nothing at the bank; every pull is declined.
    NoFunds,
    /// `0003`: every pull answers Unavailable and is not recorded.
    PullUnavailable,
    /// `0004`: every pull times out; the money was not taken.
    PullTimeoutNotTaken,
    /// `0005`: every pull times out; the money was taken.
    PullTimeoutTaken,
    /// `0006`: a closed account; every push is declined.
    Closed,
    /// `0009`: cannot be registered, so the bank knows no such account.
    RegistrationRefused,
}

impl AccountBehaviour {
    fn of(account_digits: &str) -> Self {
        let suffix = account_digits.get(account_digits.len().saturating_sub(BEHAVIOUR_SUFFIX_DIGITS)..);
        match suffix {
            Some("0002") => Self::NoFunds,
            Some("0003") => Self::PullUnavailable,
            Some("0004") => Self::PullTimeoutNotTaken,
            Some("0005") => Self::PullTimeoutTaken,
            Some("0006") => Self::Closed,
            Some("0009") => Self::RegistrationRefused,
            _ => Self::Normal,
        }
    }

    fn initial_balance_won(self) -> i64 {
        match self {
            Self::NoFunds => 0,
            _ => INITIAL_BALANCE_WON,
        }
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// The account number zero-padded to its width in a fintech use number: the simulator's key
/// for an account number, whatever the bank code (`None` if it is not 1 to 21 digits).
fn padded_account_digits(account_number: &str) -> Option<String> {
    let well_formed = account_number.len() <= FIN_NUM_ACCOUNT_DIGITS && all_digits(account_number);
    well_formed.then(|| format!("{account_number:0>FIN_NUM_ACCOUNT_DIGITS$}"))
}

/// The key of an account number's faults (see `padded_account_digits`).
fn fault_key(account_number: &str) -> Result<String, SimAdminError> {
    padded_account_digits(account_number).ok_or(SimAdminError::InvalidAccountNumber)
}

/// `{bank_code}{account_number:0>21}`: derivable, so no registry has to survive a restart.
fn fintech_use_num(bank_code: &str, account_number: &str) -> Result<String, BankError> {
    let invalid = || BankError::Declined("invalid account number".into());
    if bank_code.len() != BANK_CODE_DIGITS || !all_digits(bank_code) {
        return Err(invalid());
    }
    let digits = padded_account_digits(account_number).ok_or_else(invalid)?;
    Ok(format!("{bank_code}{digits}"))
}

/// The zero-padded account number inside a well-formed fintech use number.
fn account_digits(fintech_use_num: &str) -> Option<&str> {
    let well_formed = fintech_use_num.len() == FIN_NUM_DIGITS && fintech_use_num.bytes().all(|b| b.is_ascii_digit());
    well_formed.then(|| &fintech_use_num[BANK_CODE_DIGITS..])
}

fn unknown_account() -> BankError {
    BankError::Declined("unknown account".into())
}

fn insufficient_balance() -> BankError {
    BankError::Declined("insufficient balance".into())
}

fn balance_limit_exceeded() -> BankError {
    BankError::Declined("balance limit exceeded".into())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TransferKind {
    Pull,
    Push,
}

#[derive(Debug)]
struct Account {
    behaviour: AccountBehaviour,
    balance_won: i64,
    /// The holder's name as first registered; later registrations must match it (the
    /// simulator's stand-in for the bank's real-name check).
    holder_name: Option<String>,
}

/// Holder names compare without case and surrounding or repeated spaces.
fn same_holder(a: &str, b: &str) -> bool {
    let norm = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase();
    norm(a) == norm(b)
}

/// A transfer the bank processed; a repeat of its `tran_id` gets `outcome` again.
#[derive(Debug)]
struct TransferRecord {
    status: TransferStatus,
    outcome: Result<TransferReceipt, BankError>,
}

impl TransferRecord {
    fn failed(error: BankError) -> Self {
        Self {
            status: TransferStatus::Failed,
            outcome: Err(error),
        }
    }
}

/// xorshift64* (Vigna, 2016): plenty for fault injection, and no dependency.
#[derive(Debug)]
struct Xorshift64Star {
    /// Never zero: zero is the generator's only fixed point.
    state: u64,
}

impl Xorshift64Star {
    /// Any non-zero seed will do; this one only stands in for a zero seed.
    const FALLBACK_SEED: u64 = 0x9E37_79B9_7F4A_7C15;
    const MULTIPLIER: u64 = 0x2545_F491_4F6C_DD1D;
    /// The top 53 bits of a draw are exactly representable in an f64 mantissa.
    const UNIT_BITS: u32 = 53;

    fn seeded(seed: u64) -> Self {
        Self {
            state: if seed == 0 { Self::FALLBACK_SEED } else { seed },
        }
    }

    /// Seeded from the process's random hash keys, which differ per `RandomState`.
    fn from_entropy() -> Self {
        Self::seeded(RandomState::new().hash_one(std::time::SystemTime::now()))
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.state = x;
        x.wrapping_mul(Self::MULTIPLIER)
    }

    /// Uniform in `[0.0, 1.0)`: so `< 0.0` never holds and `< 1.0` always does.
    fn next_unit(&mut self) -> f64 {
        let top_bits = self.next_u64() >> (u64::BITS - Self::UNIT_BITS);
        top_bits as f64 / (1u64 << Self::UNIT_BITS) as f64
    }
}

#[derive(Debug)]
struct SimState {
    /// By fintech use number; created on first use, since the number alone says the behaviour.
    accounts: HashMap<String, Account>,
    /// The platform's own account at this bank, in won: pulls pay into it, pushes out of it.
    /// It starts empty, so a push of money never collected is declined.
    platform_balance_won: i64,
    /// By the platform's `tran_id`: what makes a repeated transfer safe.
    transfers: HashMap<String, TransferRecord>,
    pull_attempts: HashMap<String, u32>,
    /// The padded account digits each `tran_id` was sent for, recorded even when the bank did
    /// not process it, so an inquiry about it meets that account's inquiry fault.
    transfer_accounts: HashMap<String, String>,
    /// By padded account digits (any bank code); an account with no fault has no entry.
    account_faults: HashMap<String, AccountFaults>,
    stats: SimStats,
    faults: SimFaults,
    rng: Xorshift64Star,
    /// Random per simulator, so bank ids stay unique across restarts.
    instance_tag: u32,
    bank_tran_seq: u64,
}

impl SimState {
    fn new() -> Self {
        let mut rng = Xorshift64Star::from_entropy();
        let instance_tag = (rng.next_u64() >> u32::BITS) as u32;
        Self {
            accounts: HashMap::new(),
            platform_balance_won: 0,
            transfers: HashMap::new(),
            pull_attempts: HashMap::new(),
            transfer_accounts: HashMap::new(),
            account_faults: HashMap::new(),
            stats: SimStats::default(),
            faults: SimFaults::default(),
            rng,
            instance_tag,
            bank_tran_seq: 0,
        }
    }

    fn latency(&self) -> Duration {
        Duration::from_millis(self.faults.latency_ms)
    }

    /// Rolls the injected failure; `Err` means the call must not touch anything.
    fn injected_outage(&mut self) -> Result<(), BankError> {
        if self.rng.next_unit() < self.faults.error_rate {
            return Err(BankError::Unavailable("simulated bank outage".into()));
        }
        Ok(())
    }

    fn next_bank_tran_id(&mut self) -> String {
        self.bank_tran_seq += 1;
        format!("SIM{:08X}{:012}", self.instance_tag, self.bank_tran_seq)
    }

    fn register(&mut self, req: &RegisterAccount) -> Result<FinAccount, BankError> {
        self.stats.registrations += 1;
        self.injected_outage()?;
        let fintech_use_num = fintech_use_num(&req.bank_code, &req.account_number)?;
        if let Some(digits) = account_digits(&fintech_use_num)
            && AccountBehaviour::of(digits) == AccountBehaviour::RegistrationRefused
        {
            return Err(BankError::Declined("registration refused".into()));
        }
        let account = account(&mut self.accounts, &fintech_use_num)?;
        match &account.holder_name {
            Some(holder) if !same_holder(holder, &req.holder_name) => {
                return Err(BankError::Declined("the account holder's name does not match".into()));
            }
            Some(_) => {}
            None => account.holder_name = Some(req.holder_name.trim().to_owned()),
        }
        Ok(FinAccount { fintech_use_num })
    }

    fn balance(&mut self, fintech_use_num: &str) -> Result<i64, BankError> {
        self.stats.balance_inquiries += 1;
        self.injected_outage()?;
        Ok(account(&mut self.accounts, fintech_use_num)?.balance_won)
    }

    /// The platform's inquiry about its own account: counted and faulted like any balance.
    fn platform_balance(&mut self) -> Result<i64, BankError> {
        self.stats.balance_inquiries += 1;
        self.injected_outage()?;
        Ok(self.platform_balance_won)
    }

    fn transfer_status(&mut self, tran_id: &str) -> Result<TransferStatus, BankError> {
        self.stats.status_inquiries += 1;
        self.injected_outage()?;
        if self.faults.inquiries_unavailable {
            return Err(BankError::Unavailable("simulated inquiry outage".into()));
        }
        self.inquiry_fault(tran_id)?;
        Ok(self
            .transfers
            .get(tran_id)
            .map_or(TransferStatus::NotFound, |t| t.status))
    }

    fn cancel(&mut self, tran_id: &str) -> Result<TransferStatus, BankError> {
        self.stats.cancels += 1;
        self.injected_outage()?;
        // A faulted cancel voids nothing: the outcome stays as unknown as the inquiry left it.
        self.inquiry_fault(tran_id)?;
        let record = self
            .transfers
            .entry(tran_id.to_owned())
            .or_insert_with(|| TransferRecord::failed(BankError::Declined("the transfer was canceled".into())));
        Ok(record.status)
    }

    /// An account with no fault keeps no entry, so the map holds only faulted accounts.
    fn store_account_faults(&mut self, digits: String, faults: AccountFaults) {
        if faults == AccountFaults::default() {
            self.account_faults.remove(&digits);
        } else {
            self.account_faults.insert(digits, faults);
        }
    }

    /// The inquiry fault of the account `tran_id` was sent for, as the answer to give instead.
    fn inquiry_fault(&mut self, tran_id: &str) -> Result<(), BankError> {
        let Some(account) = self.transfer_accounts.get(tran_id) else {
            return Ok(());
        };
        match take_fault(&mut self.account_faults, account, |faults| &mut faults.inquiry) {
            AccountFault::Ok => Ok(()),
            AccountFault::Decline | AccountFault::Unavailable => Err(BankError::Unavailable(
                "simulated inquiry outage for this account".into(),
            )),
            AccountFault::TimeoutNotExecuted | AccountFault::TimeoutExecuted => Err(BankError::Timeout),
        }
    }

    /// Every attempt counts, whatever becomes of it.
    fn count_attempt(&mut self, kind: TransferKind, tran_id: &str) {
        match kind {
            TransferKind::Pull => {
                self.stats.pulls += 1;
                *self.pull_attempts.entry(tran_id.to_owned()).or_default() += 1;
            }
            TransferKind::Push => self.stats.pushes += 1,
        }
    }

    fn transfer(&mut self, kind: TransferKind, req: &TransferRequest) -> Result<TransferReceipt, BankError> {
        self.count_attempt(kind, &req.tran_id);
        self.injected_outage()?;
        if kind == TransferKind::Pull && self.faults.pulls_lost {
            return Err(BankError::Timeout);
        }
        // A repeat is answered from the record before any fault: money never moves twice, and
        // a repeat does not use up a fault's `times`.
        if let Some(seen) = self.transfers.get(&req.tran_id) {
            return seen.outcome.clone();
        }
        let fault = self.transfer_fault(kind, req);
        let record = match fault {
            AccountFault::Unavailable => {
                return Err(BankError::Unavailable("simulated outage for this account".into()));
            }
            AccountFault::TimeoutNotExecuted => return Err(BankError::Timeout),
            AccountFault::Decline => {
                TransferRecord::failed(BankError::Declined("declined by the bank (simulated)".into()))
            }
            // `?`: an answer the bank did not record (it "never processed" the request).
            AccountFault::Ok | AccountFault::TimeoutExecuted => self.execute(kind, req)?,
        };
        let outcome = record.outcome.clone();
        self.transfers.insert(req.tran_id.clone(), record);
        if fault == AccountFault::TimeoutExecuted {
            // Processed and recorded; only the answer was lost on its way back.
            return Err(BankError::Timeout);
        }
        outcome
    }

    /// The fault of the account a transfer is for (the source of a pull, the destination of a
    /// push). Also notes that account against the `tran_id`, for the inquiry.
    fn transfer_fault(&mut self, kind: TransferKind, req: &TransferRequest) -> AccountFault {
        let Some(digits) = account_digits(&req.fintech_use_num) else {
            return AccountFault::Ok;
        };
        self.transfer_accounts
            .entry(req.tran_id.clone())
            .or_insert_with(|| digits.to_owned());
        take_fault(&mut self.account_faults, digits, |faults| faults.transfer_mut(kind))
    }

    /// Processes a transfer seen for the first time. `Err` only when the bank did not process
    /// it at all; a processed transfer, refused or not, comes back as its record.
    fn execute(&mut self, kind: TransferKind, req: &TransferRequest) -> Result<TransferRecord, BankError> {
        if req.amount <= 0 {
            return Ok(TransferRecord::failed(BankError::Declined("invalid amount".into())));
        }
        let account = match account(&mut self.accounts, &req.fintech_use_num) {
            Ok(account) => account,
            Err(refusal) => return Ok(TransferRecord::failed(refusal)),
        };
        let behaviour = account.behaviour;
        if kind == TransferKind::Pull && behaviour == AccountBehaviour::PullUnavailable {
            return Err(BankError::Unavailable("bank is not processing withdrawals".into()));
        }
        let moved = match kind {
            TransferKind::Pull => pull_into_platform(account, &mut self.platform_balance_won, req.amount),
            TransferKind::Push => push_from_platform(&mut self.platform_balance_won, account, req.amount),
        };
        if let Err(refusal) = moved {
            return Ok(TransferRecord::failed(refusal));
        }
        debug_assert!(self.platform_balance_won >= 0, "the platform's account went negative");
        match kind {
            TransferKind::Pull => self.stats.pulls_executed += 1,
            TransferKind::Push => self.stats.pushes_executed += 1,
        }
        let receipt = TransferReceipt {
            bank_tran_id: self.next_bank_tran_id(),
            amount: req.amount,
        };
        let outcome = match (kind, behaviour) {
            // The money moved, but the answer never reached the caller.
            (TransferKind::Pull, AccountBehaviour::PullTimeoutTaken) => Err(BankError::Timeout),
            _ => Ok(receipt),
        };
        Ok(TransferRecord {
            status: TransferStatus::Completed,
            outcome,
        })
    }
}

/// Moves `amount` from the account into the platform's account, or says why not (nothing
/// moved then). The caller has checked that the amount is positive.
fn pull_into_platform(account: &mut Account, platform_won: &mut i64, amount: i64) -> Result<(), BankError> {
    match account.behaviour {
        AccountBehaviour::NoFunds => return Err(insufficient_balance()),
        AccountBehaviour::PullTimeoutNotTaken => return Err(BankError::Timeout),
        _ => {}
    }
    if account.balance_won < amount {
        return Err(insufficient_balance());
    }
    let platform_after = platform_won.checked_add(amount).ok_or_else(balance_limit_exceeded)?;
    account.balance_won -= amount;
    *platform_won = platform_after;
    Ok(())
}

/// Moves `amount` from the platform's account into the account, or says why not (nothing
/// moved then). The caller has checked that the amount is positive.
fn push_from_platform(platform_won: &mut i64, account: &mut Account, amount: i64) -> Result<(), BankError> {
    if account.behaviour == AccountBehaviour::Closed {
        return Err(BankError::Declined("the account is closed".into()));
    }
    if *platform_won < amount {
        return Err(BankError::Declined("the platform's account is short".into()));
    }
    let balance_after = account
        .balance_won
        .checked_add(amount)
        .ok_or_else(balance_limit_exceeded)?;
    *platform_won -= amount;
    account.balance_won = balance_after;
    Ok(())
}

/// The fault for one call of an operation (`pick`) on the account with these padded digits,
/// counted against its `times`. An account left with no fault loses its entry.
fn take_fault(
    faults: &mut HashMap<String, AccountFaults>,
    digits: &str,
    pick: impl FnOnce(&mut AccountFaults) -> &mut OperationFault,
) -> AccountFault {
    let Some(account_faults) = faults.get_mut(digits) else {
        return AccountFault::Ok;
    };
    let fault = pick(account_faults).take();
    if *account_faults == AccountFaults::default() {
        faults.remove(digits);
    }
    fault
}

/// The account behind a fintech use number, created on first use.
fn account<'a>(
    accounts: &'a mut HashMap<String, Account>,
    fintech_use_num: &str,
) -> Result<&'a mut Account, BankError> {
    let behaviour = AccountBehaviour::of(account_digits(fintech_use_num).ok_or_else(unknown_account)?);
    if behaviour == AccountBehaviour::RegistrationRefused {
        // Such an account can never have been registered.
        return Err(unknown_account());
    }
    Ok(accounts.entry(fintech_use_num.to_owned()).or_insert_with(|| Account {
        behaviour,
        balance_won: behaviour.initial_balance_won(),
        holder_name: None,
    }))
}

/// An in-memory open-banking bank. Use it in-process as a `Bank`, or serve it over HTTP.
pub struct BankSimulator {
    state: Mutex<SimState>,
}

impl Default for BankSimulator {
    fn default() -> Self {
        Self::new()
    }
}

impl BankSimulator {
    pub fn new() -> Self {
        Self {
            state: Mutex::new(SimState::new()),
        }
    }

    fn state(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().expect("bank simulator state mutex poisoned")
    }

    /// Replaces the injected faults; an error rate outside 0.0..=1.0 is clamped.
    pub fn set_faults(&self, faults: SimFaults) {
        self.state().faults = faults.clamped();
    }

    pub fn faults(&self) -> SimFaults {
        self.state().faults
    }

    pub fn stats(&self) -> SimStats {
        self.state().stats
    }

    /// How many pull requests arrived under this tran_id (every attempt, including replays).
    pub fn pull_attempts(&self, tran_id: &str) -> u32 {
        self.state().pull_attempts.get(tran_id).copied().unwrap_or(0)
    }

    /// The platform's account at this bank, in won, as a test sees it: no latency, no
    /// injected fault, not counted (the platform itself asks through `Bank::platform_balance`).
    pub fn platform_balance(&self) -> i64 {
        self.state().platform_balance_won
    }

    /// An account's balance, in won, as a test sees it; `None` for an account the bank cannot
    /// hold (a malformed number, or one whose registration is always refused).
    pub fn account_balance(&self, bank_code: &str, account_number: &str) -> Option<i64> {
        let fintech_use_num = fintech_use_num(bank_code, account_number).ok()?;
        let mut state = self.state();
        account(&mut state.accounts, &fintech_use_num)
            .ok()
            .map(|a| a.balance_won)
    }

    /// Replaces the faults injected into an account number's calls (under any bank code).
    pub fn set_account_faults(&self, account_number: &str, faults: AccountFaults) -> Result<(), SimAdminError> {
        let digits = fault_key(account_number)?;
        self.state().store_account_faults(digits, faults);
        Ok(())
    }

    /// The faults injected into an account number's calls now (`ok` everywhere by default).
    pub fn account_faults(&self, account_number: &str) -> Result<AccountFaults, SimAdminError> {
        let digits = fault_key(account_number)?;
        Ok(self.state().account_faults.get(&digits).copied().unwrap_or_default())
    }

    /// Applies `change` to an account number's faults in one step and returns the result.
    pub fn change_account_faults(
        &self,
        account_number: &str,
        change: AccountFaultsChange,
    ) -> Result<AccountFaults, SimAdminError> {
        let digits = fault_key(account_number)?;
        let mut state = self.state();
        let faults = state
            .account_faults
            .get(&digits)
            .copied()
            .unwrap_or_default()
            .changed(change)?;
        state.store_account_faults(digits, faults);
        Ok(faults)
    }

    /// An account number's faults and the balances of the accounts held under it.
    pub fn account_view(&self, account_number: &str) -> Result<SimAccountView, SimAdminError> {
        let digits = fault_key(account_number)?;
        let state = self.state();
        let balances = state
            .accounts
            .iter()
            .filter(|(fin, _)| account_digits(fin) == Some(digits.as_str()))
            .map(|(fin, account)| (fin[..BANK_CODE_DIGITS].to_owned(), account.balance_won))
            .collect();
        Ok(SimAccountView {
            account_number: account_number.to_owned(),
            faults: state.account_faults.get(&digits).copied().unwrap_or_default(),
            balances,
        })
    }

    /// An axum Router exposing the open-banking HTTP API and the fault knobs.
    pub fn router(self: Arc<Self>) -> Router {
        Router::new()
            .route(wire::REGISTER_PATH, post(http_register))
            .route(wire::BALANCE_PATH, get(http_balance))
            .route(wire::PLATFORM_BALANCE_PATH, get(http_platform_balance))
            .route(wire::WITHDRAW_PATH, post(http_pull))
            .route(wire::DEPOSIT_PATH, post(http_push))
            .route(wire::TRANSFER_RESULT_PATH, post(http_transfer_result))
            .route(wire::TRANSFER_CANCEL_PATH, post(http_transfer_cancel))
            .route(ADMIN_FAULTS_PATH, get(http_faults).put(http_set_faults))
            .route(ADMIN_STATS_PATH, get(http_stats))
            .route(ADMIN_ACCOUNT_PATH, get(http_account).put(http_change_account_faults))
            .with_state(self)
    }

    /// Binds `addr` (e.g. "127.0.0.1:0"), prints nothing, returns the bound address and the
    /// server task.
    pub async fn serve(self: Arc<Self>, addr: &str) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        let router = self.router();
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "bank simulator stopped serving");
            }
        });
        Ok((bound, server))
    }

    /// Reads wait before being answered.
    async fn read<T>(&self, answer: impl FnOnce(&mut SimState) -> Result<T, BankError>) -> Result<T, BankError> {
        let latency = self.state().latency();
        pause(latency).await;
        answer(&mut self.state())
    }

    /// Transfers are applied first and answered late: the bank committed before it was slow.
    async fn transfer(&self, kind: TransferKind, req: &TransferRequest) -> Result<TransferReceipt, BankError> {
        let (outcome, latency) = {
            let mut state = self.state();
            (state.transfer(kind, req), state.latency())
        };
        pause(latency).await;
        outcome
    }
}

async fn pause(latency: Duration) {
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
}

#[async_trait]
impl Bank for BankSimulator {
    async fn register_account(&self, req: &RegisterAccount) -> Result<FinAccount, BankError> {
        self.read(|state| state.register(req)).await
    }

    async fn balance(&self, fintech_use_num: &str) -> Result<i64, BankError> {
        self.read(|state| state.balance(fintech_use_num)).await
    }

    async fn platform_balance(&self) -> Result<i64, BankError> {
        self.read(SimState::platform_balance).await
    }

    async fn pull(&self, req: &TransferRequest) -> Result<TransferReceipt, BankError> {
        self.transfer(TransferKind::Pull, req).await
    }

    async fn push(&self, req: &TransferRequest) -> Result<TransferReceipt, BankError> {
        self.transfer(TransferKind::Push, req).await
    }

    async fn transfer_status(&self, tran_id: &str) -> Result<TransferStatus, BankError> {
        self.read(|state| state.transfer_status(tran_id)).await
    }

    async fn cancel_transfer(&self, tran_id: &str) -> Result<TransferStatus, BankError> {
        self.read(|state| state.cancel(tran_id)).await
    }
}

// ---- HTTP ----

type SimHandle = State<Arc<BankSimulator>>;

fn error_response(status: StatusCode, rsp_code: &str, rsp_message: String) -> Response {
    (
        status,
        Json(wire::ErrorBody {
            rsp_code: rsp_code.to_owned(),
            rsp_message,
        }),
    )
        .into_response()
}

fn bad_request(reason: String) -> Response {
    error_response(StatusCode::BAD_REQUEST, wire::RSP_CODE_BAD_REQUEST, reason)
}

/// The HTTP status and response code the open-banking API uses for each kind of failure.
fn respond<T: Serialize>(answer: Result<T, BankError>) -> Response {
    match answer {
        Ok(body) => Json(body).into_response(),
        Err(BankError::Declined(reason)) => {
            error_response(StatusCode::UNPROCESSABLE_ENTITY, wire::RSP_CODE_DECLINED, reason)
        }
        Err(BankError::Unavailable(reason)) => {
            error_response(StatusCode::SERVICE_UNAVAILABLE, wire::RSP_CODE_UNAVAILABLE, reason)
        }
        Err(BankError::Timeout) => {
            error_response(StatusCode::GATEWAY_TIMEOUT, wire::RSP_CODE_TIMEOUT, "timed out".into())
        }
        Err(BankError::Protocol(reason)) => {
            error_response(StatusCode::INTERNAL_SERVER_ERROR, wire::RSP_CODE_INTERNAL, reason)
        }
    }
}

// Malformed bodies answer 400 rather than axum's 422: a 422 means "declined" on this API.

async fn http_register(
    State(sim): SimHandle,
    body: Result<Json<wire::RegisterRequestBody>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_request(rejection.body_text()),
    };
    let req = RegisterAccount {
        bank_code: body.bank_code_std,
        account_number: body.account_num,
        holder_name: body.account_holder_name,
    };
    respond(
        sim.register_account(&req)
            .await
            .map(|account| wire::RegisterResponseBody {
                rsp_code: wire::RSP_CODE_OK.into(),
                fintech_use_num: account.fintech_use_num,
            }),
    )
}

async fn http_balance(State(sim): SimHandle, query: Result<Query<wire::BalanceQuery>, QueryRejection>) -> Response {
    let Query(query) = match query {
        Ok(query) => query,
        Err(rejection) => return bad_request(rejection.body_text()),
    };
    respond(
        sim.balance(&query.fintech_use_num)
            .await
            .map(|balance_amt| wire::BalanceResponseBody {
                rsp_code: wire::RSP_CODE_OK.into(),
                balance_amt,
            }),
    )
}

async fn http_platform_balance(State(sim): SimHandle) -> Response {
    respond(
        Bank::platform_balance(&*sim)
            .await
            .map(|balance_amt| wire::BalanceResponseBody {
                rsp_code: wire::RSP_CODE_OK.into(),
                balance_amt,
            }),
    )
}

async fn http_pull(State(sim): SimHandle, body: Result<Json<wire::TransferRequestBody>, JsonRejection>) -> Response {
    http_transfer(&sim, TransferKind::Pull, body).await
}

async fn http_push(State(sim): SimHandle, body: Result<Json<wire::TransferRequestBody>, JsonRejection>) -> Response {
    http_transfer(&sim, TransferKind::Push, body).await
}

async fn http_transfer(
    sim: &BankSimulator,
    kind: TransferKind,
    body: Result<Json<wire::TransferRequestBody>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_request(rejection.body_text()),
    };
    let req = TransferRequest {
        tran_id: body.bank_tran_id,
        fintech_use_num: body.fintech_use_num,
        amount: body.tran_amt,
        print_content: body.print_content,
    };
    respond(
        sim.transfer(kind, &req)
            .await
            .map(|receipt| wire::TransferResponseBody {
                rsp_code: wire::RSP_CODE_OK.into(),
                bank_tran_id: req.tran_id.clone(),
                bank_rsp_tran_id: receipt.bank_tran_id,
                tran_amt: receipt.amount,
            }),
    )
}

async fn http_transfer_result(
    State(sim): SimHandle,
    body: Result<Json<wire::TransferResultRequestBody>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_request(rejection.body_text()),
    };
    respond(
        sim.transfer_status(&body.bank_tran_id)
            .await
            .map(|status| wire::TransferResultResponseBody {
                rsp_code: wire::RSP_CODE_OK.into(),
                status,
            }),
    )
}

async fn http_transfer_cancel(
    State(sim): SimHandle,
    body: Result<Json<wire::TransferResultRequestBody>, JsonRejection>,
) -> Response {
    let Json(body) = match body {
        Ok(body) => body,
        Err(rejection) => return bad_request(rejection.body_text()),
    };
    let status = sim.cancel_transfer(&body.bank_tran_id).await;
    respond(status.map(|status| wire::TransferResultResponseBody {
        rsp_code: wire::RSP_CODE_OK.into(),
        status,
    }))
}

async fn http_faults(State(sim): SimHandle) -> Json<SimFaults> {
    Json(sim.faults())
}

/// Echoes the faults now in force (after clamping), not the ones asked for.
async fn http_set_faults(State(sim): SimHandle, faults: Result<Json<SimFaults>, JsonRejection>) -> Response {
    match faults {
        Ok(Json(faults)) => {
            sim.set_faults(faults);
            Json(sim.faults()).into_response()
        }
        Err(rejection) => bad_request(rejection.body_text()),
    }
}

async fn http_stats(State(sim): SimHandle) -> Json<SimStats> {
    Json(sim.stats())
}

/// A refused admin request is the caller's mistake: 400, like a malformed body.
fn admin_answer<T: Serialize>(answer: Result<T, SimAdminError>) -> Response {
    match answer {
        Ok(body) => Json(body).into_response(),
        Err(refusal) => bad_request(refusal.to_string()),
    }
}

async fn http_account(State(sim): SimHandle, Path(account_number): Path<String>) -> Response {
    admin_answer(sim.account_view(&account_number))
}

/// Answers with the account as it stands after the change.
async fn http_change_account_faults(
    State(sim): SimHandle,
    Path(account_number): Path<String>,
    change: Result<Json<AccountFaultsChange>, JsonRejection>,
) -> Response {
    let Json(change) = match change {
        Ok(change) => change,
        Err(rejection) => return bad_request(rejection.body_text()),
    };
    let changed = sim.change_account_faults(&account_number, change);
    admin_answer(changed.and_then(|_| sim.account_view(&account_number)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Enough draws that a wrong comparison would show up at least once.
    const DRAWS: usize = 10_000;

    #[test]
    fn prng_draws_stay_in_the_unit_interval_and_vary() {
        let mut rng = Xorshift64Star::seeded(0);
        let draws: Vec<f64> = (0..DRAWS).map(|_| rng.next_unit()).collect();
        assert!(draws.iter().all(|d| (0.0..1.0).contains(d)));
        let below_half = draws.iter().filter(|d| **d < 0.5).count();
        assert!(
            (DRAWS * 4 / 10..DRAWS * 6 / 10).contains(&below_half),
            "{below_half} of {DRAWS} below 0.5"
        );
    }

    #[test]
    fn error_rate_zero_never_fails_and_one_always_fails() {
        let mut state = SimState::new();
        state.faults = SimFaults {
            latency_ms: 0,
            error_rate: 0.0,
            ..SimFaults::default()
        };
        assert!((0..DRAWS).all(|_| state.injected_outage().is_ok()));
        state.faults = SimFaults {
            latency_ms: 0,
            error_rate: 1.0,
            ..SimFaults::default()
        };
        assert!((0..DRAWS).all(|_| state.injected_outage().is_err()));
    }

    #[test]
    fn out_of_range_error_rates_are_clamped() {
        let sim = BankSimulator::new();
        sim.set_faults(SimFaults {
            latency_ms: 0,
            error_rate: 7.0,
            ..SimFaults::default()
        });
        assert_eq!(sim.faults().error_rate, 1.0);
        sim.set_faults(SimFaults {
            latency_ms: 0,
            error_rate: f64::NAN,
            ..SimFaults::default()
        });
        assert_eq!(sim.faults().error_rate, 0.0);
    }

    const UNAVAILABLE_TWICE: AccountFaultsChange = AccountFaultsChange {
        pull: Some(AccountFault::Unavailable),
        push: None,
        inquiry: None,
        times: Some(2),
    };

    #[test]
    fn a_fault_change_sets_the_named_operations_and_keeps_the_others() {
        let before = AccountFaults {
            push: OperationFault::new(AccountFault::Decline, None),
            ..AccountFaults::default()
        };
        let after = before.changed(UNAVAILABLE_TWICE).unwrap();
        assert_eq!(after.pull, OperationFault::new(AccountFault::Unavailable, Some(2)));
        assert_eq!((after.push, after.inquiry), (before.push, OperationFault::default()));
        let cleared = AccountFaultsChange {
            pull: Some(AccountFault::Ok),
            times: Some(3),
            ..AccountFaultsChange::default()
        };
        assert_eq!(
            after.changed(cleared).unwrap().pull,
            OperationFault::default(),
            "ok has no count"
        );
    }

    #[test]
    fn a_fault_change_needs_a_positive_times_and_something_to_count() {
        let zero = AccountFaultsChange {
            times: Some(0),
            ..UNAVAILABLE_TWICE
        };
        assert_eq!(AccountFaults::default().changed(zero), Err(SimAdminError::TimesZero));
        let nothing_named = AccountFaultsChange {
            times: Some(1),
            ..AccountFaultsChange::default()
        };
        assert_eq!(
            AccountFaults::default().changed(nothing_named),
            Err(SimAdminError::TimesWithoutOperation)
        );
    }

    #[test]
    fn a_counted_fault_wears_off_and_an_uncounted_one_stays() {
        let mut counted = OperationFault::new(AccountFault::Decline, Some(2));
        let taken: Vec<_> = (0..3).map(|_| counted.take()).collect();
        assert_eq!(taken, [AccountFault::Decline, AccountFault::Decline, AccountFault::Ok]);
        let mut stays = OperationFault::new(AccountFault::Decline, None);
        assert!((0..DRAWS).all(|_| stays.take() == AccountFault::Decline));
    }

    #[test]
    fn account_faults_refuse_a_malformed_account_number() {
        let sim = BankSimulator::new();
        for number in ["", "12-34", "1234567890123456789012"] {
            assert_eq!(
                sim.account_faults(number),
                Err(SimAdminError::InvalidAccountNumber),
                "{number:?}"
            );
        }
        assert!(sim.account_view("1234567890").is_ok_and(|v| v.balances.is_empty()));
    }

    #[test]
    fn fintech_use_num_is_derived_from_bank_code_and_account_number() {
        assert_eq!(
            fintech_use_num("004", "1234567890").ok().as_deref(),
            Some("004000000000001234567890")
        );
        assert!(fintech_use_num("04", "1234567890").is_err());
        assert!(fintech_use_num("004", "12-34").is_err());
        assert!(account_digits("004000000000001234567890").is_some());
        assert!(account_digits("nonsense").is_none());
    }
}
