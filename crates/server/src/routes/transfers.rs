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
use minipay_services::{IdempotentRequest, PendingAction, ServiceError, TransferListFilter, TransferRequest, schema};
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
    #[schema(value_type = schema::Amount)]
    amount: i64,
    /// The sender name the receiver sees (default: the sender's name).
    #[schema(value_type = Option<schema::PersonName>)]
    display_name: Option<String>,
    #[schema(value_type = Option<schema::Memo>)]
    memo: Option<String>,
    /// Overrides the sender's `transfer_mode` for this transfer.
    #[schema(value_type = Option<schema::TransferMode>)]
    mode: Option<String>,
}

/// Sends money to another user's main account, charging the shortfall from the bank in
/// 10,000-won units under the daily limit. Accepts `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/transfers", tag = "transfers", operation_id = "create_transfer", security(("bearer" = [])),
    request_body = TransferBody, params(IdempotencyHeader),
    responses((status = 201, body = TransferView, links(
                  ("get" = (operation_id = "get_transfer", parameters(("id" = "$response.body#/id")))),
                  ("accept" = (operation_id = "accept_transfer", parameters(("id" = "$response.body#/id")))),
                  ("cancel" = (operation_id = "cancel_transfer", parameters(("id" = "$response.body#/id")))))),
              (status = 400, description = "validation_failed: a bad field, not exactly one receiver, a receiver's \
                  account that is not a main account, or sending to yourself"),
              (status = 404, description = "not_found: unknown receiver"),
              (status = 422, description = "insufficient_funds, daily_limit_exceeded, bank_declined"),
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

#[utoipa::path(get, path = "/v1/transfers/{id}", tag = "transfers", operation_id = "get_transfer", security(("bearer" = [])),
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
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Only incoming or only outgoing transfers (default: both).
    #[param(value_type = Option<schema::TransferDirection>, inline)]
    direction: Option<String>,
    /// Only transfers in this state.
    #[param(value_type = Option<schema::TransferStatus>, inline)]
    status: Option<String>,
    #[param(value_type = Option<schema::PageLimit>, inline)]
    limit: Option<u32>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
}

/// The caller's transfers, newest first.
#[utoipa::path(get, path = "/v1/transfers", tag = "transfers", operation_id = "list_transfers", security(("bearer" = [])),
    params(ListQuery), responses((status = 200, body = Page<TransferView>)))]
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
#[utoipa::path(post, path = "/v1/transfers/{id}/accept", tag = "transfers", operation_id = "accept_transfer",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid), IdempotencyHeader),
    responses((status = 200, body = TransferView), (status = 403, description = "forbidden: the sender cannot accept"),
              (status = 404, description = "not_found: no such transfer, or the caller is neither party"),
              (status = 409, description = "invalid_state: the transfer is no longer pending")))]
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
#[utoipa::path(post, path = "/v1/transfers/{id}/cancel", tag = "transfers", operation_id = "cancel_transfer",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid), IdempotencyHeader),
    responses((status = 200, body = TransferView), (status = 403, description = "forbidden: the receiver cannot cancel"),
              (status = 404, description = "not_found: no such transfer, or the caller is neither party"),
              (status = 409, description = "invalid_state: the transfer is no longer pending")))]
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
