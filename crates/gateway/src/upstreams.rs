//! `GET /v1/admin/upstreams`: each configured upstream with its shared breaker and what it did
//! in the last hour (requests, approvals, declines, timeouts, latency percentiles).

use crate::Gateway;
use crate::breakers;
use crate::routing::UpstreamKind;
use jiff::{SignedDuration, Timestamp};
use minipay_services::ServiceResult;
use serde::Serialize;
use utoipa::ToSchema;

/// How far back the counts and percentiles look.
const STATS_WINDOW: SignedDuration = SignedDuration::from_hours(1);
/// Latencies read per upstream for its percentiles.
const LATENCIES_MAX: u32 = 1_000;

/// One upstream as operators see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UpstreamView {
    pub id: String,
    pub kind: UpstreamKind,
    /// `closed`, `open` or `half_open`.
    #[schema(example = "closed")]
    pub state: String,
    /// Errors (timeouts, connection failures, system errors) in the breaker's window.
    pub errors_in_window: u32,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub opened_at: Option<Timestamp>,
    pub requests: i64,
    pub approvals: i64,
    pub declines: i64,
    pub timeouts: i64,
    pub p50_ms: Option<i32>,
    pub p99_ms: Option<i32>,
}

impl Gateway {
    /// Every configured upstream with its breaker and last hour's counts.
    pub async fn upstreams(&self) -> ServiceResult<Vec<UpstreamView>> {
        let Some(routing) = self.live_routing().await? else {
            return Ok(Vec::new());
        };
        let now = self.clock.now();
        let mut db = self.store.read().await?;
        let breakers = breakers::load_all(&mut db, self.config.breaker).await?;
        let counts = db.upstream_counts(now - STATS_WINDOW).await?;
        let mut views = Vec::new();
        for u in routing.config.upstreams() {
            let breaker = breakers.get(&u.id).cloned().unwrap_or_default();
            let c = counts.iter().find(|c| c.upstream == u.id);
            let mut latencies = db.upstream_latencies(&u.id, LATENCIES_MAX).await?;
            latencies.sort_unstable();
            views.push(UpstreamView {
                state: breaker.state(now).as_str().to_owned(),
                errors_in_window: breaker.errors_in_window(now),
                opened_at: breaker.opened_at(),
                requests: c.map_or(0, |c| c.requests),
                approvals: c.map_or(0, |c| c.approvals),
                declines: c.map_or(0, |c| c.declines),
                timeouts: c.map_or(0, |c| c.timeouts),
                p50_ms: percentile(&latencies, 50),
                p99_ms: percentile(&latencies, 99),
                id: u.id,
                kind: u.kind,
            });
        }
        Ok(views)
    }
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[i32], p: usize) -> Option<i32> {
    let rank = (sorted.len() * p).div_ceil(100);
    sorted.get(rank.saturating_sub(1)).copied()
}
