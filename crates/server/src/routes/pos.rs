//! The POS HTTP intake: `POST /v1/pos/approvals`, authenticated by the terminal's HMAC of the
//! body (`Authorization: Terminal <terminal_id>:<base64 HMAC-SHA256>`).

use crate::error::{ApiError, validation};
use crate::extract::{body_rejection, json_object};
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use minipay_gateway::request::{ApprovalAnswer, ApprovalInput, ApprovalRequest};
use minipay_services::ServiceError;

/// Asks for an approval (or a cancel, or a cash receipt) as a terminal.
///
/// The answer is `200` whatever the upstream said (`result` tells: approved, declined,
/// timeout, error); a repeated request (same terminal, `seq_no`, `sent_at`) gets the first
/// answer and is not sent upstream again.
#[utoipa::path(
    post,
    path = "/v1/pos/approvals",
    tag = "pos",
    request_body = ApprovalInput,
    params(("Authorization" = String, Header, description = "`Terminal <terminal_id>:<base64 HMAC-SHA256 of the body with the terminal key>`")),
    responses(
        (status = 200, description = "The transaction's answer", body = ApprovalAnswer),
        (status = 400, description = "A malformed request"),
        (status = 401, description = "Unknown or disabled terminal, or a bad signature"),
    )
)]
pub async fn approve(State(state): State<AppState>, req: Request) -> Response {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match Bytes::from_request(req, &state).await {
        Ok(body) => body,
        Err(r) => return body_rejection(&r),
    };
    let terminal = match state.gateway.authenticate_http(authorization.as_deref(), &body).await {
        Ok(t) => t,
        Err(e) => return ApiError(e).into_response(),
    };
    let request =
        match json_object::<ApprovalInput>(&body).and_then(|i| ApprovalRequest::try_from(i).map_err(validation)) {
            Ok(r) => r,
            Err(e) => return e.into_response(),
        };
    // Its own task: a terminal that hangs up does not abandon a request half-way (recorded
    // but not sent, or sent but its answer not recorded); it runs to its end either way.
    let gateway = state.gateway.clone();
    let approving = tokio::spawn(async move { gateway.approve(&terminal, &request).await });
    match approving.await {
        Ok(Ok(answer)) => Json(answer).into_response(),
        Ok(Err(e)) => ApiError(e).into_response(),
        Err(e) => ApiError(ServiceError::Internal(anyhow::anyhow!("approving a POS request: {e}"))).into_response(),
    }
}
