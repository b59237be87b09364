//! The ledger audit: checks DESIGN.md's invariants against the stored data, and totals that
//! show whether a request changed anything at all.

use crate::Result;
use crate::session::Session;
use serde_json::json;

/// Violations found by [`Session::check_invariants`]; empty when the ledger is sound.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvariantReport {
    pub violations: Vec<String>,
}

impl InvariantReport {
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Counts and sums over everything a money request can change. Two equal snapshots around
/// a rejected request show it changed nothing (invariant 6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct LedgerTotals {
    pub journals: i64,
    pub entries: i64,
    pub transfers: i64,
    /// Completed charges only: a failed attempt leaves a row (the record of where the money
    /// is), but moves nothing.
    pub charges_completed: i64,
    pub charge_limit_used: i64,
    pub posted_abs_sum: i64,
    pub pending_out_sum: i64,
    pub remittances: i64,
    pub payments: i64,
    pub refunds: i64,
    /// Outbox rows: a rejected request writes no event either.
    pub events: i64,
}

/// What the ledger says the platform's own bank account holds, for invariant 7's bank check:
/// `expected` when nothing is in flight; a bank call whose outcome is not recorded yet may
/// put the real balance anywhere in `expected - may_have_left ..= expected + may_have_arrived`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct PlatformBankPosition {
    /// Money the ledger recorded as brought in from banks (minus what it sent out), plus the
    /// remittances collected at the bank and not yet credited to the float.
    pub expected: i64,
    /// Pulls not yet recorded: charges still pending or unknown, remittances not yet collected,
    /// payments processing.
    pub may_have_arrived: i64,
    /// Pushes not yet recorded: remittances being paid out or refunded, refunds processing.
    pub may_have_left: i64,
}

impl LedgerTotals {
    pub fn to_json(&self) -> serde_json::Value {
        json!({
            "journals": self.journals, "entries": self.entries, "transfers": self.transfers,
            "charges_completed": self.charges_completed, "charge_limit_used": self.charge_limit_used,
            "posted_abs_sum": self.posted_abs_sum, "pending_out_sum": self.pending_out_sum,
            "remittances": self.remittances, "payments": self.payments, "refunds": self.refunds,
            "events": self.events,
        })
    }
}

