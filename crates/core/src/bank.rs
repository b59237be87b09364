//! External bank accounts: bank codes, account numbers and how they are shown masked.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BankAccountError {
    #[error("bank_code must be exactly 3 digits")]
    BankCode,
    #[error("account_number must be 6 to 20 digits")]
    AccountNumber,
}

/// A Korean bank code (e.g. `004`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BankCode(String);

impl BankCode {
    pub fn parse(raw: &str) -> Result<Self, BankAccountError> {
        if raw.len() == 3 && raw.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(BankAccountError::BankCode)
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A bank account number: 6–20 digits. Kept only long enough to register it with the bank;
/// afterwards the platform stores the bank's fin-account id and the masked number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountNumber(String);

impl AccountNumber {
    pub fn parse(raw: &str) -> Result<Self, BankAccountError> {
        if (6..=20).contains(&raw.len()) && raw.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(BankAccountError::AccountNumber)
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Everything but the last four digits replaced by `*`.
    pub fn masked(&self) -> String {
        let keep = 4;
        let hidden = self.0.len() - keep;
        format!("{}{}", "*".repeat(hidden), &self.0[hidden..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_numbers() {
        assert!(BankCode::parse("004").is_ok());
        assert!(BankCode::parse("04").is_err());
        assert!(BankCode::parse("0a4").is_err());
        assert!(AccountNumber::parse("12345").is_err());
        assert!(AccountNumber::parse(&"1".repeat(21)).is_err());
        assert!(AccountNumber::parse("12-3456").is_err());
        assert_eq!(AccountNumber::parse("1234567890").unwrap().masked(), "******7890");
    }
}
