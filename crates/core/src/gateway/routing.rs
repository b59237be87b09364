//! Choosing an upstream for an approval: the issuer by BIN, then VANs by weight, then fallbacks.
//!
//! Pure: the random draw is a parameter and breakers are the caller's business. The caller
//! walks [`Route::order`], skipping upstreams whose breaker refuses, and moves on only when a
//! request could not be *sent* (a sent request that timed out is never re-sent elsewhere).

use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// Upstream ids are short slugs: they name breakers, metrics and settlement rows.
pub const ID_LEN_MAX: usize = 32;
/// A BIN prefix is 1 to this many digits (card BINs are 6–8; shorter prefixes cover ranges).
pub const BIN_LEN_MAX: usize = 8;

/// A card company (issuer). `direct` means we hold a contract and send to it directly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardCompany {
    pub id: String,
    pub name: String,
    /// Digit prefixes of the PANs it issues; the longest matching prefix across all companies
    /// names the issuer.
    pub bins: Vec<String>,
    pub direct: bool,
}

/// A VAN (value-added network) relaying to every card company. `weight` is its share of the
/// volume (the fee contracts split volume by these ratios); 0 means fallback only: never drawn
/// first, still tried when the others cannot be sent to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Van {
    pub id: String,
    pub name: String,
    pub weight: u32,
}

/// Whether timed-out approvals get a network cancel (망취소).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetworkCancelMode {
    /// Only when more than one upstream is configured: a single VAN cancels on its side.
    #[default]
    Auto,
    On,
    Off,
}

/// The routing configuration (`PUT /v1/admin/routing`, without endpoints and dialects).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingTable {
    pub card_companies: Vec<CardCompany>,
    pub vans: Vec<Van>,
    #[serde(default)]
    pub network_cancel: NetworkCancelMode,
}

/// Where to send one approval.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// The issuing card company's id, whether or not it is direct (`None`: no BIN matched).
    pub issuer: Option<String>,
    /// Upstream ids to try in order: the direct issuer, the drawn VAN, the other VANs heaviest
    /// first (ties by id). Every VAN appears exactly once.
    pub order: Vec<String>,
}

/// A routing table that must not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingError {
    #[error("upstream id {0:?} must be 1 to 32 characters of a-z, 0-9, '_' or '-'")]
    InvalidId(String),
    #[error("upstream id {0:?} is used twice")]
    DuplicateId(String),
    #[error("upstream {0:?} needs a name")]
    EmptyName(String),
    #[error("at least one VAN is required")]
    NoVan,
    #[error("at least one VAN needs a weight of 1 or more")]
    NoWeightedVan,
    #[error("the VAN weights add up to more than {}", u32::MAX)]
    WeightOverflow,
    #[error("BIN {bin:?} of {company:?} must be 1 to 8 digits")]
    InvalidBin { company: String, bin: String },
    #[error("BIN {bin:?} is claimed by both {first:?} and {second:?}")]
    DuplicateBin { bin: String, first: String, second: String },
}

impl RoutingTable {
    /// Checks everything `route` relies on; a table that fails is never applied.
    pub fn validate(&self) -> Result<(), RoutingError> {
        self.validate_ids()?;
        self.validate_vans()?;
        self.validate_bins()
    }

    /// The issuer of `pan`: the company with the longest BIN that prefixes it.
    pub fn issuer_of(&self, pan: &str) -> Option<&CardCompany> {
        self.card_companies
            .iter()
            .flat_map(|c| c.bins.iter().map(move |b| (b, c)))
            .filter(|(bin, _)| !bin.is_empty() && pan.starts_with(bin.as_str()))
            .max_by_key(|(bin, _)| bin.len())
            .map(|(_, c)| c)
    }

    /// The order to try upstreams for `pan`. `draw` is a uniformly random u64 from the caller.
    pub fn route(&self, pan: &str, draw: u64) -> Route {
        let issuer = self.issuer_of(pan);
        let mut order: Vec<String> = issuer.filter(|c| c.direct).map(|c| c.id.clone()).into_iter().collect();
        let first = self.draw_van(draw);
        order.extend(first.map(|v| v.id.clone()));
        order.extend(
            self.vans_heaviest_first()
                .into_iter()
                .filter(|v| Some(*v) != first)
                .map(|v| v.id.clone()),
        );
        Route {
            issuer: issuer.map(|c| c.id.clone()),
            order,
        }
    }

