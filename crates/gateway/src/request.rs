//! A terminal's request and the answer it gets, whichever way it came in (TCP or HTTP): parsed
//! and checked at the edge into domain types, so nothing inside handles raw input.

use jiff::civil::DateTime;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// The four transaction types of the contract, with their POS message codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TxType {
    CardApproval,
    CardCancel,
    CashReceipt,
    CashReceiptCancel,
}

impl TxType {
    pub const ALL: [TxType; 4] = [
        Self::CardApproval,
        Self::CardCancel,
        Self::CashReceipt,
        Self::CashReceiptCancel,
    ];

    /// The name dialect files use.
    pub fn name(self) -> &'static str {
        match self {
            Self::CardApproval => "card_approval",
            Self::CardCancel => "card_cancel",
            Self::CashReceipt => "cash_receipt",
            Self::CashReceiptCancel => "cash_receipt_cancel",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Whether it undoes an earlier sale (and so goes where that sale went).
    pub fn is_cancel(self) -> bool {
        matches!(self, Self::CardCancel | Self::CashReceiptCancel)
    }

    fn needs_card(self) -> bool {
        matches!(self, Self::CardApproval | Self::CardCancel)
    }
}

/// The card as the terminal read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardInput {
    /// Track 2 data (`PAN=YYMM...`); or `pan` and `expiry`.
    pub track2: Option<String>,
    pub pan: Option<String>,
    /// `YYMM`.
    pub expiry: Option<String>,
}

/// The sale a cancel refers to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OriginalInput {
    pub approval_no: String,
    /// `YYYYMMDDhhmmss`.
    pub approved_at: String,
}

/// Who a cash receipt is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CashReceiptInput {
    /// `0` phone number, `1` business registration number, `2` cash-receipt card.
    pub id_type: String,
    pub id_number: String,
}

/// `POST /v1/pos/approvals`' body (and the POS frame's fields, once read).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalInput {
    pub tx_type: TxType,
    /// The terminal's sequence number, at most 10 digits.
    pub seq_no: u64,
    /// When the terminal sent it, `YYYYMMDDhhmmss` (its local time).
    pub sent_at: String,
    /// Won.
    pub amount: i64,
    pub card: Option<CardInput>,
    pub installment_months: Option<u8>,
    pub original: Option<OriginalInput>,
    pub cash_receipt: Option<CashReceiptInput>,
}

/// What the card part of a request is, once checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payer {
    Card {
        pan: String,
        expiry: Option<String>,
        track2: Option<String>,
    },
    CashReceipt {
        id_type: String,
        id_number: String,
    },
}

/// A checked request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRequest {
    pub tx_type: TxType,
    pub seq_no: u64,
    pub sent_at: String,
    pub amount: i64,
    pub payer: Payer,
    pub installment_months: u8,
    pub original: Option<OriginalInput>,
}

/// Largest amount one approval may carry (12 digits on the wire).
pub const AMOUNT_MAX: i64 = 999_999_999_999;
/// Largest sequence number (10 digits in the POS header).
pub const SEQ_NO_MAX: u64 = 9_999_999_999;
const INSTALLMENT_MONTHS_MAX: u8 = 36;

/// Why a request cannot be processed (answered `error` with response code `FE`, or 400 over HTTP).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RequestError(pub String);

fn bad(what: impl Into<String>) -> RequestError {
    RequestError(what.into())
}

impl TryFrom<ApprovalInput> for ApprovalRequest {
    type Error = RequestError;
    fn try_from(i: ApprovalInput) -> Result<Self, RequestError> {
        if i.seq_no > SEQ_NO_MAX {
            return Err(bad("seq_no has at most 10 digits"));
        }
        check_timestamp("sent_at", &i.sent_at)?;
        if !(1..=AMOUNT_MAX).contains(&i.amount) {
            return Err(bad(format!("amount must be 1..={AMOUNT_MAX} won")));
        }
        let installment_months = i.installment_months.unwrap_or(0);
        if installment_months > INSTALLMENT_MONTHS_MAX {
            return Err(bad(format!("installment_months must be 0..={INSTALLMENT_MONTHS_MAX}")));
        }
        let payer = payer(i.tx_type, i.card, i.cash_receipt)?;
        let original = match (i.tx_type.is_cancel(), i.original) {
            (true, Some(o)) => Some(check_original(o)?),
            (true, None) => return Err(bad("a cancel needs original {approval_no, approved_at}")),
            (false, Some(_)) => return Err(bad("only a cancel has an original")),
            (false, None) => None,
        };
        Ok(Self {
            tx_type: i.tx_type,
            seq_no: i.seq_no,
            sent_at: i.sent_at,
            amount: i.amount,
            payer,
            installment_months,
            original,
        })
    }
}

