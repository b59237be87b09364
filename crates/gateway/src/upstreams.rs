//! What operators see of the upstreams: each configured upstream with its shared breaker and
//! what it did in the last hour (`GET /v1/admin/upstreams`), the same hour minute by minute,
//! and the network-cancel queue.

use crate::Gateway;
use crate::breakers;
use crate::routing::UpstreamKind;
use jiff::{SignedDuration, Timestamp};
use minipay_services::ServiceResult;
use minipay_store::{QueuedCancel, UpstreamMinute};
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

/// Minutes in a trend (the last hour, the current minute last).
pub const TREND_MINUTES: usize = 60;
/// Network cancels shown given up (the newest), beside every one still being sent.
const FAILED_CANCELS_SHOWN: u32 = 50;
/// Network cancels shown still being sent.
const PENDING_CANCELS_SHOWN: u32 = 500;

/// One minute of an upstream's traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, ToSchema)]
pub struct MinutePoint {
    pub requests: i64,
    /// Timeouts and errors.
    pub errors: i64,
    /// Mean and maximum upstream latency (ms); `None` in a minute without an answer.
    pub mean_ms: Option<i64>,
    pub max_ms: Option<i32>,
}

/// An upstream's last hour, minute by minute.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct UpstreamTrend {
    pub id: String,
    /// `TREND_MINUTES` points, oldest first; the last is the current (partial) minute.
    pub minutes: Vec<MinutePoint>,
}

impl Gateway {
    /// Every configured upstream's last hour minute by minute, and when its first minute began.
    pub async fn upstream_trends(&self) -> ServiceResult<(Timestamp, Vec<UpstreamTrend>)> {
        let Some(routing) = self.live_routing().await? else {
            return Ok((self.clock.now(), Vec::new()));
        };
        let since = trend_start(self.clock.now());
        let rows = self.store.read().await?.upstream_minutes(since).await?;
        let trends = routing
            .config
            .upstreams()
            .into_iter()
            .map(|u| UpstreamTrend {
                minutes: trend_of(&rows, &u.id),
                id: u.id,
            })
            .collect();
        Ok((since, trends))
    }

    /// The network-cancel queue: every cancel still being sent, oldest first, then the latest
    /// ones given up.
    pub async fn network_cancel_queue(&self) -> ServiceResult<Vec<QueuedCancel>> {
        let mut db = self.store.read().await?;
        Ok(db
            .network_cancel_queue(PENDING_CANCELS_SHOWN, FAILED_CANCELS_SHOWN)
            .await?)
    }
}

/// The start of the minute `TREND_MINUTES - 1` minutes before the one `now` is in.
fn trend_start(now: Timestamp) -> Timestamp {
    let minute_start = now.as_second() - now.as_second().rem_euclid(60);
    Timestamp::from_second(minute_start - 60 * (TREND_MINUTES as i64 - 1)).expect("an hour before a valid time")
}

/// An upstream's points for every minute of the trend (minutes without traffic are zero).
fn trend_of(rows: &[UpstreamMinute], upstream: &str) -> Vec<MinutePoint> {
    let mut points = vec![MinutePoint::default(); TREND_MINUTES];
    for r in rows.iter().filter(|r| r.upstream == upstream) {
        let Some(point) = usize::try_from(r.minute).ok().and_then(|m| points.get_mut(m)) else {
            continue;
        };
        *point = MinutePoint {
            requests: r.requests,
            errors: r.errors,
            mean_ms: (r.timed > 0).then(|| r.total_ms / r.timed),
            max_ms: r.max_ms,
        };
    }
    points
}

/// The nearest-rank percentile of sorted values.
fn percentile(sorted: &[i32], p: usize) -> Option<i32> {
    let rank = (sorted.len() * p).div_ceil(100);
    sorted.get(rank.saturating_sub(1)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(upstream: &str, minute: i64, requests: i64, timed: i64, total_ms: i64) -> UpstreamMinute {
        UpstreamMinute {
            upstream: upstream.into(),
            minute,
            requests,
            errors: requests - timed,
            timed,
            total_ms,
            max_ms: (timed > 0).then_some(90),
        }
    }

    #[test]
    fn a_trend_starts_on_a_minute_and_ends_with_the_current_one() {
        let now: Timestamp = "2026-12-05T10:30:42Z".parse().unwrap();
        let start = trend_start(now);
        assert_eq!(start, "2026-12-05T09:31:00Z".parse().unwrap());
        let last_minute = start + SignedDuration::from_mins(TREND_MINUTES as i64 - 1);
        assert!(last_minute <= now && now < last_minute + SignedDuration::from_mins(1));
    }

    #[test]
    fn a_trend_has_every_minute_and_only_its_upstreams_traffic() {
        let rows = [
            minute("vana", 0, 4, 4, 200),
            minute("vanb", 1, 9, 9, 900),
            minute("vana", 59, 3, 0, 0),
            minute("vana", 60, 1, 1, 1),
        ];
        let t = trend_of(&rows, "vana");
        assert_eq!(t.len(), TREND_MINUTES);
        assert_eq!(
            t[0],
            MinutePoint {
                requests: 4,
                errors: 0,
                mean_ms: Some(50),
                max_ms: Some(90)
            }
        );
        assert_eq!(t[1], MinutePoint::default(), "vanb's minute is not vana's");
        assert_eq!((t[59].requests, t[59].errors, t[59].mean_ms), (3, 3, None));
        assert_eq!(
            t.iter().map(|p| p.requests).sum::<i64>(),
            7,
            "a minute past the window is dropped"
        );
    }
}
