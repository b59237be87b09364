//! The console's pages: each reads what the admin API would answer and renders it; changes go
//! through the same services, after the session's CSRF check.

use super::{Change, Operator};
use crate::state::AppState;
use askama::Template;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use minipay_business::remittance::views::RemittanceView;
use minipay_core::remittance::RemittanceStatus;
use minipay_core::request::PageLimit;
use minipay_core::time::{SEOUL, plausible_date};
use minipay_core::{BusinessDate, RemittanceId};
use minipay_readside::ApprovalSummary;
use minipay_readside::fold::STATUSES;
use minipay_services::ServiceError;
use minipay_store::{AlertFilter, ApprovalViewFilter, DeadLetterFilter, RemittanceFilter};
use serde::Deserialize;
use uuid::Uuid;

/// Rows per page.
const PAGE_ROWS: u32 = 50;

/// Renders a template (a failure to render is the console's bug: a plain 500 page).
pub fn render(t: &impl Template) -> Response {
    match t.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering a console page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("the page could not be rendered"),
            )
                .into_response()
        }
    }
}

/// A service's refusal as a page: its status and message (internal causes are logged, not shown).
pub(super) fn refused(e: ServiceError) -> Response {
    let status = StatusCode::from_u16(e.code().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let ServiceError::Internal(cause) = &e {
        tracing::error!(error = ?cause, "a console page failed");
    }
    (
        status,
        Html(format!(
            "<p>{}</p><p><a href=\"/console\">Back</a></p>",
            html_escape(&e.to_string())
        )),
    )
        .into_response()
}

/// An instant as operators read it: Asia/Seoul (the platform's business day), to the second.
pub(super) fn seoul(t: jiff::Timestamp) -> String {
    in_seoul(t, "%Y-%m-%d %H:%M:%S")
}

/// [`seoul`] to the millisecond (a timeline's steps come milliseconds apart).
fn seoul_ms(t: jiff::Timestamp) -> String {
    in_seoul(t, "%Y-%m-%d %H:%M:%S%.3f")
}

fn in_seoul(t: jiff::Timestamp, format: &str) -> String {
    t.to_zoned(SEOUL.clone()).strftime(format).to_string()
}

/// [`seoul`] of an instant that may not have come.
pub(super) fn seoul_or_blank(t: Option<jiff::Timestamp>) -> String {
    t.map(seoul).unwrap_or_default()
}

/// A value's name as the API spells it (its serde name), e.g. `sender_bank`.
pub(super) fn api_name(v: &impl serde::Serialize) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(name)) => name,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[derive(Template)]
#[template(path = "console/login.html")]
pub struct LoginPage {
    pub problem: Option<String>,
}

pub async fn home() -> Redirect {
    Redirect::to("/console/approvals")
}

/// One approval as a row.
pub struct ApprovalRow {
    id: String,
    received_at: String,
    terminal_id: String,
    tx_type: String,
    amount: String,
    status: String,
    upstream: String,
    response_code: String,
    cancel: String,
}

impl From<&ApprovalSummary> for ApprovalRow {
    fn from(a: &ApprovalSummary) -> Self {
        let text = |v: &Option<String>| v.clone().unwrap_or_default();
        Self {
            id: a.id.to_string(),
            received_at: seoul_or_blank(a.received_at),
            terminal_id: text(&a.terminal_id),
            tx_type: text(&a.tx_type),
            amount: a.amount.map(|n| n.to_string()).unwrap_or_default(),
            status: a.status.clone(),
            upstream: text(&a.upstream),
            response_code: text(&a.response_code),
            cancel: match a.cancel_status.as_str() {
                "none" => String::new(),
                "sent" => format!("sent ×{}", a.cancel_sends),
                other => other.to_owned(),
            },
        }
    }
}

