//! The JSON shapes of businesses (API-business.md): what the operator and the business see.
//! Only the onboarding and rotation answers carry secrets, and they have no `Debug`, so they
//! cannot end up in a log line by accident.

use jiff::Timestamp;
use minipay_core::BusinessId;
use minipay_store::Business;
use serde::Serialize;
use utoipa::ToSchema;

/// A business's bank account as shown: never the full number.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BusinessBankAccountView {
    #[schema(example = "004")]
    pub bank_code: String,
    #[schema(example = "******7890")]
    pub account_number_masked: String,
}

/// A business without its secrets (admin views and `GET /v1/biz/me`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BusinessView {
    #[schema(value_type = String, format = Uuid)]
    pub id: BusinessId,
    pub name: String,
    /// Always shown as `123-45-67890`.
    #[schema(example = "124-81-00998")]
    pub registration_number: String,
    pub bank_account: BusinessBankAccountView,
    pub webhook_url: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When the API key was last rotated; `null` if never.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub key_rotated_at: Option<Timestamp>,
}

impl From<&Business> for BusinessView {
    fn from(b: &Business) -> Self {
        Self {
            id: b.id,
            name: b.name.clone(),
            registration_number: b.registration_number.to_string(),
            bank_account: bank_account_of(b),
            webhook_url: b.webhook_url.clone(),
            created_at: b.created_at,
            key_rotated_at: b.key_rotated_at,
        }
    }
}

fn bank_account_of(b: &Business) -> BusinessBankAccountView {
    BusinessBankAccountView {
        bank_code: b.bank_code.clone(),
        account_number_masked: b.account_number_masked.clone(),
    }
}

/// The answer to onboarding: the business with its API key and webhook secret, shown this
/// once (the platform keeps only a hash of the key).
#[derive(Serialize, ToSchema)]
pub struct OnboardedBusiness {
    #[schema(value_type = String, format = Uuid)]
    pub id: BusinessId,
    pub name: String,
    #[schema(example = "124-81-00998")]
    pub registration_number: String,
    pub bank_account: BusinessBankAccountView,
    pub webhook_url: Option<String>,
    /// `Authorization: Bearer <api_key>` on `/v1/biz/*`. Shown once.
    pub api_key: String,
    /// Signs this business's webhooks (`Minipay-Signature`). Shown once.
    pub webhook_secret: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl OnboardedBusiness {
    pub(crate) fn new(b: &Business, api_key: String) -> Self {
        Self {
            id: b.id,
            name: b.name.clone(),
            registration_number: b.registration_number.to_string(),
            bank_account: bank_account_of(b),
            webhook_url: b.webhook_url.clone(),
            api_key,
            webhook_secret: b.webhook_secret.clone(),
            created_at: b.created_at,
        }
    }
}

/// A new API key (shown once); the previous one stopped working when this was issued.
#[derive(Serialize, ToSchema)]
pub struct RotatedKey {
    #[schema(value_type = String, format = Uuid)]
    pub id: BusinessId,
    pub api_key: String,
    #[schema(value_type = String, format = DateTime)]
    pub rotated_at: Timestamp,
}

/// One attempt to deliver a webhook (`GET /v1/biz/webhook-deliveries`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WebhookDeliveryView {
    #[schema(value_type = String, format = Uuid)]
    pub id: uuid::Uuid,
    /// The webhook: the `id` of the body sent (the same on every attempt).
    #[schema(value_type = String, format = Uuid)]
    pub webhook_id: uuid::Uuid,
    /// `payment.paid`, `remittance.completed`, ...
    #[serde(rename = "type")]
    pub kind: String,
    /// The remittance, payment or refund.
    #[schema(value_type = String, format = Uuid)]
    pub object_id: uuid::Uuid,
    /// 1 for the first attempt.
    pub attempt: i32,
    /// The receiver's answer; `null` when none came (refused connection, timeout).
    pub status_code: Option<i32>,
    pub error: Option<String>,
    /// The receiver took it (a 2xx): no more attempts.
    pub delivered: bool,
    pub duration_ms: i64,
    #[schema(value_type = String, format = DateTime)]
    pub attempted_at: Timestamp,
}

impl From<minipay_store::WebhookDelivery> for WebhookDeliveryView {
    fn from(d: minipay_store::WebhookDelivery) -> Self {
        Self {
            id: d.id,
            webhook_id: d.webhook_id,
            kind: d.kind,
            object_id: d.object_id,
            attempt: d.attempt,
            status_code: d.status_code,
            error: d.error,
            delivered: d.delivered,
            duration_ms: d.duration_ms,
            attempted_at: d.attempted_at,
        }
    }
}
