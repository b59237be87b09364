//! Onboarding a business (its bank account registered with the bank first, outside any
//! transaction), rotating its API key, authenticating it by that key, and reading it back.

use crate::Businesses;
use crate::credentials::{ApiKey, WebhookSecret, hash_api_key, looks_like_api_key};
use crate::views::{BusinessView, OnboardedBusiness, RotatedKey};
use anyhow::Context;
use minipay_bank::{FinAccount, RegisterAccount};
use minipay_core::BusinessId;
use minipay_core::business::{BusinessName, RegistrationNumber, WebhookUrl};
use minipay_core::request::PageLimit;
use minipay_services::pagination::{decode_cursor, page_of, rows_for};
use minipay_services::views::Page;
use minipay_services::{RegisterBankAccount, ServiceError, ServiceResult, bank_failure};
use minipay_store::{Business, NewBusinessRecord, StoreError};

/// An onboarding request, validated at the edge.
pub struct NewBusiness {
    pub name: BusinessName,
    pub registration_number: RegistrationNumber,
    /// Validated like a user's bank account (`bank_code`, `account_number`, `holder_name`).
    pub bank_account: RegisterBankAccount,
    pub webhook_url: Option<WebhookUrl>,
}

impl NewBusiness {
    pub fn parse(
        name: &str,
        registration_number: &str,
        bank_code: &str,
        account_number: &str,
        holder_name: &str,
        webhook_url: Option<&str>,
    ) -> ServiceResult<Self> {
        Ok(Self {
            name: BusinessName::parse(name).map_err(ServiceError::validation)?,
            registration_number: RegistrationNumber::parse(registration_number).map_err(ServiceError::validation)?,
            bank_account: RegisterBankAccount::parse(bank_code, account_number, holder_name)?,
            webhook_url: webhook_url
                .map(WebhookUrl::parse)
                .transpose()
                .map_err(ServiceError::validation)?,
        })
    }
}

fn duplicate_number() -> ServiceError {
    ServiceError::Conflict("a business with this registration number is already onboarded".into())
}

impl Businesses {
    /// Registers the business's bank account with the bank (no transaction open), then
    /// records the business with a new API key and webhook secret, which the answer shows
    /// this once. A known registration number is refused before the bank is called.
    #[tracing::instrument(name = "minipay.businesses.onboard", skip_all, err(level = "debug"))]
    pub async fn onboard(&self, req: NewBusiness) -> ServiceResult<OnboardedBusiness> {
        let known = self
            .store
            .read()
            .await?
            .business_by_registration_number(&req.registration_number)
            .await?;
        if known.is_some() {
            return Err(duplicate_number());
        }
        let fin = self.register_with_bank(&req.bank_account).await?;
        let api_key = ApiKey::generate()?;
        let business = self.record(&req, &fin, &api_key).await?;
        Ok(OnboardedBusiness::new(&business, api_key.reveal()))
    }

    async fn register_with_bank(&self, account: &RegisterBankAccount) -> ServiceResult<FinAccount> {
        self.bank
            .register_account(&RegisterAccount {
                bank_code: account.bank_code.as_str().to_owned(),
                account_number: account.account_number.as_str().to_owned(),
                holder_name: account.holder_name.clone(),
            })
            .await
            .map_err(bank_failure)
    }

    /// Writes the business; the unique registration number settles a race between two
    /// onboardings of the same number (the loser gets `409 conflict`).
    async fn record(&self, req: &NewBusiness, fin: &FinAccount, api_key: &ApiKey) -> ServiceResult<Business> {
        let id = BusinessId::new();
        let bank = &req.bank_account;
        let webhook_secret = WebhookSecret::generate()?;
        let mut tx = self.store.begin().await?;
        let insert = tx
            .insert_business(&NewBusinessRecord {
                id,
                name: req.name.as_str(),
                registration_number: &req.registration_number,
                bank_code: bank.bank_code.as_str(),
                account_number_masked: &bank.account_number.masked(),
                holder_name: &bank.holder_name,
                fintech_use_num: &fin.fintech_use_num,
                api_key_hash: &api_key.hash(),
                webhook_url: req.webhook_url.as_ref().map(WebhookUrl::as_str),
                webhook_secret: webhook_secret.as_str(),
                at: self.clock.now(),
            })
            .await;
        match insert {
            Err(StoreError::Unique(what)) if what.contains("registration_number") => return Err(duplicate_number()),
            other => other?,
        }
        let business = tx.business(id).await?.context("business just inserted")?;
        tx.commit().await?;
        Ok(business)
    }

