//! Transfers between users.

use super::reply;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, CurrentUser, IdempotencyHeader};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use minipay_core::request::PageLimit;
use minipay_core::transfer::TransferStatus;
use minipay_core::{AccountId, TransferId, UserId};
use minipay_services::views::{Page, TransferView};
use minipay_services::{IdempotentRequest, PendingAction, ServiceError, TransferListFilter, TransferRequest};
use minipay_store::Direction;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferBody {
    /// The receiver (exactly one of `to_user_id` and `to_account_id`).
    #[schema(value_type = Option<String>, format = Uuid)]
    to_user_id: Option<UserId>,
    /// The receiver's main account.
    #[schema(value_type = Option<String>, format = Uuid)]
    to_account_id: Option<AccountId>,
    amount: i64,
    /// The sender name the receiver sees (default: the sender's name).
    display_name: Option<String>,
    memo: Option<String>,
    /// `immediate` or `pending`; overrides the sender's `transfer_mode` for this transfer.
    mode: Option<String>,
}

/// Sends money to another user's main account, charging the shortfall from the bank in
/// 10,000-won units under the daily limit. Accepts `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/transfers", tag = "transfers", security(("bearer" = [])), request_body = TransferBody,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = TransferView), (status = 400, description = "validation_failed"),
              (status = 404, description = "not_found: unknown receiver"),
              (status = 422, description = "insufficient_funds, daily_limit_exceeded, bank_declined, idempotency_key_reused"),
              (status = 503, description = "bank_unavailable")))]
pub async fn create(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    IdempotencyHeader(key): IdempotencyHeader,
    ApiJson(b): ApiJson<TransferBody>,
) -> ApiResult<Response> {
    let req = TransferRequest::parse(
        b.to_user_id,
        b.to_account_id,
        b.amount,
        b.display_name.as_deref(),
        b.memo.as_deref(),
        b.mode.as_deref(),
    )?;
    let idem = IdempotentRequest::new(key, "transfer", "", &req);
    Ok(reply(app.wallet.transfer(me, req, idem).await?, StatusCode::CREATED))
}

#[utoipa::path(get, path = "/v1/transfers/{id}", tag = "transfers", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = TransferView), (status = 404, description = "not_found")))]
pub async fn get(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    ApiPath(id): ApiPath<TransferId>,
) -> ApiResult<Json<TransferView>> {
    Ok(Json(app.wallet.transfer_of(me, id).await?))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// `incoming` or `outgoing` (default: both).
    direction: Option<String>,
    /// `pending`, `completed`, `canceled` or `expired`.
    status: Option<String>,
    /// 1–200, default 50.
    limit: Option<u32>,
    cursor: Option<String>,
}

/// The caller's transfers, newest first.
#[utoipa::path(get, path = "/v1/transfers", tag = "transfers", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = Page<TransferView>), (status = 400, description = "validation_failed")))]
pub async fn list(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<TransferView>>> {
    let direction = match q.direction.as_deref() {
        None => None,
        Some("incoming") => Some(Direction::Incoming),
        Some("outgoing") => Some(Direction::Outgoing),
        Some(_) => return Err(ServiceError::validation("direction must be \"incoming\" or \"outgoing\"").into()),
    };
    let status = q
        .status
        .as_deref()
        .map(|s| TransferStatus::parse(s).ok_or_else(|| ServiceError::validation("unknown status")))
        .transpose()?;
    let limit = PageLimit::parse(q.limit).map_err(ServiceError::validation)?;
    let filter = TransferListFilter { direction, status };
    Ok(Json(
        app.wallet.transfers(me, filter, limit, q.cursor.as_deref()).await?,
    ))
}

/// Accepts a pending transfer (the receiver): the held money moves. Exactly one of accept,
/// cancel and the 72-hour expiry wins; the others get `409 invalid_state`. Accepts
/// `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/transfers/{id}/accept", tag = "transfers", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = TransferView), (status = 404, description = "not_found"),
              (status = 409, description = "invalid_state: not pending any more, or not the receiver")))]
pub async fn accept(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    ApiPath(id): ApiPath<TransferId>,
    IdempotencyHeader(key): IdempotencyHeader,
) -> ApiResult<Response> {
    let idem = IdempotentRequest::new(key, "accept", &id.to_string(), &());
    Ok(reply(
        app.wallet.resolve_pending(me, id, PendingAction::Accept, idem).await?,
        StatusCode::OK,
    ))
}

/// Cancels a pending transfer (the sender): the held money is released. Accepts
/// `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/transfers/{id}/cancel", tag = "transfers", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = TransferView), (status = 404, description = "not_found"),
              (status = 409, description = "invalid_state: not pending any more, or not the sender")))]
pub async fn cancel(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    ApiPath(id): ApiPath<TransferId>,
    IdempotencyHeader(key): IdempotencyHeader,
) -> ApiResult<Response> {
    let idem = IdempotentRequest::new(key, "cancel", &id.to_string(), &());
    Ok(reply(
        app.wallet.resolve_pending(me, id, PendingAction::Cancel, idem).await?,
        StatusCode::OK,
    ))
}
