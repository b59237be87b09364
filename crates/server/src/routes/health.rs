//! Liveness, readiness and Prometheus metrics.

use crate::error::error_response;
use crate::state::AppState;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use minipay_services::ErrorCode;

/// The process is up.
#[utoipa::path(get, path = "/health/live", tag = "operations",
    responses((status = 200, body = String, content_type = "text/plain", example = "ok")))]
pub async fn live() -> &'static str {
    "ok"
}

/// The process can serve: the database answers.
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses((status = 200, body = String, content_type = "text/plain", example = "ok"),
              (status = 503, description = "unavailable: the database does not answer")))]
pub async fn ready(State(app): State<AppState>) -> Response {
    match app.wallet.store().ping().await {
        Ok(()) => "ok".into_response(),
        Err(e) => {
            tracing::warn!(error = ?e, "readiness check failed");
            error_response(ErrorCode::Unavailable, "the database does not answer")
        }
    }
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, body = String, content_type = "text/plain")))]
pub async fn metrics(State(app): State<AppState>) -> String {
    app.metrics.render()
}
