//! The platform's audit: the store's invariant checks (DESIGN.md 1–5 and 7's ledger half)
//! and invariant 7's bank half — the platform's balance at the bank against the ledger's
//! record of the money it moved there.

use crate::Wallet;
use crate::error::ServiceResult;
use minipay_store::PlatformBankPosition;
use serde::Serialize;

/// What the audit found.
#[derive(Debug, Clone, Serialize)]
pub struct AuditReport {
    pub violations: Vec<String>,
    pub totals: serde_json::Value,
    /// The bank half of invariant 7; `None` when the bank could not be asked.
    pub platform_bank: Option<PlatformBankCheck>,
}

/// The platform's money at the bank, as the bank and as the ledger see it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct PlatformBankCheck {
    pub at_bank: i64,
    pub expected: i64,
    /// Bank calls in flight allow the balance to differ by this much either way.
    pub may_have_arrived: i64,
    pub may_have_left: i64,
}

impl PlatformBankCheck {
    fn new(at_bank: i64, p: PlatformBankPosition) -> Self {
        Self {
            at_bank,
            expected: p.expected,
            may_have_arrived: p.may_have_arrived,
            may_have_left: p.may_have_left,
        }
    }

    /// Whether the bank's balance is one the ledger allows.
    pub fn holds(&self) -> bool {
        (self.expected - self.may_have_left..=self.expected + self.may_have_arrived).contains(&self.at_bank)
    }
}

impl AuditReport {
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
    }
}

impl Wallet {
    /// Runs every check over the whole database (an expensive full scan) and asks the bank
    /// for the platform's balance (outside any transaction).
    pub async fn audit(&self) -> ServiceResult<AuditReport> {
        let (report, totals, position) = {
            let mut s = self.store.read().await?;
            (
                s.check_invariants().await?,
                s.ledger_totals().await?,
                s.platform_bank_position().await?,
            )
        };
        let mut violations = report.violations;
        let platform_bank = match self.bank.platform_balance().await {
            Ok(at_bank) => Some(PlatformBankCheck::new(at_bank, position)),
            Err(e) => {
                tracing::warn!(error = %e, "the audit could not ask the bank for the platform's balance");
                None
            }
        };
        if let Some(check) = platform_bank.filter(|c| !c.holds()) {
            violations.push(format!(
                "7 the platform's bank balance {} is not what the ledger recorded: {} (in flight: +{} / -{})",
                check.at_bank, check.expected, check.may_have_arrived, check.may_have_left
            ));
        }
        Ok(AuditReport {
            violations,
            totals: totals.to_json(),
            platform_bank,
        })
    }
}
