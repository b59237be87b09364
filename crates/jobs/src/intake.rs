//! Background work steps back while the intake is at capacity: a group of clients' requests
//! that finds every commit slot busy, or whose oldest request waited [`SLOW_GROUP`] for its
//! answer, says so, and a consumer about to start a batch waits for a lull — never longer than
//! its bound — so requests are answered first and the background always progresses (it
//! catches up, in larger batches, as soon as the intake has room).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// How long after the intake was last at capacity it still counts as busy: longer than the
/// gaps between an overloaded intake's slow groups (at 20 ms the consumers' batches went in
/// those gaps and made the requests' tail; docs/bench/payments.md, run 11), short beside a
/// payment's settlement.
pub const LULL: Duration = Duration::from_millis(200);

/// A group whose oldest request waited this long for its answer: the intake is busy enough
/// that background work beside it would lengthen its requests' tail. A group at rest answers
/// in its window (1 ms by default) and one statement. At 10 ms (until run 16) the consumers
/// settled beside a 3,000/s intake and each second after the first had a p99 of 21 ms at the
/// median; at 3 ms they sit the burst out and that median is 10 ms (docs/bench/payments.md).
pub const SLOW_GROUP: Duration = Duration::from_millis(3);

/// Whether an instance's intake is at capacity: its group commits report, its background
/// work reads. Cloning shares it.
#[derive(Debug, Clone)]
pub struct IntakeLoad {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    origin: Instant,
    /// When the intake was last at capacity, in microseconds since `origin`, plus one
    /// (0: never).
    at_capacity_us: AtomicU64,
}

impl Default for IntakeLoad {
    fn default() -> Self {
        Self::new()
    }
}

impl IntakeLoad {
    pub fn new() -> Self {
        Self {
            inner: Arc::new(Inner {
                origin: Instant::now(),
                at_capacity_us: AtomicU64::new(0),
            }),
        }
    }

    /// A group of requests ready to run found every commit slot busy.
    pub fn at_capacity(&self) {
        let us = u64::try_from(self.inner.origin.elapsed().as_micros()).unwrap_or(u64::MAX - 1);
        self.inner.at_capacity_us.fetch_max(us + 1, Ordering::Relaxed);
    }

    /// A group's oldest request has waited `oldest_waited` so far: at capacity when that is
    /// [`SLOW_GROUP`] or more. A group says so before its commit (what the commit wakes, its
    /// events' consumers, must already see it) and again once answered.
    pub fn oldest_request_waited(&self, oldest_waited: Duration) {
        if oldest_waited >= SLOW_GROUP {
            self.at_capacity();
        }
    }

    /// How long since the intake was last at capacity; `None` if it never was.
    pub fn calm_for(&self) -> Option<Duration> {
        let at = self.inner.at_capacity_us.load(Ordering::Relaxed).checked_sub(1)?;
        Some(self.inner.origin.elapsed().saturating_sub(Duration::from_micros(at)))
    }

    /// Waits while the intake is at capacity ([`wait_before_batch`]), until `bound` has passed
    /// since `since`; how long it waited (zero: it went at once).
    pub async fn yield_to_intake(&self, since: Instant, bound: Duration) -> Duration {
        let Some(mut wait) = wait_before_batch(self.calm_for(), since.elapsed(), bound) else {
            return Duration::ZERO;
        };
        let started = Instant::now();
        loop {
            tokio::time::sleep(wait).await;
            match wait_before_batch(self.calm_for(), since.elapsed(), bound) {
                Some(more) => wait = more,
                None => return started.elapsed(),
            }
        }
    }
}

