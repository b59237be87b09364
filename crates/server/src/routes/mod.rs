//! The HTTP routes, one module per API section; the reply helper for money POSTs and the
//! query of a plain cursor-paginated list.

pub mod accounts;
pub mod admin;
pub mod bank_accounts;
pub mod businesses;
pub mod gateway_admin;
pub mod health;
pub mod operations;
pub mod payments;
pub mod pos;
pub mod readside;
pub mod remittances;
pub mod settlements;
pub mod transfers;
pub mod users;

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use minipay_services::{Reply, schema};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

/// Answers a money POST: a fresh result with `status`, or a stored reply byte for byte
/// (whatever its status) marked `Idempotent-Replayed: true`.
pub fn reply<T: Serialize>(r: Reply<T>, status: StatusCode) -> Response {
    match r {
        Reply::Fresh(v) => (status, Json(v)).into_response(),
        Reply::Replayed(stored) => {
            let status = StatusCode::from_u16(stored.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut res = (status, stored.body).into_response();
            let headers = res.headers_mut();
            headers.insert(
                axum::http::header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
            res
        }
    }
}

/// `?limit=&cursor=` of a list with no other filter.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    #[param(value_type = Option<schema::PageLimit>, inline)]
    pub limit: Option<u32>,
    /// The previous page's `next_cursor`.
    pub cursor: Option<String>,
}
