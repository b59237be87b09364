//! The JSON shapes of payments and refunds (API-business.md, "Payments and refunds"): the
//! payment as its business and its user see it, and for customer support every refund and
//! every bank call made for it.

use jiff::Timestamp;
use minipay_core::payment::{BankCallKind, BankCallOutcome, PaymentStatus, RefundStatus};
use minipay_core::{BusinessId, PaymentId, RefundId, UserId};
use minipay_store::{BankCall, Payment, PaymentFailure, Refund};
use serde::Serialize;
use utoipa::ToSchema;

/// Why a payment or a refund failed.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct FailureView {
    /// `bank_declined` (the bank said no), `bank_no_answer` (no answer and no record at the
    /// bank: voided, nothing taken) or `bank_unavailable` (the bank would not take it).
    pub code: String,
    pub message: String,
}

impl FailureView {
    fn of(f: &PaymentFailure) -> Self {
        Self {
            code: f.code.clone(),
            message: f.message.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PaymentView {
    #[schema(value_type = String, format = Uuid)]
    pub id: PaymentId,
    /// `accepted`, `processing`, `paid`, `failed`, `partially_refunded` or `refunded`.
    #[schema(value_type = String)]
    pub status: PaymentStatus,
    pub amount: i64,
    /// Refunds accepted and not failed (succeeded, or on their way to the user's bank).
    pub refunded_amount: i64,
    #[schema(value_type = String, format = Uuid)]
    pub business_id: BusinessId,
    #[schema(value_type = String, format = Uuid)]
    pub user_id: UserId,
    pub order_id: String,
    pub description: Option<String>,
    /// The pull's transfer id at the bank: unique across every bank call the platform makes.
    pub bank_transaction_id: String,
    pub failure: Option<FailureView>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub paid_at: Option<Timestamp>,
}

impl From<&Payment> for PaymentView {
    fn from(p: &Payment) -> Self {
        Self {
            id: p.id,
            status: p.status,
            amount: p.amount,
            refunded_amount: p.refunded_amount,
            business_id: p.business_id,
            user_id: p.user_id,
            order_id: p.order_id.clone(),
            description: p.description.clone(),
            bank_transaction_id: p.bank_transaction_id.clone(),
            failure: p.failure.as_ref().map(FailureView::of),
            created_at: p.created_at,
            paid_at: p.paid_at,
        }
    }
}

impl PaymentView {
    /// A payment as it is recorded from `p` (`accepted`, nothing refunded, no failure): its
    /// answer can be stored with it in the same statement.
    pub(crate) fn accepted(p: &minipay_store::NewPayment<'_>) -> Self {
        Self {
            id: p.id,
            status: PaymentStatus::Accepted,
            amount: p.amount,
            refunded_amount: 0,
            business_id: p.business_id,
            user_id: p.user_id,
            order_id: p.order_id.to_owned(),
            description: p.description.map(str::to_owned),
            bank_transaction_id: p.bank_transaction_id.to_owned(),
            failure: None,
            created_at: p.at,
            paid_at: None,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RefundView {
    #[schema(value_type = String, format = Uuid)]
    pub id: RefundId,
    #[schema(value_type = String, format = Uuid)]
    pub payment_id: PaymentId,
    pub amount: i64,
    /// `accepted`, `processing`, `succeeded` or `failed`.
    #[schema(value_type = String)]
    pub status: RefundStatus,
    pub reason: Option<String>,
    /// The push's transfer id at the bank.
    pub bank_transaction_id: String,
    pub failure: Option<FailureView>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
}

impl From<&Refund> for RefundView {
    fn from(r: &Refund) -> Self {
        Self {
            id: r.id,
            payment_id: r.payment_id,
            amount: r.amount,
            status: r.status,
            reason: r.reason.clone(),
            bank_transaction_id: r.bank_transaction_id.clone(),
            failure: r.failure.as_ref().map(FailureView::of),
            created_at: r.created_at,
            finished_at: r.finished_at,
        }
    }
}

/// One call the platform made to the bank.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BankCallView {
    /// `pull`, `push`, `inquiry` (status inquiry) or `void`.
    #[schema(value_type = String)]
    pub kind: BankCallKind,
    /// The refund it was for, if not the payment's pull.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub refund_id: Option<RefundId>,
    pub tran_id: String,
    /// `sent` (no answer recorded yet), `completed`, `declined`, `unavailable` or `unknown`.
    #[schema(value_type = String)]
    pub outcome: BankCallOutcome,
    /// The bank's own id of an executed transfer.
    pub bank_tran_id: Option<String>,
    pub error: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub finished_at: Option<Timestamp>,
}

impl From<&BankCall> for BankCallView {
    fn from(c: &BankCall) -> Self {
        Self {
            kind: c.kind,
            refund_id: c.refund_id,
            tran_id: c.tran_id.clone(),
            outcome: c.outcome,
            bank_tran_id: c.bank_tran_id.clone(),
            error: c.error.clone(),
            started_at: c.started_at,
            finished_at: c.finished_at,
        }
    }
}

/// A payment with its refunds and every bank call (customer support).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PaymentHistoryView {
    #[serde(flatten)]
    pub payment: PaymentView,
    pub refunds: Vec<RefundView>,
    pub bank_calls: Vec<BankCallView>,
}

impl PaymentHistoryView {
    /// `refunds` and `calls` may hold other payments' too: each payment takes its own.
    pub fn new(p: &Payment, refunds: &[Refund], calls: &[BankCall]) -> Self {
        Self {
            payment: p.into(),
            refunds: refunds
                .iter()
                .filter(|r| r.payment_id == p.id)
                .map(Into::into)
                .collect(),
            bank_calls: calls.iter().filter(|c| c.payment_id == p.id).map(Into::into).collect(),
        }
    }
}

/// `GET /v1/biz/balance`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BalanceView {
    /// The business's money on the platform: payments in, less refunds (and payouts) out.
    pub balance: i64,
    /// Payouts to the business's bank account not yet finished.
    pub pending_payouts: i64,
}

/// What this instance's accept groups have recorded since it started
/// (`GET /v1/admin/payment-groups`).
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct AcceptGroupsView {
    /// Payment requests' groups (Prometheus `kind="payment"`).
    pub payments: AcceptGroupCounts,
    /// Refund requests' groups (Prometheus `kind="refund"`).
    pub refunds: AcceptGroupCounts,
}

/// One kind of request's groups.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct AcceptGroupCounts {
    /// Groups committed that recorded requests.
    pub groups: u64,
    /// Requests they recorded (the others replayed, or ran on their own).
    pub recorded: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use minipay_core::BankAccountId;

    /// The answer a group stores before the payment's row exists is the view of that row.
    #[test]
    fn an_accepted_payments_view_is_the_view_of_its_recorded_row() {
        let at = Timestamp::from_microsecond(1_780_000_000_123_456).unwrap();
        for description in [None, Some("커피 두 잔")] {
            let new = minipay_store::NewPayment {
                id: PaymentId::new(),
                business_id: BusinessId::new(),
                user_id: UserId::new(),
                order_id: "ORDER-1",
                amount: 12_000,
                description,
                bank_transaction_id: "M202600001U123456789",
                at,
            };
            let recorded = Payment {
                id: new.id,
                business_id: new.business_id,
                user_id: new.user_id,
                order_id: new.order_id.to_owned(),
                amount: new.amount,
                refunded_amount: 0,
                description: description.map(str::to_owned),
                bank_account_id: BankAccountId::new(),
                fintech_use_num: "120000000000000000000001".to_owned(),
                bank_transaction_id: new.bank_transaction_id.to_owned(),
                status: PaymentStatus::Accepted,
                failure: None,
                created_at: at,
                updated_at: at,
                paid_at: None,
            };
            assert_eq!(
                serde_json::to_value(PaymentView::accepted(&new)).unwrap(),
                serde_json::to_value(PaymentView::from(&recorded)).unwrap()
            );
        }
    }
}
