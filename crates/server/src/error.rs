//! Turning service errors and extractor rejections into `{"error": {"code", "message"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use minipay_services::error::error_body;
use minipay_services::{ErrorCode, ServiceError};

/// Any error a handler returns. Internal causes are logged with their chain, never shown.
#[derive(Debug)]
pub struct ApiError(pub ServiceError);

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    /// Logs by whose fault it is: a server fault at ERROR with its cause chain; an outside
    /// system's at WARN; a refused login or a missing permission at INFO (worth seeing when
    /// someone probes); any other client error at DEBUG — the client has the answer, and a
    /// fuzzer or a broken client must not flood the log.
    fn into_response(self) -> Response {
        let code = self.0.code();
        match (&self.0, code.status()) {
            (ServiceError::Internal(cause), _) => tracing::error!(error = ?cause, "request failed"),
            (_, 500..) => tracing::warn!(code = code.as_str(), error = %self.0, "request failed"),
            (_, 401 | 403 | 429) => tracing::info!(code = code.as_str(), error = %self.0, "request refused"),
            _ => tracing::debug!(code = code.as_str(), error = %self.0, "request refused"),
        }
        error_response(code, &self.0.to_string())
    }
}

pub fn error_response(code: ErrorCode, message: &str) -> Response {
    let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, Json(error_body(code, message))).into_response()
}

pub fn validation(msg: impl std::fmt::Display) -> ApiError {
    ApiError(ServiceError::validation(msg))
}

pub type ApiResult<T> = Result<T, ApiError>;
