//! The console's gateway health pages: each upstream's breaker and last hour (with its latency
//! and errors charted minute by minute), and the network-cancel queue.

use super::Operator;
use super::chart::{Chart, Series};
use super::pages::{api_name, refused, render, seoul, seoul_or_blank};
use crate::state::AppState;
use askama::Template;
use axum::extract::State;
use axum::response::Response;
use minipay_gateway::upstreams::UpstreamTrend;

/// One upstream as a row.
struct UpstreamRow {
    id: String,
    kind: String,
    state: String,
    errors_in_window: u32,
    opened_at: String,
    requests: i64,
    approvals: i64,
    declines: i64,
    timeouts: i64,
    p50_ms: String,
    p99_ms: String,
}

#[derive(Template)]
#[template(path = "console/upstreams.html")]
struct UpstreamsPage {
    csrf: String,
    since: String,
    rows: Vec<UpstreamRow>,
    latency: Chart,
    errors: Chart,
}

fn ms(v: Option<i32>) -> String {
    v.map(|v| format!("{v} ms")).unwrap_or_default()
}

/// Upstream health: breakers, the last hour's counts and percentiles, and two charts.
pub async fn upstreams(State(app): State<AppState>, op: Operator) -> Response {
    let (views, trends) = match tokio::try_join!(app.gateway.upstreams(), app.gateway.upstream_trends()) {
        Ok(both) => both,
        Err(e) => return refused(e),
    };
    let (since, trends) = trends;
    let rows = views
        .into_iter()
        .map(|u| UpstreamRow {
            kind: api_name(&u.kind),
            state: u.state,
            errors_in_window: u.errors_in_window,
            opened_at: seoul_or_blank(u.opened_at),
            requests: u.requests,
            approvals: u.approvals,
            declines: u.declines,
            timeouts: u.timeouts,
            p50_ms: ms(u.p50_ms),
            p99_ms: ms(u.p99_ms),
            id: u.id,
        })
        .collect();
    render(&UpstreamsPage {
        csrf: op.csrf,
        since: seoul(since),
        rows,
        latency: chart(&trends, |p| p.mean_ms.map(|v| v as f64)),
        errors: chart(&trends, |p| Some(p.errors as f64)),
    })
}

/// A chart with a line per upstream of one value of each minute.
fn chart(trends: &[UpstreamTrend], value: impl Fn(&minipay_gateway::upstreams::MinutePoint) -> Option<f64>) -> Chart {
    let series: Vec<Series> = trends
        .iter()
        .map(|t| Series {
            name: t.id.clone(),
            values: t.minutes.iter().map(&value).collect(),
        })
        .collect();
    Chart::lines(&series)
}

/// One network cancel as a row.
struct CancelRow {
    approval_id: String,
    upstream: String,
    status: String,
    sends: i32,
    terminal_id: String,
    amount: i64,
    last_error: String,
    created_at: String,
    next_send_at: String,
    finished_at: String,
}

#[derive(Template)]
#[template(path = "console/cancels.html")]
struct CancelsPage {
    csrf: String,
    pending: Vec<CancelRow>,
    failed: Vec<CancelRow>,
}

/// The network-cancel queue: cancels still being sent, and the latest given up.
pub async fn cancels(State(app): State<AppState>, op: Operator) -> Response {
    let queue = match app.gateway.network_cancel_queue().await {
        Ok(q) => q,
        Err(e) => return refused(e),
    };
    let (pending, failed): (Vec<CancelRow>, Vec<CancelRow>) = queue
        .into_iter()
        .map(|c| CancelRow {
            approval_id: c.approval_id.to_string(),
            upstream: c.upstream,
            status: c.status,
            sends: c.sends,
            terminal_id: c.terminal_id,
            amount: c.amount,
            last_error: c.last_error.unwrap_or_default(),
            created_at: seoul(c.created_at),
            next_send_at: seoul_or_blank(c.next_send_at),
            finished_at: seoul_or_blank(c.finished_at),
        })
        .partition(|c| c.status != "failed");
    render(&CancelsPage {
        csrf: op.csrf,
        pending,
        failed,
    })
}
