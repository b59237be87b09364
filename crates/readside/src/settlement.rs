//! Settlement (정산) of each merchant's business day from the read side: its approved card
//! sales and customer cancels per upstream, fees at the routing configuration's rates
//! (`core::gateway::settlement` does the arithmetic), and the CSV operators export.

use crate::terms::UpstreamTerms;
use jiff::civil::Date;
use minipay_core::gateway::{FeeRate, UpstreamDay, settle};
use minipay_store::SettlementVolume;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use utoipa::ToSchema;
use uuid::Uuid;

/// The transaction type whose approvals are card sales (money the merchant is owed).
const SALE: &str = "card_approval";
/// The transaction type of a customer's cancel of a sale (money given back).
const CANCEL: &str = "card_cancel";

/// Each upstream's fee rate (an upstream without one charges none).
#[derive(Debug, Clone, Default)]
pub struct FeeRates(pub HashMap<String, FeeRate>);

impl FeeRates {
    /// The rates of these upstreams' terms.
    pub fn of(terms: &[UpstreamTerms]) -> Self {
        Self(terms.iter().map(|t| (t.id.clone(), t.fee_rate())).collect())
    }

    pub fn rate(&self, upstream: &str) -> FeeRate {
        self.0.get(upstream).copied().unwrap_or(FeeRate::ZERO)
    }
}

/// One upstream's share of a merchant's day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UpstreamLine {
    pub upstream: String,
    pub fee_rate_bp: u32,
    pub approved_count: u64,
    pub approved_amount: i64,
    pub canceled_count: u64,
    pub canceled_amount: i64,
    /// Approved minus canceled.
    pub net_amount: i64,
    /// On `net_amount`, whole won rounded toward zero.
    pub fee: i64,
}

/// A merchant's business day, settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct MerchantSettlement {
    pub merchant_id: Uuid,
    #[schema(value_type = String, example = "2026-12-04")]
    pub date: Date,
    pub approved_count: u64,
    pub approved_amount: i64,
    pub canceled_count: u64,
    pub canceled_amount: i64,
    pub upstreams: Vec<UpstreamLine>,
    pub fee_total: i64,
    /// Approved − canceled − fees: what the merchant is paid (negative: what it owes).
    pub net_payable: i64,
}

/// Settles every merchant in `volumes` (the day's approved volume by merchant, upstream and
/// transaction type). Cash receipts move no card money and are left out.
pub fn settle_merchants(date: Date, volumes: &[SettlementVolume], rates: &FeeRates) -> Vec<MerchantSettlement> {
    let mut days: BTreeMap<Uuid, BTreeMap<&str, UpstreamDay>> = BTreeMap::new();
    for v in volumes.iter().filter(|v| v.tx_type == SALE || v.tx_type == CANCEL) {
        let day = days
            .entry(v.merchant_id)
            .or_default()
            .entry(&v.upstream)
            .or_insert_with(|| UpstreamDay {
                upstream: v.upstream.clone(),
                rate: rates.rate(&v.upstream),
                approved_count: 0,
                approved_amount: 0,
                canceled_count: 0,
                canceled_amount: 0,
            });
        let count = u64::try_from(v.count).expect("counts are not negative");
        if v.tx_type == SALE {
            day.approved_count += count;
            day.approved_amount += v.amount;
        } else {
            day.canceled_count += count;
            day.canceled_amount += v.amount;
        }
    }
    days.into_iter()
        .map(|(merchant_id, upstreams)| {
            let upstreams: Vec<UpstreamDay> = upstreams.into_values().collect();
            let s = settle(&upstreams);
            MerchantSettlement {
                merchant_id,
                date,
                approved_count: s.approved_count,
                approved_amount: s.approved_amount,
                canceled_count: s.canceled_count,
                canceled_amount: s.canceled_amount,
                upstreams: upstreams
                    .iter()
                    .zip(&s.fees)
                    .map(|(d, f)| UpstreamLine {
                        upstream: d.upstream.clone(),
                        fee_rate_bp: d.rate.bp(),
                        approved_count: d.approved_count,
                        approved_amount: d.approved_amount,
                        canceled_count: d.canceled_count,
                        canceled_amount: d.canceled_amount,
                        net_amount: f.net_amount,
                        fee: f.fee,
                    })
                    .collect(),
                fee_total: s.fee_total,
                net_payable: s.net_payable,
            }
        })
        .collect()
}

