//! Request extractors: JSON bodies, paths and queries whose rejections are API errors, the
//! authenticated user, the admin check and the Idempotency-Key header.

use crate::error::{ApiError, error_response, validation};
use crate::state::AppState;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use minipay_core::UserId;
use minipay_core::request::IdempotencyKey;
use minipay_services::{ErrorCode, ServiceError};
use serde::de::DeserializeOwned;

/// A JSON body. Malformed JSON, wrong types and unknown fields are `400 validation_failed`;
/// a missing JSON content type is 415; a body over the size limit is 413.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(Self(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> Response {
    match r {
        JsonRejection::MissingJsonContentType(_) => error_response(
            ErrorCode::UnsupportedMediaType,
            "send the body as JSON (Content-Type: application/json)",
        ),
        JsonRejection::BytesRejection(b) if b.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            error_response(ErrorCode::PayloadTooLarge, "the request body is too large")
        }
        other => error_response(ErrorCode::ValidationFailed, &other.body_text()),
    }
}

/// Path parameters. An id that does not parse cannot exist: `404 not_found`.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| Self(v))
            .map_err(|_| error_response(ErrorCode::NotFound, "not found"))
    }
}

/// Query parameters; anything malformed is `400 validation_failed`.
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Self(v))
            .map_err(|r| error_response(ErrorCode::ValidationFailed, &r.body_text()))
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then_some(token.trim())
}

/// The user an access token was issued to.
pub struct CurrentUser(pub UserId);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or(ServiceError::Unauthorized(
            "send an access token: Authorization: Bearer <token>",
        ))?;
        Ok(Self(state.wallet.authenticate(token).await?))
    }
}

/// A request carrying the admin token. No token → 401; a user's token → 403.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or(ServiceError::Unauthorized(
            "send the admin token: Authorization: Bearer <token>",
        ))?;
        if state.admin_token.matches(token) {
            return Ok(Self);
        }
        match state.wallet.authenticate(token).await {
            Ok(_) => Err(ApiError(ServiceError::Forbidden)),
            Err(_) => Err(ApiError(ServiceError::Unauthorized("the admin token is not valid"))),
        }
    }
}

/// The optional `Idempotency-Key` header (1–255 visible ASCII characters).
pub struct IdempotencyHeader(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyHeader {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(raw) = parts.headers.get("idempotency-key") else {
            return Ok(Self(None));
        };
        let key = raw
            .to_str()
            .ok()
            .and_then(|s| IdempotencyKey::parse(s).ok())
            .ok_or_else(|| validation("Idempotency-Key must be 1 to 255 visible ASCII characters").into_response())?;
        Ok(Self(Some(key)))
    }
}
