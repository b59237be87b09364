//! Split bills: dividing a settlement's total into per-participant shares, exactly and fairly.

use crate::money::Amount;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Randomness for splits, injectable so tests are deterministic.
pub trait SplitRng {
    /// A value drawn uniformly from `0..n` (`n >= 1`).
    fn below(&mut self, n: u64) -> u64;
}

/// A small deterministic PRNG implementing `SplitRng` (splitmix64), seeded explicitly;
/// services seed it from the OS.
///
/// Splits need fairness, not secrecy: a participant who could predict the draw gains at most
/// one won in an equal split, and a random split is a game everyone agreed to play. splitmix64
/// passes BigCrush and needs no dependency.
#[derive(Debug, Clone)]
pub struct SeededRng {
    state: u64,
}

impl SeededRng {
    pub const fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 uniformly distributed bits (splitmix64, Steele, Lea and Flood 2014).
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

impl SplitRng for SeededRng {
    fn below(&mut self, n: u64) -> u64 {
        assert!(n >= 1, "below(0) has no value to return");
        // `x % n` alone favours small values when n does not divide 2^64. Rejecting the
        // lowest `2^64 mod n` draws leaves a count of values that is a multiple of n, so every
        // residue is equally likely. Fewer than half of all draws are ever rejected.
        let rejected_below = n.wrapping_neg() % n;
        loop {
            let x = self.next_u64();
            if x >= rejected_below {
                return x % n;
            }
        }
    }
}

/// How a settlement's total is divided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SplitMethod {
    /// Shares differ by at most 1 won; who pays the extra won is drawn at random.
    Equal,
    /// Random shares, each participant with the same expected share.
    Random,
}

impl SplitMethod {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Equal => "equal",
            Self::Random => "random",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "equal" => Some(Self::Equal),
            "random" => Some(Self::Random),
            _ => None,
        }
    }
}

/// The most participants one settlement may have.
pub const PARTICIPANTS_MAX: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    #[error("a settlement needs at least one participant")]
    NoParticipants,
    #[error("a settlement may have at most {PARTICIPANTS_MAX} participants")]
    TooManyParticipants,
    #[error("the total must be at least 1 won per participant")]
    TotalBelowParticipants,
}

/// Shares in participant order; their sum is `total` exactly and every share is at least 1 won.
pub fn split(
    total: Amount,
    participants: usize,
    method: SplitMethod,
    rng: &mut impl SplitRng,
) -> Result<Vec<i64>, SplitError> {
    match method {
        SplitMethod::Equal => split_equal(total, participants, rng),
        SplitMethod::Random => split_random(total, participants, rng),
    }
}

/// Everyone pays `total / n`; the `total % n` won left over go, one each, to participants
/// drawn uniformly at random — not to the first ones, so being listed first costs nothing.
///
/// 20,000 among 3 → two shares of 6,667 and one of 6,666.
pub fn split_equal(total: Amount, participants: usize, rng: &mut impl SplitRng) -> Result<Vec<i64>, SplitError> {
    let n = check(total, participants)?;
    let base = total.won() / n;
    let extra = (total.won() % n) as usize;
    let mut shares = vec![base; participants];
    for who in sample_distinct(participants as u64, extra, rng) {
        shares[who as usize] += 1;
    }
    debug_assert_eq!(shares.iter().sum::<i64>(), total.won());
    Ok(shares)
}

/// A uniformly random composition of `total` into `n` positive parts ("stars and bars"):
/// `n - 1` distinct cut points drawn uniformly from `1 ..= total - 1`, sorted; the shares are
/// the gaps between them.
///
/// Every composition is equally likely, so the shares are exchangeable: each participant's
/// expected share is `total / n` whatever their position. (The naive "each draw takes a random
/// part of what is left" gives the first participants far more.) Cut points are sampled with
/// Floyd's algorithm, O(n) draws even when the total is 10^12.
pub fn split_random(total: Amount, participants: usize, rng: &mut impl SplitRng) -> Result<Vec<i64>, SplitError> {
    check(total, participants)?;
    let total = total.won();
    // Cut points are 1..=total-1: drawn from 0..total-1 and shifted by one.
    let cuts = sample_distinct((total - 1) as u64, participants - 1, rng);
    let mut shares = Vec::with_capacity(participants);
    let mut previous = 0i64;
    for cut in cuts.into_iter().map(|c| c as i64 + 1).chain([total]) {
        shares.push(cut - previous);
        previous = cut;
    }
    debug_assert_eq!(shares.len(), participants);
    debug_assert!(shares.iter().all(|&s| s >= 1));
    debug_assert_eq!(shares.iter().sum::<i64>(), total);
    Ok(shares)
}

