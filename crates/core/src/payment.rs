//! Payments a business takes from a wallet user's registered bank account, and their refunds:
//! statuses, what a bank answer makes of them, how refunds add up, the transfer ids the bank
//! sees, and the ledger postings. Pure: the payments service runs the calls and records this.
//!
//! ```text
//! accepted ──(pull sent)──► processing ──taken──► paid ──refunds──► partially_refunded ──► refunded
//!                               │ declined, or voided after no answer
//!                               ▼
//!                             failed
//! ```
//!
//! A refund: `accepted ──(push sent)──► processing ──► succeeded | failed` (a failed refund's
//! money goes back to the business's balance and its amount back to the payment).

use crate::ids::{PaymentId, RefundId};
use serde::{Deserialize, Serialize};

/// A business's own id for the order a payment is for: unique per business.
pub const ORDER_ID_LEN_MAX: usize = 64;
/// A payment's description (shown to the user), at most this many characters.
pub const DESCRIPTION_LEN_MAX: usize = 200;
/// A refund's reason, at most this many characters.
pub const REASON_LEN_MAX: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentRuleError {
    #[error("order_id must be 1 to {ORDER_ID_LEN_MAX} printable characters with no spaces")]
    OrderId,
}

/// The business's order id: 1–64 visible ASCII characters (what shops use: digits, letters,
/// dashes, underscores...).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct OrderId(String);

impl OrderId {
    pub fn parse(raw: &str) -> Result<Self, PaymentRuleError> {
        let ok = !raw.is_empty() && raw.len() <= ORDER_ID_LEN_MAX && raw.bytes().all(|b| b.is_ascii_graphic());
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(PaymentRuleError::OrderId)
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A payment's status: each says where the money is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Recorded; the pull is not sent yet. The money is at the user's bank.
    Accepted,
    /// The pull was (or may have been) sent; its outcome is being settled. Only the bank's
    /// answer or its status inquiry ends this.
    Processing,
    /// Pulled from the user's bank; in the business's balance.
    Paid,
    /// Not taken (declined, or voided after no answer). Nothing moved.
    Failed,
    /// Paid, and part of it refunded (or being refunded).
    PartiallyRefunded,
    /// Paid, and all of it refunded (or being refunded).
    Refunded,
}

impl PaymentStatus {
    pub const ALL: [Self; 6] = [
        Self::Accepted,
        Self::Processing,
        Self::Paid,
        Self::Failed,
        Self::PartiallyRefunded,
        Self::Refunded,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Processing => "processing",
            Self::Paid => "paid",
            Self::Failed => "failed",
            Self::PartiallyRefunded => "partially_refunded",
            Self::Refunded => "refunded",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether the pull's outcome is settled for good (the status a webhook announces).
    pub const fn is_settled(self) -> bool {
        !matches!(self, Self::Accepted | Self::Processing)
    }

    /// Whether a refund may be asked for.
    pub const fn refundable(self) -> bool {
        matches!(self, Self::Paid | Self::PartiallyRefunded | Self::Refunded)
    }

    /// The status of a paid payment of `amount` of which `refunded` is refunded (or on its
    /// way back): `paid`, `partially_refunded` or `refunded`.
    pub fn after_refunds(amount: i64, refunded: i64) -> Self {
        assert!((0..=amount).contains(&refunded), "refunded {refunded} of {amount}");
        match refunded {
            0 => Self::Paid,
            r if r == amount => Self::Refunded,
            _ => Self::PartiallyRefunded,
        }
    }
}

/// Why a refund of `asked` cannot be taken from a payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RefundRefusal {
    #[error("the payment is {}, not paid", .0.as_str())]
    NotPaid(PaymentStatus),
    #[error("refunds would exceed the payment: {refundable} won is left to refund")]
    ExceedsPayment { refundable: i64 },
}

/// Whether `asked` more won may be refunded from a payment of `amount` in `status` of which
/// `refunded` is already refunded (or on its way).
pub fn check_refund(status: PaymentStatus, amount: i64, refunded: i64, asked: i64) -> Result<(), RefundRefusal> {
    if !status.refundable() {
        return Err(RefundRefusal::NotPaid(status));
    }
    let refundable = amount - refunded;
    if asked > refundable {
        return Err(RefundRefusal::ExceedsPayment { refundable });
    }
    Ok(())
}

/// A refund's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    /// Taken from the business's balance (refunds in transit); the push is not sent yet.
    Accepted,
    /// The push was (or may have been) sent.
    Processing,
    /// At the user's bank.
    Succeeded,
    /// The bank refused it: back in the business's balance.
    Failed,
}

