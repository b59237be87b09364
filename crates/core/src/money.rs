//! Money: whole won as `i64`, with the bounds every request amount must respect.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The largest amount a single request may carry (1 trillion won).
pub const AMOUNT_MAX: i64 = 1_000_000_000_000;

/// A positive amount of won carried by a request: `1 ..= AMOUNT_MAX`.
///
/// KRW has no minor unit, so won are integers; there is no floating point anywhere near money.
/// Balances are plain `i64` (system accounts go negative); `Amount` is what moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "i64")]
pub struct Amount(i64);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount must be between 1 and {AMOUNT_MAX} won, got {0}")]
    OutOfRange(i64),
}

impl Amount {
    pub fn parse(won: i64) -> Result<Self, AmountError> {
        if (1..=AMOUNT_MAX).contains(&won) {
            Ok(Self(won))
        } else {
            Err(AmountError::OutOfRange(won))
        }
    }

    pub const fn won(self) -> i64 {
        self.0
    }
}

impl TryFrom<i64> for Amount {
    type Error = AmountError;
    fn try_from(won: i64) -> Result<Self, Self::Error> {
        Self::parse(won)
    }
}

impl From<Amount> for i64 {
    fn from(a: Amount) -> i64 {
        a.0
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} won", self.0)
    }
}

/// Adds balances, failing instead of wrapping. Balances are bounded far below `i64::MAX`
/// (every amount is at most 10^12), so an overflow means corrupted state, not a big payment.
pub fn checked_add(a: i64, b: i64) -> Option<i64> {
    a.checked_add(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn bounds_are_inclusive() {
        assert!(Amount::parse(0).is_err());
        assert!(Amount::parse(-1).is_err());
        assert_eq!(Amount::parse(1).unwrap().won(), 1);
        assert_eq!(Amount::parse(AMOUNT_MAX).unwrap().won(), AMOUNT_MAX);
        assert!(Amount::parse(AMOUNT_MAX + 1).is_err());
    }

    #[test]
    fn deserialises_through_the_constructor() {
        assert!(serde_json::from_str::<Amount>("0").is_err());
        assert_eq!(serde_json::from_str::<Amount>("5000").unwrap().won(), 5000);
    }

    proptest! {
        #[test]
        fn parse_accepts_exactly_the_range(won in any::<i64>()) {
            prop_assert_eq!(Amount::parse(won).is_ok(), (1..=AMOUNT_MAX).contains(&won));
        }

        #[test]
        fn ten_thousand_max_amounts_never_overflow(n in 1i64..=10_000) {
            // A balance built from 10,000 maximal amounts still fits in i64 with room to spare.
            let mut total = 0i64;
            for _ in 0..n { total = checked_add(total, AMOUNT_MAX).unwrap(); }
            prop_assert_eq!(total, n * AMOUNT_MAX);
        }
    }
}
