//! Payments and refunds (API-business.md, "Payments and refunds"): a business takes payments
//! from wallet users' bank accounts and refunds them (API key); a user reads their own (user
//! token); customer support reads every payment with its refunds and bank calls (admin token).

use super::reply;
use crate::error::ApiResult;
use crate::extract::{Admin, ApiJson, ApiPath, ApiQuery, CurrentBusiness, CurrentUser, IdempotencyHeader};
use crate::routes::PageQuery;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use minipay_core::payment::{OrderId, PaymentStatus};
use minipay_core::request::PageLimit;
use minipay_core::{BusinessId, PaymentId, RefundId, UserId};
use minipay_payments::views::{AcceptGroupsView, BalanceView, PaymentHistoryView, PaymentView, RefundView};
use minipay_payments::{NewPayment, NewRefund};
use minipay_services::views::Page;
use minipay_services::{ServiceError, schema};
use minipay_store::PaymentFilter;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentBody {
    /// The wallet user who pays, from their registered bank account.
    #[schema(value_type = String, format = Uuid)]
    user_id: UserId,
    #[schema(value_type = schema::Amount)]
    amount: i64,
    #[schema(value_type = schema::OrderId)]
    order_id: String,
    #[schema(value_type = Option<schema::PaymentDescription>)]
    description: Option<String>,
}

/// Takes `amount` from the user's registered bank account for the calling business. Answers
/// `202` (`accepted`) as soon as the request is recorded; the bank is called in the background
/// (`processing`, then `paid` or `failed`). `Idempotency-Key` is required: the same key and
/// body return the same payment, and so does the same `order_id` with the same body.
#[utoipa::path(post, path = "/v1/biz/payments", tag = "business API", operation_id = "create_payment",
    security(("api_key" = [])), request_body = PaymentBody, params(IdempotencyHeader),
    responses((status = 202, body = PaymentView, links(
                  ("get" = (operation_id = "get_payment", parameters(("id" = "$response.body#/id")))))),
              (status = 400, description = "validation_failed: a bad field, or no Idempotency-Key"),
              (status = 404, description = "not_found: no such user"),
              (status = 409, description = "conflict: the order_id is taken by another payment, or a request with \
                  this Idempotency-Key is still being processed; invalid_state: the user has no registered bank \
                  account"),
              (status = 422, description = "idempotency_key_reused")))]
pub async fn create(
    State(app): State<AppState>,
    CurrentBusiness(me): CurrentBusiness,
    IdempotencyHeader(key): IdempotencyHeader,
    ApiJson(b): ApiJson<PaymentBody>,
) -> ApiResult<Response> {
    let req = NewPayment::parse(b.user_id, b.amount, &b.order_id, b.description.as_deref())?;
    Ok(reply(
        app.payments.request_payment(me, req, key).await?,
        StatusCode::ACCEPTED,
    ))
}

/// A payment of the calling business.
#[utoipa::path(get, path = "/v1/biz/payments/{id}", tag = "business API", operation_id = "get_payment",
    security(("api_key" = [])), params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = PaymentView),
              (status = 404, description = "not_found: no such payment, or someone else's")))]
pub async fn get(
    State(app): State<AppState>,
    CurrentBusiness(me): CurrentBusiness,
    ApiPath(id): ApiPath<PaymentId>,
) -> ApiResult<Json<PaymentView>> {
    Ok(Json(app.payments.payment_of(me, id).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[param(value_type = Option<schema::PaymentStatus>, inline)]
    status: Option<String>,
    #[param(value_type = Option<schema::OrderId>, inline)]
    order_id: Option<String>,
    #[param(value_type = Option<schema::PageLimit>, inline)]
    limit: Option<u32>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
}

/// An `order_id` filter: a well-formed order id, or `400`.
fn order_filter(raw: Option<String>) -> Result<Option<String>, ServiceError> {
    raw.map(|o| {
        OrderId::parse(&o)
            .map(|o| o.as_str().to_owned())
            .map_err(ServiceError::validation)
    })
    .transpose()
}

fn status_filter(raw: Option<&str>) -> Result<Option<PaymentStatus>, ServiceError> {
    raw.map(|s| PaymentStatus::parse(s).ok_or_else(|| ServiceError::validation(format!("unknown status {s:?}"))))
        .transpose()
}

/// The calling business's payments, newest first.
#[utoipa::path(get, path = "/v1/biz/payments", tag = "business API", operation_id = "list_payments",
    security(("api_key" = [])), params(ListQuery), responses((status = 200, body = Page<PaymentView>)))]