impl RefundStatus {
    pub const ALL: [Self; 4] = [Self::Accepted, Self::Processing, Self::Succeeded, Self::Failed];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Processing => "processing",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether its money is still in transit (refunds in transit holds it).
    pub const fn in_transit(self) -> bool {
        matches!(self, Self::Accepted | Self::Processing)
    }
}

/// What a bank call was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BankCallKind {
    /// Drawing transfer from the user's bank account (a payment).
    Pull,
    /// Deposit transfer to the user's bank account (a refund).
    Push,
    /// The status inquiry on a transfer id.
    Inquiry,
    /// Voiding a transfer id that the bank has no record of, so it can never execute.
    Void,
}

impl BankCallKind {
    pub const ALL: [Self; 4] = [Self::Pull, Self::Push, Self::Inquiry, Self::Void];
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pull => "pull",
            Self::Push => "push",
            Self::Inquiry => "inquiry",
            Self::Void => "void",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// How a bank call ended, as its history records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BankCallOutcome {
    /// Written before the call is made: a call still `sent` after a crash may or may not
    /// have reached the bank, so it is settled by the inquiry, never sent again.
    Sent,
    /// The money moved (transfer, or an inquiry/void that found it executed).
    Completed,
    /// The bank said no (or confirmed a void): nothing moved, nothing will.
    Declined,
    /// The bank did not take the request: nothing moved; it may be sent again.
    Unavailable,
    /// No answer, or an inquiry that could not tell: settled by asking again.
    Unknown,
}

impl BankCallOutcome {
    pub const ALL: [Self; 5] = [
        Self::Sent,
        Self::Completed,
        Self::Declined,
        Self::Unavailable,
        Self::Unknown,
    ];
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sent => "sent",
            Self::Completed => "completed",
            Self::Declined => "declined",
            Self::Unavailable => "unavailable",
            Self::Unknown => "unknown",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// What to do next for a transfer (a payment's pull, a refund's push), from the outcome of its
/// last transfer call, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextBankCall {
    /// Send the transfer (the first time, or again after the bank did not take it; the same
    /// transfer id, so the bank would execute it at most once anyway).
    Send,
    /// It may have reached the bank: ask the bank (status inquiry, then void) — never send it
    /// again.
    Ask,
}

/// Where a transfer stands given its last transfer call's outcome (`None`: never sent).
pub fn next_bank_call(last: Option<BankCallOutcome>) -> NextBankCall {
    match last {
        None | Some(BankCallOutcome::Unavailable) => NextBankCall::Send,
        Some(_) => NextBankCall::Ask,
    }
}

/// The transfer id of a payment's pull: what the bank deduplicates on, and the payment's
/// `bank_transaction_id`. Unique across every bank call the platform makes by construction:
/// a UUIDv7 is never issued twice, and the suffix names the kind of object (a remittance's
/// steps end in `-C`, `-P`, `-R`...; a charge is its hyphenated id).
pub fn pull_tran_id(payment: PaymentId) -> String {
    format!("{}-pay", payment.as_uuid().simple())
}

