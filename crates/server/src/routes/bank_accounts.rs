//! Registered bank accounts.

use super::PageQuery;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, CurrentUser};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use minipay_core::BankAccountId;
use minipay_core::request::PageLimit;
use minipay_services::views::{BankAccountView, BankBalanceView, Page};
use minipay_services::{RegisterBankAccount, ServiceError, schema};
use serde::Deserialize;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    #[schema(value_type = schema::BankCode)]
    bank_code: String,
    /// With the built-in simulator the last four digits choose its behaviour.
    #[schema(value_type = schema::BankAccountNumber)]
    account_number: String,
    #[schema(value_type = schema::PersonName)]
    holder_name: String,
}

/// Registers a bank account with the bank (open-banking fin account).
#[utoipa::path(post, path = "/v1/bank-accounts", tag = "bank accounts", security(("bearer" = [])),
    request_body = RegisterBody,
    responses((status = 201, body = BankAccountView, links(
                  ("balance" = (operation_id = "balance", parameters(("id" = "$response.body#/id")))))),
              (status = 409, description = "conflict: already registered"),
              (status = 422, description = "bank_declined: the bank refused the account"),
              (status = 503, description = "bank_unavailable")))]
pub async fn register(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    ApiJson(b): ApiJson<RegisterBody>,
) -> ApiResult<(StatusCode, Json<BankAccountView>)> {
    let req = RegisterBankAccount::parse(&b.bank_code, &b.account_number, &b.holder_name)?;
    Ok((
        StatusCode::CREATED,
        Json(app.wallet.register_bank_account(me, req).await?),
    ))
}

/// The caller's registered bank accounts, newest first.
#[utoipa::path(get, path = "/v1/bank-accounts", tag = "bank accounts", operation_id = "list_bank_accounts",
    security(("bearer" = [])), params(PageQuery), responses((status = 200, body = Page<BankAccountView>)))]
pub async fn list(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<BankAccountView>>> {
    let limit = PageLimit::parse(q.limit).map_err(ServiceError::validation)?;
    Ok(Json(app.wallet.bank_accounts(me, limit, q.cursor.as_deref()).await?))
}

/// The balance at the bank; the last known value with `stale: true` when the bank is slow or down.
#[utoipa::path(get, path = "/v1/bank-accounts/{id}/balance", tag = "bank accounts", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = BankBalanceView), (status = 404, description = "not_found"),
              (status = 422, description = "bank_declined: the bank refused the inquiry"),
              (status = 503, description = "bank_unavailable and no balance known yet")))]
pub async fn balance(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    ApiPath(id): ApiPath<BankAccountId>,
) -> ApiResult<Json<BankBalanceView>> {
    Ok(Json(app.wallet.bank_balance(me, id).await?))
}
