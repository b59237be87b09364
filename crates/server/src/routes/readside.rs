//! Operator routes of the approval read side: final states with their histories,
//! reconciliation against upstreams' settlement files, and settlement per merchant and
//! business day (JSON or CSV).
//!
//! API-gateway.md, "Events and the read side". Every route takes the admin token.

use crate::error::{ApiResult, validation};
use crate::extract::{Admin, ApiJson, ApiPath, ApiQuery};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use jiff::civil::Date;
use minipay_core::request::PageLimit;
use minipay_core::time::{plausible_date, plausible_instant};
use minipay_readside::fold::STATUSES;
use minipay_readside::{ApprovalDetail, ApprovalSummary, MerchantSettlement, ReconciliationView, settlements_csv};
use minipay_services::views::{Items, Page};
use minipay_services::{ServiceError, schema};
use minipay_store::ApprovalViewFilter;
use serde::Deserialize;
use utoipa::IntoParams;
use utoipa::ToSchema;
use uuid::Uuid;

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
        let instant =
            |t: Option<Timestamp>, what| t.map(|t| plausible_instant(t, what).map_err(validation)).transpose();
        let (from, to) = (instant(self.from, "from")?, instant(self.to, "to")?);
        if let Some(s) = self.status.as_deref().filter(|s| !STATUSES.contains(s)) {
            return Err(validation(format!(
                "status must be one of {}, not {s:?}",
                STATUSES.join(", ")
            )));
        }
        if let Some(t) = self.terminal_id.as_deref().filter(|t| t.chars().count() != 8) {
            return Err(validation(format!("terminal_id is 8 characters, not {t:?}")));
        }
        if let (Some(from), Some(to)) = (from, to)
            && from >= to
        {
            return Err(validation("from must be before to"));
        }
        Ok(ApprovalViewFilter {
            merchant_id: self.merchant_id,
            terminal_id: self.terminal_id.clone(),
            status: self.status.clone(),
            from,
            to,
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
    let date = plausible_date(q.date, "date").map_err(validation)?;
    let settled = app.readside.settlements(date, q.merchant_id).await?;
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReconcileBody {
    /// The upstream's id in the routing configuration.
    #[schema(example = "vana")]
    upstream: String,
    /// The business day (Asia/Seoul), `YYYY-MM-DD`.
    #[schema(value_type = String, format = Date, example = "2026-12-04")]
    date: Date,
    /// The settlement file's text, uploaded (CSV, the simulators' format). Without it the
    /// file is fetched from the upstream's `settlement_url`.
    file: Option<String>,
}

/// Reconciles (대사) an upstream's business day against its settlement file: matched,
/// missing here, missing there, amount mismatch, and every record that did not match. A day
/// that does not reconcile raises one `reconciliation_mismatch` alert.
#[utoipa::path(post, path = "/v1/admin/reconciliations", tag = "gateway", operation_id = "reconcile",
    security(("admin" = [])), request_body = ReconcileBody,
    responses((status = 200, body = ReconciliationView),
              (status = 400, description = "validation_failed: a malformed body or uploaded file"),
              (status = 404, description = "not_found: no such upstream in the routing configuration"),
              (status = 409, description = "invalid_state: no file uploaded and no settlement_url configured"),
              (status = 503, description = "unavailable: the upstream's settlement file could not be fetched")))]
pub async fn reconcile(
    State(app): State<AppState>,
    _admin: Admin,
    ApiJson(b): ApiJson<ReconcileBody>,
) -> ApiResult<Json<ReconciliationView>> {
    let date = plausible_date(b.date, "date").map_err(validation)?;
    Ok(Json(app.readside.reconcile(&b.upstream, date, b.file).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReconciliationsQuery {
    /// Only this business day's.
    #[param(value_type = Option<String>, format = Date)]
    date: Option<Date>,
    upstream: Option<String>,
    #[param(value_type = Option<schema::PageLimit>, inline)]
    limit: Option<u32>,
    cursor: Option<String>,
}

/// Past reconciliations, newest first.
#[utoipa::path(get, path = "/v1/admin/reconciliations", tag = "gateway", operation_id = "list_reconciliations",
    security(("admin" = [])), params(ReconciliationsQuery),
    responses((status = 200, body = Page<ReconciliationView>), (status = 400, description = "validation_failed")))]
pub async fn reconciliations(
    State(app): State<AppState>,
    _admin: Admin,
    ApiQuery(q): ApiQuery<ReconciliationsQuery>,
) -> ApiResult<Json<Page<ReconciliationView>>> {
    let limit = PageLimit::parse(q.limit).map_err(ServiceError::validation)?;
    let date = q
        .date
        .map(|d| plausible_date(d, "date").map_err(validation))
        .transpose()?;
    Ok(Json(
        app.readside
            .reconciliations(date, q.upstream.as_deref(), limit, q.cursor.as_deref())
            .await?,
    ))
}
