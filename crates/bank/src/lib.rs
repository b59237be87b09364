//! Bank link: the `Bank` trait every part of minipay talks to, the policy wrapper that adds
//! timeouts and safe retries, an open-banking HTTP client and the bank simulator.

pub mod client;
pub mod resilient;
pub mod sim;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

pub use client::HttpBank;
pub use resilient::{BankPolicy, ResilientBank};
pub use sim::{
    AccountFault, AccountFaults, AccountFaultsChange, BankSimulator, OperationFault, SimAccountView, SimAdminError,
    SimFaults, SimStats,
};

/// A request to register an external account with the bank (open-banking "fin account").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterAccount {
    pub bank_code: String,
    pub account_number: String,
    pub holder_name: String,
}

/// The bank's handle for a registered account; the platform keeps this, not the number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinAccount {
    pub fintech_use_num: String,
}

/// A drawing (pull) or deposit (push) transfer. `tran_id` is the platform's id for the
/// transfer (the charge id, say): the bank executes at most one transfer per `tran_id`, and
/// answers a repeat with the first transfer's outcome. That is what makes a retry safe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferRequest {
    pub tran_id: String,
    pub fintech_use_num: String,
    pub amount: i64,
    /// Shown on the user's bank statement.
    pub print_content: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferReceipt {
    /// The bank's own id for the executed transfer.
    pub bank_tran_id: String,
    pub amount: i64,
}

/// What the bank knows about a transfer, answered by the status inquiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatus {
    /// The money moved.
    Completed,
    /// The bank refused or failed it; no money moved.
    Failed,
    /// The bank has no record of it: the request never arrived, so no money moved.
    NotFound,
    /// Still being processed; ask again later.
    Processing,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BankError {
    /// The bank answered no (not enough money, account closed, registration refused).
    /// Nothing moved.
    #[error("bank declined: {0}")]
    Declined(String),
    /// The bank did not process the request (refused connection, 503). Nothing moved.
    #[error("bank unavailable: {0}")]
    Unavailable(String),
    /// No answer in time: the request may or may not have been executed. Never resend a
    /// pull to find out — ask with `transfer_status`.
    #[error("bank did not answer in time; the outcome is unknown")]
    Timeout,
    /// An answer that makes no sense (treated like a timeout for transfers).
    #[error("unexpected bank response: {0}")]
    Protocol(String),
}

impl BankError {
    /// Whether the request certainly did not take effect at the bank.
    pub fn nothing_happened(&self) -> bool {
        matches!(self, Self::Declined(_) | Self::Unavailable(_))
    }
}

/// An open-banking bank, as the platform needs it.
#[async_trait]
pub trait Bank: Send + Sync + 'static {
    async fn register_account(&self, req: &RegisterAccount) -> Result<FinAccount, BankError>;
    /// The account's balance at the bank, in won.
    async fn balance(&self, fintech_use_num: &str) -> Result<i64, BankError>;
    /// The platform's own account at the bank, in won: what the pulls brought in less what the
    /// pushes paid out. The audit compares it with the bank movements the ledger recorded.
    async fn platform_balance(&self) -> Result<i64, BankError>;
    /// Drawing transfer: moves money out of the user's bank account into the platform's.
    async fn pull(&self, req: &TransferRequest) -> Result<TransferReceipt, BankError>;
    /// Deposit transfer: moves money from the platform's bank account into the user's (or a
    /// business's); declined when the platform's account is short.
    async fn push(&self, req: &TransferRequest) -> Result<TransferReceipt, BankError>;
    /// The outcome of the transfer the platform sent under `tran_id`.
    async fn transfer_status(&self, tran_id: &str) -> Result<TransferStatus, BankError>;
    /// Voids `tran_id` unless the bank already executed it; afterwards the bank refuses any
    /// transfer under that id (a request still in flight will be declined when it arrives).
    /// Answers `Failed` (void: no money moved, and none ever will) or `Completed` (too late:
    /// it executed). This is what makes "the bank has no record of it" a safe conclusion.
    async fn cancel_transfer(&self, tran_id: &str) -> Result<TransferStatus, BankError>;
}
