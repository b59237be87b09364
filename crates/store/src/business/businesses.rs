//! Businesses: onboarding, lookup by id, registration number or API-key hash, key rotation
//! and the admin list.

use crate::session::Session;
use crate::types::DbTime;
use crate::{Result, StoreError};
use jiff::Timestamp;
use minipay_core::BusinessId;
use minipay_core::business::RegistrationNumber;
use std::collections::HashMap;
use std::fmt;
use uuid::Uuid;

/// A business as stored. Its API key is not here (only the key's hash is stored, and it is
/// only ever matched, never read back).
#[derive(Clone)]
pub struct Business {
    pub id: BusinessId,
    pub name: String,
    pub registration_number: RegistrationNumber,
    pub bank_code: String,
    pub account_number_masked: String,
    pub holder_name: String,
    pub fintech_use_num: String,
    pub webhook_url: Option<String>,
    /// Signs this business's webhooks; left out of `Debug`.
    pub webhook_secret: String,
    pub created_at: Timestamp,
    pub key_rotated_at: Option<Timestamp>,
}

impl fmt::Debug for Business {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Business")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("registration_number", &self.registration_number)
            .field("created_at", &self.created_at)
            .field("key_rotated_at", &self.key_rotated_at)
            .finish_non_exhaustive()
    }
}

pub struct NewBusinessRecord<'a> {
    pub id: BusinessId,
    pub name: &'a str,
    pub registration_number: &'a RegistrationNumber,
    pub bank_code: &'a str,
    pub account_number_masked: &'a str,
    pub holder_name: &'a str,
    pub fintech_use_num: &'a str,
    /// SHA-256 of the API key (32 bytes).
    pub api_key_hash: &'a [u8],
    pub webhook_url: Option<&'a str>,
    pub webhook_secret: &'a str,
    pub at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct BusinessRow {
    id: Uuid,
    name: String,
    registration_number: String,
    bank_code: String,
    account_number_masked: String,
    holder_name: String,
    fintech_use_num: String,
    webhook_url: Option<String>,
    webhook_secret: String,
    created_at: DbTime,
    key_rotated_at: Option<DbTime>,
}

impl TryFrom<BusinessRow> for Business {
    type Error = StoreError;
    fn try_from(r: BusinessRow) -> Result<Self> {
        Ok(Self {
            id: BusinessId::from_uuid(r.id),
            registration_number: RegistrationNumber::parse(&r.registration_number)
                .map_err(|_| StoreError::corrupt(format!("business {} registration number", r.id)))?,
            name: r.name,
            bank_code: r.bank_code,
            account_number_masked: r.account_number_masked,
            holder_name: r.holder_name,
            fintech_use_num: r.fintech_use_num,
            webhook_url: r.webhook_url,
            webhook_secret: r.webhook_secret,
            created_at: r.created_at.0,
            key_rotated_at: r.key_rotated_at.map(|t| t.0),
        })
    }
}

/// `SELECT ... FROM businesses` followed by the given clause, as a `&'static str`.
macro_rules! select_businesses {
    ($rest:literal) => {
        concat!(
            "SELECT id, name, registration_number, bank_code, account_number_masked, holder_name, fintech_use_num,
                    webhook_url, webhook_secret, created_at, key_rotated_at FROM businesses ",
            $rest
        )
    };
}

