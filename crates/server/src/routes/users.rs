//! Users and sessions: signup, token, me, lookup.

use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery, CurrentUser};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use minipay_core::transfer::TransferMode;
use minipay_core::user::UserName;
use minipay_services::views::{TokenView, UserLookupView, UserView};
use minipay_services::{NewUserRequest, ServiceError, UpdateUserRequest};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUpBody {
    #[schema(example = "kim@example.com")]
    email: String,
    /// At least 8 characters.
    password: String,
    #[schema(example = "김민수")]
    name: String,
}

/// Sign up: creates the user and their main account.
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = SignUpBody,
    responses((status = 201, body = UserView), (status = 400, description = "validation_failed"),
              (status = 409, description = "conflict: the email is registered")))]
pub async fn sign_up(
    State(app): State<AppState>,
    ApiJson(b): ApiJson<SignUpBody>,
) -> ApiResult<(StatusCode, Json<UserView>)> {
    let req = NewUserRequest::parse(&b.email, b.password, &b.name)?;
    Ok((StatusCode::CREATED, Json(app.wallet.sign_up(req).await?)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    email: String,
    password: String,
}

/// Log in: exchanges email and password for an access token valid for one hour.
#[utoipa::path(post, path = "/v1/auth/token", tag = "users", request_body = TokenBody,
    responses((status = 200, body = TokenView), (status = 401, description = "unauthorized"),
              (status = 429, description = "rate_limited")))]
pub async fn token(State(app): State<AppState>, ApiJson(b): ApiJson<TokenBody>) -> ApiResult<Json<TokenView>> {
    Ok(Json(app.wallet.log_in(&b.email, b.password).await?))
}

#[utoipa::path(get, path = "/v1/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, description = "unauthorized")))]
pub async fn me(State(app): State<AppState>, CurrentUser(me): CurrentUser) -> ApiResult<Json<UserView>> {
    Ok(Json(app.wallet.me(me).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeBody {
    name: Option<String>,
    /// `immediate` or `pending`: whether this user's transfers wait for the receiver.
    transfer_mode: Option<String>,
}

#[utoipa::path(patch, path = "/v1/users/me", tag = "users", security(("bearer" = [])), request_body = UpdateMeBody,
    responses((status = 200, body = UserView), (status = 400, description = "validation_failed")))]
pub async fn update_me(
    State(app): State<AppState>,
    CurrentUser(me): CurrentUser,
    ApiJson(b): ApiJson<UpdateMeBody>,
) -> ApiResult<Json<UserView>> {
    let name = b
        .name
        .as_deref()
        .map(UserName::parse)
        .transpose()
        .map_err(ServiceError::validation)?;
    let transfer_mode = b
        .transfer_mode
        .as_deref()
        .map(|m| {
            TransferMode::parse(m)
                .ok_or_else(|| ServiceError::validation("transfer_mode must be \"immediate\" or \"pending\""))
        })
        .transpose()?;
    Ok(Json(
        app.wallet
            .update_me(me, UpdateUserRequest { name, transfer_mode })
            .await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct LookupQuery {
    email: String,
}

/// Finds a user by email, to pay them.
#[utoipa::path(get, path = "/v1/users/lookup", tag = "users", security(("bearer" = [])), params(LookupQuery),
    responses((status = 200, body = UserLookupView), (status = 404, description = "not_found")))]
pub async fn lookup(
    State(app): State<AppState>,
    _caller: CurrentUser,
    ApiQuery(q): ApiQuery<LookupQuery>,
) -> ApiResult<Json<UserLookupView>> {
    Ok(Json(app.wallet.lookup_user(&q.email).await?))
}