    /// On and Off force it; Auto: only with more than one upstream (VANs and direct card
    /// companies), since a single VAN cancels on its side.
    pub fn network_cancel_enabled(&self) -> bool {
        match self.network_cancel {
            NetworkCancelMode::On => true,
            NetworkCancelMode::Off => false,
            NetworkCancelMode::Auto => self.upstream_count() > 1,
        }
    }

    /// VANs plus direct card companies: every upstream the gateway may send to.
    pub fn upstream_count(&self) -> usize {
        self.vans.len() + self.card_companies.iter().filter(|c| c.direct).count()
    }

    /// The sum of VAN weights (u64: no overflow even on an unvalidated table).
    pub fn total_weight(&self) -> u64 {
        self.vans.iter().map(|v| u64::from(v.weight)).sum()
    }

    /// Picks a VAN with probability weight / total. `draw * total >> 64` maps the u64 onto
    /// `0..total` without the bias of `draw % total` (each slot gets ⌊2⁶⁴/total⌋ or one more
    /// draws). `None` when no VAN has weight.
    pub fn draw_van(&self, draw: u64) -> Option<&Van> {
        let total = self.total_weight();
        if total == 0 {
            return None;
        }
        let slot = ((u128::from(draw) * u128::from(total)) >> 64) as u64;
        let mut below = 0u64;
        self.vans.iter().find(|v| {
            below += u64::from(v.weight);
            slot < below
        })
    }

    /// The fallback order: heaviest first, ties by id, so every instance agrees.
    fn vans_heaviest_first(&self) -> Vec<&Van> {
        let mut vans: Vec<&Van> = self.vans.iter().collect();
        vans.sort_by(|a, b| b.weight.cmp(&a.weight).then_with(|| a.id.cmp(&b.id)));
        vans
    }

    fn validate_ids(&self) -> Result<(), RoutingError> {
        let companies = self.card_companies.iter().map(|c| (&c.id, &c.name));
        let vans = self.vans.iter().map(|v| (&v.id, &v.name));
        let mut seen = HashSet::new();
        for (id, name) in companies.chain(vans) {
            if !is_valid_id(id) {
                return Err(RoutingError::InvalidId(id.clone()));
            }
            if name.trim().is_empty() {
                return Err(RoutingError::EmptyName(id.clone()));
            }
            if !seen.insert(id.as_str()) {
                return Err(RoutingError::DuplicateId(id.clone()));
            }
        }
        Ok(())
    }

    fn validate_vans(&self) -> Result<(), RoutingError> {
        if self.vans.is_empty() {
            return Err(RoutingError::NoVan);
        }
        if self.total_weight() == 0 {
            return Err(RoutingError::NoWeightedVan);
        }
        if self.total_weight() > u64::from(u32::MAX) {
            return Err(RoutingError::WeightOverflow);
        }
        Ok(())
    }

    /// The same BIN twice, even within one company, is refused: "longest wins" could not
    /// decide between them, and a duplicate within one company is a typo worth seeing.
    fn validate_bins(&self) -> Result<(), RoutingError> {
        let mut owner: HashMap<&str, &str> = HashMap::new();
        for company in &self.card_companies {
            for bin in &company.bins {
                if !is_valid_bin(bin) {
                    return Err(RoutingError::InvalidBin {
                        company: company.id.clone(),
                        bin: bin.clone(),
                    });
                }
                if let Some(first) = owner.insert(bin, &company.id) {
                    return Err(RoutingError::DuplicateBin {
                        bin: bin.clone(),
                        first: first.to_owned(),
                        second: company.id.clone(),
                    });
                }
            }
        }
        Ok(())
    }
}