    /// Issues a new API key for the business; the old one stops matching when this commits.
    /// Every request looks its key up afresh (no cache), so that is at once, on every instance.
    #[tracing::instrument(name = "minipay.businesses.rotate_key", skip_all, err(level = "debug"))]
    pub async fn rotate_key(&self, id: BusinessId) -> ServiceResult<RotatedKey> {
        let api_key = ApiKey::generate()?;
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        if !tx.rotate_business_key(id, &api_key.hash(), now).await? {
            return Err(ServiceError::NotFound("business"));
        }
        tx.commit().await?;
        Ok(RotatedKey {
            id,
            api_key: api_key.reveal(),
            rotated_at: now,
        })
    }

    /// The business an API key belongs to. The key is matched by its hash through a unique
    /// index rather than compared with a stored key, so there is no secret comparison whose
    /// timing could leak: a lookup's timing depends on SHA-256 of the candidate, which says
    /// nothing about any real key without a preimage. Concurrent requests' keys are matched
    /// by one statement (see `key_lookups`), each after its request arrived.
    #[tracing::instrument(name = "minipay.businesses.authenticate", skip_all, err(level = "debug"))]
    pub async fn authenticate(&self, api_key: &str) -> ServiceResult<BusinessId> {
        let invalid = || ServiceError::Unauthorized("the API key is not valid");
        if !looks_like_api_key(api_key) {
            return Err(invalid());
        }
        let hash = hash_api_key(api_key).to_vec();
        // With the keys of the requests that arrive meanwhile (one statement for all).
        let found = match self.keys.submit_or_alone(hash.clone()).await? {
            Some(found) => found,
            None => self
                .store
                .read()
                .await?
                .business_by_key_hash(&hash)
                .await?
                .map(|b| b.id),
        };
        found.ok_or_else(invalid)
    }

    /// A business's record, its bank account's fin number included (for the business side's
    /// own use-cases).
    pub async fn record_of(&self, id: BusinessId) -> ServiceResult<Business> {
        self.store
            .read()
            .await?
            .business(id)
            .await?
            .ok_or(ServiceError::NotFound("business"))
    }

    /// A business without its secrets.
    pub async fn business(&self, id: BusinessId) -> ServiceResult<BusinessView> {
        let business = self.store.read().await?.business(id).await?;
        business
            .as_ref()
            .map(BusinessView::from)
            .ok_or(ServiceError::NotFound("business"))
    }

    /// The business's webhook delivery log: every attempt, newest first.
    pub async fn webhook_deliveries(
        &self,
        business: BusinessId,
        limit: PageLimit,
        cursor: Option<&str>,
    ) -> ServiceResult<Page<crate::views::WebhookDeliveryView>> {
        let after = cursor.map(decode_cursor).transpose()?;
        let rows = self
            .store
            .read()
            .await?
            .webhook_deliveries(business, after, rows_for(limit))
            .await?;
        Ok(page_of(rows, limit, |d| (d.attempted_at, d.id), Into::into))
    }

    /// Every business, newest first, a cursor page at a time (for operators).
    pub async fn businesses(&self, limit: PageLimit, cursor: Option<&str>) -> ServiceResult<Page<BusinessView>> {
        let after = cursor.map(decode_cursor).transpose()?;
        let rows = self.store.read().await?.businesses(after, rows_for(limit)).await?;
        Ok(page_of(
            rows,
            limit,
            |b| (b.created_at, b.id.as_uuid()),
            |b| BusinessView::from(&b),
        ))
    }
}
