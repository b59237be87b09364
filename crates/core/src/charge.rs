//! Charges: the daily charge limit, the auto-charge amount and the charge state machine.

use crate::money::Amount;
use crate::time::BusinessDate;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// How much money a user may bring in from their bank per Seoul business day.
pub const DAILY_CHARGE_LIMIT: i64 = 3_000_000;

/// Auto-charges pull the shortfall rounded up to whole units of this many won.
pub const AUTO_CHARGE_UNIT: i64 = 10_000;

/// The amount to pull from the bank so that `available` covers `needed`, in whole
/// `AUTO_CHARGE_UNIT`s; `None` when no charge is needed.
///
/// shortfall 1 → 10,000; 10,000 → 10,000; 10,001 → 20,000.
pub fn auto_charge_amount(available: i64, needed: Amount) -> Option<Amount> {
    assert!(available >= 0, "a user account's available balance is never negative");
    let shortfall = needed.won() - available;
    if shortfall <= 0 {
        return None;
    }
    let units = shortfall.div_euclid(AUTO_CHARGE_UNIT) + i64::from(shortfall % AUTO_CHARGE_UNIT != 0);
    let charge = Amount::parse(units * AUTO_CHARGE_UNIT).expect("rounded shortfall is in range");
    debug_assert!(charge.won() >= shortfall && charge.won() - shortfall < AUTO_CHARGE_UNIT);
    Some(charge)
}

/// A user's daily charge limit on one business date, as reported to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargeLimit {
    pub date: BusinessDate,
    pub limit: i64,
    pub used: i64,
}

impl ChargeLimit {
    pub fn new(date: BusinessDate, used: i64) -> Self {
        assert!(
            (0..=DAILY_CHARGE_LIMIT).contains(&used),
            "used {used} outside the limit"
        );
        Self {
            date,
            limit: DAILY_CHARGE_LIMIT,
            used,
        }
    }

    pub fn remaining(&self) -> i64 {
        self.limit - self.used
    }

    /// When the next business date begins and the limit is whole again.
    pub fn resets_at(&self) -> Timestamp {
        self.date.ends_at()
    }

    /// Whether `amount` more may be charged today.
    pub fn allows(&self, amount: Amount) -> bool {
        amount.won() <= self.remaining()
    }
}

/// Why a charge was made: on request, or to cover a transfer's shortfall.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChargePurpose {
    Charge,
    AutoCharge,
}

/// A charge is an intent recorded before the bank is called, so money is never
/// "somewhere" without a row that says where.
///
/// ```text
/// pending ──bank ok──────────────► completed
///    │ ──bank declined/refused──► failed
///    └──timeout/no answer──► unknown ──status inquiry──► completed | failed
/// ```
/// A pending charge left behind by a crash is treated like an unknown one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChargeStatus {
    Pending,
    Unknown,
    Completed,
    Failed,
}

impl ChargeStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Unknown => "unknown",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => Self::Pending,
            "unknown" => Self::Unknown,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            _ => return None,
        })
    }

    /// Whether the bank outcome is still open (a recovery step must resolve it).
    pub const fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Unknown)
    }

    pub fn can_become(self, next: Self) -> bool {
        matches!(
            (self, next),
            (Self::Pending, Self::Completed | Self::Failed | Self::Unknown)
                | (Self::Unknown, Self::Completed | Self::Failed)
        )
    }
}

impl ChargePurpose {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Charge => "charge",
            Self::AutoCharge => "auto_charge",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "charge" => Some(Self::Charge),
            "auto_charge" => Some(Self::AutoCharge),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn amt(w: i64) -> Amount {
        Amount::parse(w).unwrap()
    }

    #[test]
    fn auto_charge_examples_from_the_contract() {
        assert_eq!(auto_charge_amount(0, amt(1)), Some(amt(10_000)));
        assert_eq!(auto_charge_amount(0, amt(10_000)), Some(amt(10_000)));
        assert_eq!(auto_charge_amount(0, amt(10_001)), Some(amt(20_000)));
        assert_eq!(auto_charge_amount(5_000, amt(15_000)), Some(amt(10_000)));
        assert_eq!(auto_charge_amount(5_000, amt(15_001)), Some(amt(20_000)));
        assert_eq!(auto_charge_amount(15_000, amt(15_000)), None);
        assert_eq!(auto_charge_amount(20_000, amt(15_000)), None);
    }

    #[test]
    fn limit_reports_remaining_and_reset() {
        let date = crate::time::BusinessDate::containing("2026-11-21T03:00:00Z".parse().unwrap());
        let l = ChargeLimit::new(date, 2_990_000);
        assert_eq!(l.remaining(), 10_000);
        assert!(l.allows(amt(10_000)));
        assert!(!l.allows(amt(10_001)));
        assert_eq!(l.resets_at().to_string(), "2026-11-21T15:00:00Z");
    }

    #[test]
    fn charge_state_machine() {
        use ChargeStatus::*;
        assert!(Pending.can_become(Completed));
        assert!(Pending.can_become(Unknown));
        assert!(Unknown.can_become(Failed));
        assert!(!Completed.can_become(Failed));
        assert!(!Failed.can_become(Completed));
        assert!(!Unknown.can_become(Pending));
        for s in [Pending, Unknown, Completed, Failed] {
            assert_eq!(ChargeStatus::parse(s.as_str()), Some(s));
        }
    }

    proptest! {
        #[test]
        fn auto_charge_covers_the_shortfall_in_whole_units(
            available in 0i64..=5_000_000,
            needed in 1i64..=10_000_000,
        ) {
            let needed = amt(needed);
            let shortfall = needed.won() - available;
            match auto_charge_amount(available, needed) {
                None => prop_assert!(shortfall <= 0),
                Some(c) => {
                    prop_assert!(shortfall > 0);
                    prop_assert_eq!(c.won() % AUTO_CHARGE_UNIT, 0);
                    prop_assert!(c.won() >= shortfall);
                    prop_assert!(c.won() - shortfall < AUTO_CHARGE_UNIT);
                    // after charging, the transfer is covered and leaves less than a unit behind
                    prop_assert!(available + c.won() - needed.won() < AUTO_CHARGE_UNIT);
                }
            }
        }
    }
}
