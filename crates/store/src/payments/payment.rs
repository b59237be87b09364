//! Payments. Every status change is conditional on the status read (`WHERE status = ...`), and
//! a refund's amount is taken with one conditional statement, so concurrent refunds of one
//! payment can never add up to more than it.

use crate::BankAccount;
use crate::session::{Db, Session};
use crate::types::DbTime;
use crate::{Result, StoreError};
use jiff::Timestamp;
use minipay_core::payment::PaymentStatus;
use minipay_core::{BankAccountId, BusinessId, PaymentId, UserId};
use uuid::Uuid;

/// A payment to record (status `accepted`).
#[derive(Debug, Clone)]
pub struct NewPayment<'a> {
    pub id: PaymentId,
    pub business_id: BusinessId,
    pub user_id: UserId,
    pub order_id: &'a str,
    pub amount: i64,
    pub description: Option<&'a str>,
    pub bank_transaction_id: &'a str,
    pub at: Timestamp,
}

/// A refund's amount to take from a business's payment ([`Session::take_refund_amounts`]).
#[derive(Debug, Clone, Copy)]
pub struct RefundAmountTake {
    pub payment: PaymentId,
    pub business: BusinessId,
    pub amount: i64,
}

/// A payment's move from `from` to `to`, made only if it is still in `from`.
#[derive(Debug, Clone, Copy)]
pub struct PaymentStatusChange<'a> {
    pub id: PaymentId,
    pub from: PaymentStatus,
    pub to: PaymentStatus,
    /// When failing: why.
    pub failure: Option<&'a PaymentFailure>,
}

/// Why a payment failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentFailure {
    pub code: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub id: PaymentId,
    pub business_id: BusinessId,
    pub user_id: UserId,
    pub order_id: String,
    pub amount: i64,
    pub refunded_amount: i64,
    pub description: Option<String>,
    pub bank_account_id: BankAccountId,
    pub fintech_use_num: String,
    pub bank_transaction_id: String,
    pub status: PaymentStatus,
    pub failure: Option<PaymentFailure>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub paid_at: Option<Timestamp>,
}

#[derive(sqlx::FromRow)]
struct PaymentRow {
    id: Uuid,
    business_id: Uuid,
    user_id: Uuid,
    order_id: String,
    amount: i64,
    refunded_amount: i64,
    description: Option<String>,
    bank_account_id: Uuid,
    fintech_use_num: String,
    bank_transaction_id: String,
    status: String,
    failure_code: Option<String>,
    failure_message: Option<String>,
    created_at: DbTime,
    updated_at: DbTime,
    paid_at: Option<DbTime>,
}

impl TryFrom<PaymentRow> for Payment {
    type Error = StoreError;
    fn try_from(r: PaymentRow) -> Result<Self> {
        Ok(Self {
            id: PaymentId::from_uuid(r.id),
            business_id: BusinessId::from_uuid(r.business_id),
            user_id: UserId::from_uuid(r.user_id),
            order_id: r.order_id,
            amount: r.amount,
            refunded_amount: r.refunded_amount,
            description: r.description,
            bank_account_id: BankAccountId::from_uuid(r.bank_account_id),
            fintech_use_num: r.fintech_use_num,
            bank_transaction_id: r.bank_transaction_id,
            status: PaymentStatus::parse(&r.status)
                .ok_or_else(|| StoreError::corrupt(format!("payment status {:?}", r.status)))?,
            failure: r.failure_code.map(|code| PaymentFailure {
                code,
                message: r.failure_message.unwrap_or_default(),
            }),
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
            paid_at: r.paid_at.map(|t| t.0),
        })
    }
}

const COLUMNS: &str = "id, business_id, user_id, order_id, amount, refunded_amount, description, bank_account_id, \
    fintech_use_num, bank_transaction_id, status, failure_code, failure_message, created_at, updated_at, paid_at";

