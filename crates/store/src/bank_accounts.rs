//! Registered external bank accounts and their last known balance.

use crate::Result;
use crate::session::Session;
use crate::types::DbTime;
use jiff::Timestamp;
use minipay_core::{BankAccountId, UserId};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct BankAccount {
    pub id: BankAccountId,
    pub user_id: UserId,
    pub bank_code: String,
    pub account_number_masked: String,
    pub holder_name: String,
    pub fintech_use_num: String,
    pub status: String,
    pub last_balance: Option<i64>,
    pub last_balance_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl BankAccount {
    /// How the account appears as a counterparty in history, e.g. `004 ******7890`.
    pub fn label(&self) -> String {
        format!("{} {}", self.bank_code, self.account_number_masked)
    }
}

pub struct NewBankAccount<'a> {
    pub id: BankAccountId,
    pub user_id: UserId,
    pub bank_code: &'a str,
    pub account_number_masked: &'a str,
    pub holder_name: &'a str,
    pub fintech_use_num: &'a str,
    pub at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct BankAccountRow {
    id: Uuid,
    user_id: Uuid,
    bank_code: String,
    account_number_masked: String,
    holder_name: String,
    fintech_use_num: String,
    status: String,
    last_balance: Option<i64>,
    last_balance_at: Option<DbTime>,
    created_at: DbTime,
}

impl From<BankAccountRow> for BankAccount {
    fn from(r: BankAccountRow) -> Self {
        Self {
            id: BankAccountId::from_uuid(r.id),
            user_id: UserId::from_uuid(r.user_id),
            bank_code: r.bank_code,
            account_number_masked: r.account_number_masked,
            holder_name: r.holder_name,
            fintech_use_num: r.fintech_use_num,
            status: r.status,
            last_balance: r.last_balance,
            last_balance_at: r.last_balance_at.map(|t| t.0),
            created_at: r.created_at.0,
        }
    }
}

/// The account a user charges and pays from: the newest registered one (a `WHERE … AND`
/// tail, for every statement that picks it).
macro_rules! charging_account {
    () => {
        "status = 'registered' ORDER BY created_at DESC, id DESC LIMIT 1"
    };
}
pub(crate) use charging_account;

macro_rules! select_bank_accounts {
    ($($rest:tt)+) => {
        concat!(
            "SELECT id, user_id, bank_code, account_number_masked, holder_name, fintech_use_num, status,
                    last_balance, last_balance_at, created_at FROM bank_accounts ",
            $($rest)+
        )
    };
}

impl Session {
    /// Registers the account; registering the same fin account twice for one user fails
    /// with `StoreError::Unique`.
    pub async fn insert_bank_account(&mut self, b: &NewBankAccount<'_>) -> Result<()> {
        self.assert_writable();
        on_db!(self, c => sqlx::query(
            "INSERT INTO bank_accounts (id, user_id, bank_code, account_number_masked, holder_name, fintech_use_num,
                                        status, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'registered', $7)",
        )
        .bind(b.id.as_uuid())
        .bind(b.user_id.as_uuid())
        .bind(b.bank_code)
        .bind(b.account_number_masked)
        .bind(b.holder_name)
        .bind(b.fintech_use_num)
        .bind(DbTime(b.at))
        .execute(c)
        .await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// A user's bank accounts, newest first, after the keyset cursor `after` (`(created_at, id)`).
    pub async fn bank_accounts_of(
        &mut self,
        user: UserId,
        after: Option<(Timestamp, Uuid)>,
        limit: u32,
    ) -> Result<Vec<BankAccount>> {
        let (after_at, after_id) = after.map_or((DbTime(Timestamp::MAX), Uuid::max()), |(t, id)| (DbTime(t), id));
        let rows: Vec<BankAccountRow> = on_db!(self, c => sqlx::query_as(select_bank_accounts!(
            "WHERE user_id = $1 AND (created_at, id) < ($2, $3) ORDER BY created_at DESC, id DESC LIMIT $4"
        ))
        .bind(user.as_uuid())
        .bind(after_at)
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(c)
        .await)?;
        Ok(rows.into_iter().map(BankAccount::from).collect())
    }

    pub async fn bank_account(&mut self, id: BankAccountId) -> Result<Option<BankAccount>> {
        let row: Option<BankAccountRow> = on_db!(self, c => sqlx::query_as(select_bank_accounts!("WHERE id = $1"))
            .bind(id.as_uuid())
            .fetch_optional(c)
            .await)?;
        Ok(row.map(BankAccount::from))
    }

    /// The account charges are drawn from: the one registered most recently.
    pub async fn charging_bank_account(&mut self, user: UserId) -> Result<Option<BankAccount>> {
        let row: Option<BankAccountRow> = on_db!(self, c => sqlx::query_as(select_bank_accounts!(
            concat!("WHERE user_id = $1 AND ", charging_account!())
        ))
        .bind(user.as_uuid())
        .fetch_optional(c)
        .await)?;
        Ok(row.map(BankAccount::from))
    }

    /// Remembers the balance the bank just reported (kept if a newer one is already stored).
    pub async fn record_bank_balance(&mut self, id: BankAccountId, balance: i64, at: Timestamp) -> Result<()> {
        self.assert_writable();
        on_db!(self, c => sqlx::query(
            "UPDATE bank_accounts SET last_balance = $2, last_balance_at = $3
             WHERE id = $1 AND (last_balance_at IS NULL OR last_balance_at <= $3)",
        )
        .bind(id.as_uuid())
        .bind(balance)
        .bind(DbTime(at))
        .execute(c)
        .await.map(|r| r.rows_affected()))?;
        Ok(())
    }
}
