//! Split bills and notifications.

use super::{PageQuery, reply};
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiPath, ApiQuery, CurrentUser, IdempotencyHeader};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use minipay_core::UserId;
use minipay_core::request::PageLimit;
use minipay_services::views::{NotificationView, Page, SettlementView};
use minipay_services::{IdempotentRequest, NewSettlementRequest, ServiceError, schema};
use minipay_store::SettlementRole;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSettlementBody {
    /// At least 1 won per participant.
    #[schema(value_type = schema::Amount)]
    total_amount: i64,
    /// `equal` (shares differ by at most 1 won) or `random` (each share at least 1 won).
    #[schema(value_type = schema::SplitMethod)]
    method: String,
    /// 1–100 distinct users; the requester may be one of them (their share is paid at once).
    #[schema(value_type = schema::ParticipantUserIds)]
    participant_user_ids: Vec<UserId>,
    #[schema(value_type = Option<schema::Memo>)]
    memo: Option<String>,
}

/// Splits a bill among participants; shares always sum exactly to the total. Accepts
/// `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/settlements", tag = "settlements", operation_id = "create_settlement", security(("bearer" = [])),
    request_body = NewSettlementBody, params(IdempotencyHeader),
    responses((status = 201, body = SettlementView, links(
                  ("get" = (operation_id = "get_settlement", parameters(("id" = "$response.body#/id")))),
                  ("pay" = (operation_id = "pay_settlement", parameters(("id" = "$response.body#/id")))))),
              (status = 400, description = "validation_failed: a bad field, or less than 1 won per participant"),
              (status = 404, description = "not_found: unknown participant")))]
pub async fn create(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    IdempotencyHeader(key): IdempotencyHeader,
    ApiJson(b): ApiJson<NewSettlementBody>,
) -> ApiResult<Response> {
    let req = NewSettlementRequest::parse(b.total_amount, &b.method, b.participant_user_ids, b.memo.as_deref())?;
    let idem = IdempotentRequest::new(key, "settlement", "", &req);
    Ok(reply(
        app.wallet.create_settlement(me, req, idem).await?,
        StatusCode::CREATED,
    ))
}

#[utoipa::path(get, path = "/v1/settlements/{id}", tag = "settlements", operation_id = "get_settlement", security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = SettlementView), (status = 404, description = "not_found")))]
pub async fn get(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<SettlementView>> {
    Ok(Json(app.wallet.settlement_of(me, id).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    /// Settlements the caller requested (default), or takes part in.
    #[param(value_type = Option<schema::SettlementRole>, inline)]
    role: Option<String>,
    #[param(value_type = Option<schema::PageLimit>, inline)]
    limit: Option<u32>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
}

/// Settlements the caller requested, or takes part in; newest first.
#[utoipa::path(get, path = "/v1/settlements", tag = "settlements", operation_id = "list_settlements", security(("bearer" = [])), params(ListQuery),
    responses((status = 200, body = Page<SettlementView>)))]
pub async fn list(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<SettlementView>>> {
    let role = match q.role.as_deref() {
        None | Some("requester") => SettlementRole::Requester,
        Some("participant") => SettlementRole::Participant,
        Some(_) => return Err(ServiceError::validation("role must be \"requester\" or \"participant\"").into()),
    };
    let limit = PageLimit::parse(q.limit).map_err(ServiceError::validation)?;
    Ok(Json(
        app.wallet.settlements(me, role, limit, q.cursor.as_deref()).await?,
    ))
}

/// Pays the caller's share to the requester with a normal immediate transfer (auto-charge
/// applies). Paying twice is `409 invalid_state`. Accepts `Idempotency-Key`.
#[utoipa::path(post, path = "/v1/settlements/{id}/pay", tag = "settlements", operation_id = "pay_settlement",
    security(("bearer" = [])),
    params(("id" = String, Path, format = Uuid), IdempotencyHeader),
    responses((status = 200, body = SettlementView), (status = 404, description = "not_found"),
              (status = 409, description = "invalid_state: already paid, or not a participant"),
              (status = 422, description = "insufficient_funds, daily_limit_exceeded, bank_declined"),
              (status = 503, description = "bank_unavailable")))]
pub async fn pay(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    ApiPath(id): ApiPath<Uuid>,
    IdempotencyHeader(key): IdempotencyHeader,
) -> ApiResult<Response> {
    let idem = IdempotentRequest::new(key, "settlement_pay", &id.to_string(), &());
    Ok(reply(app.wallet.pay_settlement(me, id, idem).await?, StatusCode::OK))
}

/// The caller's notifications, newest first.
#[utoipa::path(get, path = "/v1/notifications", tag = "notifications", security(("bearer" = [])), params(PageQuery),
    responses((status = 200, body = Page<NotificationView>)))]
pub async fn notifications(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<NotificationView>>> {
    let limit = PageLimit::parse(q.limit).map_err(ServiceError::validation)?;
    Ok(Json(app.wallet.notifications(me, limit, q.cursor.as_deref()).await?))
}
