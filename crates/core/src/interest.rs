//! Savings interest: simple daily interest on the principal, computed exactly with the fraction carried.

use crate::ledger::SavingsProduct;

/// Interest is quoted per year and paid per day; every year counts 365 days (leap years too),
/// so a year of daily payments adds up to exactly the annual rate.
pub const DAYS_PER_YEAR: i64 = 365;

/// Rates are integers in basis points: 1% = 100 bp.
pub const BASIS_POINTS_PER_UNIT: i64 = 10_000;

/// Denominator of carried fractions: 1 unit = 1 / (10_000 × 365) won.
///
/// One day of interest is `principal × rate / 365`. With the rate in basis points that is
/// `principal × rate_bp / (10_000 × 365)` won: a rational number whose denominator is this same
/// fixed value every day. So the whole computation stays in integers with no rounding at all —
/// no floating point, and no decimal intermediates are needed ("exact decimal" in the contract
/// is met exactly). Each day pays the whole won and carries the remainder, a numerator over
/// this denominator stored per account, to the next day. After N days at a constant principal
/// the total paid is therefore exactly `floor(N × principal × rate_bp / CARRY_DENOMINATOR)`:
/// never ahead of the exact simple interest and less than 1 won behind it.
pub const CARRY_DENOMINATOR: i64 = BASIS_POINTS_PER_UNIT * DAYS_PER_YEAR;

/// The annual simple-interest rate of a savings product, in basis points.
pub const fn annual_rate_bp(product: SavingsProduct) -> i64 {
    match product {
        SavingsProduct::Free => 300,
        SavingsProduct::Fixed => 500,
    }
}

/// One day's interest for one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyInterest {
    /// Whole won credited today.
    pub paid: i64,
    /// The fraction of a won not yet paid, as a numerator over `CARRY_DENOMINATOR`; the next
    /// day's `carry_in`. Always in `0..CARRY_DENOMINATOR`.
    pub carry_out: i64,
}