/// Each check is a query returning the id of each offending row (at most 20). Ids are
/// decoded as UUIDs on both engines (casting a SQLite BLOB to TEXT would not give their text).
const CHECKS: &[(&str, &str)] = &[
    (
        "1 journal does not sum to zero (or has fewer than two entries)",
        "SELECT journal_id FROM (
             SELECT j.id AS journal_id, COALESCE(SUM(e.amount), 0) AS total, COUNT(e.id) AS n
             FROM journals j LEFT JOIN entries e ON e.journal_id = j.id GROUP BY j.id) AS t
         WHERE total <> 0 OR n < 2 LIMIT 20",
    ),
    (
        "1 entry without a journal",
        "SELECT e.id FROM entries e LEFT JOIN journals j ON j.id = e.journal_id WHERE j.id IS NULL LIMIT 20",
    ),
    (
        "3 posted differs from opening balance + entries",
        "SELECT a.id FROM accounts a JOIN account_openings o ON o.account_id = a.id
         LEFT JOIN (SELECT account_id, SUM(amount) AS total FROM entries GROUP BY account_id) e ON e.account_id = a.id
         WHERE a.posted <> o.opening_balance + COALESCE(e.total, 0) LIMIT 20",
    ),
    (
        "3 balance_after does not follow from the previous entry",
        "SELECT id FROM (
             SELECT e.id, e.account_id, e.amount, e.balance_after,
                    LAG(e.balance_after) OVER (PARTITION BY e.account_id ORDER BY e.occurred_at, e.id) AS prev
             FROM entries e) AS t
         WHERE balance_after - amount
               <> COALESCE(prev, (SELECT o.opening_balance FROM account_openings o WHERE o.account_id = t.account_id))
         LIMIT 20",
    ),
    (
        "4 pending_out differs from open pending transfers",
        "SELECT a.id FROM accounts a
         LEFT JOIN (SELECT from_account_id, SUM(amount) AS total FROM transfers WHERE status = 'pending'
                    GROUP BY from_account_id) p ON p.from_account_id = a.id
         WHERE a.pending_out <> COALESCE(p.total, 0) LIMIT 20",
    ),
    (
        "5 user account below zero available",
        "SELECT id FROM accounts WHERE kind <> 'system' AND posted - pending_out < 0 LIMIT 20",
    ),
    (
        "charge limit usage differs from the charges that count against it",
        "SELECT l.user_id FROM charge_limits l
         LEFT JOIN (SELECT user_id, business_date, SUM(amount) AS total FROM charges WHERE status <> 'failed'
                    GROUP BY user_id, business_date) c
           ON c.user_id = l.user_id AND c.business_date = l.business_date
         WHERE l.used <> COALESCE(c.total, 0) LIMIT 20",
    ),
    (
        "charges counting against a limit that records none of them",
        "SELECT c.user_id FROM (SELECT user_id, business_date, SUM(amount) AS total FROM charges
                                WHERE status <> 'failed' GROUP BY user_id, business_date) c
         LEFT JOIN charge_limits l ON l.user_id = c.user_id AND l.business_date = c.business_date
         WHERE l.user_id IS NULL LIMIT 20",
    ),
    (
        "completed charge without its journal",
        "SELECT c.id FROM charges c LEFT JOIN journals j ON j.id = c.journal_id
         WHERE c.status = 'completed' AND (j.id IS NULL OR j.kind <> 'charge')
           AND NOT EXISTS (SELECT 1 FROM ledger_retention r WHERE c.resolved_at < r.retired_before) LIMIT 20",
    ),
    (
        "settlement shares do not sum to its total",
        "SELECT s.id FROM settlements s JOIN settlement_shares sh ON sh.settlement_id = s.id
         GROUP BY s.id, s.total_amount HAVING SUM(sh.amount) <> s.total_amount LIMIT 20",
    ),
    (
        "paid settlement share without its completed payment",
        "SELECT sh.settlement_id FROM settlement_shares sh
         JOIN settlements s ON s.id = sh.settlement_id
         LEFT JOIN transfers t ON t.id = sh.transfer_id
         WHERE sh.status = 'paid' AND sh.user_id <> s.requester_user_id
           AND (t.id IS NULL OR t.status <> 'completed' OR t.amount <> sh.amount OR t.kind <> 'settlement_payment')
         LIMIT 20",
    ),
    (
        "completed settlement with a share still requested",
        "SELECT s.id FROM settlements s JOIN settlement_shares sh ON sh.settlement_id = s.id
         WHERE s.status = 'completed' AND sh.status = 'requested' LIMIT 20",
    ),
    (
        "pending transfer without an expiry",
        "SELECT id FROM transfers WHERE status = 'pending' AND expires_at IS NULL LIMIT 20",
    ),
    (
        "7 the remittance float differs from the credited remittances",
        "SELECT a.id FROM accounts a WHERE a.system_code = 'remittance_float' AND a.posted <>
             (SELECT COALESCE(SUM(amount), 0) FROM remittances
              WHERE status = 'credited' OR (status = 'needs_attention' AND held_status = 'credited'))",
    ),
    (
        "7 payout in transit differs from the debited and refunding remittances",
        "SELECT a.id FROM accounts a WHERE a.system_code = 'payout_in_transit' AND a.posted <>
             (SELECT COALESCE(SUM(amount), 0) FROM remittances
              WHERE status IN ('debited', 'refunding')
                 OR (status = 'needs_attention' AND held_status IN ('debited', 'refunding')))",
    ),
    (
        "8 refunds in transit differ from the refunds not yet finished",
        "SELECT a.id FROM accounts a WHERE a.system_code = 'refunds_in_transit' AND a.posted <>
             (SELECT COALESCE(SUM(amount), 0) FROM refunds WHERE status IN ('accepted', 'processing'))",
    ),
    (
        "8 a business's balance differs from its payments less their refunds and its payouts",
        "SELECT a.id FROM accounts a WHERE a.kind = 'business' AND a.posted <>
             (SELECT COALESCE(SUM(p.amount - p.refunded_amount), 0) FROM payments p
              WHERE p.business_id = a.id AND p.status IN ('paid', 'partially_refunded', 'refunded'))
           - (SELECT COALESCE(SUM(r.amount), 0) FROM remittances r
              WHERE r.from_business_id = a.id AND r.source = 'balance' AND r.status <> 'refunded')",
    ),
    (
        "8 a payment's refunded amount differs from its refunds not failed",
        "SELECT p.id FROM payments p WHERE p.refunded_amount <>
             (SELECT COALESCE(SUM(r.amount), 0) FROM refunds r WHERE r.payment_id = p.id AND r.status <> 'failed')",
    ),
    (
        "completed transfer without its journal",
        "SELECT t.id FROM transfers t LEFT JOIN journals j ON j.id = t.journal_id
         WHERE t.status = 'completed' AND j.id IS NULL
           AND NOT EXISTS (SELECT 1 FROM ledger_retention r WHERE t.resolved_at < r.retired_before) LIMIT 20",
    ),
];

