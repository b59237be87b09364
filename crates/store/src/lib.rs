//! minipay's persistence: one interface (`Store`, `Session`) over PostgreSQL and SQLite.
//!
//! The set of backends is closed, so the interface is a pair of types whose methods dispatch
//! on the backend rather than a trait object: SQL that is the same on both engines is written
//! once (`$N` placeholders work on both), and SQL that differs — row locks, bulk writes via
//! `UNNEST` — is visibly written per engine. Both backends pass the same black-box suite.

/// Runs the same expression on whichever engine the session is on. The expression is
/// type-checked once per engine, so shared SQL must be valid on both.
macro_rules! on_db {
    ($session:expr, $c:ident => $body:expr) => {
        match $session.db() {
            $crate::session::Db::Pg($c) => $body,
            $crate::session::Db::Sqlite($c) => $body,
        }
    };
}

mod accounts;
mod audit;
mod bank_accounts;
mod business;
mod charges;
mod error;
mod events;
mod gateway;
mod history;
mod idempotency;
mod jobs;
mod limits;
mod notifications;
mod payments;
mod readside;
mod savings;
pub(crate) mod session;
mod settlements;
#[cfg(feature = "testing")]
pub mod testing;
mod transfers;
mod types;
mod users;

pub use accounts::Account;
pub use audit::{InvariantReport, LedgerTotals, PlatformBankPosition};
pub use bank_accounts::{BankAccount, NewBankAccount};
pub use business::{
    Business, NewBusinessRecord, NewBusinessRemittance, NewPayout, NewRemittanceAttempt, NewRemittanceRecord,
    Remittance, RemittanceAttempt, RemittanceFailure, RemittanceFilter, StatusChange,
};
pub use charges::{Charge, NewCharge};
pub use error::StoreError;
pub use events::{
    Alert, AlertFilter, DeadLetter, DeadLetterFilter, Leadership, NewAlert, NewDeadLetter, NewEvent, NewWebhook,
    OutboxEvent, Webhook, WebhookAttempt, WebhookDelivery, WebhookNext,
};
pub use gateway::{
    AnsweredApproval, Approval, ApprovalOutcome, ApprovalStep, NetworkCancel, NewApproval, QueuedCancel,
    RoutedApproval, UpstreamCounts, UpstreamMinute,
};
pub use gateway::{Merchant, NewMerchantRecord, NewTerminalRecord, RoutingVersion, Terminal};
pub use history::{HistoryEntry, HistoryFilter, MonthTotals, RetiredMonth};
pub use idempotency::{Claim, StoredResponse};
pub use jobs::{AttemptedJob, JobRun, QueuedJob, QueuedOutcome, SlotState};
pub use notifications::Notification;
pub use payments::{
    AcceptedPayment, BankCall, FinishedBankCall, NewBankCall, NewPayment, NewRefund, Payment, PaymentFailure,
    PaymentFilter, PaymentStatusChange, Refund, RefundAmountTake,
};
pub use readside::{ApprovalView, ApprovalViewFilter, HistoryStep, ReconciliationRecord, SettledRow};
pub use savings::{AutoDebitStatus, InterestPaid, InterestState};
pub use session::{BackendKind, IDLE_BEFORE_PING, Session, Store, StoreOptions};
pub use settlements::{Settlement, SettlementRole, Share, ShareStatus};
pub use transfers::{Direction, NewTransfer, Transfer, TransferCursor};
pub use users::{NewUser, User};

pub type Result<T, E = StoreError> = std::result::Result<T, E>;
