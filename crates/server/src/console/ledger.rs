//! The console's ledger audit: the wallet's invariant checks over the whole database and the
//! platform's balance at the bank against the ledger, run when the page is opened.

use super::Operator;
use super::pages::{refused, render, seoul};
use crate::state::AppState;
use askama::Template;
use axum::extract::State;
use axum::response::Response;

/// The bank half of invariant 7, as shown.
struct BankRow {
    at_bank: i64,
    expected: i64,
    lowest: i64,
    highest: i64,
    holds: bool,
}

#[derive(Template)]
#[template(path = "console/ledger.html")]
struct LedgerPage {
    csrf: String,
    checked_at: String,
    ok: bool,
    violations: Vec<String>,
    totals: Vec<(String, String)>,
    bank: Option<BankRow>,
}

/// Runs the audit (a full scan: the page is not refreshed on its own) and shows what it found.
pub async fn audit(State(app): State<AppState>, op: Operator) -> Response {
    let report = match app.wallet.audit().await {
        Ok(r) => r,
        Err(e) => return refused(e),
    };
    let totals = report
        .totals
        .as_object()
        .map(|o| o.iter().map(|(k, v)| (k.replace('_', " "), v.to_string())).collect())
        .unwrap_or_default();
    let bank = report.platform_bank.map(|b| BankRow {
        at_bank: b.at_bank,
        expected: b.expected,
        lowest: b.expected - b.may_have_left,
        highest: b.expected + b.may_have_arrived,
        holds: b.holds(),
    });
    render(&LedgerPage {
        csrf: op.csrf,
        checked_at: seoul(app.wallet.clock().now()),
        ok: report.is_ok() && bank.as_ref().is_none_or(|b| b.holds),
        violations: report.violations,
        totals,
        bank,
    })
}
