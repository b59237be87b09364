//! Transfers: the sender's transfer mode and the transfer state machine.

use serde::{Deserialize, Serialize};

/// The sender's setting: `immediate` transfers complete at once; `pending` ones wait for the
/// receiver to accept (the money is held out of the sender's available balance meanwhile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TransferMode {
    #[default]
    Immediate,
    Pending,
}

impl TransferMode {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Immediate => "immediate",
            Self::Pending => "pending",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "immediate" => Some(Self::Immediate),
            "pending" => Some(Self::Pending),
            _ => None,
        }
    }
}

/// ```text
/// (immediate) ─────────────► completed
/// (pending) ─► pending ─accept─► completed
///                 ├──cancel──► canceled
///                 └──72 h────► expired
/// ```
/// Exactly one of accept / cancel / expire wins; the state change is conditional on
/// `pending` inside the transaction that moves the money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatus {
    Pending,
    Completed,
    Canceled,
    Expired,
}

impl TransferStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Completed => "completed",
            Self::Canceled => "canceled",
            Self::Expired => "expired",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "completed" => Self::Completed,
            "canceled" => Self::Canceled,
            "expired" => Self::Expired,
            _ => return None,
        })
    }
    pub fn can_become(self, next: Self) -> bool {
        self == Self::Pending && next != Self::Pending
    }
}

/// How long a pending transfer waits for the receiver before it expires and the money returns.
pub const PENDING_TTL_HOURS: i64 = 72;
/// The receiver is reminded once when this much time is left.
pub const REMINDER_LEAD_HOURS: i64 = 24;

/// When a pending transfer made at `created_at` expires.
pub fn pending_expires_at(created_at: jiff::Timestamp) -> jiff::Timestamp {
    created_at + jiff::SignedDuration::from_hours(PENDING_TTL_HOURS)
}

/// Pending transfers expiring at or before this instant are due their reminder at `now`.
pub fn reminder_due_until(now: jiff::Timestamp) -> jiff::Timestamp {
    now + jiff::SignedDuration::from_hours(REMINDER_LEAD_HOURS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_timing() {
        let t: jiff::Timestamp = "2026-11-21T03:00:00Z".parse().unwrap();
        let expires = pending_expires_at(t);
        assert_eq!(expires.to_string(), "2026-11-24T03:00:00Z");
        // Reminder due from T+48h (24 hours left), not a minute before.
        let at_48h = t + jiff::SignedDuration::from_hours(48);
        assert!(expires <= reminder_due_until(at_48h));
        assert!(expires > reminder_due_until(at_48h - jiff::SignedDuration::from_mins(1)));
    }

    #[test]
    fn only_pending_resolves() {
        use TransferStatus::*;
        for next in [Completed, Canceled, Expired] {
            assert!(Pending.can_become(next));
            for done in [Completed, Canceled, Expired] {
                assert!(!done.can_become(next));
            }
        }
        assert!(!Pending.can_become(Pending));
        for s in [Pending, Completed, Canceled, Expired] {
            assert_eq!(TransferStatus::parse(s.as_str()), Some(s));
        }
    }
}