#[derive(Template)]
#[template(path = "console/approvals.html")]
struct ApprovalsPage {
    csrf: String,
    statuses: [&'static str; 6],
    status: Option<String>,
    terminal_id: String,
    rows: Vec<ApprovalRow>,
    refresh_url: String,
    next_url: Option<String>,
}

#[derive(Deserialize)]
pub struct ApprovalsQuery {
    status: Option<String>,
    terminal_id: Option<String>,
    cursor: Option<String>,
}

/// The query string of a filter (and a page).
fn approvals_url(status: Option<&str>, terminal_id: &str, cursor: Option<&str>) -> String {
    let mut q = url::form_urlencoded::Serializer::new(String::new());
    if let Some(s) = status {
        q.append_pair("status", s);
    }
    if !terminal_id.is_empty() {
        q.append_pair("terminal_id", terminal_id);
    }
    if let Some(c) = cursor {
        q.append_pair("cursor", c);
    }
    format!("/console/approvals?{}", q.finish())
}

pub async fn approvals(State(app): State<AppState>, op: Operator, Query(q): Query<ApprovalsQuery>) -> Response {
    let status = q.status.filter(|s| STATUSES.contains(&s.as_str()));
    let terminal_id = q.terminal_id.map(|t| t.trim().to_owned()).unwrap_or_default();
    let filter = ApprovalViewFilter {
        status: status.clone(),
        terminal_id: (terminal_id.chars().count() == 8).then(|| terminal_id.clone()),
        ..ApprovalViewFilter::default()
    };
    let limit = PageLimit::parse(Some(PAGE_ROWS)).expect("a valid page size");
    let page = match app.readside.approvals(&filter, limit, q.cursor.as_deref()).await {
        Ok(p) => p,
        Err(e) => return refused(e),
    };
    render(&ApprovalsPage {
        csrf: op.csrf,
        statuses: STATUSES,
        refresh_url: approvals_url(status.as_deref(), &terminal_id, q.cursor.as_deref()),
        next_url: page
            .next_cursor
            .as_deref()
            .map(|c| approvals_url(status.as_deref(), &terminal_id, Some(c))),
        status,
        terminal_id,
        rows: page.items.iter().map(ApprovalRow::from).collect(),
    })
}

/// One step of a timeline.
struct StepRow {
    seq: i32,
    step: String,
    at: String,
    upstream: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "console/approval.html")]
struct ApprovalPage {
    csrf: String,
    a: ApprovalRow,
    steps: Vec<StepRow>,
}

pub async fn approval(State(app): State<AppState>, op: Operator, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<Uuid>() else {
        return refused(ServiceError::NotFound("approval"));
    };
    let detail = match app.readside.approval(id).await {
        Ok(d) => d,
        Err(e) => return refused(e),
    };
    render(&ApprovalPage {
        csrf: op.csrf,
        a: ApprovalRow::from(&detail.approval),
        steps: detail
            .history
            .iter()
            .map(|s| StepRow {
                seq: s.seq,
                step: s.step.clone(),
                at: seoul_ms(s.at),
                upstream: s.upstream.clone().unwrap_or_default(),
                detail: s.detail.to_string(),
            })
            .collect(),
    })
}

struct AlertRow {
    id: String,
    created_at: String,
    kind: String,
    message: String,
    acknowledged_at: Option<String>,
}

#[derive(Template)]
#[template(path = "console/alerts.html")]
struct AlertsPage {
    csrf: String,
    rows: Vec<AlertRow>,
}

pub async fn alerts(State(app): State<AppState>, op: Operator) -> Response {
    let limit = PageLimit::parse(Some(PAGE_ROWS)).expect("a valid page size");
    let page = match app.operations.alerts(&AlertFilter::default(), limit, None).await {
        Ok(p) => p,
        Err(e) => return refused(e),
    };
    let rows = page
        .items
        .iter()
        .map(|a| AlertRow {
            id: a.id.to_string(),
            created_at: seoul(a.created_at),
            kind: a.kind.clone(),
            message: a.message.clone(),
            acknowledged_at: a.acknowledged_at.map(seoul),
        })
        .collect();
    render(&AlertsPage { csrf: op.csrf, rows })
}

pub async fn acknowledge_alert(State(app): State<AppState>, Path(id): Path<String>, _change: Change) -> Response {
    let Ok(id) = id.parse::<Uuid>() else {
        return refused(ServiceError::NotFound("alert"));
    };
    match app.operations.acknowledge_alert(id).await {
        Ok(_) => Redirect::to("/console/alerts").into_response(),
        Err(e) => refused(e),
    }
}

struct DeadLetterRow {
    id: String,
    created_at: String,
    kind: String,
    subject_id: String,
    step: String,
    attempts: i32,
    rounds: i32,
    last_error: String,
    resolution: String,
}

struct RemittanceRow {
    id: String,
    amount: i64,
    status: String,
    failure: String,
    money_at: String,
    updated_at: String,
}

impl From<&RemittanceView> for RemittanceRow {
    fn from(r: &RemittanceView) -> Self {
        Self {
            id: r.id.to_string(),
            amount: r.amount,
            status: r.status.as_str().to_owned(),
            failure: r
                .failure
                .as_ref()
                .map(|f| format!("{}: {} — {} (attempts: {})", f.step, f.code, f.message, f.attempts))
                .unwrap_or_default(),
            money_at: api_name(&r.money_at),
            updated_at: seoul(r.updated_at),
        }
    }
}

#[derive(Template)]
#[template(path = "console/dead_letters.html")]
struct DeadLettersPage {
    csrf: String,
    notice: Option<String>,
    attention: Vec<RemittanceRow>,
    latest: Vec<RemittanceRow>,
    rows: Vec<DeadLetterRow>,
}

#[derive(Deserialize)]
pub struct NoticeQuery {
    retried: Option<String>,
}