/// One day's accrual for an account: the won paid today and the carry numerator for tomorrow.
///
/// `principal` is the money deposited (never the interest already paid, which keeps the
/// interest simple rather than compounding), `rate_bp` the annual rate in basis points, and
/// `carry_in` yesterday's `carry_out` (0 on the first day), in `0..CARRY_DENOMINATOR`.
///
/// Invariant: `paid × CARRY_DENOMINATOR + carry_out == principal × rate_bp + carry_in`.
pub fn accrue_day(principal: i64, rate_bp: i64, carry_in: i64) -> DailyInterest {
    assert!(principal >= 0, "principal {principal} is negative");
    assert!(
        (0..=BASIS_POINTS_PER_UNIT).contains(&rate_bp),
        "rate {rate_bp} bp outside 0..=100%"
    );
    assert!(
        (0..CARRY_DENOMINATOR).contains(&carry_in),
        "carry {carry_in} outside 0..{CARRY_DENOMINATOR}"
    );
    // i64 holds principal × rate_bp for any principal below ~9.2 × 10^14 won even at 100%, and
    // 10^13 won at 5% is only 5 × 10^15 units; an overflow here means corrupted state.
    let accrued = principal
        .checked_mul(rate_bp)
        .and_then(|units| units.checked_add(carry_in))
        .unwrap_or_else(|| panic!("interest on principal {principal} at {rate_bp} bp overflows i64"));
    DailyInterest {
        paid: accrued / CARRY_DENOMINATOR,
        carry_out: accrued % CARRY_DENOMINATOR,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Total paid over `days` at a constant principal, starting with no carry.
    fn paid_over(principal: i64, rate_bp: i64, days: i64) -> (i64, i64) {
        let (mut paid, mut carry) = (0, 0);
        for _ in 0..days {
            let day = accrue_day(principal, rate_bp, carry);
            paid += day.paid;
            carry = day.carry_out;
        }
        (paid, carry)
    }

    #[test]
    fn rates_of_the_products() {
        assert_eq!(annual_rate_bp(SavingsProduct::Free), 300);
        assert_eq!(annual_rate_bp(SavingsProduct::Fixed), 500);
        assert_eq!(CARRY_DENOMINATOR, 3_650_000);
    }

    #[test]
    fn fixed_one_million_examples_from_the_contract() {
        let fixed = annual_rate_bp(SavingsProduct::Fixed);
        assert_eq!(accrue_day(1_000_000, fixed, 0).paid, 136);
        assert_eq!(paid_over(1_000_000, fixed, 10).0, 1_369);
        // 5% of 1,000,000 is exactly 50,000 after a year: nothing is lost to rounding.
        assert_eq!(paid_over(1_000_000, fixed, 365), (50_000, 0));
    }

    #[test]
    fn free_one_million_first_day() {
        assert_eq!(accrue_day(1_000_000, annual_rate_bp(SavingsProduct::Free), 0).paid, 82);
    }

    #[test]
    fn the_fraction_is_carried_not_dropped() {
        // 136.986... won a day: dropping the fraction would pay 136 × 365 = 49,640 a year.
        let first = accrue_day(1_000_000, 500, 0);
        assert_eq!(
            first,
            DailyInterest {
                paid: 136,
                carry_out: 3_600_000
            }
        );
        let second = accrue_day(1_000_000, 500, first.carry_out);
        assert_eq!(
            second,
            DailyInterest {
                paid: 137,
                carry_out: 3_550_000
            }
        );
    }

    #[test]
    fn interest_is_simple_not_compounded() {
        let fixed = annual_rate_bp(SavingsProduct::Fixed);
        // Feeding each day's interest back into the principal would compound to ~51,267 a year.
        let (mut principal, mut carry) = (1_000_000i64, 0);
        for _ in 0..365 {
            let day = accrue_day(principal, fixed, carry);
            principal += day.paid;
            carry = day.carry_out;
        }
        assert!(
            (51_200..=51_267).contains(&(principal - 1_000_000)),
            "compounded: {principal}"
        );
        // minipay accrues on the deposited principal alone, which stays 1,000,000 all year.
        assert_eq!(paid_over(1_000_000, fixed, 365).0, 50_000);
    }

    #[test]
    fn no_principal_no_interest() {
        assert_eq!(accrue_day(0, 500, 0), DailyInterest { paid: 0, carry_out: 0 });
        assert_eq!(accrue_day(0, 500, 17), DailyInterest { paid: 0, carry_out: 17 });
    }

    #[test]
    fn large_principals_do_not_overflow() {
        let day = accrue_day(10_000_000_000_000, 500, CARRY_DENOMINATOR - 1);
        assert_eq!(
            i128::from(day.paid) * i128::from(CARRY_DENOMINATOR) + i128::from(day.carry_out),
            10_000_000_000_000i128 * 500 + i128::from(CARRY_DENOMINATOR - 1)
        );
    }

    #[test]
    #[should_panic(expected = "carry")]
    fn a_carry_out_of_range_is_a_bug() {
        accrue_day(1_000, 500, CARRY_DENOMINATOR);
    }

    #[test]
    #[should_panic(expected = "overflows")]
    fn an_impossible_principal_panics_instead_of_wrapping() {
        accrue_day(i64::MAX / 100, 500, 0);
    }

    proptest! {
        #[test]
        fn cumulative_interest_is_exact(
            principal in 0i64..=1_000_000_000_000,
            rate_bp in prop_oneof![Just(300i64), Just(500i64)],
            days in 1i64..=730,
        ) {
            let (mut paid, mut carry) = (0i64, 0i64);
            for day in 1..=days {
                let today = accrue_day(principal, rate_bp, carry);
                prop_assert!((0..CARRY_DENOMINATOR).contains(&today.carry_out));
                prop_assert!(today.paid >= 0);
                paid += today.paid;
                carry = today.carry_out;
                // The exact simple interest so far, as units over CARRY_DENOMINATOR.
                let exact = i128::from(day) * i128::from(principal) * i128::from(rate_bp);
                let denominator = i128::from(CARRY_DENOMINATOR);
                prop_assert_eq!(i128::from(paid), exact / denominator);
                // so paid <= exact < paid + 1: never ahead, and less than 1 won behind
                prop_assert!(i128::from(paid) * denominator <= exact);
                prop_assert!(exact < (i128::from(paid) + 1) * denominator);
            }
        }

        #[test]
        fn a_day_conserves_every_unit(
            principal in 0i64..=10_000_000_000_000,
            rate_bp in 0i64..=BASIS_POINTS_PER_UNIT,
            carry_in in 0i64..CARRY_DENOMINATOR,
        ) {
            let day = accrue_day(principal, rate_bp, carry_in);
            prop_assert!((0..CARRY_DENOMINATOR).contains(&day.carry_out));
            prop_assert_eq!(
                i128::from(day.paid) * i128::from(CARRY_DENOMINATOR) + i128::from(day.carry_out),
                i128::from(principal) * i128::from(rate_bp) + i128::from(carry_in)
            );
        }
    }
}
