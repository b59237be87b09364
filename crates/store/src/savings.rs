//! Savings products: the interest run's batches (set-based), principal, and the 08:00
//! auto-debit records.

use crate::accounts::{Account, select_accounts_sql};
use crate::session::Session;
use crate::types::{DbDate, DbTime};
use crate::{Result, StoreError};
use jiff::Timestamp;
use minipay_core::ledger::{AccountBalance, LockedAccounts, SavingsProduct, SystemAccount};
use minipay_core::{AccountId, Amount, BusinessDate, ChargeId, JournalId, UserId};
use uuid::Uuid;

/// A savings account's interest state, read under its lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterestState {
    pub account_id: AccountId,
    pub product: SavingsProduct,
    pub principal: i64,
    pub carry: i64,
    /// The last business date interest was paid for.
    pub paid_through: Option<BusinessDate>,
}

#[derive(sqlx::FromRow)]
struct InterestRow {
    id: Uuid,
    owner_user_id: Option<Uuid>,
    kind: String,
    product: Option<String>,
    posted: i64,
    pending_out: i64,
    last_entry_at: Option<DbTime>,
    principal: i64,
    interest_carry: i64,
    interest_paid_through: Option<DbDate>,
}

/// What an interest run leaves on an account: the carried fraction of a won.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InterestPaid {
    pub account_id: AccountId,
    pub carry: i64,
}

/// The result of one auto-debit, recorded on its (account, date) row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoDebitStatus {
    Completed,
    Failed,
}

