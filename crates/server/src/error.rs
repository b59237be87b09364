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
    fn into_response(self) -> Response {
        if let ServiceError::Internal(cause) = &self.0 {
            tracing::error!(error = ?cause, "request failed");
        }
        error_response(self.0.code(), &self.0.to_string())
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
