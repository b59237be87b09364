//! The user's accounts: listing them, opening savings accounts, and savings deposits.

use crate::Wallet;
use crate::error::{ServiceError, ServiceResult};
use crate::idempotency::{IdempotentRequest, Reply, claim, conclude};
use crate::views::{AccountView, ChargeLimitView, DepositView, Items};
use anyhow::Context;
use minipay_core::ledger::{AccountKind, EntryKind, LedgerError, Party, SavingsProduct, savings_deposit_journal};
use minipay_core::{AccountId, Amount, BusinessDate, JournalId, UserId};
use minipay_store::{Account, Session};
use serde::Serialize;

/// Opening a savings account, validated at the edge.
#[derive(Debug, Clone, Serialize)]
pub struct OpenSavingsRequest {
    pub product: SavingsProduct,
    pub daily_amount: Option<Amount>,
}

impl OpenSavingsRequest {
    pub fn parse(kind: &str, product: &str, daily_amount: Option<i64>) -> ServiceResult<Self> {
        if kind != "savings" {
            return Err(ServiceError::validation(
                "only savings accounts can be opened (kind must be \"savings\")",
            ));
        }
        let product = SavingsProduct::parse(product)
            .ok_or_else(|| ServiceError::validation("product must be \"free\" or \"fixed\""))?;
        let daily_amount = daily_amount
            .map(Amount::parse)
            .transpose()
            .map_err(ServiceError::validation)?;
        match (product, daily_amount) {
            (SavingsProduct::Fixed, None) => {
                Err(ServiceError::validation("a fixed savings account needs daily_amount"))
            }
            (SavingsProduct::Free, Some(_)) => Err(ServiceError::validation(
                "daily_amount applies only to fixed savings accounts",
            )),
            _ => Ok(Self { product, daily_amount }),
        }
    }
}

/// An account the caller owns, or `not_found` (someone else's account looks exactly like a
/// missing one).
pub(crate) fn owned(account: Option<Account>, me: UserId) -> ServiceResult<Account> {
    account
        .filter(|a| a.owner == Some(me))
        .ok_or(ServiceError::NotFound("account"))
}

impl Wallet {
    pub async fn accounts(&self, me: UserId) -> ServiceResult<Items<AccountView>> {
        let accounts = self.store.read().await?.accounts_of(me).await?;
        Ok(Items {
            items: accounts.iter().map(AccountView::from).collect(),
        })
    }

    pub async fn account(&self, me: UserId, id: AccountId) -> ServiceResult<AccountView> {
        let account = owned(self.store.read().await?.account(id).await?, me)?;
        Ok(AccountView::from(&account))
    }

    #[tracing::instrument(name = "minipay.accounts.open_savings", skip_all, err(level = "debug"))]
    pub async fn open_savings(
        &self,
        me: UserId,
        req: OpenSavingsRequest,
        idem: Option<IdempotentRequest>,
    ) -> ServiceResult<Reply<AccountView>> {
        let mut tx = self.store.begin().await?;
        let now = self.clock.now();
        if let Some(stored) = claim(&mut tx, me, idem.as_ref(), now).await? {
            return Ok(Reply::Replayed(stored));
        }
        let id = AccountId::new();
        tx.insert_savings_account(id, me, req.product, req.daily_amount.map(Amount::won), now)
            .await?;
        let account = tx.account(id).await?.context("account just inserted")?;
        conclude(tx, me, idem.as_ref(), 201, Ok(AccountView::from(&account))).await
    }

    pub async fn charge_limit(&self, me: UserId) -> ServiceResult<ChargeLimitView> {
        let today = BusinessDate::containing(self.clock.now());
        Ok(self.store.read().await?.charge_limit(me, today).await?.into())
    }

    /// Moves money from the caller's main account into one of their `free` savings accounts.
    /// Manual deposits never auto-charge: short money is `insufficient_funds`.
    #[tracing::instrument(name = "minipay.accounts.deposit", skip_all, err(level = "debug"))]
    pub async fn deposit_to_savings(
        &self,
        me: UserId,
        savings: AccountId,
        amount: Amount,
        idem: Option<IdempotentRequest>,
    ) -> ServiceResult<Reply<DepositView>> {
        let mut tx = self.store.begin().await?;
        if let Some(stored) = claim(&mut tx, me, idem.as_ref(), self.clock.now()).await? {
            return Ok(Reply::Replayed(stored));
        }
        let result = self.deposit_in(&mut tx, me, savings, amount).await;
        conclude(tx, me, idem.as_ref(), 201, result).await
    }

    async fn deposit_in(
        &self,
        tx: &mut Session,
        me: UserId,
        savings: AccountId,
        amount: Amount,
    ) -> ServiceResult<DepositView> {
        let target = owned(tx.account(savings).await?, me)?;
        match (target.kind, target.product) {
            (AccountKind::Main, _) => {
                return Err(ServiceError::validation(
                    "deposits go into savings accounts, not the main account",
                ));
            }
            (AccountKind::Savings, Some(SavingsProduct::Fixed)) => {
                return Err(ServiceError::InvalidState(
                    "a fixed savings account takes only its automatic daily debit".into(),
                ));
            }
            _ => {}
        }
        let user = tx.user(me).await?.context("caller exists")?;
        let mut locked = tx.lock_accounts([user.main_account_id, savings]).await?;
        let now = self.clock.now();
        let main = Party {
            user_id: me,
            account_id: user.main_account_id,
            name: user.name.clone(),
        };
        let journal = savings_deposit_journal(EntryKind::SavingsDeposit, &main, savings, amount);
        let posted = locked
            .post(&journal, JournalId::new(), now)
            .map_err(|LedgerError::InsufficientFunds(_)| {
                ServiceError::InsufficientFunds("the main account does not have enough available money".into())
            })?;
        tx.write_postings(&locked, std::slice::from_ref(&posted)).await?;
        tx.add_principal(savings, amount).await?;
        let account = tx.account(savings).await?.context("savings account exists")?;
        Ok(DepositView {
            id: posted.id,
            amount: amount.won(),
            account: AccountView::from(&account),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_savings_rules() {
        assert!(OpenSavingsRequest::parse("savings", "free", None).is_ok());
        assert!(OpenSavingsRequest::parse("savings", "fixed", Some(10_000)).is_ok());
        assert!(OpenSavingsRequest::parse("savings", "fixed", None).is_err());
        assert!(OpenSavingsRequest::parse("savings", "free", Some(1)).is_err());
        assert!(OpenSavingsRequest::parse("savings", "fixed", Some(0)).is_err());
        assert!(OpenSavingsRequest::parse("main", "free", None).is_err());
        assert!(OpenSavingsRequest::parse("savings", "gold", None).is_err());
    }
}
