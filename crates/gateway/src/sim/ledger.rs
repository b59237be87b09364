//! What a simulator approved and canceled, and its daily settlement file.

use serde::Serialize;
use std::fmt::Write as _;

/// Where an approval stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalStatus {
    Approved,
    /// By the customer (`card_cancel`, `cash_receipt_cancel`).
    Canceled,
    /// By a network cancel (망취소).
    NetworkCanceled,
}

/// One approval the sim made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimApproval {
    pub upstream_ref: String,
    pub tx_type: String,
    pub terminal_id: String,
    pub seq_no: String,
    /// The terminal's `sent_at`, as sent (`YYYYMMDDhhmmss`).
    pub sent_at: String,
    /// Won, digits as sent.
    pub amount: String,
    /// First 6 and last 4 digits, the rest `*`; empty when the request had no card.
    pub pan_masked: String,
    pub approval_no: String,
    /// The sim's clock, `YYYYMMDDhhmmss` in Asia/Seoul.
    pub approved_at: String,
    pub status: ApprovalStatus,
    /// When it was canceled (same format), if it was.
    pub canceled_at: Option<String>,
}

/// Which kind of cancel arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelKind {
    /// `card_cancel` / `cash_receipt_cancel`, by `original_approval_no`.
    Customer,
    /// `network_cancel` (망취소), by the original's keys.
    Network,
}

/// One cancel request the sim received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimCancel {
    pub kind: CancelKind,
    pub upstream_ref: String,
    /// The `repeat` flag of a network cancel (`false` for customer cancels).
    pub repeat: bool,
    /// Whether the original approval was found (canceled now or before).
    pub found: bool,
    /// The approval number of the original found, if any.
    pub approval_no: Option<String>,
    pub received_at: String,
}

/// The keys a network cancel names its original by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OriginalKeys {
    pub terminal_id: String,
    pub seq_no: String,
    pub sent_at: String,
    pub amount: String,
    /// Compared only when the cancel carries one.
    pub approval_no: Option<String>,
}

/// What happened to a customer cancel's original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    Canceled,
    /// No approval with that number, or it is no longer approved.
    NotFound,
}

/// Approvals and cancels of one sim, in the order they happened.
#[derive(Debug)]
pub struct Ledger {
    approvals: Vec<SimApproval>,
    cancels: Vec<SimCancel>,
    next_approval_no: u64,
}

/// Approval numbers are 8 digits; each sim starts at a random point so that two sims rarely
/// hand out the same numbers.
const APPROVAL_NO_FIRST_MIN: u64 = 10_000_000;
const APPROVAL_NO_FIRST_MAX: u64 = 89_999_999;
const APPROVAL_NO_LIMIT: u64 = 100_000_000;

/// The header line of the settlement file.
pub const SETTLEMENT_HEADER: &str = minipay_core::gateway::reconciliation::SETTLEMENT_FILE_HEADER;

impl Ledger {
    pub fn new(sim_id: &str) -> Self {
        let first = fastrand::u64(APPROVAL_NO_FIRST_MIN..=APPROVAL_NO_FIRST_MAX);
        tracing::debug!(sim = sim_id, first, "approval numbers start");
        Self {
            approvals: Vec::new(),
            cancels: Vec::new(),
            next_approval_no: first,
        }
    }

    pub fn approvals(&self) -> &[SimApproval] {
        &self.approvals
    }

    pub fn cancels(&self) -> &[SimCancel] {
        &self.cancels
    }

    /// A new 8-digit approval number, never handed out before by this sim.
    pub fn next_approval_no(&mut self) -> String {
        let no = self.next_approval_no;
        // Wraps within 8 digits; a sim is never asked for 90 million approvals.
        self.next_approval_no = (no + 1) % APPROVAL_NO_LIMIT;
        format!("{no:08}")
    }

    pub fn record_approval(&mut self, approval: SimApproval) {
        debug_assert_eq!(approval.status, ApprovalStatus::Approved);
        debug_assert_eq!(approval.approval_no.len(), 8);
        self.approvals.push(approval);
    }

    /// Cancels the approval numbered `approval_no` if it is still approved.
    pub fn cancel_by_approval_no(&mut self, approval_no: &str, at: &str, upstream_ref: &str) -> CancelOutcome {
        let found = self
            .approvals
            .iter_mut()
            .find(|a| a.approval_no == approval_no && a.status == ApprovalStatus::Approved);
        let outcome = match found {
            Some(a) => {
                a.status = ApprovalStatus::Canceled;
                a.canceled_at = Some(at.to_owned());
                CancelOutcome::Canceled
            }
            None => CancelOutcome::NotFound,
        };
        self.cancels.push(SimCancel {
            kind: CancelKind::Customer,
            upstream_ref: upstream_ref.to_owned(),
            repeat: false,
            found: outcome == CancelOutcome::Canceled,
            approval_no: Some(approval_no.to_owned()),
            received_at: at.to_owned(),
        });
        outcome
    }

