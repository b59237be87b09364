//! The simulators' HTTP side: run-time faults and the daily settlement file.

use super::{SimFaults, SimFaultsPatch, SimHandle};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use std::sync::Arc;

/// The sims served by one router.
type Sims = Arc<Vec<SimHandle>>;

/// Routes for any number of sims (mounted by the CLI's `sim` command or by tests):
/// - `GET /v1/admin/sims/{id}` → `200 SimFaults`;
/// - `PUT /v1/admin/sims/{id}` `{latency_ms?, error_rate?, down?, drop_cancels?}` → `200` with
///   the faults now in force; an unknown id → `404 not_found`;
/// - `GET /sim/settlement-file?date=YYYY-MM-DD[&sim=ID]` → `200 text/csv`; `sim` may be left
///   out when the router serves a single sim.
///
/// No authentication: a simulator is a test tool, never exposed in production.
pub fn http_router(sims: Vec<SimHandle>) -> Router {
    Router::new()
        .route("/v1/admin/sims/{id}", get(get_faults).put(put_faults))
        .route("/sim/settlement-file", get(settlement_file))
        .with_state(Arc::new(sims))
}

/// An answer in the API's error shape.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn not_found(what: &str) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "not_found",
            message: format!("no simulator {what}"),
        }
    }

    fn validation(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "validation_failed",
            message: message.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        (self.status, Json(body)).into_response()
    }
}

fn find<'a>(sims: &'a Sims, id: &str) -> Result<&'a SimHandle, ApiError> {
    sims.iter()
        .find(|s| s.id() == id)
        .ok_or_else(|| ApiError::not_found(id))
}

async fn get_faults(State(sims): State<Sims>, Path(id): Path<String>) -> Result<Json<SimFaults>, ApiError> {
    Ok(Json(find(&sims, &id)?.faults()))
}

async fn put_faults(
    State(sims): State<Sims>,
    Path(id): Path<String>,
    body: Result<Json<SimFaultsPatch>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<SimFaults>, ApiError> {
    let sim = find(&sims, &id)?;
    let Json(patch) = body.map_err(|e| ApiError::validation(e.body_text()))?;
    if patch.error_rate.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
        return Err(ApiError::validation("error_rate must lie between 0.0 and 1.0"));
    }
    Ok(Json(sim.patch_faults(patch)))
}

#[derive(Debug, Deserialize)]
struct SettlementQuery {
    date: String,
    sim: Option<String>,
}

async fn settlement_file(State(sims): State<Sims>, Query(query): Query<SettlementQuery>) -> Result<Response, ApiError> {
    let date: jiff::civil::Date = query
        .date
        .parse()
        .map_err(|_| ApiError::validation("date must be YYYY-MM-DD"))?;
    let sim = match (&query.sim, sims.as_slice()) {
        (Some(id), _) => find(&sims, id)?,
        (None, [only]) => only,
        (None, _) => return Err(ApiError::validation("name the simulator: ?sim=ID")),
    };
    let csv = sim.settlement_file(date);
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv).into_response())
}
