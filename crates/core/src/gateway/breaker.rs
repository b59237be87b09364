//! The per-upstream N-in-T circuit breaker: closed, open, half-open with one probe at a time.
//!
//! ```text
//! closed ──errors_max errors within window──► open ──open_for elapsed──► half_open (one probe)
//!   ▲                                          ▲                              │ probe fails
//!   └────────────── probe succeeds ────────────┼──────────────────────────────┤
//!                                              └──────────────────────────────┘
//! ```
//!
//! Pure: `now` is a parameter. The gateway keeps one [`Breaker`] per upstream as JSON in a
//! database row and updates it under a row lock, so every instance sees the same breaker.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// How a breaker counts and how long it stays open. Defaults are the contract's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BreakerPolicy {
    /// This many errors within `window` open the breaker.
    pub errors_max: u32,
    /// An error counts while it is younger than this (strictly: `now - t < window`).
    pub window: SignedDuration,
    /// How long an open breaker refuses everything before it lets a probe through.
    pub open_for: SignedDuration,
    /// A probe that never reports (a crashed instance) frees the probe slot after this.
    pub probe_timeout: SignedDuration,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        Self {
            errors_max: 10,
            window: SignedDuration::from_secs(60),
            open_for: SignedDuration::from_secs(30),
            probe_timeout: SignedDuration::from_secs(10),
        }
    }
}

/// What the breaker shows to the admin API (`state` of `GET /v1/admin/upstreams`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    HalfOpen,
}

impl BreakerState {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// Whether a request may go to the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed: send it.
    Allowed,
    /// Half-open: send it as the one probe; its outcome closes or reopens the breaker.
    Probe,
    /// Open, or a probe is already out: try the next upstream.
    Refused,
}

/// An edge the gateway turns into an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// Closed → open: raise `upstream_circuit_open` (once per opening).
    Opened,
    /// A failed probe: open again. No second `upstream_circuit_open`: the breaker never
    /// closed, the first alert still stands.
    Reopened,
    /// A probe succeeded: raise `upstream_circuit_closed`.
    Closed,
}

/// How an upstream answered (or did not). Only the upstream's own failures count against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Approved,
    /// A card decline (insufficient limit, stolen card): the upstream worked.
    Declined,
    /// A system-error response code.
    SystemError,
    Timeout,
    ConnectionFailed,
}

impl Outcome {
    /// Whether the breaker hears of it: a decline is the card's business, not the upstream's.
    pub const fn counts_against_upstream(self) -> bool {
        matches!(self, Self::SystemError | Self::Timeout | Self::ConnectionFailed)
    }
}

/// The stored phase. `Open` past `open_for` reads as half-open ([`Breaker::state`]); it
/// becomes `HalfOpen` when a caller is admitted as the probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    /// At most `errors_max` timestamps, oldest first: memory stays bounded.
    Closed {
        recent_errors: VecDeque<Timestamp>,
    },
    Open {
        opened_at: Timestamp,
    },
    /// `opened_at` is kept for the admin API; `probe_started_at` is the probe out, if any.
    HalfOpen {
        opened_at: Timestamp,
        probe_started_at: Option<Timestamp>,
    },
}

/// One upstream's breaker: its policy and its phase, stored together as one JSON value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breaker {
    policy: BreakerPolicy,
    phase: Phase,
}

impl Default for Breaker {
    fn default() -> Self {
        Self::new(BreakerPolicy::default())
    }
}

impl Breaker {
    /// A closed breaker with no errors.
    pub fn new(policy: BreakerPolicy) -> Self {
        Self {
            policy,
            phase: Phase::Closed {
                recent_errors: VecDeque::new(),
            },
        }
    }