    /// Applies a network cancel: the original found by its keys is marked `network_canceled`
    /// if it is still approved. Records the cancel either way; returns whether it was found.
    pub fn network_cancel(&mut self, keys: &OriginalKeys, repeat: bool, at: &str, upstream_ref: &str) -> bool {
        let found = self.approvals.iter_mut().find(|a| keys.matches(a));
        let approval_no = found.map(|a| {
            if a.status == ApprovalStatus::Approved {
                a.status = ApprovalStatus::NetworkCanceled;
                a.canceled_at = Some(at.to_owned());
            }
            a.approval_no.clone()
        });
        let found = approval_no.is_some();
        self.cancels.push(SimCancel {
            kind: CancelKind::Network,
            upstream_ref: upstream_ref.to_owned(),
            repeat,
            found,
            approval_no,
            received_at: at.to_owned(),
        });
        found
    }

    /// The settlement file of `date` (format in the module docs of `sim`).
    pub fn settlement_file(&self, date: jiff::civil::Date) -> String {
        let day = date.strftime("%Y%m%d").to_string();
        let mut out = format!("{SETTLEMENT_HEADER}\n");
        for a in self.approvals.iter().filter(|a| a.approved_at.starts_with(&day)) {
            write_line(&mut out, "approval", a, "");
        }
        for a in &self.approvals {
            if let Some(at) = a.canceled_at.as_deref().filter(|at| at.starts_with(&day)) {
                write_line(&mut out, "cancel", a, at);
            }
        }
        out
    }
}

impl OriginalKeys {
    fn matches(&self, a: &SimApproval) -> bool {
        a.terminal_id == self.terminal_id
            && same_number(&a.seq_no, &self.seq_no)
            && a.sent_at == self.sent_at
            && same_number(&a.amount, &self.amount)
            && self.approval_no.as_ref().is_none_or(|no| *no == a.approval_no)
    }
}

/// Numeric fields compare as numbers: one layout may zero-pad where another does not.
fn same_number(a: &str, b: &str) -> bool {
    number(a) == number(b)
}

/// A numeric field without its padding zeros (`"0"` for zero).
fn number(digits: &str) -> &str {
    match digits.trim_start_matches('0') {
        "" if !digits.is_empty() => "0",
        rest => rest,
    }
}

fn write_line(out: &mut String, record_type: &str, a: &SimApproval, canceled_at: &str) {
    // Every value is digits or a terminal id: nothing needs CSV quoting.
    let _ = writeln!(
        out,
        "{record_type},{},{},{},{},{},{},{canceled_at}",
        a.approval_no,
        a.terminal_id,
        number(&a.seq_no),
        a.sent_at,
        number(&a.amount),
        a.approved_at
    );
}

/// The first 6 and last 4 digits of a PAN, the rest `*`.
pub fn mask_pan(pan: &str) -> String {
    let digits: Vec<char> = pan.chars().collect();
    if digits.len() <= 10 {
        return "*".repeat(digits.len());
    }
    let hidden = digits.len() - 10;
    let head: String = digits[..6].iter().collect();
    let tail: String = digits[digits.len() - 4..].iter().collect();
    format!("{head}{}{tail}", "*".repeat(hidden))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(no: &str, approved_at: &str) -> SimApproval {
        SimApproval {
            upstream_ref: "000000000001".into(),
            tx_type: "card_approval".into(),
            terminal_id: "T0000001".into(),
            seq_no: "0000000001".into(),
            sent_at: "20260301093000".into(),
            amount: "15000".into(),
            pan_masked: mask_pan("9410123456780001"),
            approval_no: no.into(),
            approved_at: approved_at.into(),
            status: ApprovalStatus::Approved,
            canceled_at: None,
        }
    }

    #[test]
    fn masks_all_but_first_six_and_last_four() {
        assert_eq!(mask_pan("9410123456780001"), "941012******0001");
        assert_eq!(mask_pan("1234"), "****");
    }

    #[test]
    fn network_cancel_matches_keys_and_amount_as_number() {
        let mut l = Ledger::new("t");
        l.record_approval(approval("12345678", "20260301093001"));
        let mut keys = OriginalKeys {
            terminal_id: "T0000001".into(),
            seq_no: "0000000001".into(),
            sent_at: "20260301093000".into(),
            amount: "000000015000".into(),
            approval_no: Some("99999999".into()),
        };
        assert!(!l.network_cancel(&keys, false, "20260301100000", "r1"));
        keys.approval_no = None;
        assert!(l.network_cancel(&keys, true, "20260301100000", "r2"));
        assert_eq!(l.approvals()[0].status, ApprovalStatus::NetworkCanceled);
        assert!(l.cancels()[1].repeat && l.cancels()[1].found);
    }

    #[test]
    fn settlement_file_has_approval_and_cancel_lines_of_the_day() {
        let mut l = Ledger::new("t");
        l.record_approval(approval("12345678", "20260301093001"));
        l.record_approval(approval("12345679", "20260302093001"));
        l.cancel_by_approval_no("12345678", "20260302000001", "r");
        let day2 = l.settlement_file(jiff::civil::date(2026, 3, 2));
        let lines: Vec<&str> = day2.lines().collect();
        assert_eq!(lines[0], SETTLEMENT_HEADER);
        assert!(lines[1].starts_with("approval,12345679,"));
        assert!(lines[2].starts_with("cancel,12345678,") && lines[2].ends_with(",20260302000001"));
        assert_eq!(lines.len(), 3);
    }
}
