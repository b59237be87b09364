//! minipay's use-cases. Each owns its transaction boundaries, checks every money rule under
//! the row locks, and never calls the bank while a database transaction is open.

pub mod audit;
pub mod auth;
pub mod balances;
mod bank_accounts;
mod batch;
mod charges;
pub mod error;
pub mod group_commit;
pub mod history;
pub mod idempotency;
pub mod jobs;
mod lock_retry;
pub mod notify;
pub mod operations;
pub mod pagination;
mod pending;
mod savings;
pub mod schema;
mod settlements;
mod transfers;
mod users;
pub mod views;
mod wallet_accounts;

pub use bank_accounts::{RegisterBankAccount, bank_failure};
pub use batch::{BatchConfig, BatchStats};
pub use charges::{ChargeOutcome, RecoveryConfig};
pub use error::{ErrorCode, ServiceError, ServiceResult};
pub use idempotency::{IdempotentRequest, Reply};
pub use pending::PendingAction;
pub use savings::{AutoDebitReport, InterestReport};
pub use settlements::NewSettlementRequest;
pub use transfers::{MEMO_LEN_MAX, TransferListFilter, TransferRecipient, TransferRequest};
pub use users::{NewUserRequest, UpdateUserRequest};
pub use wallet_accounts::OpenSavingsRequest;

use auth::{LoginThrottle, Secret, Tokens};
use minipay_bank::Bank;
use minipay_core::Clock;
use minipay_store::Store;
use std::sync::Arc;

/// What the wallet needs to be built.
pub struct WalletConfig {
    /// Signs access tokens.
    pub jwt_secret: Secret,
    pub recovery: RecoveryConfig,
    pub history: history::HistoryConfig,
    /// How concurrent transfers are grouped into one transaction.
    pub batching: BatchConfig,
}

/// The wallet's use-cases over one store, one bank and one clock.
pub struct Wallet {
    store: Store,
    bank: Arc<dyn Bank>,
    clock: Arc<dyn Clock>,
    tokens: Tokens,
    throttle: LoginThrottle,
    recovery: RecoveryConfig,
    history: history::HistoryConfig,
    batching: BatchConfig,
    batcher: batch::TransferBatcher,
}

impl Wallet {
    pub fn new(store: Store, bank: Arc<dyn Bank>, clock: Arc<dyn Clock>, config: WalletConfig) -> Self {
        Self {
            store,
            bank,
            clock,
            tokens: Tokens::new(&config.jwt_secret),
            throttle: LoginThrottle::default(),
            recovery: config.recovery,
            history: config.history,
            batching: config.batching,
            batcher: batch::TransferBatcher::new(&config.batching),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }
}
