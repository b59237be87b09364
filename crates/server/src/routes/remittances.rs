//! Remittances (API-business.md, "Remittance"): a business sends and reads its own (API key);
//! operators list, inspect and retry every one (admin token).

use super::reply;
use crate::error::ApiResult;
use crate::extract::{Admin, ApiJson, ApiPath, ApiQuery, CurrentBusiness, IdempotencyHeader};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use minipay_business::remittance::NewRemittance;
use minipay_business::remittance::views::{RemittanceDetailView, RemittanceView};
use minipay_core::remittance::RemittanceStatus;
use minipay_core::request::PageLimit;
use minipay_core::{BusinessId, RemittanceId};
use minipay_services::views::Page;
use minipay_services::{ServiceError, schema};
use minipay_store::RemittanceFilter;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// Any bank account: registered with the bank when the remittance is requested.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BankAccountBody {
    #[schema(value_type = schema::BankCode)]
    bank_code: String,
    /// With the built-in simulator the last four digits choose its behaviour (`0006`: closed).
    #[schema(value_type = schema::BankAccountNumber)]
    account_number: String,
    #[schema(value_type = schema::PersonName)]
    holder_name: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RemittanceBody {
    #[schema(value_type = schema::Amount)]
    amount: i64,
    /// B, a business on the platform (exactly one of `to_business_id` and `to_bank_account`).
    #[schema(value_type = Option<String>, format = Uuid)]
    to_business_id: Option<BusinessId>,
    to_bank_account: Option<BankAccountBody>,
    #[schema(value_type = Option<schema::Memo>)]
    memo: Option<String>,
    #[schema(value_type = Option<schema::RemittanceReference>)]
    reference: Option<String>,
}

/// Sends `amount` from the calling business (A) to B through the platform. Answers `202` as
/// soon as the request is recorded; the money moves in the background (`steps`, `status`).
/// `Idempotency-Key` is required: the same key and body return the same remittance.
#[utoipa::path(post, path = "/v1/biz/remittances", tag = "business API", operation_id = "create_remittance",
    security(("api_key" = [])), request_body = RemittanceBody, params(IdempotencyHeader),
    responses((status = 202, body = RemittanceView, links(
                  ("get" = (operation_id = "get_remittance", parameters(("id" = "$response.body#/id")))))),
              (status = 400, description = "validation_failed: a bad field, not exactly one recipient, sending to \
                  yourself, or no Idempotency-Key"),
              (status = 404, description = "not_found: no such recipient business"),
              (status = 409, description = "conflict: a request with this Idempotency-Key is still being processed"),
              (status = 422, description = "bank_declined: the bank refused the recipient's account; \
                  idempotency_key_reused"),
              (status = 503, description = "bank_unavailable: the recipient's account could not be registered")))]
pub async fn create(
    State(app): State<AppState>,
    CurrentBusiness(me): CurrentBusiness,
    IdempotencyHeader(key): IdempotencyHeader,
    ApiJson(b): ApiJson<RemittanceBody>,
) -> ApiResult<Response> {
    let bank = b
        .to_bank_account
        .as_ref()
        .map(|a| (a.bank_code.as_str(), a.account_number.as_str(), a.holder_name.as_str()));
    let req = NewRemittance::parse(
        b.amount,
        b.to_business_id,
        bank,
        b.memo.as_deref(),
        b.reference.as_deref(),
    )?;
    Ok(reply(
        app.remittances.request(me, req, key).await?,
        StatusCode::ACCEPTED,
    ))
}

/// A remittance the calling business sent or receives.
#[utoipa::path(get, path = "/v1/biz/remittances/{id}", tag = "business API", operation_id = "get_remittance",
    security(("api_key" = [])), params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = RemittanceView),
              (status = 404, description = "not_found: no such remittance, or someone else's")))]
pub async fn get(
    State(app): State<AppState>,
    CurrentBusiness(me): CurrentBusiness,
    ApiPath(id): ApiPath<RemittanceId>,
) -> ApiResult<Json<RemittanceView>> {
    Ok(Json(app.remittances.remittance_of(me, id).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only remittances in this status.
    #[param(value_type = Option<schema::RemittanceStatus>, inline)]
    status: Option<String>,
    #[param(value_type = Option<schema::PageLimit>, inline)]
    limit: Option<u32>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
}

fn status_filter(raw: Option<&str>) -> Result<Option<RemittanceStatus>, ServiceError> {
    raw.map(|s| RemittanceStatus::parse(s).ok_or_else(|| ServiceError::validation(format!("unknown status {s:?}"))))
        .transpose()
}

/// The calling business's remittances, sent and received, newest first.
#[utoipa::path(get, path = "/v1/biz/remittances", tag = "business API", operation_id = "list_remittances",
    security(("api_key" = [])), params(ListQuery), responses((status = 200, body = Page<RemittanceView>)))]
