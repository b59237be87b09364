//! The bank calls made for payments and refunds: a transfer's row is written before the call
//! and finished with its outcome after, so the last row of a transfer says whether it may be
//! sent again or must be asked about.

use crate::session::{Db, Session};
use crate::types::DbTime;
use crate::{Result, StoreError};
use jiff::Timestamp;
use minipay_core::payment::{BankCallKind, BankCallOutcome};
use minipay_core::{BankCallId, PaymentId, RefundId};
use uuid::Uuid;

/// A bank call to record.
#[derive(Debug, Clone)]
pub struct NewBankCall<'a> {
    pub id: BankCallId,
    pub payment_id: PaymentId,
    pub refund_id: Option<RefundId>,
    pub kind: BankCallKind,
    pub tran_id: &'a str,
    pub outcome: BankCallOutcome,
    pub bank_tran_id: Option<&'a str>,
    pub error: Option<&'a str>,
    pub started_at: Timestamp,
    /// `None` for a transfer about to be sent.
    pub finished_at: Option<Timestamp>,
}

/// How a sent transfer call ended.
#[derive(Debug, Clone, Copy)]
pub struct FinishedBankCall<'a> {
    pub id: BankCallId,
    pub outcome: BankCallOutcome,
    pub bank_tran_id: Option<&'a str>,
    pub error: Option<&'a str>,
    pub at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BankCall {
    pub id: BankCallId,
    pub payment_id: PaymentId,
    pub refund_id: Option<RefundId>,
    pub kind: BankCallKind,
    pub tran_id: String,
    pub outcome: BankCallOutcome,
    pub bank_tran_id: Option<String>,
    pub error: Option<String>,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
}

#[derive(sqlx::FromRow)]
struct BankCallRow {
    id: Uuid,
    payment_id: Uuid,
    refund_id: Option<Uuid>,
    kind: String,
    tran_id: String,
    outcome: String,
    bank_tran_id: Option<String>,
    error: Option<String>,
    started_at: DbTime,
    finished_at: Option<DbTime>,
}

impl TryFrom<BankCallRow> for BankCall {
    type Error = StoreError;
    fn try_from(r: BankCallRow) -> Result<Self> {
        Ok(Self {
            id: BankCallId::from_uuid(r.id),
            payment_id: PaymentId::from_uuid(r.payment_id),
            refund_id: r.refund_id.map(RefundId::from_uuid),
            kind: BankCallKind::parse(&r.kind).ok_or_else(|| StoreError::corrupt(format!("bank call {:?}", r.kind)))?,
            tran_id: r.tran_id,
            outcome: BankCallOutcome::parse(&r.outcome)
                .ok_or_else(|| StoreError::corrupt(format!("bank call outcome {:?}", r.outcome)))?,
            bank_tran_id: r.bank_tran_id,
            error: r.error,
            started_at: r.started_at.0,
            finished_at: r.finished_at.map(|t| t.0),
        })
    }
}

const COLUMNS: &str = "id, payment_id, refund_id, kind, tran_id, outcome, bank_tran_id, error, started_at, finished_at";

