//! Accounts, charges, the charge limit and savings deposits.

use super::reply;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, CurrentUser, IdempotencyHeader};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use minipay_core::{AccountId, Amount};
use minipay_services::views::{AccountView, ChargeLimitView, ChargeView, DepositView, Items};
use minipay_services::{IdempotentRequest, OpenSavingsRequest, ServiceError, schema};
use serde::Deserialize;
use utoipa::ToSchema;

#[utoipa::path(get, path = "/v1/accounts", tag = "accounts", operation_id = "list_accounts", security(("bearer" = [])),
    responses((status = 200, body = Items<AccountView>)))]
pub async fn list(State(app): State<AppState>, CurrentUser(me): CurrentUser) -> ApiResult<Json<Items<AccountView>>> {
    Ok(Json(app.wallet.accounts(me).await?))
}

#[utoipa::path(get, path = "/v1/accounts/{id}", tag = "accounts", operation_id = "get_account", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = AccountView), (status = 404, description = "not_found")))]
pub async fn get(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    ApiPath(id): ApiPath<AccountId>,
) -> ApiResult<Json<AccountView>> {
    Ok(Json(app.wallet.account(me, id).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenAccountBody {
    /// `savings` (the main account is created at signup).
    #[schema(value_type = schema::OpenableAccountKind)]
    kind: String,
    /// `free` (deposit any time, 3%/year) or `fixed` (daily auto-debit, 5%/year).
    #[schema(value_type = schema::SavingsProduct)]
    product: String,
    /// Required for `fixed`, refused for `free`: won auto-debited from the main account every
    /// day at 08:00.
    #[schema(value_type = Option<schema::Amount>)]
    daily_amount: Option<i64>,
}

/// Opens a savings account. Accepts `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", operation_id = "open_account", security(("bearer" = [])),
    request_body = OpenAccountBody, params(IdempotencyHeader),
    responses((status = 201, body = AccountView, links(
                  ("get" = (operation_id = "get_account", parameters(("id" = "$response.body#/id")))),
                  ("deposit" = (operation_id = "deposit", parameters(("id" = "$response.body#/id")))),
                  ("history" = (operation_id = "history", parameters(("id" = "$response.body#/id")))))),
              (status = 400, description = "validation_failed: a bad field, or `daily_amount` given for `free` or missing for `fixed`")))]
pub async fn open(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    IdempotencyHeader(key): IdempotencyHeader,
    ApiJson(b): ApiJson<OpenAccountBody>,
) -> ApiResult<Response> {
    let req = OpenSavingsRequest::parse(&b.kind, &b.product, b.daily_amount)?;
    let idem = IdempotentRequest::new(key, "open_account", "", &req);
    Ok(reply(
        app.wallet.open_savings(me, req, idem).await?,
        StatusCode::CREATED,
    ))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AmountBody {
    #[schema(value_type = schema::Amount)]
    amount: i64,
}

impl AmountBody {
    fn amount(&self) -> Result<Amount, ServiceError> {
        Amount::parse(self.amount).map_err(ServiceError::validation)
    }
}

/// Charges the main account from the registered bank account, under the daily limit.
/// Accepts `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/accounts/{id}/charges", tag = "accounts", security(("bearer" = [])),
    request_body = AmountBody, params(("id" = String, Path, format = Uuid), IdempotencyHeader),
    responses((status = 201, body = ChargeView),
              (status = 404, description = "not_found: no such account of the caller's"),
              (status = 409, description = "invalid_state: no bank account, or not a main account"),
              (status = 422, description = "daily_limit_exceeded, bank_declined"),
              (status = 503, description = "bank_unavailable: nothing was charged, or the outcome is being resolved")))]
pub async fn charge(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    ApiPath(id): ApiPath<AccountId>,
    IdempotencyHeader(key): IdempotencyHeader,
    ApiJson(b): ApiJson<AmountBody>,
) -> ApiResult<Response> {
    let amount = b.amount()?;
    let idem = IdempotentRequest::new(key, "charge", &id.to_string(), &amount);
    Ok(reply(
        app.wallet.charge(me, id, amount, idem).await?,
        StatusCode::CREATED,
    ))
}

