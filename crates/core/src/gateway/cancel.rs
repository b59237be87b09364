//! The network-cancel (망취소) schedule: how often a stored cancel is resent before giving up.
//!
//! Pure: the gateway writes the cancel before the first send, counts sends in its row, and
//! asks this module what comes after each unacknowledged send.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// Resend limits. Defaults are the contract's: up to 5 sends, 10 s apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CancelPolicy {
    /// Sends in all, the first included; after the last unacknowledged one: `cancel_failed`.
    pub sends_max: u32,
    /// The wait between two sends.
    pub interval: SignedDuration,
}

impl Default for CancelPolicy {
    fn default() -> Self {
        Self {
            sends_max: 5,
            interval: SignedDuration::from_secs(10),
        }
    }
}

/// What to do after a send the upstream has not acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelNext {
    /// Send again (as a repeat) at this instant.
    RetryAt(Timestamp),
    /// Sends exhausted: mark it `cancel_failed` and raise an alert.
    GiveUp,
}

impl CancelPolicy {
    /// After `sends_done` sends (the one just made included) went unacknowledged at `now`.
    pub fn after_send(&self, sends_done: u32, now: Timestamp) -> CancelNext {
        if sends_done >= self.sends_max {
            return CancelNext::GiveUp;
        }
        // Saturating: an absurd interval from config must not panic the worker.
        let at = now.saturating_add(self.interval).unwrap_or(Timestamp::MAX);
        CancelNext::RetryAt(at)
    }

    /// Whether the next send is marked as a repeat: every send after the first, so the
    /// upstream knows it may already have seen this cancel.
    pub const fn is_repeat(sends_done_before: u32) -> bool {
        sends_done_before > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t0() -> Timestamp {
        "2026-03-02T01:00:00Z".parse().unwrap()
    }

    #[test]
    fn five_sends_ten_seconds_apart_then_give_up() {
        let p = CancelPolicy::default();
        let ten = SignedDuration::from_secs(10);
        for done in 1..5 {
            assert_eq!(p.after_send(done, t0()), CancelNext::RetryAt(t0() + ten));
        }
        assert_eq!(p.after_send(5, t0()), CancelNext::GiveUp);
        assert_eq!(p.after_send(6, t0()), CancelNext::GiveUp);
    }

    #[test]
    fn only_the_first_send_is_not_a_repeat() {
        assert!(!CancelPolicy::is_repeat(0));
        assert!(CancelPolicy::is_repeat(1));
        assert!(CancelPolicy::is_repeat(4));
    }

    #[test]
    fn an_absurd_interval_saturates() {
        let p = CancelPolicy {
            interval: SignedDuration::MAX,
            ..CancelPolicy::default()
        };
        assert_eq!(p.after_send(1, t0()), CancelNext::RetryAt(Timestamp::MAX));
    }

    proptest! {
        #[test]
        fn a_cancel_is_sent_at_most_sends_max_times(sends_max in 0u32..20, interval_s in 1i64..120) {
            let p = CancelPolicy { sends_max, interval: SignedDuration::from_secs(interval_s) };
            // The worker's loop: send, ask what next, until told to give up.
            let (mut now, mut sends, mut repeats) = (t0(), 0u32, 0u32);
            loop {
                repeats += u32::from(CancelPolicy::is_repeat(sends));
                prop_assert_eq!(CancelPolicy::is_repeat(sends), sends > 0);
                sends += 1;
                match p.after_send(sends, now) {
                    CancelNext::RetryAt(at) => {
                        prop_assert_eq!(at.duration_since(now), p.interval);
                        now = at;
                    }
                    CancelNext::GiveUp => break,
                }
                prop_assert!(sends < 100, "never gives up");
            }
            prop_assert_eq!(sends, sends_max.max(1), "the first send happens before asking");
            prop_assert_eq!(repeats, sends - 1);
        }
    }
}