/// Validates the participant count against the limits and the total; returns it as `i64`.
fn check(total: Amount, participants: usize) -> Result<i64, SplitError> {
    if participants == 0 {
        return Err(SplitError::NoParticipants);
    }
    if participants > PARTICIPANTS_MAX {
        return Err(SplitError::TooManyParticipants);
    }
    let n = participants as i64;
    if total.won() < n {
        return Err(SplitError::TotalBelowParticipants);
    }
    Ok(n)
}

/// `k` distinct values drawn uniformly from `0..population`, in ascending order
/// (Floyd's algorithm: exactly `k` draws, memory O(k), whatever the population).
fn sample_distinct(population: u64, k: usize, rng: &mut impl SplitRng) -> BTreeSet<u64> {
    let k64 = k as u64;
    assert!(k64 <= population, "cannot draw {k} distinct values from {population}");
    let mut chosen = BTreeSet::new();
    for j in population - k64..population {
        let t = rng.below(j + 1);
        // If t was already taken, j cannot have been (it exceeds every earlier bound): taking
        // j instead is what makes every k-subset equally likely.
        if !chosen.insert(t) {
            chosen.insert(j);
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::money::AMOUNT_MAX;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn amt(w: i64) -> Amount {
        Amount::parse(w).unwrap()
    }

    #[test]
    fn equal_split_of_20000_among_3() {
        let mut seen = BTreeSet::new();
        for seed in 0..50 {
            let shares = split_equal(amt(20_000), 3, &mut SeededRng::new(seed)).unwrap();
            let mut sorted = shares.clone();
            sorted.sort();
            assert_eq!(sorted, [6_666, 6_667, 6_667]);
            seen.insert(shares.iter().position(|&s| s == 6_666).unwrap());
        }
        assert_eq!(seen.len(), 3, "the participant who pays less is drawn, not fixed");
    }

    #[test]
    fn total_equal_to_participants_gives_everyone_one_won() {
        for method in [SplitMethod::Equal, SplitMethod::Random] {
            let shares = split(amt(7), 7, method, &mut SeededRng::new(1)).unwrap();
            assert_eq!(shares, [1; 7]);
        }
    }

    #[test]
    fn one_participant_pays_everything() {
        for method in [SplitMethod::Equal, SplitMethod::Random] {
            for total in [1, 2, 20_000, AMOUNT_MAX] {
                assert_eq!(split(amt(total), 1, method, &mut SeededRng::new(3)).unwrap(), [total]);
            }
        }
    }

    #[test]
    fn limits_are_refused() {
        let rng = &mut SeededRng::new(0);
        for method in [SplitMethod::Equal, SplitMethod::Random] {
            assert_eq!(split(amt(10), 0, method, rng), Err(SplitError::NoParticipants));
            assert_eq!(
                split(amt(1_000), PARTICIPANTS_MAX + 1, method, rng),
                Err(SplitError::TooManyParticipants)
            );
            assert_eq!(split(amt(2), 3, method, rng), Err(SplitError::TotalBelowParticipants));
            assert!(split(amt(1_000), PARTICIPANTS_MAX, method, rng).is_ok());
        }
    }

    #[test]
    fn method_names_round_trip() {
        for m in [SplitMethod::Equal, SplitMethod::Random] {
            assert_eq!(SplitMethod::parse(m.as_str()), Some(m));
            assert_eq!(serde_json::to_string(&m).unwrap(), format!("\"{}\"", m.as_str()));
        }
        assert_eq!(SplitMethod::parse("Equal"), None);
    }

    #[test]
    fn seeded_rng_is_splitmix64() {
        // Reference outputs of splitmix64 for seed 1234567.
        let mut rng = SeededRng::new(1_234_567);
        let got: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        assert_eq!(
            got,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423
            ]
        );
    }

    #[test]
    fn seeded_rng_stays_in_range_and_is_deterministic() {
        for n in [1, 2, 3, 7, 100, 1 << 40, u64::MAX / 2 + 1, u64::MAX] {
            let (mut a, mut b) = (SeededRng::new(42), SeededRng::new(42));
            for _ in 0..1_000 {
                let x = a.below(n);
                assert!(x < n);
                assert_eq!(x, b.below(n), "same seed, same draws");
            }
        }
        let draws = |seed| {
            let mut r = SeededRng::new(seed);
            (0..8).map(|_| r.below(1_000_000)).collect::<Vec<_>>()
        };
        assert_ne!(draws(1), draws(2));
    }

    #[test]
    fn random_split_gives_every_position_the_same_mean() {
        const RUNS: i64 = 20_000;
        let mut rng = SeededRng::new(2026);
        let mut sums = [0i64; 4];
        for _ in 0..RUNS {
            let shares = split_random(amt(1_000), 4, &mut rng).unwrap();
            for (sum, share) in sums.iter_mut().zip(shares) {
                *sum += share;
            }
        }
        for (position, sum) in sums.iter().enumerate() {
            let mean = *sum as f64 / RUNS as f64;
            assert!(
                (mean - 250.0).abs() <= 5.0,
                "position {position} averages {mean}, not 250 ± 2%"
            );
        }
    }

    #[test]
    fn random_split_draws_every_composition_equally_often() {
        // 5 among 3 has C(4, 2) = 6 compositions; each should come up about 1/6 of the time.
        const RUNS: usize = 12_000;
        let mut rng = SeededRng::new(7);
        let mut counts: BTreeMap<Vec<i64>, usize> = BTreeMap::new();
        for _ in 0..RUNS {
            *counts.entry(split_random(amt(5), 3, &mut rng).unwrap()).or_default() += 1;
        }
        assert_eq!(counts.len(), 6);
        for (composition, count) in counts {
            assert!((1_800..=2_200).contains(&count), "{composition:?} drawn {count} times");
        }
    }

    #[test]
    fn equal_split_spreads_the_extra_won_evenly() {
        const RUNS: usize = 3_000;
        let mut rng = SeededRng::new(99);
        let mut extra = [0usize; 3];
        for _ in 0..RUNS {
            let shares = split_equal(amt(10), 3, &mut rng).unwrap();
            extra[shares.iter().position(|&s| s == 4).unwrap()] += 1;
        }
        for (position, count) in extra.iter().enumerate() {
            assert!(
                (850..=1_150).contains(count),
                "position {position} paid the extra won {count} times"
            );
        }
    }

    fn total_and_participants() -> impl Strategy<Value = (i64, usize)> {
        (1usize..=PARTICIPANTS_MAX).prop_flat_map(|n| (n as i64..=AMOUNT_MAX, Just(n)))
    }

    proptest! {
        #[test]
        fn equal_split_is_exact_and_even((total, n) in total_and_participants(), seed in any::<u64>()) {
            let shares = split_equal(amt(total), n, &mut SeededRng::new(seed)).unwrap();
            prop_assert_eq!(shares.len(), n);
            prop_assert_eq!(shares.iter().sum::<i64>(), total);
            prop_assert!(shares.iter().all(|&s| s >= 1));
            let (min, max) = (*shares.iter().min().unwrap(), *shares.iter().max().unwrap());
            prop_assert!(max - min <= 1);
            let base = total / n as i64;
            let extra = shares.iter().filter(|&&s| s == base + 1).count();
            prop_assert_eq!(extra as i64, total % n as i64);
        }

        #[test]
        fn random_split_is_exact_and_positive((total, n) in total_and_participants(), seed in any::<u64>()) {
            let shares = split_random(amt(total), n, &mut SeededRng::new(seed)).unwrap();
            prop_assert_eq!(shares.len(), n);
            prop_assert_eq!(shares.iter().sum::<i64>(), total);
            prop_assert!(shares.iter().all(|&s| s >= 1));
        }

        #[test]
        fn sample_distinct_draws_k_distinct_values_in_range(
            population in 1u64..=1_000_000_000_000,
            k in 0usize..=PARTICIPANTS_MAX,
            seed in any::<u64>(),
        ) {
            let k = k.min(population as usize);
            let chosen = sample_distinct(population, k, &mut SeededRng::new(seed));
            prop_assert_eq!(chosen.len(), k);
            prop_assert!(chosen.iter().all(|&v| v < population));
        }
    }
}