pub async fn list(
    State(app): State<AppState>,
    CurrentBusiness(me): CurrentBusiness,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> ApiResult<Json<Page<PaymentView>>> {
    let filter = PaymentFilter {
        business: Some(me),
        status: status_filter(q.status.as_deref())?,
        order_id: order_filter(q.order_id)?,
        user: None,
    };
    let limit = PageLimit::parse(q.limit).map_err(ServiceError::validation)?;
    Ok(Json(app.payments.payments(&filter, limit, q.cursor.as_deref()).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundBody {
    #[schema(value_type = schema::Amount)]
    amount: i64,
    #[schema(value_type = Option<schema::RefundReason>)]
    reason: Option<String>,
}

/// Refunds `amount` of a paid payment to the user's bank account, from the business's balance.
/// Answers `202` (`accepted`) once the amount is taken from the balance; the bank is called in
/// the background. Partial refunds add up to at most the payment.
#[utoipa::path(post, path = "/v1/biz/payments/{id}/refunds", tag = "business API", operation_id = "create_refund",
    security(("api_key" = [])), request_body = RefundBody,
    params(("id" = String, Path, format = Uuid), IdempotencyHeader),
    responses((status = 202, body = RefundView),
              (status = 400, description = "validation_failed: a bad field, or no Idempotency-Key"),
              (status = 404, description = "not_found: no such payment, or someone else's"),
              (status = 409, description = "invalid_state: the payment is not paid; conflict: a request with this \
                  Idempotency-Key is still being processed"),
              (status = 422, description = "refund_exceeds_payment: refunds would add up to more than the payment; \
                  insufficient_funds: the business's balance is short; idempotency_key_reused")))]
pub async fn refund(
    State(app): State<AppState>,
    CurrentBusiness(me): CurrentBusiness,
    IdempotencyHeader(key): IdempotencyHeader,
    ApiPath(id): ApiPath<PaymentId>,
    ApiJson(b): ApiJson<RefundBody>,
) -> ApiResult<Response> {
    let req = NewRefund::parse(b.amount, b.reason.as_deref())?;
    Ok(reply(
        app.payments.request_refund(me, id, req, key).await?,
        StatusCode::ACCEPTED,
    ))
}

/// The refunds of a payment of the calling business, oldest first.
#[utoipa::path(get, path = "/v1/biz/payments/{id}/refunds", tag = "business API", operation_id = "list_refunds",
    security(("api_key" = [])), params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = Vec<RefundView>),
              (status = 404, description = "not_found: no such payment, or someone else's")))]
pub async fn refunds(
    State(app): State<AppState>,
    CurrentBusiness(me): CurrentBusiness,
    ApiPath(id): ApiPath<PaymentId>,
) -> ApiResult<Json<Vec<RefundView>>> {
    Ok(Json(app.payments.refunds_of(me, id).await?))
}

/// A refund of a payment of the calling business.
#[utoipa::path(get, path = "/v1/biz/refunds/{id}", tag = "business API", operation_id = "get_refund",
    security(("api_key" = [])), params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = RefundView),
              (status = 404, description = "not_found: no such refund, or someone else's")))]
pub async fn get_refund(
    State(app): State<AppState>,
    CurrentBusiness(me): CurrentBusiness,
    ApiPath(id): ApiPath<RefundId>,
) -> ApiResult<Json<RefundView>> {
    Ok(Json(app.payments.refund_of(me, id).await?))
}

/// The calling business's balance on the platform.
#[utoipa::path(get, path = "/v1/biz/balance", tag = "business API", operation_id = "get_business_balance",
    security(("api_key" = [])), responses((status = 200, body = BalanceView)))]
pub async fn balance(
    State(app): State<AppState>,
    CurrentBusiness(me): CurrentBusiness,
) -> ApiResult<Json<BalanceView>> {
    Ok(Json(app.payments.balance(me).await?))
}

/// The caller's payments to businesses, newest first.
#[utoipa::path(get, path = "/v1/payments", tag = "payments", operation_id = "list_my_payments",
    security(("bearer" = [])), params(PageQuery), responses((status = 200, body = Page<PaymentView>)))]
pub async fn mine(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<PaymentView>>> {
    let limit = PageLimit::parse(q.limit).map_err(ServiceError::validation)?;
    Ok(Json(
        app.payments.payments_of_user(me, limit, q.cursor.as_deref()).await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AdminListQuery {
    #[param(value_type = Option<String>, format = Uuid)]
    user_id: Option<UserId>,
    #[param(value_type = Option<String>, format = Uuid)]
    business_id: Option<BusinessId>,
    #[param(value_type = Option<schema::OrderId>, inline)]
    order_id: Option<String>,
    #[param(value_type = Option<schema::PaymentStatus>, inline)]
    status: Option<String>,
    #[param(value_type = Option<schema::PageLimit>, inline)]
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Customer support: payments with every refund and every bank call, newest first, by user,
/// business, order id and status.
#[utoipa::path(get, path = "/v1/admin/payments", tag = "admin", operation_id = "admin_list_payments",
    security(("admin" = [])), params(AdminListQuery), responses((status = 200, body = Page<PaymentHistoryView>)))]
pub async fn admin_list(
    State(app): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<AdminListQuery>,
) -> ApiResult<Json<Page<PaymentHistoryView>>> {
    let filter = PaymentFilter {
        business: q.business_id,
        user: q.user_id,
        order_id: order_filter(q.order_id)?,
        status: status_filter(q.status.as_deref())?,
    };
    let limit = PageLimit::parse(q.limit).map_err(ServiceError::validation)?;
    Ok(Json(
        app.payments
            .payment_histories(&filter, limit, q.cursor.as_deref())
            .await?,
    ))
}

/// A payment with every refund and every bank call.
#[utoipa::path(get, path = "/v1/admin/payments/{id}", tag = "admin", operation_id = "admin_get_payment",
    security(("admin" = [])), params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = PaymentHistoryView), (status = 404, description = "not_found")))]
pub async fn admin_get(
    State(app): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<PaymentId>,
) -> ApiResult<Json<PaymentHistoryView>> {
    Ok(Json(app.payments.payment_history(id).await?))
}

/// What this instance's accept groups have recorded since it started: payment and refund
/// requests recorded by a group transaction (each instance counts its own).
#[utoipa::path(get, path = "/v1/admin/payment-groups", tag = "admin", operation_id = "payment_groups",
    security(("admin" = [])),
    responses((status = 200, body = AcceptGroupsView)))]
pub async fn accept_groups(State(app): State<AppState>, _admin: Admin) -> Json<AcceptGroupsView> {
    Json(app.payments.accept_groups())
}
