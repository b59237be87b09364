//! Registered bank accounts: registration with the bank, listing, and the balance inquiry
//! that falls back to the last known value.

use crate::Wallet;
use crate::error::{ServiceError, ServiceResult};
use crate::pagination::{decode_cursor, page_of, rows_for};
use crate::views::{BankAccountView, BankBalanceView, Page};
use anyhow::Context;
use minipay_bank::{BankError, RegisterAccount};
use minipay_core::bank::{AccountNumber, BankCode};
use minipay_core::request::{PageLimit, bounded_text};
use minipay_core::user::NAME_LEN_MAX;
use minipay_core::{BankAccountId, UserId};
use minipay_store::{NewBankAccount, StoreError};

#[derive(Debug, Clone)]
pub struct RegisterBankAccount {
    pub bank_code: BankCode,
    pub account_number: AccountNumber,
    pub holder_name: String,
}

impl RegisterBankAccount {
    pub fn parse(bank_code: &str, account_number: &str, holder_name: &str) -> ServiceResult<Self> {
        Ok(Self {
            bank_code: BankCode::parse(bank_code).map_err(ServiceError::validation)?,
            account_number: AccountNumber::parse(account_number).map_err(ServiceError::validation)?,
            holder_name: bounded_text("holder_name", holder_name, NAME_LEN_MAX).map_err(ServiceError::validation)?,
        })
    }
}

/// Maps a bank failure on a call that moves no money (a registration, an inquiry).
pub fn bank_failure(e: BankError) -> ServiceError {
    match e {
        BankError::Declined(reason) => ServiceError::BankDeclined(reason),
        other => ServiceError::BankUnavailable(format!("the bank is unavailable: {other}")),
    }
}

impl Wallet {
    /// Registers the account with the bank first (no transaction is open meanwhile), then
    /// records the bank's fin-account id. The account number itself is not stored.
    #[tracing::instrument(name = "minipay.bank_accounts.register", skip_all, err(level = "debug"))]
    pub async fn register_bank_account(&self, me: UserId, req: RegisterBankAccount) -> ServiceResult<BankAccountView> {
        let fin = self
            .bank
            .register_account(&RegisterAccount {
                bank_code: req.bank_code.as_str().to_owned(),
                account_number: req.account_number.as_str().to_owned(),
                holder_name: req.holder_name.clone(),
            })
            .await
            .map_err(bank_failure)?;
        let id = BankAccountId::new();
        let mut tx = self.store.begin().await?;
        let insert = tx
            .insert_bank_account(&NewBankAccount {
                id,
                user_id: me,
                bank_code: req.bank_code.as_str(),
                account_number_masked: &req.account_number.masked(),
                holder_name: &req.holder_name,
                fintech_use_num: &fin.fintech_use_num,
                at: self.clock.now(),
            })
            .await;
        match insert {
            Err(StoreError::Unique(_)) => {
                return Err(ServiceError::Conflict("this bank account is already registered".into()));
            }
            other => other?,
        }
        let account = tx.bank_account(id).await?.context("bank account just inserted")?;
        tx.commit().await?;
        Ok(BankAccountView::from(&account))
    }

    /// The caller's registered bank accounts, newest first, a cursor page at a time.
    pub async fn bank_accounts(
        &self,
        me: UserId,
        limit: PageLimit,
        cursor: Option<&str>,
    ) -> ServiceResult<Page<BankAccountView>> {
        let after = cursor.map(decode_cursor).transpose()?;
        let rows = self
            .store
            .read()
            .await?
            .bank_accounts_of(me, after, rows_for(limit))
            .await?;
        Ok(page_of(
            rows,
            limit,
            |b| (b.created_at, b.id.as_uuid()),
            |b| BankAccountView::from(&b),
        ))
    }

    /// Asks the bank; when it is slow or down, answers the last known balance marked stale.
    #[tracing::instrument(name = "minipay.bank_accounts.balance", skip_all, err(level = "debug"))]
    pub async fn bank_balance(&self, me: UserId, id: BankAccountId) -> ServiceResult<BankBalanceView> {
        let account = self
            .store
            .read()
            .await?
            .bank_account(id)
            .await?
            .filter(|b| b.user_id == me)
            .ok_or(ServiceError::NotFound("bank account"))?;
        match self.bank.balance(&account.fintech_use_num).await {
            Ok(balance) => {
                let now = self.clock.now();
                let mut tx = self.store.begin().await?;
                tx.record_bank_balance(id, balance, now).await?;
                tx.commit().await?;
                Ok(BankBalanceView {
                    balance,
                    as_of: now,
                    stale: false,
                })
            }
            Err(BankError::Declined(reason)) => Err(ServiceError::BankDeclined(reason)),
            Err(e) => match (account.last_balance, account.last_balance_at) {
                (Some(balance), Some(as_of)) => {
                    tracing::warn!(error = %e, "bank balance inquiry failed; serving the last known balance");
                    Ok(BankBalanceView {
                        balance,
                        as_of,
                        stale: true,
                    })
                }
                _ => Err(bank_failure(e)),
            },
        }
    }
}