/// How much longer a background batch waits before it starts: `None` to start now — the
/// intake was never at capacity or has been calm for [`LULL`], or the batch has waited its
/// `bound` already.
fn wait_before_batch(calm_for: Option<Duration>, waited: Duration, bound: Duration) -> Option<Duration> {
    let calm_for = calm_for?;
    if calm_for >= LULL || waited >= bound {
        return None;
    }
    Some((LULL - calm_for).min(bound - waited))
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUND: Duration = Duration::from_secs(1);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_batch_starts_at_once_when_the_intake_never_was_or_no_longer_is_at_capacity() {
        assert_eq!(wait_before_batch(None, Duration::ZERO, BOUND), None);
        assert_eq!(wait_before_batch(Some(LULL), Duration::ZERO, BOUND), None);
        assert_eq!(wait_before_batch(Some(ms(5_000)), ms(3), BOUND), None);
    }

    #[test]
    fn a_batch_waits_for_the_rest_of_the_lull_but_never_past_its_bound() {
        assert_eq!(
            wait_before_batch(Some(ms(5)), Duration::ZERO, BOUND),
            Some(LULL - ms(5))
        );
        assert_eq!(wait_before_batch(Some(Duration::ZERO), ms(990), BOUND), Some(ms(10)));
        assert_eq!(wait_before_batch(Some(Duration::ZERO), BOUND, BOUND), None);
        assert_eq!(wait_before_batch(Some(Duration::ZERO), ms(1_500), BOUND), None);
        assert_eq!(
            wait_before_batch(Some(Duration::ZERO), Duration::ZERO, Duration::ZERO),
            None
        );
    }

    /// However the intake's load comes and goes, the waits a batch is told add up to no more
    /// than its bound, and each is positive.
    #[test]
    fn the_waits_of_one_batch_add_up_to_at_most_its_bound() {
        for bound_ms in [0, 1, 7, 20, 333, 1_000] {
            for step_ms in [0, 1, 3, 19, 20, 50] {
                let bound = ms(bound_ms);
                // The intake reports at capacity every `step_ms` (0: all the time).
                let (mut waited, mut now) = (Duration::ZERO, Duration::ZERO);
                let calm = |now: Duration| {
                    if step_ms == 0 {
                        Duration::ZERO
                    } else {
                        ms(now.as_millis() as u64 % step_ms)
                    }
                };
                while let Some(w) = wait_before_batch(Some(calm(now)), waited, bound) {
                    assert!(w > Duration::ZERO, "a wait of zero would spin");
                    waited += w;
                    now += w;
                }
                assert!(
                    waited <= bound,
                    "bound {bound_ms} ms, intake every {step_ms} ms: waited {waited:?}"
                );
            }
        }
    }

    #[test]
    fn a_group_answered_within_the_slow_mark_leaves_the_intake_calm() {
        let load = IntakeLoad::new();
        load.oldest_request_waited(SLOW_GROUP - ms(1));
        assert_eq!(load.calm_for(), None);
        load.oldest_request_waited(SLOW_GROUP);
        assert!(
            load.calm_for().is_some_and(|calm| calm < ms(250)),
            "at capacity just now"
        );
    }

    /// Real time: the upper bounds leave room for a slow machine's timers.
    const SLACK: Duration = Duration::from_millis(250);

    #[tokio::test]
    async fn an_intake_at_capacity_holds_a_batch_back_until_its_bound() {
        let load = IntakeLoad::new();
        let busy = load.clone();
        let reporter = tokio::spawn(async move {
            loop {
                busy.at_capacity();
                tokio::time::sleep(ms(2)).await;
            }
        });
        tokio::time::sleep(ms(5)).await;
        let waited = load.yield_to_intake(Instant::now(), ms(300)).await;
        reporter.abort();
        assert!(waited >= ms(300) && waited < ms(300) + SLACK, "waited {waited:?}");
    }

    #[tokio::test]
    async fn a_batch_goes_a_lull_after_the_intake_was_last_at_capacity() {
        let load = IntakeLoad::new();
        assert_eq!(load.calm_for(), None);
        assert_eq!(load.yield_to_intake(Instant::now(), BOUND).await, Duration::ZERO);
        let at = Instant::now();
        load.at_capacity();
        load.yield_to_intake(Instant::now(), BOUND).await;
        assert!(
            at.elapsed() >= LULL && at.elapsed() < LULL + SLACK,
            "went after {:?}",
            at.elapsed()
        );
        assert_eq!(load.yield_to_intake(Instant::now(), BOUND).await, Duration::ZERO);
    }
}
