//! Charges: the recorded intent of a bank pull and its resolution.

use crate::session::Session;
use crate::types::{DbDate, DbTime};
use crate::{Result, StoreError};
use jiff::Timestamp;
use minipay_core::charge::{ChargePurpose, ChargeStatus};
use minipay_core::{AccountId, Amount, BankAccountId, BusinessDate, ChargeId, JournalId, UserId};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct Charge {
    pub id: ChargeId,
    pub user_id: UserId,
    pub account_id: AccountId,
    pub bank_account_id: BankAccountId,
    pub amount: Amount,
    pub business_date: BusinessDate,
    pub purpose: ChargePurpose,
    pub status: ChargeStatus,
    pub failure_code: Option<String>,
    pub journal_id: Option<JournalId>,
    pub created_at: Timestamp,
    pub resolved_at: Option<Timestamp>,
}

pub struct NewCharge {
    pub id: ChargeId,
    pub user_id: UserId,
    pub account_id: AccountId,
    pub bank_account_id: BankAccountId,
    pub amount: Amount,
    pub business_date: BusinessDate,
    pub purpose: ChargePurpose,
    pub at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct ChargeRow {
    id: Uuid,
    user_id: Uuid,
    account_id: Uuid,
    bank_account_id: Uuid,
    amount: i64,
    business_date: DbDate,
    purpose: String,
    status: String,
    failure_code: Option<String>,
    journal_id: Option<Uuid>,
    created_at: DbTime,
    resolved_at: Option<DbTime>,
}

impl TryFrom<ChargeRow> for Charge {
    type Error = StoreError;
    fn try_from(r: ChargeRow) -> Result<Self> {
        Ok(Self {
            id: ChargeId::from_uuid(r.id),
            user_id: UserId::from_uuid(r.user_id),
            account_id: AccountId::from_uuid(r.account_id),
            bank_account_id: BankAccountId::from_uuid(r.bank_account_id),
            amount: Amount::parse(r.amount).map_err(StoreError::corrupt)?,
            business_date: BusinessDate::from_date(r.business_date.0),
            purpose: ChargePurpose::parse(&r.purpose).ok_or_else(|| StoreError::corrupt(&r.purpose))?,
            status: ChargeStatus::parse(&r.status).ok_or_else(|| StoreError::corrupt(&r.status))?,
            failure_code: r.failure_code,
            journal_id: r.journal_id.map(JournalId::from_uuid),
            created_at: r.created_at.0,
            resolved_at: r.resolved_at.map(|t| t.0),
        })
    }
}

macro_rules! select_charges {
    ($rest:literal) => {
        concat!(
            "SELECT id, user_id, account_id, bank_account_id, amount, business_date, purpose, status, failure_code,
                    journal_id, created_at, resolved_at FROM charges ",
            $rest
        )
    };
}

impl Session {
    /// Records the intent to pull, in state `pending`, before the bank is called.
    pub async fn insert_charge(&mut self, c: &NewCharge) -> Result<()> {
        self.assert_writable();
        on_db!(self, conn => sqlx::query(
            "INSERT INTO charges (id, user_id, account_id, bank_account_id, amount, business_date, purpose, status, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8)",
        )
        .bind(c.id.as_uuid())
        .bind(c.user_id.as_uuid())
        .bind(c.account_id.as_uuid())
        .bind(c.bank_account_id.as_uuid())
        .bind(c.amount.won())
        .bind(DbDate(c.business_date.date()))
        .bind(c.purpose.as_str())
        .bind(DbTime(c.at))
        .execute(conn)
        .await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn charge(&mut self, id: ChargeId) -> Result<Option<Charge>> {
        let row: Option<ChargeRow> = on_db!(self, c => sqlx::query_as(select_charges!("WHERE id = $1"))
            .bind(id.as_uuid())
            .fetch_optional(c)
            .await)?;
        row.map(Charge::try_from).transpose()
    }

    /// Moves a charge out of an open state, only if it is still open. Returns whether this
    /// call made the change — exactly one resolver wins, so the money is posted exactly once.
    pub async fn resolve_charge(
        &mut self,
        id: ChargeId,
        status: ChargeStatus,
        failure_code: Option<&str>,
        journal_id: Option<JournalId>,
        at: Timestamp,
    ) -> Result<bool> {
        self.assert_writable();
        assert!(!status.is_open(), "resolve_charge needs a final status");
        let updated = on_db!(self, c => sqlx::query(
            "UPDATE charges SET status = $2, failure_code = $3, journal_id = $4, resolved_at = $5
             WHERE id = $1 AND status IN ('pending', 'unknown')",
        )
        .bind(id.as_uuid())
        .bind(status.as_str())
        .bind(failure_code)
        .bind(journal_id.map(|j| j.as_uuid()))
        .bind(DbTime(at))
        .execute(c)
        .await.map(|r| r.rows_affected()))?;
        Ok(updated == 1)
    }

    /// Marks a pending charge whose bank call timed out as `unknown`.
    pub async fn mark_charge_unknown(&mut self, id: ChargeId) -> Result<()> {
        self.assert_writable();
        on_db!(self, c => sqlx::query("UPDATE charges SET status = 'unknown' WHERE id = $1 AND status = 'pending'")
            .bind(id.as_uuid())
            .execute(c)
            .await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Open charges created before `before`, oldest first, after the keyset cursor
    /// `(created_at, id)`, at most `limit` of them.
    pub async fn open_charges(
        &mut self,
        before: Timestamp,
        after: Option<(Timestamp, ChargeId)>,
        limit: u32,
    ) -> Result<Vec<Charge>> {
        // No cursor: start below every real row (one statement, one plan, for every page).
        let (after_at, after_id) = match after {
            Some((at, id)) => (DbTime(at), id.as_uuid()),
            None => (DbTime(Timestamp::UNIX_EPOCH), Uuid::nil()),
        };
        let rows: Vec<ChargeRow> = on_db!(self, c => sqlx::query_as(select_charges!(
            "WHERE status IN ('pending', 'unknown') AND created_at < $1 AND (created_at, id) > ($2, $3)
             ORDER BY created_at, id LIMIT $4"
        ))
        .bind(DbTime(before))
        .bind(after_at)
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(c)
        .await)?;
        rows.into_iter().map(Charge::try_from).collect()
    }
}
