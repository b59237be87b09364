//! Refunds of payments. Status changes are conditional on the status read.

use crate::session::{Db, Session};
use crate::types::DbTime;
use crate::{Result, StoreError};
use jiff::Timestamp;
use minipay_core::payment::RefundStatus;
use minipay_core::{BusinessId, PaymentId, RefundId};
use uuid::Uuid;

/// A refund to record (status `accepted`).
#[derive(Debug, Clone)]
pub struct NewRefund<'a> {
    pub id: RefundId,
    pub payment_id: PaymentId,
    pub business_id: BusinessId,
    pub amount: i64,
    pub reason: Option<&'a str>,
    pub bank_transaction_id: &'a str,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refund {
    pub id: RefundId,
    pub payment_id: PaymentId,
    pub business_id: BusinessId,
    pub amount: i64,
    pub reason: Option<String>,
    pub bank_transaction_id: String,
    pub status: RefundStatus,
    pub failure: Option<super::PaymentFailure>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

#[derive(sqlx::FromRow)]
struct RefundRow {
    id: Uuid,
    payment_id: Uuid,
    business_id: Uuid,
    amount: i64,
    reason: Option<String>,
    bank_transaction_id: String,
    status: String,
    failure_code: Option<String>,
    failure_message: Option<String>,
    created_at: DbTime,
    updated_at: DbTime,
    finished_at: Option<DbTime>,
}

impl TryFrom<RefundRow> for Refund {
    type Error = StoreError;
    fn try_from(r: RefundRow) -> Result<Self> {
        Ok(Self {
            id: RefundId::from_uuid(r.id),
            payment_id: PaymentId::from_uuid(r.payment_id),
            business_id: BusinessId::from_uuid(r.business_id),
            amount: r.amount,
            reason: r.reason,
            bank_transaction_id: r.bank_transaction_id,
            status: RefundStatus::parse(&r.status)
                .ok_or_else(|| StoreError::corrupt(format!("refund status {:?}", r.status)))?,
            failure: r.failure_code.map(|code| super::PaymentFailure {
                code,
                message: r.failure_message.unwrap_or_default(),
            }),
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
            finished_at: r.finished_at.map(|t| t.0),
        })
    }
}

const COLUMNS: &str = "id, payment_id, business_id, amount, reason, bank_transaction_id, status, failure_code, \
    failure_message, created_at, updated_at, finished_at";