/// The transfer id of a refund's push (see [`pull_tran_id`]).
pub fn push_tran_id(refund: RefundId) -> String {
    format!("{}-rfd", refund.as_uuid().simple())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn order_ids_are_visible_ascii_up_to_64() {
        assert!(OrderId::parse("ORDER-2026-12-05_0001").is_ok());
        assert!(OrderId::parse(&"x".repeat(64)).is_ok());
        for bad in ["", " ", "a b", "주문1", &"x".repeat(65), "tab\t"] {
            assert_eq!(OrderId::parse(bad), Err(PaymentRuleError::OrderId), "{bad:?}");
        }
    }

    #[test]
    fn statuses_round_trip() {
        for s in PaymentStatus::ALL {
            assert_eq!(PaymentStatus::parse(s.as_str()), Some(s));
        }
        for s in RefundStatus::ALL {
            assert_eq!(RefundStatus::parse(s.as_str()), Some(s));
        }
        for k in BankCallKind::ALL {
            assert_eq!(BankCallKind::parse(k.as_str()), Some(k));
        }
        for o in BankCallOutcome::ALL {
            assert_eq!(BankCallOutcome::parse(o.as_str()), Some(o));
        }
        assert_eq!(PaymentStatus::parse("success"), None);
    }

    #[test]
    fn only_a_paid_payment_is_refundable() {
        for s in [
            PaymentStatus::Accepted,
            PaymentStatus::Processing,
            PaymentStatus::Failed,
        ] {
            assert_eq!(check_refund(s, 100, 0, 1), Err(RefundRefusal::NotPaid(s)));
        }
        assert_eq!(check_refund(PaymentStatus::Paid, 100, 0, 100), Ok(()));
        assert_eq!(
            check_refund(PaymentStatus::Refunded, 100, 100, 1),
            Err(RefundRefusal::ExceedsPayment { refundable: 0 })
        );
    }

    #[test]
    fn a_sent_or_unanswered_transfer_is_asked_about_never_sent_again() {
        assert_eq!(next_bank_call(None), NextBankCall::Send);
        assert_eq!(next_bank_call(Some(BankCallOutcome::Unavailable)), NextBankCall::Send);
        for o in [
            BankCallOutcome::Sent,
            BankCallOutcome::Unknown,
            BankCallOutcome::Completed,
            BankCallOutcome::Declined,
        ] {
            assert_eq!(next_bank_call(Some(o)), NextBankCall::Ask, "{o:?}");
        }
    }

    #[test]
    fn transfer_ids_differ_by_object_and_kind() {
        let p = PaymentId::new();
        let r = RefundId::from_uuid(p.as_uuid());
        assert_ne!(pull_tran_id(p), push_tran_id(r));
        assert_eq!(pull_tran_id(p), pull_tran_id(p));
        assert!(pull_tran_id(p).len() <= 40, "the bank's tran id field");
    }

    proptest! {
        /// Refunds accepted one after another by `check_refund` never add up to more than the
        /// payment, and the status follows the sum.
        #[test]
        fn refunds_never_exceed_the_payment(amount in 1i64..1_000_000, asks in proptest::collection::vec(1i64..400_000, 0..20)) {
            let mut refunded = 0;
            let mut status = PaymentStatus::Paid;
            for ask in asks {
                match check_refund(status, amount, refunded, ask) {
                    Ok(()) => {
                        refunded += ask;
                        status = PaymentStatus::after_refunds(amount, refunded);
                    }
                    Err(RefundRefusal::ExceedsPayment { refundable }) => {
                        prop_assert_eq!(refundable, amount - refunded);
                        prop_assert!(ask > refundable);
                    }
                    Err(e) => prop_assert!(false, "{e}"),
                }
                prop_assert!(refunded <= amount);
            }
            prop_assert_eq!(status == PaymentStatus::Refunded, refunded == amount);
            prop_assert_eq!(status == PaymentStatus::Paid, refunded == 0);
        }
    }
}
