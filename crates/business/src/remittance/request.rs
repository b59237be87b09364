//! A remittance request, validated at the edge: the amount, who receives it (a business on
//! the platform or any bank account), and the free text that travels with it.

use minipay_core::request::bounded_text;
use minipay_core::{Amount, BusinessId};
use minipay_services::{MEMO_LEN_MAX, RegisterBankAccount, ServiceError, ServiceResult};
use serde::Serialize;

pub use minipay_core::remittance::REFERENCE_LEN_MAX;

/// Who is paid.
#[derive(Debug, Clone)]
pub enum Recipient {
    Business(BusinessId),
    BankAccount(RegisterBankAccount),
}

#[derive(Debug, Clone)]
pub struct NewRemittance {
    pub amount: Amount,
    pub to: Recipient,
    pub memo: Option<String>,
    pub reference: Option<String>,
}

/// What a request asks for, for its Idempotency-Key fingerprint.
#[derive(Serialize)]
pub(crate) struct Fingerprint<'a> {
    amount: i64,
    to_business: Option<BusinessId>,
    to_bank: Option<(&'a str, &'a str, &'a str)>,
    memo: Option<&'a str>,
    reference: Option<&'a str>,
}

impl NewRemittance {
    pub fn parse(
        amount: i64,
        to_business_id: Option<BusinessId>,
        to_bank_account: Option<(&str, &str, &str)>,
        memo: Option<&str>,
        reference: Option<&str>,
    ) -> ServiceResult<Self> {
        let to = match (to_business_id, to_bank_account) {
            (Some(id), None) => Recipient::Business(id),
            (None, Some((code, number, holder))) => {
                Recipient::BankAccount(RegisterBankAccount::parse(code, number, holder)?)
            }
            _ => {
                return Err(ServiceError::validation(
                    "give exactly one of to_business_id and to_bank_account",
                ));
            }
        };
        let text = |field, raw: Option<&str>, max| {
            raw.map(|t| bounded_text(field, t, max))
                .transpose()
                .map_err(ServiceError::validation)
        };
        Ok(Self {
            amount: Amount::parse(amount).map_err(ServiceError::validation)?,
            to,
            memo: text("memo", memo, MEMO_LEN_MAX)?,
            reference: text("reference", reference, REFERENCE_LEN_MAX)?,
        })
    }

    pub(crate) fn fingerprint(&self) -> Fingerprint<'_> {
        let (to_business, to_bank) = match &self.to {
            Recipient::Business(id) => (Some(*id), None),
            Recipient::BankAccount(a) => (
                None,
                Some((a.bank_code.as_str(), a.account_number.as_str(), a.holder_name.as_str())),
            ),
        };
        Fingerprint {
            amount: self.amount.won(),
            to_business,
            to_bank,
            memo: self.memo.as_deref(),
            reference: self.reference.as_deref(),
        }
    }
}
