//! Timeouts and retries around any `Bank`, written so that a pull can never happen twice.
//!
//! * Every call has a deadline; a transfer that misses it is `Timeout` (outcome unknown), never
//!   resent.
//! * Reads (balance, status inquiry) and registration are retried on `Unavailable`.
//! * A transfer is retried only on `Unavailable` — the bank said it did not process it — and
//!   always under the same `tran_id`, which the bank executes at most once anyway.

use crate::{Bank, BankError, FinAccount, RegisterAccount, TransferReceipt, TransferRequest, TransferStatus};
use async_trait::async_trait;
use backon::{ExponentialBuilder, Retryable};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Deadlines and retry limits for bank calls. Every limit is named with its unit.
#[derive(Debug, Clone)]
pub struct BankPolicy {
    /// Balance inquiries are answered from the cache when the bank is slower than this.
    pub balance_timeout_ms: u64,
    pub transfer_timeout_ms: u64,
    pub inquiry_timeout_ms: u64,
    pub register_timeout_ms: u64,
    /// Attempts after the first, for calls that are safe to retry.
    pub retries_max: usize,
    pub retry_delay_ms: u64,
}

impl Default for BankPolicy {
    fn default() -> Self {
        Self {
            balance_timeout_ms: 1_000,
            transfer_timeout_ms: 5_000,
            inquiry_timeout_ms: 2_000,
            register_timeout_ms: 5_000,
            retries_max: 2,
            retry_delay_ms: 50,
        }
    }
}

pub struct ResilientBank {
    inner: Arc<dyn Bank>,
    policy: BankPolicy,
}

impl ResilientBank {
    pub fn new(inner: Arc<dyn Bank>, policy: BankPolicy) -> Self {
        Self { inner, policy }
    }

    fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(self.policy.retry_delay_ms))
            .with_max_times(self.policy.retries_max)
            .with_jitter()
    }

    async fn with_retries<T, F, Fut>(&self, timeout_ms: u64, call: F) -> Result<T, BankError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, BankError>>,
    {
        let mut call = call;
        let attempt = || deadline(timeout_ms, call());
        attempt
            .retry(self.backoff())
            .sleep(tokio::time::sleep)
            .when(|e| matches!(e, BankError::Unavailable(_)))
            .await
    }
}

async fn deadline<T>(ms: u64, call: impl Future<Output = Result<T, BankError>>) -> Result<T, BankError> {
    tokio::time::timeout(Duration::from_millis(ms), call)
        .await
        .unwrap_or(Err(BankError::Timeout))
}

/// A transfer whose answer made no sense may or may not have executed: treat it as a timeout
/// (ask the status inquiry), never as a failure.
fn unknown_if_garbled(e: BankError) -> BankError {
    match e {
        BankError::Protocol(_) => BankError::Timeout,
        e => e,
    }
}

#[async_trait]
impl Bank for ResilientBank {
    async fn register_account(&self, req: &RegisterAccount) -> Result<FinAccount, BankError> {
        self.with_retries(self.policy.register_timeout_ms, || self.inner.register_account(req))
            .await
    }

    async fn balance(&self, fintech_use_num: &str) -> Result<i64, BankError> {
        // One attempt: the caller falls back to the last known balance rather than wait.
        deadline(self.policy.balance_timeout_ms, self.inner.balance(fintech_use_num)).await
    }

    async fn platform_balance(&self) -> Result<i64, BankError> {
        // A read like `balance`: one attempt under the same deadline.
        deadline(self.policy.balance_timeout_ms, self.inner.platform_balance()).await
    }

    async fn pull(&self, req: &TransferRequest) -> Result<TransferReceipt, BankError> {
        let res = self
            .with_retries(self.policy.transfer_timeout_ms, || self.inner.pull(req))
            .await;
        res.map_err(unknown_if_garbled)
    }

    async fn push(&self, req: &TransferRequest) -> Result<TransferReceipt, BankError> {
        let res = self
            .with_retries(self.policy.transfer_timeout_ms, || self.inner.push(req))
            .await;
        res.map_err(unknown_if_garbled)
    }

    async fn transfer_status(&self, tran_id: &str) -> Result<TransferStatus, BankError> {
        self.with_retries(self.policy.inquiry_timeout_ms, || self.inner.transfer_status(tran_id))
            .await
    }

    async fn cancel_transfer(&self, tran_id: &str) -> Result<TransferStatus, BankError> {
        // Safe to repeat: voiding a voided id changes nothing.
        self.with_retries(self.policy.inquiry_timeout_ms, || self.inner.cancel_transfer(tran_id))
            .await
    }
}