fn payer(tx: TxType, card: Option<CardInput>, receipt: Option<CashReceiptInput>) -> Result<Payer, RequestError> {
    match (tx.needs_card(), card, receipt) {
        (true, Some(card), None) => check_card(card),
        (true, _, _) => Err(bad("a card transaction needs card and no cash_receipt")),
        (false, None, Some(r)) => check_receipt(r),
        (false, _, _) => Err(bad("a cash receipt needs cash_receipt and no card")),
    }
}

fn check_card(card: CardInput) -> Result<Payer, RequestError> {
    let (pan, expiry, track2) = match (card.track2, card.pan, card.expiry) {
        (Some(t), None, None) => {
            let (pan, rest) = t.split_once('=').ok_or_else(|| bad("track2 must be PAN=YYMM..."))?;
            let expiry = rest
                .get(..4)
                .ok_or_else(|| bad("track2 must carry an expiry after '='"))?;
            if t.len() > 37 || !rest.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("track2 must be at most 37 characters, digits after '='"));
            }
            (pan.to_owned(), Some(expiry.to_owned()), Some(t.clone()))
        }
        (None, Some(pan), expiry) => (pan, expiry, None),
        _ => return Err(bad("card needs track2, or pan (and expiry) — not both")),
    };
    if !(13..=19).contains(&pan.len()) || !pan.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("the card number must be 13 to 19 digits"));
    }
    if let Some(e) = &expiry {
        let month: u8 = e.get(2..).and_then(|m| m.parse().ok()).unwrap_or(0);
        if e.len() != 4 || !e.bytes().all(|b| b.is_ascii_digit()) || !(1..=12).contains(&month) {
            return Err(bad("expiry must be YYMM"));
        }
    }
    Ok(Payer::Card { pan, expiry, track2 })
}

fn check_receipt(r: CashReceiptInput) -> Result<Payer, RequestError> {
    if !matches!(r.id_type.as_str(), "0" | "1" | "2") {
        return Err(bad("cash_receipt.id_type must be 0 (phone), 1 (business) or 2 (card)"));
    }
    if !(1..=20).contains(&r.id_number.len()) || !r.id_number.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("cash_receipt.id_number must be 1 to 20 digits"));
    }
    Ok(Payer::CashReceipt {
        id_type: r.id_type,
        id_number: r.id_number,
    })
}

fn check_original(o: OriginalInput) -> Result<OriginalInput, RequestError> {
    if o.approval_no.is_empty() || o.approval_no.len() > 8 || !o.approval_no.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err(bad("original.approval_no must be 1 to 8 letters or digits"));
    }
    check_timestamp("original.approved_at", &o.approved_at)?;
    Ok(o)
}

/// A `YYYYMMDDhhmmss` that names a real instant of the calendar.
pub fn check_timestamp(field: &str, s: &str) -> Result<DateTime, RequestError> {
    let parsed = (s.len() == 14 && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| DateTime::strptime("%Y%m%d%H%M%S", s).ok())
        .flatten();
    parsed.ok_or_else(|| bad(format!("{field} must be YYYYMMDDhhmmss")))
}

impl ApprovalRequest {
    /// The card number (or the receipt's id) as shown in records: first 6 and last 4 only.
    pub fn masked(&self) -> String {
        let shown = match &self.payer {
            Payer::Card { pan, .. } => pan,
            Payer::CashReceipt { id_number, .. } => id_number,
        };
        mask(shown)
    }

    /// The card number, when there is one.
    pub fn pan(&self) -> Option<&str> {
        match &self.payer {
            Payer::Card { pan, .. } => Some(pan),
            Payer::CashReceipt { .. } => None,
        }
    }
}