impl Session {
    /// Locks the next `limit` savings accounts (ascending id, after `after`) that have not been
    /// paid interest through `date`, plus the interest expense account (last, per the global
    /// lock order), and returns their balances and interest state. One statement per batch.
    pub async fn lock_savings_for_interest(
        &mut self,
        date: BusinessDate,
        after: Option<AccountId>,
        limit: u32,
    ) -> Result<(LockedAccounts, Vec<InterestState>)> {
        self.assert_writable();
        let after = after.map_or(Uuid::nil(), |a| a.as_uuid());
        let lock = match self.kind() {
            crate::BackendKind::Postgres => " FOR NO KEY UPDATE",
            crate::BackendKind::Sqlite => "",
        };
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT id, owner_user_id, kind, product, posted, pending_out, last_entry_at, principal, interest_carry,
                    interest_paid_through
             FROM accounts
             WHERE kind = 'savings' AND id > $1 AND (interest_paid_through IS NULL OR interest_paid_through < $2)
             ORDER BY id LIMIT $3{lock}"
        ));
        let rows: Vec<InterestRow> = on_db!(self, c => sqlx::query_as(sql)
            .bind(after)
            .bind(DbDate(date.date()))
            .bind(i64::from(limit))
            .fetch_all(c)
            .await)?;
        let expense = self.lock_accounts([SystemAccount::InterestExpense.id()]).await?;
        let mut balances = Vec::with_capacity(rows.len() + 1);
        let mut states = Vec::with_capacity(rows.len());
        for r in rows {
            let product = r.product.as_deref().and_then(SavingsProduct::parse);
            let (Some(product), "savings") = (product, r.kind.as_str()) else {
                return Err(StoreError::corrupt(format!(
                    "savings account {} without a product",
                    r.id
                )));
            };
            let id = AccountId::from_uuid(r.id);
            balances.push(AccountBalance {
                id,
                owner: r.owner_user_id.map(UserId::from_uuid),
                kind: minipay_core::ledger::AccountKind::Savings,
                posted: r.posted,
                pending_out: r.pending_out,
                last_entry_at: r.last_entry_at.map(|t| t.0),
            });
            states.push(InterestState {
                account_id: id,
                product,
                principal: r.principal,
                carry: r.interest_carry,
                paid_through: r.interest_paid_through.map(|d| BusinessDate::from_date(d.0)),
            });
        }
        let expense = *expense
            .get(SystemAccount::InterestExpense.id())
            .expect("the interest expense account exists");
        balances.push(expense);
        Ok((LockedAccounts::new(balances), states))
    }

    /// Money that went into these savings accounts' principal (deposits and auto-debits) at or
    /// after `since`: `(account, when, won)`. Lets an interest run that makes up missed days
    /// know each day's principal.
    pub async fn principal_added_since(
        &mut self,
        accounts: &[AccountId],
        since: Timestamp,
    ) -> Result<Vec<(AccountId, Timestamp, i64)>> {
        let rows: Vec<(Uuid, DbTime, i64)> = match self.db() {
            crate::session::Db::Pg(c) => {
                let ids: Vec<Uuid> = accounts.iter().map(|a| a.as_uuid()).collect();
                sqlx::query_as(
                    "SELECT account_id, occurred_at, amount FROM entries
                     WHERE account_id = ANY($1) AND kind IN ('savings_deposit', 'auto_debit') AND occurred_at >= $2",
                )
                .bind(&ids)
                .bind(DbTime(since))
                .fetch_all(c)
                .await?
            }
            crate::session::Db::Sqlite(c) => {
                let mut rows = Vec::new();
                for a in accounts {
                    let mut some: Vec<(Uuid, DbTime, i64)> = sqlx::query_as(
                        "SELECT account_id, occurred_at, amount FROM entries
                         WHERE account_id = $1 AND kind IN ('savings_deposit', 'auto_debit') AND occurred_at >= $2",
                    )
                    .bind(a.as_uuid())
                    .bind(DbTime(since))
                    .fetch_all(&mut *c)
                    .await?;
                    rows.append(&mut some);
                }
                rows
            }
        };
        Ok(rows
            .into_iter()
            .map(|(a, t, won)| (AccountId::from_uuid(a), t.0, won))
            .collect())
    }

    /// Adds deposited money to a savings account's principal (interest is never added).
    pub async fn add_principal(&mut self, account: AccountId, amount: Amount) -> Result<()> {
        self.assert_writable();
        on_db!(self, c => sqlx::query("UPDATE accounts SET principal = principal + $2 WHERE id = $1 AND kind = 'savings'")
            .bind(account.as_uuid())
            .bind(amount.won())
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Fixed savings accounts opened before `opened_before` with no auto-debit recorded for
    /// `date`, in id order after `after`.
    pub async fn fixed_savings_due(
        &mut self,
        date: BusinessDate,
        opened_before: Timestamp,
        after: Option<AccountId>,
        limit: u32,
    ) -> Result<Vec<Account>> {
        let after = after.map_or(Uuid::nil(), |a| a.as_uuid());
        let sql = sqlx::AssertSqlSafe(format!(
            "{} WHERE kind = 'savings' AND product = 'fixed' AND created_at < $1 AND id > $2
               AND NOT EXISTS (SELECT 1 FROM auto_debits d WHERE d.account_id = accounts.id AND d.business_date = $3)
             ORDER BY id LIMIT $4",
            select_accounts_sql()
        ));
        let rows: Vec<crate::accounts::AccountRow> = on_db!(self, c => sqlx::query_as(sql)
            .bind(DbTime(opened_before))
            .bind(after)
            .bind(DbDate(date.date()))
            .bind(i64::from(limit))
            .fetch_all(c)
            .await)?;
        rows.into_iter().map(Account::try_from).collect()
    }

    /// Claims the auto-debit of `account` for `date`: only the first caller gets `true`.
    pub async fn claim_auto_debit(
        &mut self,
        account: AccountId,
        date: BusinessDate,
        user: UserId,
        amount: Amount,
        now: Timestamp,
    ) -> Result<bool> {
        self.assert_writable();
        let n = on_db!(self, c => sqlx::query(
            "INSERT INTO auto_debits (account_id, business_date, user_id, amount, status, created_at)
             VALUES ($1, $2, $3, $4, 'processing', $5) ON CONFLICT (account_id, business_date) DO NOTHING",
        )
        .bind(account.as_uuid())
        .bind(DbDate(date.date()))
        .bind(user.as_uuid())
        .bind(amount.won())
        .bind(DbTime(now))
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// The auto-debit (savings account, date) still open and waiting on `charge`, if any.
    pub async fn auto_debit_waiting_on(&mut self, charge: ChargeId) -> Result<Option<(AccountId, BusinessDate)>> {
        let row: Option<(Uuid, DbDate)> = on_db!(self, c => sqlx::query_as(
            "SELECT account_id, business_date FROM auto_debits WHERE charge_id = $1 AND status = 'processing'",
        )
        .bind(charge.as_uuid())
        .fetch_optional(c)
        .await)?;
        Ok(row.map(|(a, d)| (AccountId::from_uuid(a), BusinessDate::from_date(d.0))))
    }

    /// Notes the bank pull covering an auto-debit's shortfall.
    pub async fn attach_charge_to_auto_debit(
        &mut self,
        account: AccountId,
        date: BusinessDate,
        charge: ChargeId,
    ) -> Result<()> {
        self.assert_writable();
        on_db!(self, c => sqlx::query("UPDATE auto_debits SET charge_id = $3 WHERE account_id = $1 AND business_date = $2")
            .bind(account.as_uuid())
            .bind(DbDate(date.date()))
            .bind(charge.as_uuid())
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Ends an auto-debit (only one still processing).
    pub async fn finish_auto_debit(
        &mut self,
        account: AccountId,
        date: BusinessDate,
        status: AutoDebitStatus,
        journal: Option<JournalId>,
        reason: Option<&str>,
        now: Timestamp,
    ) -> Result<bool> {
        self.assert_writable();
        let status = match status {
            AutoDebitStatus::Completed => "completed",
            AutoDebitStatus::Failed => "failed",
        };
        let n = on_db!(self, c => sqlx::query(
            "UPDATE auto_debits SET status = $3, journal_id = $4, failure_reason = $5, resolved_at = $6
             WHERE account_id = $1 AND business_date = $2 AND status = 'processing'",
        )
        .bind(account.as_uuid())
        .bind(DbDate(date.date()))
        .bind(status)
        .bind(journal.map(|j| j.as_uuid()))
        .bind(reason)
        .bind(DbTime(now))
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }
}
