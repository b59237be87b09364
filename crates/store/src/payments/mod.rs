//! The payments' tables: payments a business takes from a wallet user's bank account, their
//! refunds, and every bank call made for either (the customer-support history).

mod accept;
mod bank_calls;
mod payment;
mod refunds;

pub use accept::AcceptedPayment;
#[cfg(feature = "testing")]
pub use accept::PAYMENT_GROUP_STATEMENT;
pub use bank_calls::{BankCall, FinishedBankCall, NewBankCall};
pub use payment::{NewPayment, Payment, PaymentFailure, PaymentFilter, PaymentStatusChange, RefundAmountTake};
pub use refunds::{NewRefund, Refund};
