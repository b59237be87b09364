//! Users and sessions: signup, token, me, lookup.

use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery, CurrentUser};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use minipay_core::transfer::TransferMode;
use minipay_core::user::UserName;
use minipay_services::schema;
use minipay_services::views::{TokenView, UserLookupView, UserView};
use minipay_services::{NewUserRequest, ServiceError, UpdateUserRequest};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignUpBody {
    #[schema(value_type = schema::Email)]
    email: String,
    /// 8–128 characters.
    #[schema(value_type = schema::Password)]
    password: String,
    #[schema(value_type = schema::PersonName)]
    name: String,
}

/// Sign up: creates the user and their main account.
#[utoipa::path(post, path = "/v1/users", tag = "users", request_body = SignUpBody,
    responses((status = 201, body = UserView), (status = 409, description = "conflict: the email is registered")))]
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
    responses((status = 200, body = TokenView), (status = 401, description = "unauthorized: wrong email or password"),
              (status = 429, description = "rate_limited: too many failed attempts for this email")))]
pub async fn token(State(app): State<AppState>, ApiJson(b): ApiJson<TokenBody>) -> ApiResult<Json<TokenView>> {
    Ok(Json(app.wallet.log_in(&b.email, b.password).await?))
}

/// The caller, with the main account's id.
#[utoipa::path(get, path = "/v1/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserView, links(
        ("main_account" = (operation_id = "get_account", parameters(("id" = "$response.body#/main_account_id")))),
        ("charge" = (operation_id = "charge", parameters(("id" = "$response.body#/main_account_id")))),
        ("history" = (operation_id = "history", parameters(("id" = "$response.body#/main_account_id"))))))))]
pub async fn me(State(app): State<AppState>, CurrentUser(me): CurrentUser) -> ApiResult<Json<UserView>> {
    Ok(Json(app.wallet.me(me).await?))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeBody {
    #[schema(value_type = Option<schema::PersonName>)]
    name: Option<String>,
    /// Whether this user's transfers wait for the receiver (`pending`) or not.
    #[schema(value_type = Option<schema::TransferMode>)]
    transfer_mode: Option<String>,
}

#[utoipa::path(patch, path = "/v1/users/me", tag = "users", security(("bearer" = [])), request_body = UpdateMeBody,
    responses((status = 200, body = UserView)))]
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
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct LookupQuery {
    email: String,
}

/// Finds a user by email, to pay them.
#[utoipa::path(get, path = "/v1/users/lookup", tag = "users", security(("bearer" = [])), params(LookupQuery),
    responses((status = 200, body = UserLookupView), (status = 404, description = "not_found: no user has this email")))]
pub async fn lookup(
    State(app): State<AppState>,
    _caller: CurrentUser,
    ApiQuery(q): ApiQuery<LookupQuery>,
) -> ApiResult<Json<UserLookupView>> {
    Ok(Json(app.wallet.lookup_user(&q.email).await?))
}
