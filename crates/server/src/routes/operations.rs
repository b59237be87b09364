//! Operations across the systems (admin token): alerts (listed, acknowledged), dead letters,
//! and the event engine's state.

use crate::error::ApiResult;
use crate::extract::{Admin, ApiPath, ApiQuery};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use minipay_core::request::PageLimit;
use minipay_core::time::plausible_instant;
use minipay_events::EngineStats;
use minipay_services::ServiceError;
use minipay_services::operations::{AlertView, DeadLetterView};
use minipay_services::schema;
use minipay_services::views::Page;
use minipay_store::{AlertFilter, DeadLetterFilter};
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AlertsQuery {
    /// Only alerts of this kind (e.g. `remittance_stuck`).
    kind: Option<String>,
    /// `true`: only acknowledged ones; `false`: only those still open.
    acknowledged: Option<bool>,
    /// Only alerts raised at or after this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    since: Option<jiff::Timestamp>,
    #[param(value_type = Option<schema::PageLimit>, inline)]
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Alerts raised for operators, newest first (each cause once).
#[utoipa::path(get, path = "/v1/admin/alerts", tag = "admin", operation_id = "list_alerts", security(("admin" = [])),
    params(AlertsQuery), responses((status = 200, body = Page<AlertView>)))]
pub async fn alerts(
    State(app): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<AlertsQuery>,
) -> ApiResult<Json<Page<AlertView>>> {
    let limit = PageLimit::parse(q.limit).map_err(ServiceError::validation)?;
    Ok(Json(
        app.operations
            .alerts(
                &AlertFilter {
                    kind: q.kind,
                    acknowledged: q.acknowledged,
                    since: q
                        .since
                        .map(|t| plausible_instant(t, "since").map_err(ServiceError::validation))
                        .transpose()?,
                },
                limit,
                q.cursor.as_deref(),
            )
            .await?,
    ))
}

/// An operator acknowledges an alert (acknowledging again keeps the first time).
#[utoipa::path(post, path = "/v1/admin/alerts/{id}/ack", tag = "admin", operation_id = "acknowledge_alert",
    security(("admin" = [])), params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = AlertView), (status = 404, description = "not_found")))]
pub async fn acknowledge(
    State(app): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<AlertView>> {
    Ok(Json(app.operations.acknowledge_alert(id).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeadLettersQuery {
    /// Only this failing point, e.g. `remittance.payout`.
    kind: Option<String>,
    /// `true`: only resolved ones; `false`: only those still open.
    resolved: Option<bool>,
    #[param(value_type = Option<schema::PageLimit>, inline)]
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Work that failed its last attempt, newest first: where it stopped and why.
#[utoipa::path(get, path = "/v1/admin/dead-letters", tag = "admin", operation_id = "list_dead_letters",
    security(("admin" = [])), params(DeadLettersQuery), responses((status = 200, body = Page<DeadLetterView>)))]
pub async fn dead_letters(
    State(app): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<DeadLettersQuery>,
) -> ApiResult<Json<Page<DeadLetterView>>> {
    let limit = PageLimit::parse(q.limit).map_err(ServiceError::validation)?;
    let filter = DeadLetterFilter {
        kind: q.kind,
        resolved: q.resolved,
    };
    Ok(Json(
        app.operations.dead_letters(&filter, limit, q.cursor.as_deref()).await?,
    ))
}

/// The event engine: its mode, the outbox's backlog and lag, and what this instance has
/// published, seen redelivered, retried and dead-lettered since it started.
#[utoipa::path(get, path = "/v1/admin/events", tag = "admin", operation_id = "event_engine",
    security(("admin" = [])), responses((status = 200, body = Object)))]
pub async fn events(State(app): State<AppState>, _admin: Admin) -> ApiResult<Json<EngineStats>> {
    let stats = app.events.stats().await.map_err(ServiceError::Internal)?;
    Ok(Json(stats))
}
