//! Operator routes of the approval read side: final states with their histories, and
//! settlement per merchant and business day (JSON or CSV).
//!
//! API-gateway.md, "Events and the read side". Every route takes the admin token.

use crate::error::{ApiResult, validation};
use crate::extract::{Admin, ApiPath, ApiQuery};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use jiff::civil::Date;
use minipay_core::gateway::FeeRate;
use minipay_core::request::PageLimit;
use minipay_readside::{ApprovalDetail, ApprovalSummary, FeeRates, MerchantSettlement, settlements_csv};
use minipay_services::views::{Items, Page};
use minipay_services::{ServiceError, schema};
use minipay_store::ApprovalViewFilter;
use serde::Deserialize;
use std::collections::HashMap;
use utoipa::IntoParams;
use uuid::Uuid;

/// The statuses a transaction's final state can have.
const STATUSES: [&str; 6] = ["received", "sent", "approved", "declined", "timeout", "error"];

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsQuery {
    merchant_id: Option<Uuid>,
    /// 8 characters.
    terminal_id: Option<String>,
    /// `received`, `sent`, `approved`, `declined`, `timeout` or `error`.
    status: Option<String>,
    /// Received at or after this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    from: Option<Timestamp>,
    /// Received before this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    to: Option<Timestamp>,
    #[param(value_type = Option<schema::PageLimit>, inline)]
    limit: Option<u32>,
    /// The previous page's `next_cursor`.
    cursor: Option<String>,
}

impl ApprovalsQuery {
    fn filter(&self) -> ApiResult<ApprovalViewFilter> {
        if let Some(s) = self.status.as_deref().filter(|s| !STATUSES.contains(s)) {
            return Err(validation(format!(
                "status must be one of {}, not {s:?}",
                STATUSES.join(", ")
            )));
        }
        if let Some(t) = self.terminal_id.as_deref().filter(|t| t.chars().count() != 8) {
            return Err(validation(format!("terminal_id is 8 characters, not {t:?}")));
        }
        if let (Some(from), Some(to)) = (self.from, self.to)
            && from >= to
        {
            return Err(validation("from must be before to"));
        }
        Ok(ApprovalViewFilter {
            merchant_id: self.merchant_id,
            terminal_id: self.terminal_id.clone(),
            status: self.status.clone(),
            from: self.from,
            to: self.to,
        })
    }
}

/// Every transaction's final state as the read side keeps it, newest received first.
#[utoipa::path(get, path = "/v1/admin/approvals", tag = "gateway", operation_id = "list_approvals",
    security(("admin" = [])), params(ApprovalsQuery),
    responses((status = 200, body = Page<ApprovalSummary>),
              (status = 400, description = "validation_failed: an unknown status, a malformed time or cursor")))]
pub async fn approvals(
    State(app): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<ApprovalsQuery>,
) -> ApiResult<Json<Page<ApprovalSummary>>> {
    let limit = PageLimit::parse(q.limit).map_err(ServiceError::validation)?;
    let filter = q.filter()?;
    Ok(Json(app.readside.approvals(&filter, limit, q.cursor.as_deref()).await?))
}

/// One transaction's final state and its history (every event once, in sequence order).
#[utoipa::path(get, path = "/v1/admin/approvals/{id}", tag = "gateway", operation_id = "get_approval",
    security(("admin" = [])), params(("id" = String, Path, format = Uuid)),
    responses((status = 200, body = ApprovalDetail), (status = 404, description = "not_found")))]
pub async fn approval(
    State(app): State<AppState>,
    _admin: Admin,
    ApiPath(id): ApiPath<Uuid>,
) -> ApiResult<Json<ApprovalDetail>> {
    Ok(Json(app.readside.approval(id).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SettlementsQuery {
    /// The business day (Asia/Seoul), `YYYY-MM-DD`.
    #[param(value_type = String, format = Date)]
    date: Date,
    /// One merchant's settlement (default: every merchant with volume that day).
    merchant_id: Option<Uuid>,
    /// `json` (the default) or `csv` (one line per merchant and upstream).
    format: Option<String>,
}

/// Settlement (정산) per merchant of one business day: approved card sales and customer
/// cancels per upstream, fees at the routing configuration's rates (rounded toward zero, once
/// per upstream and day), net payable.
#[utoipa::path(get, path = "/v1/admin/settlements", tag = "gateway", operation_id = "list_merchant_settlements",
    security(("admin" = [])), params(SettlementsQuery),
    responses((status = 200, body = Items<MerchantSettlement>,
               description = "JSON; with `format=csv`, text/csv with the header \
                   `date,merchant_id,upstream,fee_rate_bp,approved_count,approved_amount,canceled_count,\
                   canceled_amount,net_amount,fee,net_payable`"),
              (status = 400, description = "validation_failed: a missing or malformed date, an unknown format")))]
pub async fn settlements(
    State(app): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<SettlementsQuery>,
) -> ApiResult<Response> {
    let csv = match q.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => return Err(validation(format!("format must be json or csv, not {other:?}"))),
    };
    let rates = fee_rates(&app).await?;
    let settled = app.readside.settlements(q.date, q.merchant_id, &rates).await?;
    Ok(if csv {
        let name = format!("attachment; filename=\"settlements-{}.csv\"", q.date);
        (
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (header::CONTENT_DISPOSITION, name),
            ],
            settlements_csv(&settled),
        )
            .into_response()
    } else {
        Json(Items { items: settled }).into_response()
    })
}

/// Each upstream's fee rate in the routing configuration in force.
async fn fee_rates(app: &AppState) -> ApiResult<FeeRates> {
    let Some(routing) = app.gateway.routing().await? else {
        return Ok(FeeRates::default());
    };
    let config = &routing.config;
    let ids = config
        .card_companies
        .iter()
        .map(|c| &c.id)
        .chain(config.vans.iter().map(|v| &v.id));
    let mut rates = HashMap::new();
    for id in ids {
        if let Some(bp) = config.fee_rate_bp(id) {
            // The routing configuration was validated against the same bound when it was put.
            let rate = FeeRate::from_bp(bp).map_err(|e| ServiceError::Internal(anyhow::anyhow!(e)))?;
            rates.insert(id.clone(), rate);
        }
    }
    Ok(FeeRates(rates))
}