impl Session {
    pub async fn insert_refund(&mut self, r: &NewRefund<'_>) -> Result<Refund> {
        self.assert_writable();
        let row: RefundRow = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO refunds (id, payment_id, business_id, amount, reason, bank_transaction_id, status,
                 created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, 'accepted', $7, $7)
             RETURNING {COLUMNS}"
        )))
        .bind(r.id.as_uuid())
        .bind(r.payment_id.as_uuid())
        .bind(r.business_id.as_uuid())
        .bind(r.amount)
        .bind(r.reason)
        .bind(r.bank_transaction_id)
        .bind(DbTime(r.at))
        .fetch_one(c)
        .await)?;
        row.try_into()
    }

    /// [`Self::insert_refund`] for several: one statement on PostgreSQL, a statement per
    /// refund on SQLite. The refunds as recorded, in no particular order.
    pub async fn insert_refunds(&mut self, refunds: &[NewRefund<'_>]) -> Result<Vec<Refund>> {
        self.assert_writable();
        if refunds.is_empty() {
            return Ok(Vec::new());
        }
        let Db::Pg(c) = self.db() else {
            let mut recorded = Vec::with_capacity(refunds.len());
            for r in refunds {
                recorded.push(self.insert_refund(r).await?);
            }
            return Ok(recorded);
        };
        let ids: Vec<Uuid> = refunds.iter().map(|r| r.id.as_uuid()).collect();
        let payments: Vec<Uuid> = refunds.iter().map(|r| r.payment_id.as_uuid()).collect();
        let businesses: Vec<Uuid> = refunds.iter().map(|r| r.business_id.as_uuid()).collect();
        let amounts: Vec<i64> = refunds.iter().map(|r| r.amount).collect();
        let reasons: Vec<Option<&str>> = refunds.iter().map(|r| r.reason).collect();
        let tran_ids: Vec<&str> = refunds.iter().map(|r| r.bank_transaction_id).collect();
        let at: Vec<DbTime> = refunds.iter().map(|r| DbTime(r.at)).collect();
        let rows: Vec<RefundRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO refunds (id, payment_id, business_id, amount, reason, bank_transaction_id, status,
                 created_at, updated_at)
             SELECT t.id, t.payment_id, t.business_id, t.amount, t.reason, t.tran_id, 'accepted', t.at, t.at
             FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::int8[], $5::text[], $6::text[], $7::timestamptz[])
                  AS t(id, payment_id, business_id, amount, reason, tran_id, at)
             RETURNING {COLUMNS}"
        )))
        .bind(&ids)
        .bind(&payments)
        .bind(&businesses)
        .bind(&amounts)
        .bind(&reasons)
        .bind(&tran_ids)
        .bind(&at)
        .fetch_all(c)
        .await?;
        rows.into_iter().map(Refund::try_from).collect()
    }

    pub async fn refund(&mut self, id: RefundId) -> Result<Option<Refund>> {
        let row: Option<RefundRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM refunds WHERE id = $1"
        )))
        .bind(id.as_uuid())
        .fetch_optional(c)
        .await)?;
        row.map(Refund::try_from).transpose()
    }

    /// The refunds with these ids (those that exist), in no particular order.
    pub async fn refunds_by_ids(&mut self, ids: &[RefundId]) -> Result<Vec<Refund>> {
        let ids: Vec<uuid::Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
        let rows: Vec<RefundRow> = self
            .rows_with_ids(&format!("SELECT {COLUMNS} FROM refunds"), "", &ids)
            .await?;
        rows.into_iter().map(Refund::try_from).collect()
    }

    /// Every refund of the given payments, oldest first.
    pub async fn refunds_of(&mut self, payments: &[PaymentId]) -> Result<Vec<Refund>> {
        if payments.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=payments.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {COLUMNS} FROM refunds WHERE payment_id IN ({}) ORDER BY created_at, id",
            placeholders.join(", ")
        );
        let rows: Vec<RefundRow> = on_db!(self, c => {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
            for id in payments {
                q = q.bind(id.as_uuid());
            }
            q.fetch_all(c).await
        })?;
        rows.into_iter().map(Refund::try_from).collect()
    }

    /// Moves a refund from `from` to `to`; `false` (nothing written) when it is no longer in
    /// `from`.
    pub async fn change_refund_status(
        &mut self,
        id: RefundId,
        from: RefundStatus,
        to: RefundStatus,
        failure: Option<&super::PaymentFailure>,
        at: Timestamp,
    ) -> Result<bool> {
        self.assert_writable();
        let finished = (!to.in_transit()).then_some(DbTime(at));
        let n = on_db!(self, c => sqlx::query(
            "UPDATE refunds SET status = $3, failure_code = $4, failure_message = $5, updated_at = $6,
                 finished_at = COALESCE($7, finished_at)
             WHERE id = $1 AND status = $2",
        )
        .bind(id.as_uuid())
        .bind(from.as_str())
        .bind(to.as_str())
        .bind(failure.map(|f| f.code.as_str()))
        .bind(failure.map(|f| f.message.as_str()))
        .bind(DbTime(at))
        .bind(finished)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Refunds whose push is not settled (not finished) and that have not moved since `before`,
    /// oldest first.
    pub async fn unsettled_refunds(&mut self, before: Timestamp, limit: u32) -> Result<Vec<Refund>> {
        let rows: Vec<RefundRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM refunds
             WHERE finished_at IS NULL AND updated_at <= $1
             ORDER BY created_at, id LIMIT $2"
        )))
        .bind(DbTime(before))
        .bind(i64::from(limit))
        .fetch_all(c)
        .await)?;
        rows.into_iter().map(Refund::try_from).collect()
    }
}