    pub fn policy(&self) -> &BreakerPolicy {
        &self.policy
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// Applies a changed configuration to a stored breaker (call after loading the row), so
    /// the row never outlives a config change.
    pub fn set_policy(&mut self, policy: BreakerPolicy) {
        self.policy = policy;
        if let Phase::Closed { recent_errors } = &mut self.phase {
            truncate_oldest(recent_errors, policy.errors_max);
        }
    }

    /// The state as the admin API shows it: an open breaker past `open_for` is half-open.
    pub fn state(&self, now: Timestamp) -> BreakerState {
        match &self.phase {
            Phase::Closed { .. } => BreakerState::Closed,
            Phase::Open { opened_at } if !self.open_elapsed(*opened_at, now) => BreakerState::Open,
            Phase::Open { .. } | Phase::HalfOpen { .. } => BreakerState::HalfOpen,
        }
    }

    /// Errors counting toward opening; 0 unless closed (errors while open are not counted).
    pub fn errors_in_window(&self, now: Timestamp) -> u32 {
        match &self.phase {
            Phase::Closed { recent_errors } => {
                let n = recent_errors.iter().filter(|t| self.in_window(**t, now)).count();
                u32::try_from(n).unwrap_or(u32::MAX)
            }
            Phase::Open { .. } | Phase::HalfOpen { .. } => 0,
        }
    }

    /// When the current opening began; `None` when closed. A reopen starts a new opening.
    pub fn opened_at(&self) -> Option<Timestamp> {
        match &self.phase {
            Phase::Closed { .. } => None,
            Phase::Open { opened_at } | Phase::HalfOpen { opened_at, .. } => Some(*opened_at),
        }
    }

    /// Whether a request may be sent now. Past `open_for` the first caller becomes the probe;
    /// the others are refused until it reports or goes stale (`probe_timeout`).
    pub fn admit(&mut self, now: Timestamp) -> Admission {
        match self.phase {
            Phase::Closed { .. } => Admission::Allowed,
            Phase::Open { opened_at } if !self.open_elapsed(opened_at, now) => Admission::Refused,
            Phase::Open { opened_at } => self.start_probe(opened_at, now),
            Phase::HalfOpen {
                opened_at,
                probe_started_at,
            } => match probe_started_at {
                Some(p) if now.duration_since(p) < self.policy.probe_timeout => Admission::Refused,
                _ => self.start_probe(opened_at, now),
            },
        }
    }

    /// Records an upstream failure (see [`Outcome::counts_against_upstream`]).
    pub fn record_error(&mut self, now: Timestamp) -> Option<Transition> {
        match &mut self.phase {
            Phase::Closed { recent_errors } => {
                let policy = self.policy;
                insert_sorted(recent_errors, now);
                recent_errors.retain(|t| now.duration_since(*t) < policy.window);
                truncate_oldest(recent_errors, policy.errors_max);
                if recent_errors.len() < usize_of(policy.errors_max) {
                    return None;
                }
                self.phase = Phase::Open { opened_at: now };
                Some(Transition::Opened)
            }
            // The probe failed: a fresh `open_for` from now.
            Phase::HalfOpen { .. } => {
                self.phase = Phase::Open { opened_at: now };
                Some(Transition::Reopened)
            }
            // Already refusing: stragglers sent before the opening change nothing.
            Phase::Open { .. } => None,
        }
    }

    /// Records an answer from the upstream (an approval or a decline). Only a probe's success
    /// closes the breaker; while closed, successes do not reset the window (N errors in T, not
    /// N consecutive errors).
    pub fn record_success(&mut self, _now: Timestamp) -> Option<Transition> {
        match self.phase {
            Phase::HalfOpen { .. } => {
                self.phase = Phase::Closed {
                    recent_errors: VecDeque::new(),
                };
                Some(Transition::Closed)
            }
            Phase::Closed { .. } | Phase::Open { .. } => None,
        }
    }

    fn start_probe(&mut self, opened_at: Timestamp, now: Timestamp) -> Admission {
        self.phase = Phase::HalfOpen {
            opened_at,
            probe_started_at: Some(now),
        };
        Admission::Probe
    }

    fn open_elapsed(&self, opened_at: Timestamp, now: Timestamp) -> bool {
        now.duration_since(opened_at) >= self.policy.open_for
    }

    /// `t` counts at `now` iff `t > now - window`: an error exactly `window` old has expired.
    fn in_window(&self, t: Timestamp, now: Timestamp) -> bool {
        now.duration_since(t) < self.policy.window
    }
}

/// Instances' clocks differ slightly, so an error may arrive older than the last one stored.
fn insert_sorted(errors: &mut VecDeque<Timestamp>, t: Timestamp) {
    let at = errors.partition_point(|e| *e <= t);
    errors.insert(at, t);
}

fn truncate_oldest(errors: &mut VecDeque<Timestamp>, keep: u32) {
    while errors.len() > usize_of(keep) {
        errors.pop_front();
    }
}

fn usize_of(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t0() -> Timestamp {
        "2026-03-02T01:00:00Z".parse().unwrap()
    }

    fn at(secs: i64) -> Timestamp {
        t0() + SignedDuration::from_secs(secs)
    }

    /// A breaker opened by `errors_max` errors at t0 (the default policy).
    fn opened() -> Breaker {
        let mut b = Breaker::default();
        for _ in 0..9 {
            assert_eq!(b.record_error(t0()), None);
        }
        assert_eq!(b.record_error(t0()), Some(Transition::Opened));
        b
    }

    #[test]
    fn nine_errors_in_a_minute_stay_closed() {
        let mut b = Breaker::default();
        for i in 0..9 {
            assert_eq!(b.record_error(at(i * 6)), None);
        }
        assert_eq!(b.state(at(54)), BreakerState::Closed);
        assert_eq!(b.errors_in_window(at(54)), 9);
        assert_eq!(b.admit(at(54)), Admission::Allowed);
    }

    #[test]
    fn ten_errors_in_a_minute_open() {
        let mut b = Breaker::default();
        for i in 0..9 {
            assert_eq!(b.record_error(at(i * 6)), None);
        }
        assert_eq!(b.record_error(at(59)), Some(Transition::Opened));
        assert_eq!(b.state(at(59)), BreakerState::Open);
        assert_eq!(b.opened_at(), Some(at(59)));
        assert_eq!(b.admit(at(60)), Admission::Refused);
        assert_eq!(b.errors_in_window(at(60)), 0, "not counted while open");
    }

    #[test]
    fn an_error_exactly_window_old_has_expired() {
        let mut b = Breaker::default();
        // Ten errors over 60 s: the first is exactly 60 s old when the tenth comes.
        for i in 0..9 {
            assert_eq!(b.record_error(at(i)), None);
        }
        assert_eq!(b.record_error(at(60)), None);
        assert_eq!(b.errors_in_window(at(60)), 9);
        assert_eq!(b.record_error(at(60)), Some(Transition::Opened));
    }

    #[test]
    fn ten_errors_spread_over_61_seconds_do_not_open() {
        let mut b = Breaker::default();
        for i in 0..10 {
            assert_eq!(b.record_error(at(i * 61 / 9)), None, "error {i}");
        }
        assert_eq!(b.state(at(61)), BreakerState::Closed);
    }

    #[test]
    fn successes_do_not_reset_the_window() {
        let mut b = Breaker::default();
        for i in 0..9 {
            b.record_error(at(i));
            assert_eq!(b.record_success(at(i)), None);
        }
        assert_eq!(b.record_error(at(10)), Some(Transition::Opened));
    }

    #[test]
    fn half_open_after_open_for_with_exactly_one_probe() {
        let mut b = opened();
        assert_eq!(b.state(at(29)), BreakerState::Open);
        assert_eq!(b.admit(at(29)), Admission::Refused);
        assert_eq!(b.state(at(30)), BreakerState::HalfOpen);
        assert_eq!(b.admit(at(30)), Admission::Probe);
        assert_eq!(b.admit(at(30)), Admission::Refused);
        assert_eq!(b.admit(at(35)), Admission::Refused);
        assert_eq!(b.state(at(35)), BreakerState::HalfOpen);
        assert_eq!(b.opened_at(), Some(t0()));
    }

    #[test]
    fn a_probe_success_closes_with_no_errors() {
        let mut b = opened();
        assert_eq!(b.admit(at(31)), Admission::Probe);
        assert_eq!(b.record_success(at(32)), Some(Transition::Closed));
        assert_eq!(b.state(at(32)), BreakerState::Closed);
        assert_eq!(b.errors_in_window(at(32)), 0);
        assert_eq!(b.opened_at(), None);
        assert_eq!(b.admit(at(32)), Admission::Allowed);
    }

    #[test]
    fn a_probe_failure_reopens_for_another_open_for() {
        let mut b = opened();
        assert_eq!(b.admit(at(31)), Admission::Probe);
        assert_eq!(b.record_error(at(33)), Some(Transition::Reopened));
        assert_eq!(b.state(at(33)), BreakerState::Open);
        assert_eq!(b.opened_at(), Some(at(33)));
        assert_eq!(b.admit(at(62)), Admission::Refused);
        assert_eq!(b.admit(at(63)), Admission::Probe);
    }

    #[test]
    fn a_stale_probe_frees_the_slot() {
        let mut b = opened();
        assert_eq!(b.admit(at(30)), Admission::Probe);
        assert_eq!(b.admit(at(39)), Admission::Refused);
        assert_eq!(b.admit(at(40)), Admission::Probe);
        assert_eq!(b.admit(at(41)), Admission::Refused);
    }

    #[test]
    fn errors_and_successes_while_open_are_ignored() {
        let mut b = opened();
        assert_eq!(b.record_error(at(5)), None);
        assert_eq!(b.record_success(at(6)), None);
        assert_eq!(b.opened_at(), Some(t0()));
        assert_eq!(b.admit(at(30)), Admission::Probe, "open_for counts from the opening");
    }

    #[test]
    fn declines_never_open() {
        let mut b = Breaker::default();
        let outcomes = [Outcome::Declined, Outcome::Approved].repeat(50);
        for (i, outcome) in (0..).zip(outcomes) {
            assert!(!outcome.counts_against_upstream());
            b.record_success(at(i));
        }
        assert_eq!(b.state(at(100)), BreakerState::Closed);
        let counted = [Outcome::SystemError, Outcome::Timeout, Outcome::ConnectionFailed];
        assert!(counted.iter().all(|o| o.counts_against_upstream()));
    }

    #[test]
    fn an_out_of_order_error_is_kept_in_order() {
        let mut b = Breaker::default();
        b.record_error(at(10));
        b.record_error(at(9));
        let Phase::Closed { recent_errors } = b.phase() else {
            panic!("closed")
        };
        assert_eq!(recent_errors, &VecDeque::from([at(9), at(10)]));
        assert_eq!(b.errors_in_window(at(69)), 1);
    }

    #[test]
    fn lowering_errors_max_trims_the_stored_errors() {
        let mut b = Breaker::default();
        for i in 0..5 {
            b.record_error(at(i));
        }
        b.set_policy(BreakerPolicy {
            errors_max: 3,
            ..BreakerPolicy::default()
        });
        assert_eq!(b.errors_in_window(at(5)), 3);
        assert_eq!(b.record_error(at(5)), Some(Transition::Opened));
    }

    #[test]
    fn json_shape() {
        let mut b = opened();
        b.admit(at(30));
        let json = serde_json::to_value(&b).unwrap();
        assert_eq!(json["phase"]["phase"], "half_open");
        assert_eq!(json["phase"]["probe_started_at"], "2026-03-02T01:00:30Z");
        assert_eq!(json["policy"]["errors_max"], 10);
        assert_eq!(serde_json::to_value(BreakerState::HalfOpen).unwrap(), "half_open");
        let back: Breaker = serde_json::from_value(json).unwrap();
        assert_eq!(back, b);
        let policy: BreakerPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(policy, BreakerPolicy::default());
    }

    #[derive(Debug, Clone, Copy)]
    enum Event {
        Error,
        Success,
        Admit,
    }

    /// The contract read literally: every error since the last closing is kept, and the
    /// breaker trips when `errors_max` of them lie within `window` before an error.
    #[derive(Default)]
    struct Model {
        errors: Vec<Timestamp>,
        tripped: bool,
        opened_at: Option<Timestamp>,
        probe_at: Option<Timestamp>,
        trips: u32,
    }

    impl Model {
        fn in_window(p: &BreakerPolicy, t: Timestamp, now: Timestamp) -> bool {
            t > now - p.window && t <= now
        }

        fn error(&mut self, p: &BreakerPolicy, now: Timestamp) -> Option<Transition> {
            if self.probe_at.is_some() {
                (self.opened_at, self.probe_at) = (Some(now), None);
                return Some(Transition::Reopened);
            }
            if self.tripped {
                return None;
            }
            self.errors.push(now);
            let n = self.errors.iter().filter(|t| Self::in_window(p, **t, now)).count();
            if n < p.errors_max as usize {
                return None;
            }
            (self.tripped, self.opened_at) = (true, Some(now));
            self.trips += 1;
            Some(Transition::Opened)
        }

        fn success(&mut self) -> Option<Transition> {
            self.probe_at.take()?;
            *self = Self {
                trips: self.trips,
                ..Self::default()
            };
            Some(Transition::Closed)
        }

        fn admit(&mut self, p: &BreakerPolicy, now: Timestamp) -> Admission {
            let Some(opened_at) = self.opened_at.filter(|_| self.tripped) else {
                return Admission::Allowed;
            };
            let busy = match self.probe_at {
                Some(probe) => now < probe + p.probe_timeout,
                None => now < opened_at + p.open_for,
            };
            if busy {
                return Admission::Refused;
            }
            self.probe_at = Some(now);
            Admission::Probe
        }
    }

    fn policy() -> impl Strategy<Value = BreakerPolicy> {
        (1u32..6, 1i64..20, 1i64..10, 1i64..10).prop_map(|(errors_max, w, o, p)| BreakerPolicy {
            errors_max,
            window: SignedDuration::from_secs(w),
            open_for: SignedDuration::from_secs(o),
            probe_timeout: SignedDuration::from_secs(p),
        })
    }

    fn events() -> impl Strategy<Value = Vec<(u32, Event)>> {
        let event = prop_oneof![
            4 => Just(Event::Error),
            1 => Just(Event::Success),
            2 => Just(Event::Admit),
        ];
        prop::collection::vec((0u32..3_000, event), 0..200)
    }

    proptest! {
        #[test]
        fn the_breaker_follows_the_naive_model(p in policy(), events in events()) {
            let mut b = Breaker::new(p);
            let mut model = Model::default();
            let mut now = t0();
            let (mut opened, mut closed_to_open) = (0u32, 0u32);
            for (dt_ms, event) in events {
                now += SignedDuration::from_millis(i64::from(dt_ms));
                let before = b.state(now);
                match event {
                    Event::Error => {
                        let tr = b.record_error(now);
                        prop_assert_eq!(tr, model.error(&p, now));
                        opened += u32::from(tr == Some(Transition::Opened));
                    }
                    Event::Success => prop_assert_eq!(b.record_success(now), model.success()),
                    Event::Admit => prop_assert_eq!(b.admit(now), model.admit(&p, now)),
                }
                let after = b.state(now);
                closed_to_open += u32::from(before == BreakerState::Closed && after != BreakerState::Closed);
                prop_assert_eq!(after != BreakerState::Closed, model.tripped);
                if let Phase::Closed { recent_errors } = b.phase() {
                    prop_assert!(recent_errors.len() <= p.errors_max as usize);
                    let naive = model.errors.iter().filter(|t| Model::in_window(&p, **t, now)).count();
                    prop_assert_eq!(b.errors_in_window(now) as usize, naive);
                }
                // What the gateway does between two requests: store the row, load it again.
                let json = serde_json::to_string(&b).unwrap();
                b = serde_json::from_str(&json).unwrap();
            }
            prop_assert_eq!(opened, closed_to_open);
            prop_assert_eq!(opened, model.trips);
        }

        #[test]
        fn a_serde_round_trip_preserves_behaviour(p in policy(), events in events(), cut in 0usize..200) {
            // `kept` stays in memory; `stored` goes through JSON once, at `cut`.
            let mut kept = Breaker::new(p);
            let mut stored = kept.clone();
            let mut now = t0();
            for (i, (dt_ms, event)) in events.into_iter().enumerate() {
                if i == cut {
                    stored = serde_json::from_str(&serde_json::to_string(&stored).unwrap()).unwrap();
                }
                now += SignedDuration::from_millis(i64::from(dt_ms));
                match event {
                    Event::Error => prop_assert_eq!(kept.record_error(now), stored.record_error(now)),
                    Event::Success => prop_assert_eq!(kept.record_success(now), stored.record_success(now)),
                    Event::Admit => prop_assert_eq!(kept.admit(now), stored.admit(now)),
                }
                prop_assert_eq!(kept.state(now), stored.state(now));
                prop_assert_eq!(kept.errors_in_window(now), stored.errors_in_window(now));
                prop_assert_eq!(kept.opened_at(), stored.opened_at());
            }
        }
    }
}