/// 1..=32 characters of `[a-z0-9_-]`.
pub fn is_valid_id(id: &str) -> bool {
    (1..=ID_LEN_MAX).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// 1..=8 ASCII digits.
pub fn is_valid_bin(bin: &str) -> bool {
    (1..=BIN_LEN_MAX).contains(&bin.len()) && bin.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn company(id: &str, bins: &[&str], direct: bool) -> CardCompany {
        CardCompany {
            id: id.into(),
            name: id.to_uppercase(),
            bins: bins.iter().map(|b| (*b).to_owned()).collect(),
            direct,
        }
    }

    fn van(id: &str, weight: u32) -> Van {
        Van {
            id: id.into(),
            name: id.to_uppercase(),
            weight,
        }
    }

    fn table() -> RoutingTable {
        RoutingTable {
            card_companies: vec![
                company("shinhan", &["4", "451842"], true),
                company("kb", &["45184299", "5"], false),
            ],
            vans: vec![van("ksnet", 70), van("nice", 30), van("kis", 30)],
            network_cancel: NetworkCancelMode::Auto,
        }
    }

    /// splitmix64: a tiny, well-mixed deterministic generator for the statistical test.
    fn splitmix64(state: &mut u64) -> u64 {
        *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    #[test]
    fn the_sample_table_is_valid() {
        assert_eq!(table().validate(), Ok(()));
    }

    #[test]
    fn the_longest_bin_wins() {
        let t = table();
        let issuer = |pan: &str| t.issuer_of(pan).map(|c| c.id.as_str());
        assert_eq!(issuer("4111111111111111"), Some("shinhan"));
        assert_eq!(issuer("4518420000000000"), Some("shinhan"));
        assert_eq!(issuer("4518429900000000"), Some("kb"));
        assert_eq!(issuer("5500000000000004"), Some("kb"));
        assert_eq!(issuer("9400000000000000"), None);
        assert_eq!(issuer(""), None);
    }

    #[test]
    fn a_direct_issuer_goes_first_then_the_drawn_van_then_heaviest() {
        let t = table();
        let route = t.route("4111111111111111", u64::MAX);
        assert_eq!(route.issuer.as_deref(), Some("shinhan"));
        assert_eq!(route.order, ["shinhan", "kis", "ksnet", "nice"]);
        let route = t.route("5500000000000004", 0);
        assert_eq!(route.issuer.as_deref(), Some("kb"));
        assert_eq!(route.order, ["ksnet", "kis", "nice"], "kb is not direct; ties by id");
        let route = t.route("9400000000000000", 0);
        assert_eq!(route.issuer, None);
    }

    #[test]
    fn a_zero_weight_van_is_fallback_only() {
        let mut t = table();
        t.vans.push(van("backup", 0));
        assert_eq!(t.validate(), Ok(()));
        for draw in [0, u64::MAX / 2, u64::MAX] {
            let order = t.route("9400", draw).order;
            assert_ne!(order[0], "backup");
            assert_eq!(order.last().map(String::as_str), Some("backup"));
        }
    }

    #[test]
    fn validation_refuses_broken_tables() {
        let check = |edit: fn(&mut RoutingTable), want: RoutingError| {
            let mut t = table();
            edit(&mut t);
            assert_eq!(t.validate(), Err(want));
        };
        check(|t| t.vans.clear(), RoutingError::NoVan);
        check(
            |t| t.vans.iter_mut().for_each(|v| v.weight = 0),
            RoutingError::NoWeightedVan,
        );
        check(|t| t.vans[0].weight = u32::MAX, RoutingError::WeightOverflow);
        check(|t| t.vans[1].id = "kb".into(), RoutingError::DuplicateId("kb".into()));
        check(|t| t.vans[1].id = "Nice".into(), RoutingError::InvalidId("Nice".into()));
        check(|t| t.vans[1].id = String::new(), RoutingError::InvalidId(String::new()));
        check(
            |t| t.vans[1].id = "a".repeat(33),
            RoutingError::InvalidId("a".repeat(33)),
        );
        check(|t| t.vans[1].name = " ".into(), RoutingError::EmptyName("nice".into()));
        let bin = |company: &str, bin: &str| RoutingError::InvalidBin {
            company: company.into(),
            bin: bin.into(),
        };
        check(
            |t| t.card_companies[1].bins.push("123456789".into()),
            bin("kb", "123456789"),
        );
        check(|t| t.card_companies[1].bins.push("12a4".into()), bin("kb", "12a4"));
        check(|t| t.card_companies[1].bins.push(String::new()), bin("kb", ""));
        check(
            |t| t.card_companies[1].bins.push("451842".into()),
            RoutingError::DuplicateBin {
                bin: "451842".into(),
                first: "shinhan".into(),
                second: "kb".into(),
            },
        );
        assert!(is_valid_id("van_1-a") && is_valid_id(&"z".repeat(32)));
    }

    #[test]
    fn network_cancel_auto_needs_more_than_one_upstream() {
        let mut t = RoutingTable {
            card_companies: vec![company("kb", &["5"], false)],
            vans: vec![van("ksnet", 1)],
            network_cancel: NetworkCancelMode::Auto,
        };
        assert!(!t.network_cancel_enabled(), "a single VAN cancels on its side");
        t.network_cancel = NetworkCancelMode::On;
        assert!(t.network_cancel_enabled());
        t.network_cancel = NetworkCancelMode::Auto;
        t.card_companies[0].direct = true;
        assert!(t.network_cancel_enabled());
        t.network_cancel = NetworkCancelMode::Off;
        assert!(!t.network_cancel_enabled());
        t.card_companies[0].direct = false;
        t.vans.push(van("nice", 1));
        t.network_cancel = NetworkCancelMode::Auto;
        assert!(t.network_cancel_enabled());
    }

    #[test]
    fn json_shape() {
        let t: RoutingTable = serde_json::from_str(
            r#"{"card_companies": [{"id": "kb", "name": "KB", "bins": ["5"], "direct": true,
                "endpoint": "tcp://x", "dialect": "iso8583"}],
                "vans": [{"id": "ksnet", "name": "KSNET", "weight": 1}], "network_cancel": "off"}"#,
        )
        .unwrap();
        assert_eq!(t.network_cancel, NetworkCancelMode::Off);
        assert_eq!(serde_json::to_value(NetworkCancelMode::Auto).unwrap(), "auto");
    }

    #[test]
    fn weights_70_30_split_10000_random_draws_70_30() {
        let mut t = table();
        t.vans.truncate(2);
        let mut state = 20_260_302;
        let ksnet = (0..10_000)
            .filter(|_| t.route("9400", splitmix64(&mut state)).order[0] == "ksnet")
            .count();
        assert!((6_700..=7_300).contains(&ksnet), "ksnet drawn {ksnet} times");
    }

    fn vans() -> impl Strategy<Value = Vec<Van>> {
        prop::collection::vec(0u32..50, 1..6).prop_map(|ws| {
            let mut vans: Vec<Van> = ws.iter().enumerate().map(|(i, w)| van(&format!("v{i}"), *w)).collect();
            vans[0].weight += 1;
            vans
        })
    }

    proptest! {
        #[test]
        fn evenly_spread_draws_pick_vans_by_exact_weight_share(vans in vans(), n in 1u64..3_000) {
            let t = RoutingTable { card_companies: vec![], vans, network_cancel: NetworkCancelMode::Auto };
            let total = t.total_weight();
            // n draws evenly spread over u64: draw_i = ⌊i·2⁶⁴/n⌋.
            let draws = (0..n).map(|i| ((u128::from(i) << 64) / u128::from(n)) as u64);
            let mut counts = vec![0u64; t.vans.len()];
            for draw in draws {
                let picked = t.draw_van(draw).unwrap();
                counts[t.vans.iter().position(|v| v.id == picked.id).unwrap()] += 1;
            }
            for (v, count) in t.vans.iter().zip(counts) {
                // |count − n·w/total| ≤ 1, in integers.
                let exact = u128::from(n) * u128::from(v.weight);
                prop_assert!(u128::from(count * total).abs_diff(exact) <= u128::from(total), "{} drawn {count}", v.id);
            }
        }

        #[test]
        fn the_order_is_every_usable_upstream_once(vans in vans(), direct: bool, draw: u64, pan in "[0-9]{16}") {
            let t = RoutingTable {
                card_companies: vec![company("issuer", &[&pan[..6]], direct), company("other", &[&pan[..3]], true)],
                vans,
                network_cancel: NetworkCancelMode::Auto,
            };
            prop_assert_eq!(t.validate(), Ok(()));
            let route = t.route(&pan, draw);
            prop_assert_eq!(route.issuer.as_deref(), Some("issuer"), "the 6-digit BIN beats the 3-digit one");
            let mut usable: Vec<&str> = t.vans.iter().map(|v| v.id.as_str()).collect();
            if direct {
                prop_assert_eq!(route.order[0].as_str(), "issuer");
                usable.push("issuer");
            }
            let mut order: Vec<&str> = route.order.iter().map(String::as_str).collect();
            let first_van = order[usize::from(direct)];
            prop_assert!(t.vans.iter().any(|v| v.id == first_van && v.weight > 0));
            let rest = &route.order[usize::from(direct) + 1..];
            let weights: Vec<u32> = rest.iter().map(|id| t.vans.iter().find(|v| &v.id == id).unwrap().weight).collect();
            prop_assert!(weights.windows(2).all(|w| w[0] >= w[1]), "heaviest first: {:?}", weights);
            order.sort_unstable();
            usable.sort_unstable();
            prop_assert_eq!(order, usable);
        }
    }
}
