//! Settlement arithmetic (정산) for one merchant and business day: per upstream, the fee on the
//! day's net card volume at the upstream's rate, in whole won rounded toward zero (원 미만 절사),
//! and what is owed to the merchant — every sum exact, in integer won.

use thiserror::Error;

/// Basis points in 100%.
pub const BP_PER_WHOLE: u32 = 10_000;

/// A fee rate in basis points of the amount (1 bp = 0.01%), at most 100%.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FeeRate(u32);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("a fee rate is at most {BP_PER_WHOLE} basis points, not {0}")]
pub struct FeeRateTooHigh(pub u32);

impl FeeRate {
    pub const ZERO: Self = Self(0);

    pub fn from_bp(bp: u32) -> Result<Self, FeeRateTooHigh> {
        if bp > BP_PER_WHOLE {
            return Err(FeeRateTooHigh(bp));
        }
        Ok(Self(bp))
    }

    pub fn bp(self) -> u32 {
        self.0
    }

    /// The fee on `amount` won: `amount × rate`, rounded toward zero to the won. A negative
    /// amount (a day with more canceled than approved) gives the fee back the same way, so
    /// `fee(-a) = -fee(a)` and no day's rounding ever favours either side twice.
    pub fn fee(self, amount: i64) -> i64 {
        let exact = i128::from(amount) * i128::from(self.0);
        // Integer division truncates toward zero; |fee| <= |amount|, so it fits in i64.
        i64::try_from(exact / i128::from(BP_PER_WHOLE)).expect("a fee is at most its amount")
    }
}

/// One upstream's share of a merchant's business day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamDay {
    pub upstream: String,
    pub rate: FeeRate,
    pub approved_count: u64,
    pub approved_amount: i64,
    pub canceled_count: u64,
    pub canceled_amount: i64,
}

/// The fee of one upstream's day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamFee {
    pub upstream: String,
    pub rate: FeeRate,
    /// Approved minus canceled.
    pub net_amount: i64,
    pub fee: i64,
}

/// A merchant's business day, settled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub approved_count: u64,
    pub approved_amount: i64,
    pub canceled_count: u64,
    pub canceled_amount: i64,
    pub fees: Vec<UpstreamFee>,
    pub fee_total: i64,
    /// Approved − canceled − fees: what the merchant is paid (negative: what it owes).
    pub net_payable: i64,
}

/// Settles a merchant's day from its upstreams' shares: one fee per upstream, on its net
/// volume (one rounding per upstream and day, not per transaction).
pub fn settle(days: &[UpstreamDay]) -> Settlement {
    let fees: Vec<UpstreamFee> = days
        .iter()
        .map(|d| {
            let net_amount = d.approved_amount - d.canceled_amount;
            UpstreamFee {
                upstream: d.upstream.clone(),
                rate: d.rate,
                net_amount,
                fee: d.rate.fee(net_amount),
            }
        })
        .collect();
    let approved_amount = days.iter().map(|d| d.approved_amount).sum::<i64>();
    let canceled_amount = days.iter().map(|d| d.canceled_amount).sum::<i64>();
    let fee_total = fees.iter().map(|f| f.fee).sum::<i64>();
    let settlement = Settlement {
        approved_count: days.iter().map(|d| d.approved_count).sum(),
        approved_amount,
        canceled_count: days.iter().map(|d| d.canceled_count).sum(),
        canceled_amount,
        net_payable: approved_amount - canceled_amount - fee_total,
        fees,
        fee_total,
    };
    debug_assert_eq!(
        settlement.net_payable + settlement.fee_total,
        settlement.approved_amount - settlement.canceled_amount,
        "every won is either the merchant's or a fee"
    );
    settlement
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Card amounts: up to 10 billion won a day per upstream.
    const DAY_MAX: i64 = 10_000_000_000;

    fn rate() -> impl Strategy<Value = FeeRate> {
        (0..=BP_PER_WHOLE).prop_map(|bp| FeeRate::from_bp(bp).unwrap())
    }

    proptest! {
        #[test]
        fn a_fee_is_the_exact_product_rounded_toward_zero(amount in -DAY_MAX..=DAY_MAX, rate in rate()) {
            let fee = rate.fee(amount);
            let exact = i128::from(amount) * i128::from(rate.bp());
            let scaled = i128::from(fee) * 10_000;
            // |fee × 10,000| <= |exact| < (|fee| + 1) × 10,000, with the sign of the amount.
            prop_assert!(scaled.abs() <= exact.abs() && exact.abs() < scaled.abs() + 10_000);
            prop_assert!(fee == 0 || (fee > 0) == (amount > 0));
        }

        #[test]
        fn giving_back_mirrors_taking(amount in 0..=DAY_MAX, rate in rate()) {
            prop_assert_eq!(rate.fee(-amount), -rate.fee(amount));
        }

        #[test]
        fn fees_grow_with_the_amount_and_the_rate(a in 0..=DAY_MAX, b in 0..=DAY_MAX, r in rate(), s in rate()) {
            let (small, large) = (a.min(b), a.max(b));
            prop_assert!(r.fee(small) <= r.fee(large));
            prop_assert!(r.min(s).fee(large) <= r.max(s).fee(large));
        }

        #[test]
        fn every_won_is_the_merchants_or_a_fee(days in prop::collection::vec(
            ("van[a-c]", rate(), 0u64..10_000, 0..=DAY_MAX, 0u64..100, 0..=DAY_MAX / 10),
            0..5,
        )) {
            let days: Vec<UpstreamDay> = days
                .into_iter()
                .map(|(upstream, rate, approved_count, approved_amount, canceled_count, canceled_amount)| UpstreamDay {
                    upstream, rate, approved_count, approved_amount, canceled_count, canceled_amount,
                })
                .collect();
            let s = settle(&days);
            prop_assert_eq!(s.net_payable + s.fee_total, s.approved_amount - s.canceled_amount);
            prop_assert_eq!(s.fee_total, s.fees.iter().map(|f| f.fee).sum::<i64>());
            prop_assert_eq!(s.fees.len(), days.len());
        }
    }

    #[test]
    fn worked_examples() {
        let r = FeeRate::from_bp(120).unwrap(); // 1.2%
        assert_eq!(r.fee(15_000), 180);
        assert_eq!(r.fee(15_099), 181); // 181.188 → 181
        assert_eq!(r.fee(83), 0); // 0.996 → 0
        assert_eq!(r.fee(-15_099), -181);
        assert_eq!(FeeRate::from_bp(10_000).unwrap().fee(7), 7);
        assert_eq!(FeeRate::ZERO.fee(1_000_000), 0);
        assert_eq!(FeeRate::from_bp(10_001), Err(FeeRateTooHigh(10_001)));
    }

    #[test]
    fn a_day_is_settled_per_upstream() {
        let day = |upstream: &str, bp, approved_amount, canceled_amount| UpstreamDay {
            upstream: upstream.into(),
            rate: FeeRate::from_bp(bp).unwrap(),
            approved_count: 3,
            approved_amount,
            canceled_count: 1,
            canceled_amount,
        };
        let s = settle(&[day("vana", 120, 45_099, 15_000), day("vanb", 250, 10_000, 0)]);
        assert_eq!(s.fees[0].net_amount, 30_099);
        assert_eq!(s.fees[0].fee, 361); // 361.188
        assert_eq!(s.fees[1].fee, 250);
        assert_eq!((s.approved_count, s.canceled_count), (6, 2));
        assert_eq!(s.fee_total, 611);
        assert_eq!(s.net_payable, 55_099 - 15_000 - 611);
    }
}
