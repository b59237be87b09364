//! Merchants and their terminals: onboarding, lookups, the admin list, issuing a terminal with
//! its sealed key, and disabling it.

use crate::session::Session;
use crate::types::DbTime;
use crate::{Result, StoreError};
use jiff::Timestamp;
use minipay_core::business::RegistrationNumber;
use std::fmt;
use uuid::Uuid;

/// A merchant (가맹점) as stored.
#[derive(Debug, Clone)]
pub struct Merchant {
    pub id: Uuid,
    pub name: String,
    pub registration_number: RegistrationNumber,
    pub created_at: Timestamp,
}

pub struct NewMerchantRecord<'a> {
    pub id: Uuid,
    pub name: &'a str,
    pub registration_number: &'a RegistrationNumber,
    pub at: Timestamp,
}

/// A terminal as stored: its key only sealed (see the gateway's `keys` module).
#[derive(Clone)]
pub struct Terminal {
    pub terminal_id: String,
    pub merchant_id: Uuid,
    /// `nonce ‖ ciphertext ‖ tag`; left out of `Debug`.
    pub key_sealed: Vec<u8>,
    pub created_at: Timestamp,
    pub disabled_at: Option<Timestamp>,
}

impl fmt::Debug for Terminal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Terminal")
            .field("terminal_id", &self.terminal_id)
            .field("merchant_id", &self.merchant_id)
            .field("created_at", &self.created_at)
            .field("disabled_at", &self.disabled_at)
            .finish_non_exhaustive()
    }
}

pub struct NewTerminalRecord<'a> {
    pub terminal_id: &'a str,
    pub merchant_id: Uuid,
    pub key_sealed: &'a [u8],
    pub at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct MerchantRow {
    id: Uuid,
    name: String,
    registration_number: String,
    created_at: DbTime,
}

impl TryFrom<MerchantRow> for Merchant {
    type Error = StoreError;
    fn try_from(r: MerchantRow) -> Result<Self> {
        Ok(Self {
            registration_number: RegistrationNumber::parse(&r.registration_number)
                .map_err(|_| StoreError::corrupt(format!("merchant {} registration number", r.id)))?,
            id: r.id,
            name: r.name,
            created_at: r.created_at.0,
        })
    }
}

#[derive(sqlx::FromRow)]
struct TerminalRow {
    terminal_id: String,
    merchant_id: Uuid,
    key_sealed: Vec<u8>,
    created_at: DbTime,
    disabled_at: Option<DbTime>,
}

impl From<TerminalRow> for Terminal {
    fn from(r: TerminalRow) -> Self {
        Self {
            terminal_id: r.terminal_id,
            merchant_id: r.merchant_id,
            key_sealed: r.key_sealed,
            created_at: r.created_at.0,
            disabled_at: r.disabled_at.map(|t| t.0),
        }
    }
}

/// `SELECT ... FROM merchants` followed by the given clause, as a `&'static str`.
macro_rules! select_merchants {
    ($rest:literal) => {
        concat!(
            "SELECT id, name, registration_number, created_at FROM merchants ",
            $rest
        )
    };
}

impl Session {
    /// Records a merchant. A registration number already on file fails with
    /// `StoreError::Unique` naming its column.
    pub async fn insert_merchant(&mut self, m: &NewMerchantRecord<'_>) -> Result<()> {
        self.assert_writable();
        on_db!(self, c => sqlx::query(
            "INSERT INTO merchants (id, name, registration_number, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(m.id)
        .bind(m.name)
        .bind(m.registration_number.digits())
        .bind(DbTime(m.at))
        .execute(c)
        .await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn merchant(&mut self, id: Uuid) -> Result<Option<Merchant>> {
        let row: Option<MerchantRow> = on_db!(self, c => sqlx::query_as(select_merchants!("WHERE id = $1"))
            .bind(id)
            .fetch_optional(c)
            .await)?;
        row.map(Merchant::try_from).transpose()
    }

    pub async fn merchant_by_registration_number(&mut self, number: &RegistrationNumber) -> Result<Option<Merchant>> {
        let row: Option<MerchantRow> = on_db!(self, c => sqlx::query_as(select_merchants!("WHERE registration_number = $1"))
                .bind(number.digits())
                .fetch_optional(c)
                .await)?;
        row.map(Merchant::try_from).transpose()
    }

    /// Merchants, newest first, after the keyset cursor `after` (`(created_at, id)`).
    pub async fn merchants(&mut self, after: Option<(Timestamp, Uuid)>, limit: u32) -> Result<Vec<Merchant>> {
        let (after_at, after_id) = after.map_or((DbTime(Timestamp::MAX), Uuid::max()), |(t, id)| (DbTime(t), id));
        let rows: Vec<MerchantRow> = on_db!(self, c => sqlx::query_as(select_merchants!(
            "WHERE (created_at, id) < ($1, $2) ORDER BY created_at DESC, id DESC LIMIT $3"
        ))
        .bind(after_at)
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(c)
        .await)?;
        rows.into_iter().map(Merchant::try_from).collect()
    }

    /// Records a terminal. A terminal id already taken fails with `StoreError::Unique`.
    pub async fn insert_terminal(&mut self, t: &NewTerminalRecord<'_>) -> Result<()> {
        self.assert_writable();
        on_db!(self, c => sqlx::query(
            "INSERT INTO terminals (terminal_id, merchant_id, key_sealed, created_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(t.terminal_id)
        .bind(t.merchant_id)
        .bind(t.key_sealed)
        .bind(DbTime(t.at))
        .execute(c)
        .await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// A terminal, enabled or not.
    pub async fn terminal(&mut self, terminal_id: &str) -> Result<Option<Terminal>> {
        let row: Option<TerminalRow> = on_db!(self, c => sqlx::query_as(
            "SELECT terminal_id, merchant_id, key_sealed, created_at, disabled_at FROM terminals WHERE terminal_id = $1",
        )
        .bind(terminal_id)
        .fetch_optional(c)
        .await)?;
        Ok(row.map(Terminal::from))
    }

    /// Disables a terminal from `at`, or keeps the instant of an earlier disable; the instant
    /// in force, or `None` when no such terminal exists.
    pub async fn disable_terminal(&mut self, terminal_id: &str, at: Timestamp) -> Result<Option<Timestamp>> {
        self.assert_writable();
        let disabled: Option<DbTime> = on_db!(self, c => sqlx::query_scalar(
            "UPDATE terminals SET disabled_at = COALESCE(disabled_at, $2) WHERE terminal_id = $1
             RETURNING disabled_at",
        )
        .bind(terminal_id)
        .bind(DbTime(at))
        .fetch_optional(c)
        .await)?;
        Ok(disabled.map(|t| t.0))
    }
}
