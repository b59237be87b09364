//! A message in our own field names, independent of any dialect, and the codec errors.
//!
//! Our field names (a dialect maps its own to these; every value is text):
//! `terminal_id`, `merchant_id`, `seq_no`, `sent_at` (YYYYMMDDhhmmss), `amount` (won, digits),
//! `pan`, `expiry` (YYMM), `track2`, `installment_months`, `approval_no`, `approved_at`
//! (YYYYMMDDhhmmss), `original_approval_no`, `original_approved_at`, `cash_receipt_id_type`,
//! `cash_receipt_id_number`, `response_code`, `message` (may hold Hangul), `issuer`,
//! `upstream_ref` (12 digits: the gateway's reference of one upstream exchange, echoed in the
//! answer; answers on a link are matched by it), `repeat` (`0`/`1`, network cancel only),
//! `transaction_id`.

use std::collections::BTreeMap;

/// Which way a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Request,
    Answer,
}

/// A transaction type's message in our field names. `tx_type` names the transaction type as the
/// dialect files do (`card_approval`, `card_cancel`, `cash_receipt`, `cash_receipt_cancel`,
/// `network_cancel`, or any other a data file adds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub tx_type: String,
    pub direction: Direction,
    pub fields: BTreeMap<String, String>,
}

impl Message {
    pub fn new(tx_type: impl Into<String>, direction: Direction) -> Self {
        Self {
            tx_type: tx_type.into(),
            direction,
            fields: BTreeMap::new(),
        }
    }

    /// This message with `name` set to `value`.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.set(name, value);
        self
    }

    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.fields.insert(name.to_owned(), value.into());
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

/// A message that does not fit its layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("the dialect has no {direction:?} layout for {tx_type}")]
    UnknownTxType { tx_type: String, direction: Direction },
    #[error("field {field}: {reason}")]
    Field { field: String, reason: String },
}

/// Bytes that are not a message of the dialect.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unknown message code {0:?}")]
    UnknownCode(String),
    #[error("the message is {got} bytes where {want} are needed")]
    Length { got: usize, want: usize },
    #[error("field {field}: {reason}")]
    Field { field: String, reason: String },
}
