//! Request extractors: JSON bodies, paths and queries whose rejections are API errors, the
//! authenticated user, the authenticated business, the admin check and the Idempotency-Key
//! header.

use crate::error::{ApiError, error_response, validation};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use minipay_core::request::{IDEMPOTENCY_KEY_LEN_MAX, IdempotencyKey};
use minipay_core::{BusinessId, UserId};
use minipay_services::{ErrorCode, ServiceError};
use serde::de::DeserializeOwned;
use utoipa::openapi::Required;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};

/// A JSON body, which must be a JSON object: an array (which serde would otherwise take as the
/// struct's fields by position), a string or a number is `400 validation_failed`, like
/// malformed JSON, wrong types and unknown fields. A missing JSON content type is 415; a body
/// over the size limit is 413.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(req.headers()) {
            return Err(error_response(
                ErrorCode::UnsupportedMediaType,
                "send the body as JSON (Content-Type: application/json)",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| body_rejection(&r))?;
        json_object(&bytes).map(Self).map_err(IntoResponse::into_response)
    }
}

/// `application/json` or any `application/*+json`, parameters (charset) aside.
fn has_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    match essence.split_once('/') {
        Some((kind, sub)) => {
            kind.eq_ignore_ascii_case("application")
                && (sub.eq_ignore_ascii_case("json") || sub.to_ascii_lowercase().ends_with("+json"))
        }
        None => false,
    }
}

/// A body that could not be read: 413 when over the size limit, 400 otherwise.
pub fn body_rejection(r: &BytesRejection) -> Response {
    if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
        error_response(ErrorCode::PayloadTooLarge, "the request body is too large")
    } else {
        error_response(ErrorCode::ValidationFailed, &r.body_text())
    }
}

/// Parses a request body that must be one JSON object (the first token decides a JSON value's
/// type, so looking at it is enough); every failure is `400 validation_failed`.
pub fn json_object<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(validation("the request body must be a JSON object"));
    }
    match axum::Json::<T>::from_bytes(bytes) {
        Ok(axum::Json(v)) => Ok(v),
        Err(rejection) => Err(validation(rejection.body_text())),
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

/// A request carrying the admin token. No token → 401; a user's token or a business's API key → 403.
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
        let is_someone =
            state.wallet.authenticate(token).await.is_ok() || state.businesses.authenticate(token).await.is_ok();
        if is_someone {
            Err(ApiError(ServiceError::Forbidden("this endpoint needs the admin token")))
        } else {
            Err(ApiError(ServiceError::Unauthorized("the admin token is not valid")))
        }
    }
}

/// The business an API key belongs to (`/v1/biz/*`). No key → 401; the admin token or a
/// user's access token → 403 (a known caller, on the wrong side of the platform); anything
/// else, including a rotated-out key → 401.
pub struct CurrentBusiness(pub BusinessId);

impl FromRequestParts<AppState> for CurrentBusiness {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let token = bearer(parts).ok_or(ServiceError::Unauthorized(
            "send the business's API key: Authorization: Bearer <api_key>",
        ))?;
        match state.businesses.authenticate(token).await {
            Ok(id) => Ok(Self(id)),
            Err(ServiceError::Unauthorized(_))
                if state.admin_token.matches(token) || state.wallet.authenticate(token).await.is_ok() =>
            {
                Err(ApiError(ServiceError::Forbidden(
                    "this endpoint needs a business's API key",
                )))
            }
            Err(e) => Err(ApiError(e)),
        }
    }
}

/// The optional `Idempotency-Key` header (1–255 visible ASCII characters).
pub struct IdempotencyHeader(pub Option<IdempotencyKey>);

pub const IDEMPOTENCY_KEY_HEADER: &str = "Idempotency-Key";

/// The header as an operation's parameter in the OpenAPI document (`params(IdempotencyHeader)`).
impl utoipa::IntoParams for IdempotencyHeader {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let key = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(IDEMPOTENCY_KEY_LEN_MAX))
            .pattern(Some("^[ -~]+$"));
        vec![
            ParameterBuilder::new()
                .name(IDEMPOTENCY_KEY_HEADER)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Makes a retry safe: the same key with the same request answers the first \
                     answer again (`Idempotent-Replayed: true`). Scoped to the caller, kept 24 hours or more.",
                ))
                .schema(Some(key))
                .build(),
        ]
    }
}

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyHeader {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(raw) = parts.headers.get(IDEMPOTENCY_KEY_HEADER) else {
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
