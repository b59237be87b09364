//! Businesses (API-business.md, "Businesses and their credentials"): onboarding, key rotation
//! and lookups by an operator (admin token), and a business's view of itself (its API key).

use super::PageQuery;
use crate::error::ApiResult;
use crate::extract::{Admin, ApiJson, ApiPath, ApiQuery, CurrentBusiness};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use minipay_business::NewBusiness;
use minipay_business::views::{BusinessView, OnboardedBusiness, RotatedKey, WebhookDeliveryView};
use minipay_core::BusinessId;
use minipay_core::request::PageLimit;
use minipay_services::views::Page;
use minipay_services::{ServiceError, schema};
use serde::Deserialize;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OnboardBody {
    /// 1–100 characters.
    #[schema(example = "가나상사")]
    name: String,
    /// Business registration number (사업자등록번호): 10 digits, written `1234567890` or
    /// `123-45-67890` (no other dashes, no spaces); its check digit must be right.
    #[schema(example = "124-81-00998")]
    registration_number: String,
    #[schema(value_type = schema::BankCode)]
    bank_code: String,
    /// With the built-in simulator the last four digits choose its behaviour.
    #[schema(value_type = schema::BankAccountNumber)]
    account_number: String,
    #[schema(value_type = schema::PersonName)]
    holder_name: String,
    /// Where webhooks go: an absolute http(s) URL, at most 2,048 characters.
    webhook_url: Option<String>,
}

/// Onboards a business: registers its bank account with the bank (fin account) and issues its
/// API key and webhook secret, shown in this answer only.
#[utoipa::path(post, path = "/v1/admin/businesses", tag = "businesses", security(("admin" = [])),
    request_body = OnboardBody,
    responses((status = 201, body = OnboardedBusiness),
              (status = 400, description = "validation_failed: a field is missing or malformed, or the registration \
                  number's check digit is wrong"),
              (status = 409, description = "conflict: a business with this registration number exists"),
              (status = 422, description = "bank_declined: the bank refused the account"),
              (status = 503, description = "bank_unavailable")))]
pub async fn onboard(
    State(app): State<AppState>,
    _admin: Admin,
    ApiJson(b): ApiJson<OnboardBody>,
) -> ApiResult<(StatusCode, Json<OnboardedBusiness>)> {
    let req = NewBusiness::parse(
        &b.name,
        &b.registration_number,
        &b.bank_code,
        &b.account_number,
        &b.holder_name,
        b.webhook_url.as_deref(),
    )?;
    Ok((StatusCode::CREATED, Json(app.businesses.onboard(req).await?)))
}

/// Every business, newest first (without secrets).
#[utoipa::path(get, path = "/v1/admin/businesses", tag = "businesses", operation_id = "list_businesses",
    security(("admin" = [])), params(PageQuery), responses((status = 200, body = Page<BusinessView>)))]
pub async fn list(
    State(app): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<BusinessView>>> {
    let limit = PageLimit::parse(q.limit).map_err(ServiceError::validation)?;
    Ok(Json(app.businesses.businesses(limit, q.cursor.as_deref()).await?))
}

/// One business (without secrets).
#[utoipa::path(get, path = "/v1/admin/businesses/{id}", tag = "businesses", operation_id = "get_business",
    security(("admin" = [])), params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = BusinessView), (status = 404, description = "not_found")))]
pub async fn get(
    State(app): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<BusinessId>,
) -> ApiResult<Json<BusinessView>> {
    Ok(Json(app.businesses.business(id).await?))
}

/// Issues a new API key (shown once); the old key stops working at once.
#[utoipa::path(post, path = "/v1/admin/businesses/{id}/rotate-key", tag = "businesses", security(("admin" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = RotatedKey), (status = 404, description = "not_found")))]
pub async fn rotate_key(
    State(app): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<BusinessId>,
) -> ApiResult<Json<RotatedKey>> {
    Ok(Json(app.businesses.rotate_key(id).await?))
}

/// The calling business (without secrets).
#[utoipa::path(get, path = "/v1/biz/me", tag = "business API", operation_id = "get_own_business",
    security(("api_key" = [])), responses((status = 200, body = BusinessView)))]
pub async fn me(State(app): State<AppState>, CurrentBusiness(me): CurrentBusiness) -> ApiResult<Json<BusinessView>> {
    Ok(Json(app.businesses.business(me).await?))
}

/// The calling business's webhook delivery log: every attempt to post a webhook (signed with
/// its webhook secret, retried with backoff for 24 hours), newest first.
#[utoipa::path(get, path = "/v1/biz/webhook-deliveries", tag = "business API", operation_id = "list_webhook_deliveries",
    security(("api_key" = [])), params(PageQuery), responses((status = 200, body = Page<WebhookDeliveryView>)))]
pub async fn webhook_deliveries(
    State(app): State<AppState>,
    CurrentBusiness(me): CurrentBusiness,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<WebhookDeliveryView>>> {
    let limit = PageLimit::parse(q.limit).map_err(ServiceError::validation)?;
    Ok(Json(
        app.businesses
            .webhook_deliveries(me, limit, q.cursor.as_deref())
            .await?,
    ))
}