/// The CSV export header: one line per merchant and upstream.
pub const SETTLEMENT_CSV_HEADER: &str = "date,merchant_id,upstream,fee_rate_bp,approved_count,approved_amount,canceled_count,canceled_amount,net_amount,fee,net_payable";

/// The settlements as CSV (UTF-8, `\n`): per merchant one line per upstream, whose
/// `net_payable` (net amount − fee) add up to the merchant's.
pub fn settlements_csv(settlements: &[MerchantSettlement]) -> String {
    let mut out = format!("{SETTLEMENT_CSV_HEADER}\n");
    for s in settlements {
        for u in &s.upstreams {
            // Writing to a String cannot fail.
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{}",
                s.date,
                s.merchant_id,
                u.upstream,
                u.fee_rate_bp,
                u.approved_count,
                u.approved_amount,
                u.canceled_count,
                u.canceled_amount,
                u.net_amount,
                u.fee,
                u.net_amount - u.fee
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(merchant: u128, upstream: &str, tx_type: &str, count: i64, amount: i64) -> SettlementVolume {
        SettlementVolume {
            merchant_id: Uuid::from_u128(merchant),
            upstream: upstream.into(),
            tx_type: tx_type.into(),
            count,
            amount,
        }
    }

    #[test]
    fn each_merchant_is_settled_per_upstream_and_cash_receipts_move_no_money() {
        let rates = FeeRates(HashMap::from([
            ("van_a".to_owned(), FeeRate::from_bp(120).unwrap()),
            ("van_b".to_owned(), FeeRate::from_bp(95).unwrap()),
        ]));
        let date = jiff::civil::date(2026, 12, 4);
        let settled = settle_merchants(
            date,
            &[
                volume(1, "van_a", SALE, 3, 45_000),
                volume(1, "van_a", CANCEL, 1, 15_000),
                volume(1, "van_b", SALE, 1, 10_001),
                volume(1, "van_b", "cash_receipt", 5, 99_999),
                volume(2, "card", SALE, 1, 7_000),
            ],
            &rates,
        );
        assert_eq!(settled.len(), 2);
        let m1 = &settled[0];
        // van_a: 30,000 × 1.20% = 360; van_b: 10,001 × 0.95% = 95.0095 → 95.
        assert_eq!(
            (
                m1.approved_count,
                m1.approved_amount,
                m1.canceled_count,
                m1.canceled_amount
            ),
            (4, 55_001, 1, 15_000)
        );
        assert_eq!(m1.upstreams.iter().map(|u| u.fee).collect::<Vec<_>>(), vec![360, 95]);
        assert_eq!((m1.fee_total, m1.net_payable), (455, 40_001 - 455));
        // An upstream with no configured rate charges nothing.
        assert_eq!((settled[1].fee_total, settled[1].net_payable), (0, 7_000));
        let csv = settlements_csv(&settled);
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], SETTLEMENT_CSV_HEADER);
        assert_eq!(
            lines[1],
            format!(
                "2026-12-04,{},van_a,120,3,45000,1,15000,30000,360,29640",
                Uuid::from_u128(1)
            )
        );
        assert_eq!(lines.len(), 4);
        let payable: i64 = lines[1..3]
            .iter()
            .map(|l| l.rsplit(',').next().unwrap().parse::<i64>().unwrap())
            .sum();
        assert_eq!(payable, m1.net_payable);
    }
}