/// First 6 and last 4 characters, the rest as `*` (short values: last 4 only).
pub fn mask(s: &str) -> String {
    let n = s.chars().count();
    s.chars()
        .enumerate()
        .map(|(i, c)| if (n >= 13 && i < 6) || i + 4 >= n { c } else { '*' })
        .collect()
}

/// How a transaction ended, as the terminal sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalResult {
    Approved,
    Declined,
    Timeout,
    Error,
}

impl ApprovalResult {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Approved => "approved",
            Self::Declined => "declined",
            Self::Timeout => "timeout",
            Self::Error => "error",
        }
    }
}

/// The answer a terminal gets (TCP: the same fields in the answer layout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApprovalAnswer {
    pub transaction_id: Uuid,
    pub result: ApprovalResult,
    pub response_code: String,
    pub approval_no: Option<String>,
    pub message: String,
    pub upstream: Option<String>,
    pub issuer: Option<String>,
}

/// The gateway's own response codes (an upstream's codes pass through as they came).
pub mod codes {
    /// Approved.
    pub const APPROVED: &str = "00";
    /// The terminal is unknown or disabled, or its request did not authenticate.
    pub const TERMINAL: &str = "TE";
    /// The request is malformed.
    pub const FORMAT: &str = "FE";
    /// The upstream did not answer in time (a network cancel follows when enabled).
    pub const TIMEOUT: &str = "TO";
    /// No upstream could be reached (every breaker open, or every connection refused).
    pub const NO_UPSTREAM: &str = "NU";
    /// The sale a cancel names is not known here.
    pub const NO_ORIGINAL: &str = "NO";
    /// The same request is still being processed (a repeat arrived before its first answer).
    pub const IN_PROGRESS: &str = "IP";
    /// A fault of the gateway itself (logged with its cause).
    pub const SYSTEM: &str = "SE";
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> ApprovalInput {
        ApprovalInput {
            tx_type: TxType::CardApproval,
            seq_no: 1,
            sent_at: "20261204120000".into(),
            amount: 15_000,
            card: Some(CardInput {
                track2: None,
                pan: Some("9410123412340001".into()),
                expiry: Some("2912".into()),
            }),
            installment_months: None,
            original: None,
            cash_receipt: None,
        }
    }

    #[test]
    fn a_good_request_is_accepted_and_masked() {
        let r = ApprovalRequest::try_from(input()).unwrap();
        assert_eq!(r.masked(), "941012******0001");
        assert_eq!(r.pan(), Some("9410123412340001"));
    }

    #[test]
    fn track2_gives_the_pan_and_expiry() {
        let mut i = input();
        i.card = Some(CardInput {
            track2: Some("9410123412340001=29121010000".into()),
            pan: None,
            expiry: None,
        });
        let r = ApprovalRequest::try_from(i).unwrap();
        assert!(
            matches!(&r.payer, Payer::Card { pan, expiry: Some(e), .. } if pan == "9410123412340001" && e == "2912")
        );
    }

    #[test]
    fn bad_requests_are_refused() {
        type Change = Box<dyn Fn(&mut ApprovalInput)>;
        let cases: Vec<Change> = vec![
            Box::new(|i| i.amount = 0),
            Box::new(|i| i.amount = AMOUNT_MAX + 1),
            Box::new(|i| i.seq_no = SEQ_NO_MAX + 1),
            Box::new(|i| i.sent_at = "20261332120000".into()),
            Box::new(|i| i.sent_at = "2026120412000".into()),
            Box::new(|i| i.card = None),
            Box::new(|i| i.installment_months = Some(37)),
            Box::new(|i| i.card.as_mut().unwrap().pan = Some("12ab".into())),
            Box::new(|i| i.card.as_mut().unwrap().expiry = Some("2913".into())),
            Box::new(|i| {
                i.original = Some(OriginalInput {
                    approval_no: "12345678".into(),
                    approved_at: "20261204120000".into(),
                })
            }),
            Box::new(|i| i.tx_type = TxType::CardCancel),
            Box::new(|i| i.tx_type = TxType::CashReceipt),
        ];
        for (n, case) in cases.iter().enumerate() {
            let mut i = input();
            case(&mut i);
            assert!(ApprovalRequest::try_from(i).is_err(), "case {n} was accepted");
        }
    }
}
