//! Settlement (정산) of each merchant's business day from the read side: its approved card
//! sales and customer cancels per upstream, fees at the routing configuration's rates
//! (`core::gateway::settlement` does the arithmetic), and the CSV operators export.

use crate::terms::UpstreamTerms;
use jiff::civil::Date;
use minipay_core::gateway::{FeeRate, UpstreamDay, settle};
use minipay_store::SettledRow;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use utoipa::ToSchema;
use uuid::Uuid;

/// The sales whose money is card money (a cash receipt moves none).
const CARD_SALE: &str = "card_approval";

/// Each upstream's fee rate on a day (an upstream configured without one charges none).
#[derive(Debug, Clone, Default)]
pub struct FeeRates(pub HashMap<String, FeeRate>);

impl FeeRates {
    /// The rates of these upstreams' terms.
    pub fn of(terms: &[UpstreamTerms]) -> Self {
        Self(terms.iter().map(|t| (t.id.clone(), t.fee_rate())).collect())
    }
}

/// An upstream with volume that day but no terms in the routing configuration in force then.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{upstream} carried volume on {date} but is not in the routing configuration in force that day")]
pub struct MissingTerms {
    pub upstream: String,
    pub date: Date,
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

/// Settles every merchant in `records` (what was settled that day: see
/// `Session::settled_records`): card sales approved are the merchant's, cancels (at their
/// sale's amount) are given back; cash receipts move no card money.
pub fn settle_merchants(
    date: Date,
    records: &[SettledRow],
    rates: &FeeRates,
) -> Result<Vec<MerchantSettlement>, MissingTerms> {
    let mut days: BTreeMap<Uuid, BTreeMap<&str, UpstreamDay>> = BTreeMap::new();
    for r in records.iter().filter(|r| r.sale_type == CARD_SALE) {
        let rate = *rates.0.get(&r.upstream).ok_or_else(|| MissingTerms {
            upstream: r.upstream.clone(),
            date,
        })?;
        let day = days
            .entry(r.merchant_id)
            .or_default()
            .entry(&r.upstream)
            .or_insert_with(|| UpstreamDay {
                upstream: r.upstream.clone(),
                rate,
                approved_count: 0,
                approved_amount: 0,
                canceled_count: 0,
                canceled_amount: 0,
            });
        if r.record_type == "cancel" {
            day.canceled_count += 1;
            day.canceled_amount += r.amount;
        } else {
            day.approved_count += 1;
            day.approved_amount += r.amount;
        }
    }
    Ok(days
        .into_iter()
        .map(|(merchant_id, upstreams)| merchant_day(merchant_id, date, upstreams.into_values().collect()))
        .collect())
}

fn merchant_day(merchant_id: Uuid, date: Date, upstreams: Vec<UpstreamDay>) -> MerchantSettlement {
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

    /// `count` records of `amount` each.
    fn records(
        merchant: u128,
        upstream: &str,
        kind: &str,
        sale_type: &str,
        count: usize,
        amount: i64,
    ) -> Vec<SettledRow> {
        (0..count)
            .map(|i| SettledRow {
                record_type: kind.into(),
                merchant_id: Uuid::from_u128(merchant),
                upstream: upstream.into(),
                sale_type: sale_type.into(),
                terminal_id: "T0000001".into(),
                seq_no: i as i64,
                sent_at: "20261204120000".into(),
                amount,
                approval_no: None,
            })
            .collect()
    }

    #[test]
    fn each_merchant_is_settled_per_upstream_and_cash_receipts_move_no_money() {
        let rates = FeeRates(HashMap::from([
            ("van_a".to_owned(), FeeRate::from_bp(120).unwrap()),
            ("van_b".to_owned(), FeeRate::from_bp(95).unwrap()),
        ]));
        let date = jiff::civil::date(2026, 12, 4);
        let mut rates = rates;
        rates.0.insert("card".to_owned(), FeeRate::ZERO);
        let all = [
            records(1, "van_a", "approval", CARD_SALE, 3, 15_000),
            records(1, "van_a", "cancel", CARD_SALE, 1, 15_000),
            records(1, "van_b", "approval", CARD_SALE, 1, 10_001),
            records(1, "van_b", "approval", "cash_receipt", 5, 99_999),
            records(2, "card", "approval", CARD_SALE, 1, 7_000),
        ]
        .concat();
        let settled = settle_merchants(date, &all, &rates).unwrap();
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
        // An upstream that is not in the day's routing configuration is refused, not free.
        let unknown = records(3, "van_gone", "approval", CARD_SALE, 1, 1_000);
        assert_eq!(
            settle_merchants(date, &unknown, &rates).unwrap_err().upstream,
            "van_gone"
        );
        let payable: i64 = lines[1..3]
            .iter()
            .map(|l| l.rsplit(',').next().unwrap().parse::<i64>().unwrap())
            .sum();
        assert_eq!(payable, m1.net_payable);
    }
}