impl Session {
    pub async fn insert_bank_call(&mut self, call: &NewBankCall<'_>) -> Result<()> {
        self.assert_writable();
        on_db!(self, c => sqlx::query(
            "INSERT INTO payment_bank_calls (id, payment_id, refund_id, kind, tran_id, outcome, bank_tran_id, error,
                 started_at, finished_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(call.id.as_uuid())
        .bind(call.payment_id.as_uuid())
        .bind(call.refund_id.map(|r| r.as_uuid()))
        .bind(call.kind.as_str())
        .bind(call.tran_id)
        .bind(call.outcome.as_str())
        .bind(call.bank_tran_id)
        .bind(call.error)
        .bind(DbTime(call.started_at))
        .bind(call.finished_at.map(DbTime))
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Records calls (one statement on PostgreSQL).
    pub async fn insert_bank_calls(&mut self, calls: &[NewBankCall<'_>]) -> Result<()> {
        self.assert_writable();
        let Db::Pg(c) = self.db() else {
            for call in calls {
                self.insert_bank_call(call).await?;
            }
            return Ok(());
        };
        if calls.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = calls.iter().map(|c| c.id.as_uuid()).collect();
        let payments: Vec<Uuid> = calls.iter().map(|c| c.payment_id.as_uuid()).collect();
        let refunds: Vec<Option<Uuid>> = calls.iter().map(|c| c.refund_id.map(|r| r.as_uuid())).collect();
        let kinds: Vec<&str> = calls.iter().map(|c| c.kind.as_str()).collect();
        let tran_ids: Vec<&str> = calls.iter().map(|c| c.tran_id).collect();
        let outcomes: Vec<&str> = calls.iter().map(|c| c.outcome.as_str()).collect();
        let bank_ids: Vec<Option<&str>> = calls.iter().map(|c| c.bank_tran_id).collect();
        let errors: Vec<Option<&str>> = calls.iter().map(|c| c.error).collect();
        let started: Vec<DbTime> = calls.iter().map(|c| DbTime(c.started_at)).collect();
        let finished: Vec<Option<DbTime>> = calls.iter().map(|c| c.finished_at.map(DbTime)).collect();
        sqlx::query(
            "INSERT INTO payment_bank_calls (id, payment_id, refund_id, kind, tran_id, outcome, bank_tran_id, error,
                 started_at, finished_at)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                                  $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[])",
        )
        .bind(&ids)
        .bind(&payments)
        .bind(&refunds)
        .bind(&kinds)
        .bind(&tran_ids)
        .bind(&outcomes)
        .bind(&bank_ids)
        .bind(&errors)
        .bind(&started)
        .bind(&finished)
        .execute(c)
        .await?;
        Ok(())
    }

    /// [`Self::finish_bank_call`] for many (one statement on PostgreSQL).
    pub async fn finish_bank_calls(&mut self, calls: &[FinishedBankCall<'_>]) -> Result<()> {
        self.assert_writable();
        let Db::Pg(c) = self.db() else {
            for f in calls {
                self.finish_bank_call(f.id, f.outcome, f.bank_tran_id, f.error, f.at)
                    .await?;
            }
            return Ok(());
        };
        if calls.is_empty() {
            return Ok(());
        }
        let ids: Vec<Uuid> = calls.iter().map(|f| f.id.as_uuid()).collect();
        let outcomes: Vec<&str> = calls.iter().map(|f| f.outcome.as_str()).collect();
        let bank_ids: Vec<Option<&str>> = calls.iter().map(|f| f.bank_tran_id).collect();
        let errors: Vec<Option<&str>> = calls.iter().map(|f| f.error).collect();
        let at: Vec<DbTime> = calls.iter().map(|f| DbTime(f.at)).collect();
        sqlx::query(
            "UPDATE payment_bank_calls b SET outcome = t.outcome, bank_tran_id = t.bank_tran_id, error = t.error,
                 finished_at = t.at
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[])
                  AS t(id, outcome, bank_tran_id, error, at)
             WHERE b.id = t.id",
        )
        .bind(&ids)
        .bind(&outcomes)
        .bind(&bank_ids)
        .bind(&errors)
        .bind(&at)
        .execute(c)
        .await?;
        Ok(())
    }

    /// Records how a sent transfer call ended.
    pub async fn finish_bank_call(
        &mut self,
        id: BankCallId,
        outcome: BankCallOutcome,
        bank_tran_id: Option<&str>,
        error: Option<&str>,
        at: Timestamp,
    ) -> Result<()> {
        self.assert_writable();
        on_db!(self, c => sqlx::query(
            "UPDATE payment_bank_calls SET outcome = $2, bank_tran_id = $3, error = $4, finished_at = $5 WHERE id = $1",
        )
        .bind(id.as_uuid())
        .bind(outcome.as_str())
        .bind(bank_tran_id)
        .bind(error)
        .bind(DbTime(at))
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The outcomes of the transfer calls (pulls or pushes) made under `tran_id`, oldest first.
    pub async fn transfer_call_outcomes(&mut self, tran_id: &str) -> Result<Vec<BankCallOutcome>> {
        let outcomes: Vec<String> = on_db!(self, c => sqlx::query_scalar(
            "SELECT outcome FROM payment_bank_calls WHERE tran_id = $1 AND kind IN ('pull', 'push')
             ORDER BY started_at, id",
        )
        .bind(tran_id)
        .fetch_all(c)
        .await)?;
        outcomes
            .iter()
            .map(|o| BankCallOutcome::parse(o).ok_or_else(|| StoreError::corrupt(format!("bank call outcome {o:?}"))))
            .collect()
    }

    /// Every bank call of the given payments (and their refunds), oldest first.
    pub async fn bank_calls_of(&mut self, payments: &[PaymentId]) -> Result<Vec<BankCall>> {
        if payments.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=payments.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT {COLUMNS} FROM payment_bank_calls WHERE payment_id IN ({}) ORDER BY started_at, id",
            placeholders.join(", ")
        );
        let rows: Vec<BankCallRow> = on_db!(self, c => {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
            for id in payments {
                q = q.bind(id.as_uuid());
            }
            q.fetch_all(c).await
        })?;
        rows.into_iter().map(BankCall::try_from).collect()
    }
}
