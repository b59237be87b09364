//! OpenAPI schemas of the API's bounded values (amounts, page limits, names, enums), built from
//! the constants and parsers that enforce them so that the document cannot drift from the rules.
//!
//! Each is a named schema type for `#[schema(value_type = schema::Amount)]` or
//! `#[param(value_type = Option<schema::PageLimit>, inline)]`: utoipa's literal attributes
//! cannot name a constant, and the core enums do not derive `ToSchema` (core knows nothing of
//! HTTP). The type's doc comment is the schema's description.

use crate::jobs::{JOB_NAME_PATTERN, SCHEDULES};
use crate::transfers::MEMO_LEN_MAX;
use minipay_core::money::AMOUNT_MAX;
use minipay_core::request::{PAGE_LIMIT_DEFAULT, PAGE_LIMIT_MAX};
use minipay_core::split::PARTICIPANTS_MAX;
use minipay_core::user::{EMAIL_LEN_MAX, NAME_LEN_MAX, PASSWORD_LEN_MAX, PASSWORD_LEN_MIN};
use minipay_core::{ledger, payment, remittance, split, transfer};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ArrayBuilder, KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};

/// Declares `pub struct Name;` whose schema is `$schema` described by the doc comment.
macro_rules! schemas {
    ($($(#[doc = $doc:literal])+ $name:ident = $schema:expr;)+) => {$(
        $(#[doc = $doc])+
        pub struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                let mut schema = Schema::from($schema);
                let description = [$($doc.trim()),+].join(" ");
                match &mut schema {
                    Schema::Object(o) => o.description = Some(description),
                    Schema::Array(a) => a.description = Some(description),
                    _ => {}
                }
                schema.into()
            }
        }

        impl utoipa::ToSchema for $name {}
    )+};
}

/// A string that is exactly one of `values`.
fn one_of(values: impl IntoIterator<Item = &'static str>) -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values))
}

/// Free text: trimmed, then non-empty (the pattern: not only whitespace) and at most `max`
/// characters.
fn text(max: usize) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(max))
        .pattern(Some(r"\S"))
}

fn string_of(format: KnownFormat) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(format)))
}