pub async fn dead_letters(State(app): State<AppState>, op: Operator, Query(q): Query<NoticeQuery>) -> Response {
    let limit = PageLimit::parse(Some(PAGE_ROWS)).expect("a valid page size");
    let attention = RemittanceFilter {
        business: None,
        status: Some(RemittanceStatus::NeedsAttention),
    };
    let (every, open) = (RemittanceFilter::default(), DeadLetterFilter::default());
    let (attention, latest, letters) = match tokio::try_join!(
        app.remittances.remittances(&attention, limit, None),
        app.remittances.remittances(&every, limit, None),
        app.operations.dead_letters(&open, limit, None),
    ) {
        Ok(pages) => pages,
        Err(e) => return refused(e),
    };
    let rows = letters
        .items
        .iter()
        .map(|d| DeadLetterRow {
            id: d.id.to_string(),
            created_at: seoul(d.created_at),
            kind: d.kind.clone(),
            subject_id: d.subject_id.to_string(),
            step: d.step.clone(),
            attempts: d.attempts,
            rounds: d.rounds,
            last_error: d.last_error.clone(),
            resolution: d.resolution.clone().unwrap_or_else(|| "open".to_owned()),
        })
        .collect();
    render(&DeadLettersPage {
        csrf: op.csrf,
        notice: q
            .retried
            .map(|id| format!("Remittance {id} was sent on its way again.")),
        attention: attention.items.iter().map(RemittanceRow::from).collect(),
        latest: latest.items.iter().map(RemittanceRow::from).collect(),
        rows,
    })
}
pub async fn retry_remittance(State(app): State<AppState>, Path(id): Path<String>, _change: Change) -> Response {
    let Ok(id) = id.parse::<Uuid>() else {
        return refused(ServiceError::NotFound("remittance"));
    };
    match app.remittances.retry(RemittanceId::from_uuid(id)).await {
        Ok(_) => Redirect::to(&format!("/console/dead-letters?retried={id}")).into_response(),
        Err(e) => refused(e),
    }
}

struct SettlementRow {
    merchant_id: String,
    upstream: String,
    fee_rate_bp: u32,
    approved: String,
    canceled: String,
    net_amount: i64,
    fee: i64,
    payable: i64,
}

struct ReconciliationRow {
    created_at: String,
    upstream: String,
    date: String,
    source: String,
    matched: i64,
    missing_here: i64,
    missing_there: i64,
    amount_mismatch: i64,
    clean: bool,
}

#[derive(Template)]
#[template(path = "console/reconciliations.html")]
struct SettlementsPage {
    csrf: String,
    date: String,
    problem: Option<String>,
    settlements: Vec<SettlementRow>,
    reconciliations: Vec<ReconciliationRow>,
}

#[derive(Deserialize)]
pub struct DayQuery {
    date: Option<String>,
}

/// A day's settlement per merchant and upstream, and the latest reconciliations.
pub async fn settlements(State(app): State<AppState>, op: Operator, Query(q): Query<DayQuery>) -> Response {
    let today = BusinessDate::containing(app.wallet.clock().now()).date();
    let date = q
        .date
        .and_then(|d| d.parse::<jiff::civil::Date>().ok())
        .and_then(|d| plausible_date(d, "date").ok())
        .unwrap_or(today);
    let (settled, problem) = match app.readside.settlements(date, None).await {
        Ok(s) => (s, None),
        Err(e @ ServiceError::InvalidState(_)) => (Vec::new(), Some(e.to_string())),
        Err(e) => return refused(e),
    };
    let limit = PageLimit::parse(Some(PAGE_ROWS)).expect("a valid page size");
    let runs = match app.readside.reconciliations(None, None, limit, None).await {
        Ok(p) => p.items,
        Err(e) => return refused(e),
    };
    let settlements = settled
        .iter()
        .flat_map(|m| {
            m.upstreams.iter().map(|u| SettlementRow {
                merchant_id: m.merchant_id.to_string(),
                upstream: u.upstream.clone(),
                fee_rate_bp: u.fee_rate_bp,
                approved: format!("{} × {}", u.approved_count, u.approved_amount),
                canceled: format!("{} × {}", u.canceled_count, u.canceled_amount),
                net_amount: u.net_amount,
                fee: u.fee,
                payable: u.net_amount - u.fee,
            })
        })
        .collect();
    let reconciliations = runs
        .iter()
        .map(|r| ReconciliationRow {
            created_at: seoul(r.created_at),
            upstream: r.upstream.clone(),
            date: r.date.to_string(),
            source: r.source.clone(),
            matched: r.matched,
            missing_here: r.missing_here,
            missing_there: r.missing_there,
            amount_mismatch: r.amount_mismatch,
            clean: r.items.is_empty(),
        })
        .collect();
    render(&SettlementsPage {
        csrf: op.csrf,
        date: date.to_string(),
        problem,
        settlements,
        reconciliations,
    })
}