impl Session {
    /// Checks the ledger invariants (DESIGN.md 1–5, plus the charge-limit and
    /// journal-reference rules) over the whole database.
    #[tracing::instrument(name = "minipay.store.check_invariants", skip_all)]
    pub async fn check_invariants(&mut self) -> Result<InvariantReport> {
        let mut report = InvariantReport::default();
        let total: Option<i64> = on_db!(self, c => sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(posted), 0) AS BIGINT) FROM accounts"
        )
        .fetch_one(c)
        .await)?;
        if total != Some(0) {
            report
                .violations
                .push(format!("2 sum of all posted balances is not zero: {total:?}"));
        }
        for (name, sql) in CHECKS {
            let sql = sqlx::SqlStr::from_static(sql);
            let bad: Vec<uuid::Uuid> = on_db!(self, c => sqlx::query_scalar(sql.clone()).fetch_all(c).await)?;
            report
                .violations
                .extend(bad.into_iter().map(|id| format!("{name}: {id}")));
        }
        Ok(report)
    }

    pub async fn ledger_totals(&mut self) -> Result<LedgerTotals> {
        let totals = on_db!(self, c => sqlx::query_as(
            "SELECT (SELECT COUNT(*) FROM journals) AS journals,
                    (SELECT COUNT(*) FROM entries) AS entries,
                    (SELECT COUNT(*) FROM transfers) AS transfers,
                    (SELECT COUNT(*) FROM charges WHERE status = 'completed') AS charges_completed,
                    CAST((SELECT COALESCE(SUM(used), 0) FROM charge_limits) AS BIGINT) AS charge_limit_used,
                    CAST((SELECT COALESCE(SUM(ABS(posted)), 0) FROM accounts) AS BIGINT) AS posted_abs_sum,
                    CAST((SELECT COALESCE(SUM(pending_out), 0) FROM accounts) AS BIGINT) AS pending_out_sum,
                    (SELECT COUNT(*) FROM remittances) AS remittances,
                    (SELECT COUNT(*) FROM payments) AS payments,
                    (SELECT COUNT(*) FROM refunds) AS refunds,
                    (SELECT COUNT(*) FROM outbox) AS events",
        )
        .fetch_one(c)
        .await)?;
        Ok(totals)
    }

    /// Where the ledger puts the platform's money at the bank (see [`PlatformBankPosition`]).
    pub async fn platform_bank_position(&mut self) -> Result<PlatformBankPosition> {
        let position = on_db!(self, c => sqlx::query_as(
            "SELECT CAST(-(SELECT posted FROM accounts WHERE system_code = 'bank_settlement')
                         + (SELECT COALESCE(SUM(amount), 0) FROM remittances
                            WHERE status = 'collected' OR (status = 'needs_attention' AND held_status = 'collected'))
                         AS BIGINT) AS expected,
                    CAST((SELECT COALESCE(SUM(amount), 0) FROM charges WHERE status IN ('pending', 'unknown'))
                         + (SELECT COALESCE(SUM(amount), 0) FROM payments WHERE status = 'processing')
                         + (SELECT COALESCE(SUM(amount), 0) FROM remittances
                            WHERE status = 'requested' OR (status = 'needs_attention' AND held_status = 'requested'))
                         AS BIGINT) AS may_have_arrived,
                    CAST((SELECT COALESCE(SUM(amount), 0) FROM remittances
                          WHERE status IN ('debited', 'refunding')
                             OR (status = 'needs_attention' AND held_status IN ('debited', 'refunding')))
                         + (SELECT COALESCE(SUM(amount), 0) FROM refunds WHERE status = 'processing')
                         AS BIGINT) AS may_have_left",
        )
        .fetch_one(c)
        .await)?;
        Ok(position)
    }
}