/// Moves money from the main account into a `free` savings account (never auto-charges).
/// Accepts `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/accounts/{id}/deposits", tag = "accounts", security(("bearer" = [])),
    request_body = AmountBody, params(("id" = String, Path, format = Uuid), IdempotencyHeader),
    responses((status = 201, body = DepositView),
              (status = 400, description = "validation_failed: a bad amount, or not a savings account"),
              (status = 404, description = "not_found: no such account of the caller's"),
              (status = 409, description = "invalid_state: a fixed savings account"),
              (status = 422, description = "insufficient_funds")))]
pub async fn deposit(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    ApiPath(id): ApiPath<AccountId>,
    IdempotencyHeader(key): IdempotencyHeader,
    ApiJson(b): ApiJson<AmountBody>,
) -> ApiResult<Response> {
    let amount = b.amount()?;
    let idem = IdempotentRequest::new(key, "deposit", &id.to_string(), &amount);
    Ok(reply(
        app.wallet.deposit_to_savings(me, id, amount, idem).await?,
        StatusCode::CREATED,
    ))
}

/// Today's charge limit (the Seoul business date), with when it resets.
#[utoipa::path(get, path = "/v1/charge-limit", tag = "accounts", security(("bearer" = [])),
    responses((status = 200, body = ChargeLimitView)))]
pub async fn charge_limit(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
) -> ApiResult<Json<ChargeLimitView>> {
    Ok(Json(app.wallet.charge_limit(me).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct HistoryQueryParams {
    /// From this instant (RFC 3339, inclusive).
    #[param(value_type = Option<String>, format = DateTime)]
    from: Option<jiff::Timestamp>,
    /// Before this instant (exclusive).
    #[param(value_type = Option<String>, format = DateTime)]
    to: Option<jiff::Timestamp>,
    /// Only entries of this kind.
    #[param(value_type = Option<schema::EntryKind>, inline)]
    kind: Option<String>,
    #[param(value_type = Option<schema::PageLimit>, inline)]
    limit: Option<u32>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
}

/// The account's history, newest first (ties broken by id), kept 12 months.
#[utoipa::path(get, path = "/v1/accounts/{id}/history", tag = "accounts", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid), HistoryQueryParams),
    responses((status = 200, body = minipay_services::views::Page<minipay_services::views::EntryView>),
              (status = 400, description = "validation_failed: a bad parameter, or `from` not before `to`"),
              (status = 404, description = "not_found")))]
pub async fn history(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    ApiPath(id): ApiPath<AccountId>,
    crate::extract::ApiQuery(q): crate::extract::ApiQuery<HistoryQueryParams>,
) -> ApiResult<Json<minipay_services::views::Page<minipay_services::views::EntryView>>> {
    let query = minipay_services::history::HistoryQuery::parse(q.from, q.to, q.kind.as_deref())?;
    let limit = minipay_core::request::PageLimit::parse(q.limit).map_err(ServiceError::validation)?;
    Ok(Json(
        app.wallet
            .account_history(me, id, query, limit, q.cursor.as_deref())
            .await?,
    ))
}

/// The account's statement for a month (Asia/Seoul): opening and closing balance and totals.
#[utoipa::path(get, path = "/v1/accounts/{id}/statements/{month}", tag = "accounts", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid),
           ("month" = String, Path, pattern = "^20[0-9]{2}-(0[1-9]|1[0-2])$", example = "2026-11")),
    responses((status = 200, body = minipay_services::views::StatementView),
              (status = 400, description = "validation_failed: not YYYY-MM, or a month not yet begun"),
              (status = 404, description = "not_found: no such account, or a month older than the 12 months kept")))]
pub async fn statement(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    ApiPath((id, month)): ApiPath<(AccountId, String)>,
) -> ApiResult<Json<minipay_services::views::StatementView>> {
    Ok(Json(app.wallet.statement(me, id, &month).await?))
}
