//! Operator routes of the card approval gateway: merchants, terminals, routing.
//!
//! API-gateway.md, "Merchants, terminals and their keys" and "Upstreams and routing". Every
//! route takes the admin token.

use super::PageQuery;
use crate::error::ApiResult;
use crate::extract::{Admin, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use minipay_core::request::PageLimit;
use minipay_gateway::admin::{DisabledTerminal, IssuedTerminal, MerchantView, NewMerchant};
use minipay_gateway::routing::{RoutingConfig, RoutingVersionView};
use minipay_services::ServiceError;
use minipay_services::group_commit::GroupStats;
use minipay_services::views::Page;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// Who a routing change is recorded as made by: the admin token is shared and names no
/// person, so every change through it is `admin`.
const ADMIN_ACTOR: &str = "admin";

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OnboardMerchantBody {
    /// 1–100 characters (trimmed).
    #[schema(example = "가나마트")]
    name: String,
    /// Business registration number (사업자등록번호): 10 digits, written `1234567890` or
    /// `123-45-67890`; its check digit must be right.
    #[schema(example = "124-81-00998")]
    registration_number: String,
}

/// Onboards a merchant (가맹점).
#[utoipa::path(post, path = "/v1/admin/merchants", tag = "gateway", security(("admin" = [])),
    request_body = OnboardMerchantBody,
    responses((status = 201, body = MerchantView),
              (status = 400, description = "validation_failed: a field is missing or malformed, or the registration \
                  number's check digit is wrong"),
              (status = 409, description = "conflict: a merchant with this registration number exists")))]
pub async fn onboard_merchant(
    State(app): State<AppState>,
    _admin: Admin,
    ApiJson(b): ApiJson<OnboardMerchantBody>,
) -> ApiResult<(StatusCode, Json<MerchantView>)> {
    let req = NewMerchant::parse(&b.name, &b.registration_number)?;
    Ok((StatusCode::CREATED, Json(app.gateway.onboard_merchant(req).await?)))
}

/// Every merchant, newest first.
#[utoipa::path(get, path = "/v1/admin/merchants", tag = "gateway", operation_id = "list_merchants",
    security(("admin" = [])), params(PageQuery), responses((status = 200, body = Page<MerchantView>)))]
pub async fn list_merchants(
    State(app): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<MerchantView>>> {
    let limit = PageLimit::parse(q.limit).map_err(ServiceError::validation)?;
    Ok(Json(app.gateway.merchants(limit, q.cursor.as_deref()).await?))
}

/// One merchant.
#[utoipa::path(get, path = "/v1/admin/merchants/{id}", tag = "gateway", operation_id = "get_merchant",
    security(("admin" = [])), params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = MerchantView), (status = 404, description = "not_found")))]
pub async fn get_merchant(
    State(app): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<MerchantView>> {
    Ok(Json(app.gateway.merchant(id).await?))
}

/// Issues a terminal for the merchant; its key is in this answer only (stored sealed). The
/// body, if any, is `{}`.
#[utoipa::path(post, path = "/v1/admin/merchants/{id}/terminals", tag = "gateway", security(("admin" = [])),
    params(("id" = String, Path, format = Uuid)),
    responses((status = 201, body = IssuedTerminal), (status = 404, description = "not_found: no such merchant")))]
pub async fn issue_terminal(
    State(app): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<(StatusCode, Json<IssuedTerminal>)> {
    Ok((StatusCode::CREATED, Json(app.gateway.issue_terminal(id).await?)))
}

/// Disables a terminal at once: its requests are refused from now on. Disabling it again
/// changes nothing and answers the first instant.
#[utoipa::path(post, path = "/v1/admin/terminals/{terminal_id}/disable", tag = "gateway",
    security(("admin" = [])), params(("terminal_id" = String, Path)),
    responses((status = 200, body = DisabledTerminal), (status = 404, description = "not_found")))]
pub async fn disable_terminal(
    State(app): State<AppState>,
    _admin: Admin,
    ApiPath(terminal_id): ApiPath<String>,
) -> ApiResult<Json<DisabledTerminal>> {
    Ok(Json(app.gateway.disable_terminal(&terminal_id).await?))
}