impl Session {
    /// Records an onboarded business. A registration number (or, astronomically unlikely, an
    /// API-key hash) already on file fails with `StoreError::Unique` naming its column.
    /// Records a business and opens its ledger account (the business's balance).
    pub async fn insert_business(&mut self, b: &NewBusinessRecord<'_>) -> Result<()> {
        self.assert_writable();
        on_db!(self, c => sqlx::query(
            "INSERT INTO businesses (id, name, registration_number, bank_code, account_number_masked, holder_name,
                                     fintech_use_num, api_key_hash, webhook_url, webhook_secret, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(b.id.as_uuid())
        .bind(b.name)
        .bind(b.registration_number.digits())
        .bind(b.bank_code)
        .bind(b.account_number_masked)
        .bind(b.holder_name)
        .bind(b.fintech_use_num)
        .bind(b.api_key_hash)
        .bind(b.webhook_url)
        .bind(b.webhook_secret)
        .bind(DbTime(b.at))
        .execute(c)
        .await.map(|r| r.rows_affected()))?;
        // Its balance on the ledger (payments in, refunds and payouts out), under its own id.
        on_db!(self, c => sqlx::query(
            "INSERT INTO accounts (id, owner_business_id, kind, created_at) VALUES ($1, $1, 'business', $2)",
        )
        .bind(b.id.as_uuid())
        .bind(DbTime(b.at))
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    pub async fn business(&mut self, id: BusinessId) -> Result<Option<Business>> {
        let row: Option<BusinessRow> = on_db!(self, c => sqlx::query_as(select_businesses!("WHERE id = $1"))
            .bind(id.as_uuid())
            .fetch_optional(c)
            .await)?;
        row.map(Business::try_from).transpose()
    }

    /// The webhook URL of each of these businesses that has one.
    pub async fn webhook_urls(&mut self, ids: &[BusinessId]) -> Result<HashMap<BusinessId, String>> {
        let ids: Vec<Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
        let rows: Vec<(Uuid, String)> = self
            .rows_with_ids(
                "SELECT id, webhook_url FROM businesses",
                " AND webhook_url IS NOT NULL",
                &ids,
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|(id, url)| (BusinessId::from_uuid(id), url))
            .collect())
    }

    pub async fn business_by_registration_number(&mut self, number: &RegistrationNumber) -> Result<Option<Business>> {
        let row: Option<BusinessRow> = on_db!(self, c => sqlx::query_as(select_businesses!("WHERE registration_number = $1"))
            .bind(number.digits())
            .fetch_optional(c)
            .await)?;
        row.map(Business::try_from).transpose()
    }

    /// The business whose current API key hashes to `hash` (a unique-index lookup).
    pub async fn business_by_key_hash(&mut self, hash: &[u8]) -> Result<Option<Business>> {
        let row: Option<BusinessRow> = on_db!(self, c => sqlx::query_as(select_businesses!("WHERE api_key_hash = $1"))
            .bind(hash)
            .fetch_optional(c)
            .await)?;
        row.map(Business::try_from).transpose()
    }

    /// The businesses whose current API keys hash to any of `hashes`: (hash, business) for
    /// each that matches, in no particular order (many lookups, one statement).
    pub async fn businesses_by_key_hashes(&mut self, hashes: &[Vec<u8>]) -> Result<Vec<(Vec<u8>, BusinessId)>> {
        let rows: Vec<(Vec<u8>, Uuid)> = self
            .rows_where_in("SELECT api_key_hash, id FROM businesses", "api_key_hash", "", hashes)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(hash, id)| (hash, BusinessId::from_uuid(id)))
            .collect())
    }

    /// Replaces the business's key hash: from this commit on, only the new key matches.
    /// `false` when no such business exists.
    pub async fn rotate_business_key(&mut self, id: BusinessId, hash: &[u8], at: Timestamp) -> Result<bool> {
        self.assert_writable();
        let changed = on_db!(self, c => sqlx::query(
            "UPDATE businesses SET api_key_hash = $2, key_rotated_at = $3 WHERE id = $1",
        )
        .bind(id.as_uuid())
        .bind(hash)
        .bind(DbTime(at))
        .execute(c)
        .await.map(|r| r.rows_affected()))?;
        Ok(changed == 1)
    }

    /// Businesses, newest first, after the keyset cursor `after` (`(created_at, id)`).
    pub async fn businesses(&mut self, after: Option<(Timestamp, Uuid)>, limit: u32) -> Result<Vec<Business>> {
        let (after_at, after_id) = after.map_or((DbTime(Timestamp::MAX), Uuid::max()), |(t, id)| (DbTime(t), id));
        let rows: Vec<BusinessRow> = on_db!(self, c => sqlx::query_as(select_businesses!(
            "WHERE (created_at, id) < ($1, $2) ORDER BY created_at DESC, id DESC LIMIT $3"
        ))
        .bind(after_at)
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(c)
        .await)?;
        rows.into_iter().map(Business::try_from).collect()
    }
}