/// What taking `take` (an SQL expression) more out of a payment's refundable amount sets: the
/// amount refunded, and the status that follows it (`PaymentStatus::after_refunds`). One rule
/// for the one-payment and the many-payments statements.
fn refund_taken(take: &str) -> String {
    format!(
        "refunded_amount = refunded_amount + {take},
         status = CASE WHEN refunded_amount + {take} = amount THEN 'refunded' ELSE 'partially_refunded' END"
    )
}

/// When a payment gives `take` (an SQL expression) more: it is paid, and the refunds stay
/// within its amount.
fn refund_allowed(take: &str) -> String {
    format!("status IN ('paid', 'partially_refunded', 'refunded') AND refunded_amount + {take} <= amount")
}

/// Which payments a list shows (every field optional; all given must match).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PaymentFilter {
    pub business: Option<BusinessId>,
    pub user: Option<UserId>,
    pub order_id: Option<String>,
    pub status: Option<PaymentStatus>,
}

impl Session {
    /// Records a payment (`accepted`) pulling from `account` and returns it; `None` when the
    /// business already has a payment with this order id (nothing written).
    pub async fn insert_payment(&mut self, p: &NewPayment<'_>, account: &BankAccount) -> Result<Option<Payment>> {
        self.assert_writable();
        let row: Option<PaymentRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO payments (id, business_id, user_id, order_id, amount, description, bank_account_id,
                 fintech_use_num, bank_transaction_id, status, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'accepted', $10, $10)
             ON CONFLICT (business_id, order_id) DO NOTHING
             RETURNING {COLUMNS}"
        )))
        .bind(p.id.as_uuid())
        .bind(p.business_id.as_uuid())
        .bind(p.user_id.as_uuid())
        .bind(p.order_id)
        .bind(p.amount)
        .bind(p.description)
        .bind(account.id.as_uuid())
        .bind(&account.fintech_use_num)
        .bind(p.bank_transaction_id)
        .bind(DbTime(p.at))
        .fetch_optional(c)
        .await)?;
        row.map(Payment::try_from).transpose()
    }

    pub async fn payment(&mut self, id: PaymentId) -> Result<Option<Payment>> {
        let row: Option<PaymentRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM payments WHERE id = $1"
        )))
        .bind(id.as_uuid())
        .fetch_optional(c)
        .await)?;
        row.map(Payment::try_from).transpose()
    }

    /// The payments with these ids (those that exist), in no particular order.
    pub async fn payments_by_ids(&mut self, ids: &[PaymentId]) -> Result<Vec<Payment>> {
        let ids: Vec<Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
        let rows: Vec<PaymentRow> = self
            .rows_with_ids(&format!("SELECT {COLUMNS} FROM payments"), "", &ids)
            .await?;
        rows.into_iter().map(Payment::try_from).collect()
    }

    /// The business's payment for `order_id`, if any.
    pub async fn payment_by_order(&mut self, business: BusinessId, order_id: &str) -> Result<Option<Payment>> {
        let row: Option<PaymentRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM payments WHERE business_id = $1 AND order_id = $2"
        )))
        .bind(business.as_uuid())
        .bind(order_id)
        .fetch_optional(c)
        .await)?;
        row.map(Payment::try_from).transpose()
    }

    /// Moves a payment from `from` to `to` (with the failure, when failing; `paid_at` when
    /// paid); `false` (nothing written) when it is no longer in `from`.
    pub async fn change_payment_status(
        &mut self,
        id: PaymentId,
        from: PaymentStatus,
        to: PaymentStatus,
        failure: Option<&PaymentFailure>,
        at: Timestamp,
    ) -> Result<bool> {
        self.assert_writable();
        let paid_at = (to == PaymentStatus::Paid).then_some(DbTime(at));
        let n = on_db!(self, c => sqlx::query(
            "UPDATE payments SET status = $3, failure_code = $4, failure_message = $5, updated_at = $6,
                 paid_at = COALESCE($7, paid_at)
             WHERE id = $1 AND status = $2",
        )
        .bind(id.as_uuid())
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(failure.map(|f| f.code.as_str()))
        .bind(failure.map(|f| f.message.as_str()))
        .bind(DbTime(at))
        .bind(paid_at)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// [`Self::change_payment_status`] for many, all at `at` (one statement on PostgreSQL):
    /// whether each moved, in order.
    pub async fn change_payment_statuses(
        &mut self,
        changes: &[PaymentStatusChange<'_>],
        at: Timestamp,
    ) -> Result<Vec<bool>> {
        self.assert_writable();
        let ids: Vec<Uuid> = changes.iter().map(|ch| ch.id.as_uuid()).collect();
        // One statement moves a row once however often it is named, and would answer "moved"
        // for each naming: a payment named twice is changed one change at a time instead.
        let named_once = ids.iter().collect::<std::collections::HashSet<_>>().len() == ids.len();
        let (Db::Pg(c), true) = (self.db(), named_once) else {
            let mut moved = Vec::with_capacity(changes.len());
            for ch in changes {
                moved.push(
                    self.change_payment_status(ch.id, ch.from, ch.to, ch.failure, at)
                        .await?,
                );
            }
            return Ok(moved);
        };
        let from: Vec<&str> = changes.iter().map(|ch| ch.from.as_str()).collect();
        let to: Vec<&str> = changes.iter().map(|ch| ch.to.as_str()).collect();
        let codes: Vec<Option<&str>> = changes.iter().map(|ch| ch.failure.map(|f| f.code.as_str())).collect();
        let messages: Vec<Option<&str>> = changes
            .iter()
            .map(|ch| ch.failure.map(|f| f.message.as_str()))
            .collect();
        let paid: Vec<bool> = changes.iter().map(|ch| ch.to == PaymentStatus::Paid).collect();
        let moved: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE payments p SET status = t.to_status, failure_code = t.code, failure_message = t.message,
                 updated_at = $7, paid_at = CASE WHEN t.paid THEN $7 ELSE p.paid_at END
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bool[])
                  AS t(id, from_status, to_status, code, message, paid)
             WHERE p.id = t.id AND p.status = t.from_status
             RETURNING p.id",
        )
        .bind(&ids)
        .bind(&from)
        .bind(&to)
        .bind(&codes)
        .bind(&messages)
        .bind(&paid)
        .bind(DbTime(at))
        .fetch_all(c)
        .await?;
        Ok(ids.iter().map(|id| moved.contains(id)).collect())
    }

    /// Takes `amount` more out of a payment's refundable amount, if it is the business's, paid,
    /// and has that much left: one conditional statement, so concurrent refunds serialize on
    /// the row and never exceed the payment. The status follows `PaymentStatus::after_refunds`
    /// (the caller checks the row against it). The payment after, or `None` (nothing written).
    pub async fn take_refund_amount(
        &mut self,
        id: PaymentId,
        business: BusinessId,
        amount: i64,
        at: Timestamp,
    ) -> Result<Option<Payment>> {
        self.assert_writable();
        let row: Option<PaymentRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE payments SET {taken}, updated_at = $4
             WHERE id = $1 AND business_id = $2 AND {allowed}
             RETURNING {COLUMNS}",
            taken = refund_taken("$3"),
            allowed = refund_allowed("$3"),
        )))
        .bind(id.as_uuid())
        .bind(business.as_uuid())
        .bind(amount)
        .bind(DbTime(at))
        .fetch_optional(c)
        .await)?;
        row.map(Payment::try_from).transpose()
    }

    /// [`Self::take_refund_amount`] for several payments at once, each at most once: one
    /// statement on PostgreSQL (the payments given to it in id order), a statement per payment
    /// on SQLite. The payments that gave their amount, as after; the others are left as they were.
    pub async fn take_refund_amounts(&mut self, takes: &[RefundAmountTake], at: Timestamp) -> Result<Vec<Payment>> {
        self.assert_writable();
        let mut takes = takes.to_vec();
        takes.sort_by_key(|t| t.payment.as_uuid());
        assert!(
            takes.windows(2).all(|w| w[0].payment != w[1].payment),
            "one take per payment in one statement"
        );
        if takes.is_empty() {
            return Ok(Vec::new());
        }
        let Db::Pg(c) = self.db() else {
            let mut taken = Vec::with_capacity(takes.len());
            for t in &takes {
                taken.extend(self.take_refund_amount(t.payment, t.business, t.amount, at).await?);
            }
            return Ok(taken);
        };
        let ids: Vec<Uuid> = takes.iter().map(|t| t.payment.as_uuid()).collect();
        let businesses: Vec<Uuid> = takes.iter().map(|t| t.business.as_uuid()).collect();
        let amounts: Vec<i64> = takes.iter().map(|t| t.amount).collect();
        let rows: Vec<PaymentRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "UPDATE payments SET {taken}, updated_at = $4
             FROM UNNEST($1::uuid[], $2::uuid[], $3::int8[]) AS t(payment, business, take)
             WHERE id = t.payment AND business_id = t.business AND {allowed}
             RETURNING {COLUMNS}",
            taken = refund_taken("t.take"),
            allowed = refund_allowed("t.take"),
        )))
        .bind(&ids)
        .bind(&businesses)
        .bind(&amounts)
        .bind(DbTime(at))
        .fetch_all(c)
        .await?;
        rows.into_iter().map(Payment::try_from).collect()
    }

    /// Gives a failed refund's `amount` back to the payment's refundable amount.
    pub async fn return_refund_amount(&mut self, id: PaymentId, amount: i64, at: Timestamp) -> Result<()> {
        self.assert_writable();
        let n = on_db!(self, c => sqlx::query(
            "UPDATE payments SET refunded_amount = refunded_amount - $2,
                 status = CASE WHEN refunded_amount - $2 = 0 THEN 'paid' ELSE 'partially_refunded' END,
                 updated_at = $3
             WHERE id = $1 AND refunded_amount >= $2",
        )
        .bind(id.as_uuid())
        .bind(amount)
        .bind(DbTime(at))
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        if n != 1 {
            return Err(StoreError::corrupt(format!(
                "payment {id} has less than {amount} won refunded"
            )));
        }
        Ok(())
    }

    /// Payments newest first, after the keyset cursor `after`.
    pub async fn payments(
        &mut self,
        filter: &PaymentFilter,
        after: Option<(Timestamp, Uuid)>,
        limit: u32,
    ) -> Result<Vec<Payment>> {
        let (after_at, after_id) = after.map_or((DbTime(Timestamp::MAX), Uuid::max()), |(t, id)| (DbTime(t), id));
        let rows: Vec<PaymentRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM payments
             WHERE (created_at, id) < ($1, $2)
               AND ($3 IS NULL OR business_id = $3)
               AND ($4 IS NULL OR user_id = $4)
               AND ($5 IS NULL OR order_id = $5)
               AND ($6 IS NULL OR status = $6)
             ORDER BY created_at DESC, id DESC LIMIT $7"
        )))
        .bind(after_at)
        .bind(after_id)
        .bind(filter.business.map(|b| b.as_uuid()))
        .bind(filter.user.map(|u| u.as_uuid()))
        .bind(filter.order_id.as_deref())
        .bind(filter.status.map(PaymentStatus::as_str))
        .bind(i64::from(limit))
        .fetch_all(c)
        .await)?;
        rows.into_iter().map(Payment::try_from).collect()
    }

    /// Payments whose pull is not settled (`accepted`, `processing`: neither paid nor failed)
    /// and that have not moved since `before`, oldest first: the recovery job's work. (Found
    /// through the columns set at settlement, so that the status changes before it leave every
    /// index alone.)
    pub async fn unsettled_payments(&mut self, before: Timestamp, limit: u32) -> Result<Vec<Payment>> {
        let rows: Vec<PaymentRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM payments
             WHERE paid_at IS NULL AND failure_code IS NULL AND updated_at <= $1
             ORDER BY created_at, id LIMIT $2"
        )))
        .bind(DbTime(before))
        .bind(i64::from(limit))
        .fetch_all(c)
        .await)?;
        rows.into_iter().map(Payment::try_from).collect()
    }
}