/// The routing configuration in force and its version.
#[utoipa::path(get, path = "/v1/admin/routing", tag = "gateway", operation_id = "get_routing",
    security(("admin" = [])),
    responses((status = 200, body = RoutingVersionView),
              (status = 404, description = "not_found: routing was never configured")))]
pub async fn get_routing(State(app): State<AppState>, _admin: Admin) -> ApiResult<Json<RoutingVersionView>> {
    let current = app.gateway.routing().await?;
    Ok(Json(current.ok_or(ServiceError::NotFound("routing configuration"))?))
}

/// Replaces the routing configuration: kept as the next version (with who and when) and in
/// force from this answer on, without a restart. Changes are recorded as made by `admin`
/// (the admin token names no person).
#[utoipa::path(put, path = "/v1/admin/routing", tag = "gateway", operation_id = "put_routing",
    security(("admin" = [])), request_body = RoutingConfig,
    responses((status = 200, body = RoutingVersionView),
              (status = 400, description = "validation_failed: an unknown field, a bad id, BIN, endpoint or dialect, \
                  an id or BIN used twice, or no VAN with a weight"),
              (status = 409, description = "conflict: changed concurrently too often; try again")))]
pub async fn put_routing(
    State(app): State<AppState>,
    _admin: Admin,
    ApiJson(config): ApiJson<RoutingConfig>,
) -> ApiResult<Json<RoutingVersionView>> {
    Ok(Json(app.gateway.put_routing(config, ADMIN_ACTOR).await?))
}

/// Every routing version, newest first.
#[utoipa::path(get, path = "/v1/admin/routing/versions", tag = "gateway", operation_id = "list_routing_versions",
    security(("admin" = [])), params(PageQuery), responses((status = 200, body = Page<RoutingVersionView>)))]
pub async fn routing_versions(
    State(app): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Json<Page<RoutingVersionView>>> {
    let limit = PageLimit::parse(q.limit).map_err(ServiceError::validation)?;
    Ok(Json(app.gateway.routing_history(limit, q.cursor.as_deref()).await?))
}

/// Every upstream with its breaker (shared by all instances) and the last hour's counts.
#[utoipa::path(get, path = "/v1/admin/upstreams", tag = "gateway", operation_id = "list_upstreams",
    security(("admin" = [])),
    responses((status = 200, body = Vec<minipay_gateway::upstreams::UpstreamView>)))]
pub async fn upstreams(
    State(app): State<AppState>,
    _admin: Admin,
) -> ApiResult<Json<Vec<minipay_gateway::upstreams::UpstreamView>>> {
    Ok(Json(app.gateway.upstreams().await?))
}

/// One group commit's counters.
#[derive(Serialize, ToSchema)]
pub struct GroupCommitView {
    /// Groups run (each one atomic write; one that failed is counted too).
    groups: u64,
    /// Requests they carried (a request recorded on its own is not counted).
    requests: u64,
    /// The most requests one group carried.
    largest: u64,
}

impl From<GroupStats> for GroupCommitView {
    fn from(s: GroupStats) -> Self {
        Self {
            groups: s.batches,
            requests: s.commands,
            largest: s.largest,
        }
    }
}

/// This instance's approval group commits (each instance counts its own).
#[derive(Serialize, ToSchema)]
pub struct ApprovalGroupsView {
    /// Whether approvals are grouped at all (`MINIPAY_APPROVAL_BATCH_MAX` above 1).
    enabled: bool,
    /// Requests recorded and routed before they go upstream.
    intake: Option<GroupCommitView>,
    /// Answers recorded before the terminal gets them.
    finish: Option<GroupCommitView>,
}

/// This instance's approval group commits: how many transactions carried how many requests.
#[utoipa::path(get, path = "/v1/admin/approval-groups", tag = "gateway", operation_id = "approval_groups",
    security(("admin" = [])),
    responses((status = 200, body = ApprovalGroupsView)))]
pub async fn approval_groups(State(app): State<AppState>, _admin: Admin) -> Json<ApprovalGroupsView> {
    let stats = app.gateway.group_stats();
    Json(ApprovalGroupsView {
        enabled: stats.is_some(),
        intake: stats.map(|(intake, _)| intake.into()),
        finish: stats.map(|(_, finish)| finish.into()),
    })
}