schemas! {
    /// Whole won that a request moves: 1 to 1,000,000,000,000.
    Amount = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64)))
        .minimum(Some(1))
        .maximum(Some(AMOUNT_MAX));

    /// How many items a page holds at most.
    PageLimit = ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int32)))
        .minimum(Some(1))
        .maximum(Some(PAGE_LIMIT_MAX))
        .default(Some(PAGE_LIMIT_DEFAULT.into()));

    /// An email address (compared without case).
    Email = ObjectBuilder::new().schema_type(Type::String).max_length(Some(EMAIL_LEN_MAX));

    /// 8 to 128 characters.
    Password = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(PASSWORD_LEN_MIN))
        .max_length(Some(PASSWORD_LEN_MAX));

    /// A person's name: trimmed of surrounding whitespace, 1 to 50 characters, no control
    /// characters.
    PersonName = text(NAME_LEN_MAX);

    /// A note shown to both sides: trimmed; blank means none; at most 200 characters; no
    /// control characters.
    Memo = ObjectBuilder::new().schema_type(Type::String).max_length(Some(MEMO_LEN_MAX));

    /// A Korean bank's 3-digit code.
    BankCode = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[0-9]{3}$"))
        .examples(["004"]);

    /// A bank account number: 6 to 20 digits.
    BankAccountNumber = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[0-9]{6,20}$"))
        .examples(["1002003001"]);

    /// 1 to 100 distinct users.
    ParticipantUserIds = ArrayBuilder::new()
        .items(string_of(KnownFormat::Uuid))
        .min_items(Some(1))
        .max_items(Some(PARTICIPANTS_MAX))
        .unique_items(true);

    /// A job's name: lowercase letters, digits and dashes (the examples are this build's jobs).
    JobName = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(JOB_NAME_PATTERN))
        .examples(SCHEDULES.iter().map(|(name, _)| *name));

    /// `immediate` transfers complete at once; `pending` ones wait for the receiver to accept.
    TransferMode = {
        use transfer::TransferMode::*;
        one_of([Immediate, Pending].map(transfer::TransferMode::as_str))
    };

    /// Where a transfer is: `pending` until accepted, canceled or expired.
    TransferStatus = {
        use transfer::TransferStatus::*;
        one_of([Pending, Completed, Canceled, Expired].map(transfer::TransferStatus::as_str))
    };

    /// A user's account: the `main` one, or a `savings` one.
    AccountKind = one_of([ledger::AccountKind::Main, ledger::AccountKind::Savings].map(ledger::AccountKind::as_str));

    /// What `POST /v1/accounts` opens (the main account comes with signup).
    OpenableAccountKind = one_of([ledger::AccountKind::Savings.as_str()]);

    /// `free`: deposits any time, 3% a year; `fixed`: a daily auto-debit, 5% a year.
    SavingsProduct = {
        use ledger::SavingsProduct::*;
        one_of([Free, Fixed].map(ledger::SavingsProduct::as_str))
    };

    /// `equal`: shares differ by at most 1 won; `random`: random shares of at least 1 won.
    SplitMethod = one_of([split::SplitMethod::Equal, split::SplitMethod::Random].map(split::SplitMethod::as_str));

    /// A share is `requested` until its participant pays it.
    ShareStatus = {
        use minipay_store::ShareStatus::*;
        one_of([Requested, Paid].map(minipay_store::ShareStatus::as_str))
    };

    /// `open` until every share is paid, then `completed`.
    SettlementStatus = one_of(["open", "completed"]);

    /// What a history entry records.
    EntryKind = {
        use ledger::EntryKind::*;
        let kinds = [Charge, Transfer, SavingsDeposit, AutoDebit, Interest, SettlementPayment];
        one_of(kinds.map(ledger::EntryKind::as_str))
    };

    /// Money into (`in`) or out of (`out`) the account.
    EntryDirection = one_of(["in", "out"]);

    /// A charge in a 201 answer has completed.
    ChargeStatus = one_of(["completed"]);

    /// A bank account the bank registered (the only kind kept).
    BankAccountStatus = one_of(["registered"]);

    /// Transfers to the caller (`incoming`) or from the caller (`outgoing`).
    TransferDirection = one_of(["incoming", "outgoing"]);

    /// Settlements the caller requested (`requester`), or takes part in (`participant`).
    SettlementRole = one_of(["requester", "participant"]).default(Some("requester".into()));

    /// Where a remittance is on its way (each status says where the money is).
    RemittanceStatus = one_of(remittance::RemittanceStatus::ALL.map(remittance::RemittanceStatus::as_str));

    /// The business's own reference for a remittance (an invoice number...).
    RemittanceReference = text(remittance::REFERENCE_LEN_MAX);

    /// Where a payment is: `accepted` and `processing` until the bank's answer settles it.
    PaymentStatus = one_of(payment::PaymentStatus::ALL.map(payment::PaymentStatus::as_str));

    /// The business's id for the order: 1 to 64 visible ASCII characters, unique per business.
    OrderId = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some("^[!-~]{1,64}$"))
        .examples(["ORDER-20261205-0001"]);

    /// What the payment is for, shown to the user.
    PaymentDescription = text(payment::DESCRIPTION_LEN_MAX);

    /// Why the business refunds.
    RefundReason = text(payment::REASON_LEN_MAX);
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::PartialSchema;

    fn values<T: PartialSchema>() -> Vec<String> {
        let RefOr::T(Schema::Object(o)) = T::schema() else {
            panic!("an inline object schema")
        };
        o.enum_values
            .unwrap()
            .into_iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    /// Every value the document offers is one the parsers take.
    #[test]
    fn enum_values_parse() {
        let parse_all = |values: Vec<String>, parse: fn(&str) -> bool| values.iter().all(|v| parse(v));
        assert!(parse_all(values::<TransferMode>(), |v| transfer::TransferMode::parse(
            v
        )
        .is_some()));
        assert!(parse_all(values::<TransferStatus>(), |v| {
            transfer::TransferStatus::parse(v).is_some()
        }));
        assert!(parse_all(values::<SavingsProduct>(), |v| {
            ledger::SavingsProduct::parse(v).is_some()
        }));
        assert!(parse_all(values::<SplitMethod>(), |v| split::SplitMethod::parse(v).is_some()));
        assert!(parse_all(values::<EntryKind>(), |v| ledger::EntryKind::parse(v).is_some()));
        assert!(parse_all(values::<AccountKind>(), |v| ledger::AccountKind::parse(v).is_some()));
        assert_eq!(values::<TransferStatus>().len(), 4);
        assert_eq!(values::<EntryKind>().len(), 6);
    }

    #[test]
    fn every_job_has_a_job_name() {
        assert!(SCHEDULES.iter().all(|(name, _)| crate::jobs::is_job_name(name)));
        assert!(!crate::jobs::is_job_name("a\0b") && !crate::jobs::is_job_name(""));
    }

    #[test]
    fn the_doc_comment_is_the_description() {
        let RefOr::T(Schema::Object(o)) = Amount::schema() else {
            panic!("an inline object schema")
        };
        assert_eq!(
            o.description.as_deref(),
            Some("Whole won that a request moves: 1 to 1,000,000,000,000.")
        );
    }
}