pub async fn list(
    State(app): State<AppState>,
    CurrentBusiness(me): CurrentBusiness,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<RemittanceView>>> {
    let filter = RemittanceFilter {
        business: Some(me),
        status: status_filter(q.status.as_deref())?,
    };
    let limit = PageLimit::parse(q.limit).map_err(ServiceError::validation)?;
    Ok(Json(
        app.remittances.remittances(&filter, limit, q.cursor.as_deref()).await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AdminListQuery {
    #[param(value_type = Option<schema::RemittanceStatus>, inline)]
    status: Option<String>,
    /// Only remittances this business sent or receives.
    #[param(value_type = Option<String>, format = Uuid)]
    business_id: Option<BusinessId>,
    #[param(value_type = Option<schema::PageLimit>, inline)]
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Every remittance, newest first.
#[utoipa::path(get, path = "/v1/admin/remittances", tag = "admin", operation_id = "admin_list_remittances",
    security(("admin" = [])), params(AdminListQuery), responses((status = 200, body = Page<RemittanceView>)))]
pub async fn admin_list(
    State(app): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<AdminListQuery>,
) -> ApiResult<Json<Page<RemittanceView>>> {
    let filter = RemittanceFilter {
        business: q.business_id,
        status: status_filter(q.status.as_deref())?,
    };
    let limit = PageLimit::parse(q.limit).map_err(ServiceError::validation)?;
    Ok(Json(
        app.remittances.remittances(&filter, limit, q.cursor.as_deref()).await?,
    ))
}

/// A remittance with every attempt of every step.
#[utoipa::path(get, path = "/v1/admin/remittances/{id}", tag = "admin", operation_id = "admin_get_remittance",
    security(("admin" = [])), params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = RemittanceDetailView), (status = 404, description = "not_found")))]
pub async fn admin_get(
    State(app): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<RemittanceId>,
) -> ApiResult<Json<RemittanceDetailView>> {
    Ok(Json(app.remittances.remittance_detail(id).await?))
}

/// Sends a `needs_attention` remittance on from the step that failed (its dead letters close).
#[utoipa::path(post, path = "/v1/admin/remittances/{id}/retry", tag = "admin", operation_id = "admin_retry_remittance",
    security(("admin" = [])), params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = RemittanceView), (status = 404, description = "not_found"),
              (status = 409, description = "invalid_state: the remittance does not need attention; conflict: it \
                  changed meanwhile")))]
pub async fn admin_retry(
    State(app): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<RemittanceId>,
) -> ApiResult<Json<RemittanceView>> {
    Ok(Json(app.remittances.retry(id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PayoutBody {
    #[schema(value_type = schema::Amount)]
    amount: i64,
}

/// Pays `amount` of the calling business's balance out to its own bank account, through the
/// remittance's payout side (a remittance with `source: balance`, starting `credited`).
/// Answers `202` once the amount is out of the balance; a payout the bank refuses comes back
/// into it (`refunded`). `Idempotency-Key` is required.
#[utoipa::path(post, path = "/v1/biz/payouts", tag = "business API", operation_id = "create_payout",
    security(("api_key" = [])), request_body = PayoutBody, params(IdempotencyHeader),
    responses((status = 202, body = RemittanceView, links(
                  ("get" = (operation_id = "get_remittance", parameters(("id" = "$response.body#/id")))))),
              (status = 400, description = "validation_failed: a bad amount, or no Idempotency-Key"),
              (status = 409, description = "conflict: a request with this Idempotency-Key is still being processed"),
              (status = 422, description = "insufficient_funds: the balance is short; idempotency_key_reused")))]
pub async fn payout(
    State(app): State<AppState>,
    CurrentBusiness(me): CurrentBusiness,
    IdempotencyHeader(key): IdempotencyHeader,
    ApiJson(b): ApiJson<PayoutBody>,
) -> ApiResult<Response> {
    let amount = minipay_core::Amount::parse(b.amount).map_err(ServiceError::validation)?;
    Ok(reply(
        app.remittances.request_payout(me, amount, key).await?,
        StatusCode::ACCEPTED,
    ))
}
