//! Remittances and the history of their steps' attempts. Status changes are conditional on the
//! status read (`WHERE status = $expected`), so of two workers racing on one remittance only one
//! moves it.

use crate::session::{Db, Session};
use crate::types::DbTime;
use crate::{Result, StoreError};
use jiff::Timestamp;
use minipay_core::remittance::{AttemptOutcome, RemittanceSource, RemittanceStatus, Step};
use minipay_core::{BusinessId, RemittanceId};
use uuid::Uuid;

/// A remittance to record (status `requested`).
#[derive(Debug, Clone)]
pub struct NewRemittanceRecord<'a> {
    pub id: RemittanceId,
    pub from_business_id: BusinessId,
    pub from_fintech_use_num: &'a str,
    pub to_business_id: Option<BusinessId>,
    pub to_bank_code: &'a str,
    pub to_account_number_masked: &'a str,
    pub to_holder_name: &'a str,
    pub to_fintech_use_num: &'a str,
    pub amount: i64,
    pub memo: Option<&'a str>,
    pub reference: Option<&'a str>,
    pub at: Timestamp,
}

/// A remittance between two businesses on the platform, to record.
#[derive(Debug, Clone)]
pub struct NewBusinessRemittance<'a> {
    pub id: RemittanceId,
    pub from: BusinessId,
    pub to: BusinessId,
    pub amount: i64,
    pub memo: Option<&'a str>,
    pub reference: Option<&'a str>,
    pub at: Timestamp,
}

/// A payout to record: the business's balance to its own bank account, starting `credited`
/// (the caller moves the money from the balance into the float in the same transaction).
#[derive(Debug, Clone)]
pub struct NewPayout {
    pub id: RemittanceId,
    pub business: BusinessId,
    pub amount: i64,
    pub at: Timestamp,
}

/// Why a remittance did not end as asked, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemittanceFailure {
    pub step: Step,
    pub code: String,
    pub message: String,
    pub attempts: i32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remittance {
    pub id: RemittanceId,
    pub from_business_id: BusinessId,
    pub from_fintech_use_num: String,
    pub to_business_id: Option<BusinessId>,
    pub to_bank_code: String,
    pub to_account_number_masked: String,
    pub to_holder_name: String,
    pub to_fintech_use_num: String,
    pub amount: i64,
    pub memo: Option<String>,
    pub reference: Option<String>,
    pub status: RemittanceStatus,
    /// Where the money comes from: A's bank (a remittance) or A's balance (a payout).
    pub source: RemittanceSource,
    /// When `needs_attention`: the status it stopped in.
    pub held_status: Option<RemittanceStatus>,
    pub failure: Option<RemittanceFailure>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub completed_at: Option<Timestamp>,
}

#[derive(sqlx::FromRow)]
struct RemittanceRow {
    id: Uuid,
    from_business_id: Uuid,
    from_fintech_use_num: String,
    to_business_id: Option<Uuid>,
    to_bank_code: String,
    to_account_number_masked: String,
    to_holder_name: String,
    to_fintech_use_num: String,
    amount: i64,
    memo: Option<String>,
    reference: Option<String>,
    status: String,
    source: String,
    held_status: Option<String>,
    failure_step: Option<String>,
    failure_code: Option<String>,
    failure_message: Option<String>,
    failure_attempts: Option<i32>,
    created_at: DbTime,
    updated_at: DbTime,
    completed_at: Option<DbTime>,
}

fn status(s: &str) -> Result<RemittanceStatus> {
    RemittanceStatus::parse(s).ok_or_else(|| StoreError::corrupt(format!("remittance status {s:?}")))
}

fn step(s: &str) -> Result<Step> {
    Step::parse(s).ok_or_else(|| StoreError::corrupt(format!("remittance step {s:?}")))
}

impl TryFrom<RemittanceRow> for Remittance {
    type Error = StoreError;
    fn try_from(r: RemittanceRow) -> Result<Self> {
        let failure = match (r.failure_step, r.failure_code, r.failure_message) {
            (Some(s), Some(code), Some(message)) => Some(RemittanceFailure {
                step: step(&s)?,
                code,
                message,
                attempts: r.failure_attempts.unwrap_or(0),
            }),
            _ => None,
        };
        Ok(Self {
            id: RemittanceId::from_uuid(r.id),
            from_business_id: BusinessId::from_uuid(r.from_business_id),
            from_fintech_use_num: r.from_fintech_use_num,
            to_business_id: r.to_business_id.map(BusinessId::from_uuid),
            to_bank_code: r.to_bank_code,
            to_account_number_masked: r.to_account_number_masked,
            to_holder_name: r.to_holder_name,
            to_fintech_use_num: r.to_fintech_use_num,
            amount: r.amount,
            memo: r.memo,
            reference: r.reference,
            status: status(&r.status)?,
            source: RemittanceSource::parse(&r.source)
                .ok_or_else(|| StoreError::corrupt(format!("remittance source {:?}", r.source)))?,
            held_status: r.held_status.as_deref().map(status).transpose()?,
            failure,
            created_at: r.created_at.0,
            updated_at: r.updated_at.0,
            completed_at: r.completed_at.map(|t| t.0),
        })
    }
}

const COLUMNS: &str = "id, from_business_id, from_fintech_use_num, to_business_id, to_bank_code, \
    to_account_number_masked, to_holder_name, to_fintech_use_num, amount, memo, reference, status, source, held_status, \
    failure_step, failure_code, failure_message, failure_attempts, created_at, updated_at, completed_at";

/// A status change to make if the remittance is still in the status it was read in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusChange<'a> {
    pub from: RemittanceStatus,
    pub to: RemittanceStatus,
    /// Set when going to `needs_attention`; cleared otherwise.
    pub held: Option<RemittanceStatus>,
    /// Recorded with the change (kept when `None`).
    pub failure: Option<&'a RemittanceFailure>,
    pub at: Timestamp,
}

/// An attempt to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRemittanceAttempt<'a> {
    pub remittance_id: RemittanceId,
    pub step: Step,
    pub outcome: AttemptOutcome,
    pub error: Option<&'a str>,
    pub bank_tran_id: Option<&'a str>,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemittanceAttempt {
    pub id: Uuid,
    pub remittance_id: RemittanceId,
    pub step: Step,
    pub outcome: AttemptOutcome,
    pub error: Option<String>,
    pub bank_tran_id: Option<String>,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    id: Uuid,
    remittance_id: Uuid,
    step: String,
    outcome: String,
    error: Option<String>,
    bank_tran_id: Option<String>,
    started_at: DbTime,
    finished_at: DbTime,
}

impl TryFrom<AttemptRow> for RemittanceAttempt {
    type Error = StoreError;
    fn try_from(r: AttemptRow) -> Result<Self> {
        Ok(Self {
            id: r.id,
            remittance_id: RemittanceId::from_uuid(r.remittance_id),
            step: step(&r.step)?,
            outcome: AttemptOutcome::parse(&r.outcome)
                .ok_or_else(|| StoreError::corrupt(format!("attempt outcome {:?}", r.outcome)))?,
            error: r.error,
            bank_tran_id: r.bank_tran_id,
            started_at: r.started_at.0,
            finished_at: r.finished_at.0,
        })
    }
}

/// Which remittances a list shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RemittanceFilter {
    /// Sent or received by this business.
    pub business: Option<BusinessId>,
    pub status: Option<RemittanceStatus>,
}

impl Session {
    /// Records a remittance (`requested`) to the bank account given, and returns it.
    pub async fn insert_remittance(&mut self, r: &NewRemittanceRecord<'_>) -> Result<Remittance> {
        self.assert_writable();
        let row: RemittanceRow = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO remittances (id, from_business_id, from_fintech_use_num, to_business_id, to_bank_code,
                 to_account_number_masked, to_holder_name, to_fintech_use_num, amount, memo, reference, status,
                 created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'requested', $12, $12)
             RETURNING {COLUMNS}"
        )))
        .bind(r.id.as_uuid())
        .bind(r.from_business_id.as_uuid())
        .bind(r.from_fintech_use_num)
        .bind(r.to_business_id.map(|b| b.as_uuid()))
        .bind(r.to_bank_code)
        .bind(r.to_account_number_masked)
        .bind(r.to_holder_name)
        .bind(r.to_fintech_use_num)
        .bind(r.amount)
        .bind(r.memo)
        .bind(r.reference)
        .bind(DbTime(r.at))
        .fetch_one(c)
        .await)?;
        row.try_into()
    }

    /// Records a payout (`credited`, from the balance) to the business's own bank account, taken
    /// from its row in the same statement; `None` when the business does not exist.
    pub async fn insert_payout(&mut self, p: &NewPayout) -> Result<Option<Remittance>> {
        self.assert_writable();
        let row: Option<RemittanceRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO remittances (id, from_business_id, from_fintech_use_num, to_business_id, to_bank_code,
                 to_account_number_masked, to_holder_name, to_fintech_use_num, amount, memo, reference, status,
                 source, created_at, updated_at)
             SELECT $1, b.id, b.fintech_use_num, NULL, b.bank_code, b.account_number_masked, b.holder_name,
                    b.fintech_use_num, $3, 'payout', NULL, 'credited', 'balance', $4, $4
             FROM businesses b WHERE b.id = $2
             RETURNING {COLUMNS}"
        )))
        .bind(p.id.as_uuid())
        .bind(p.business.as_uuid())
        .bind(p.amount)
        .bind(DbTime(p.at))
        .fetch_optional(c)
        .await)?;
        row.map(Remittance::try_from).transpose()
    }

    /// The business's payouts still on their way to its bank account, in won.
    pub async fn pending_payouts(&mut self, business: BusinessId) -> Result<i64> {
        let sum: i64 = on_db!(self, c => sqlx::query_scalar(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) FROM remittances
             WHERE from_business_id = $1 AND source = 'balance' AND status NOT IN ('completed', 'refunded')",
        )
        .bind(business.as_uuid())
        .fetch_one(c)
        .await)?;
        Ok(sum)
    }

    /// Records a remittance (`requested`) from one business to another, taking both bank
    /// accounts from the businesses' rows in the same statement, and returns it; `None` when
    /// either business does not exist.
    pub async fn insert_remittance_to_business(&mut self, r: &NewBusinessRemittance<'_>) -> Result<Option<Remittance>> {
        self.assert_writable();
        let row: Option<RemittanceRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO remittances (id, from_business_id, from_fintech_use_num, to_business_id, to_bank_code,
                 to_account_number_masked, to_holder_name, to_fintech_use_num, amount, memo, reference, status,
                 created_at, updated_at)
             SELECT $1, a.id, a.fintech_use_num, b.id, b.bank_code, b.account_number_masked, b.holder_name,
                    b.fintech_use_num, $4, $5, $6, 'requested', $7, $7
             FROM businesses a JOIN businesses b ON b.id = $3 WHERE a.id = $2
             RETURNING {COLUMNS}"
        )))
        .bind(r.id.as_uuid())
        .bind(r.from.as_uuid())
        .bind(r.to.as_uuid())
        .bind(r.amount)
        .bind(r.memo)
        .bind(r.reference)
        .bind(DbTime(r.at))
        .fetch_optional(c)
        .await)?;
        row.map(Remittance::try_from).transpose()
    }

    /// [`Self::insert_remittance_to_business`] for many (one statement on PostgreSQL): the
    /// remittances recorded, in no particular order; one whose business does not exist is not.
    pub async fn insert_remittances_to_business(
        &mut self,
        rows: &[NewBusinessRemittance<'_>],
    ) -> Result<Vec<Remittance>> {
        self.assert_writable();
        let Db::Pg(c) = self.db() else {
            let mut recorded = Vec::with_capacity(rows.len());
            for r in rows {
                recorded.extend(self.insert_remittance_to_business(r).await?);
            }
            return Ok(recorded);
        };
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id.as_uuid()).collect();
        let from: Vec<Uuid> = rows.iter().map(|r| r.from.as_uuid()).collect();
        let to: Vec<Uuid> = rows.iter().map(|r| r.to.as_uuid()).collect();
        let amounts: Vec<i64> = rows.iter().map(|r| r.amount).collect();
        let memos: Vec<Option<&str>> = rows.iter().map(|r| r.memo).collect();
        let references: Vec<Option<&str>> = rows.iter().map(|r| r.reference).collect();
        let at: Vec<DbTime> = rows.iter().map(|r| DbTime(r.at)).collect();
        let recorded: Vec<RemittanceRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "INSERT INTO remittances (id, from_business_id, from_fintech_use_num, to_business_id, to_bank_code,
                 to_account_number_masked, to_holder_name, to_fintech_use_num, amount, memo, reference, status,
                 created_at, updated_at)
             SELECT t.id, a.id, a.fintech_use_num, b.id, b.bank_code, b.account_number_masked, b.holder_name,
                    b.fintech_use_num, t.amount, t.memo, t.reference, 'requested', t.at, t.at
             FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::int8[], $5::text[], $6::text[], $7::timestamptz[])
                  AS t(id, from_id, to_id, amount, memo, reference, at)
             JOIN businesses a ON a.id = t.from_id JOIN businesses b ON b.id = t.to_id
             RETURNING {COLUMNS}"
        )))
        .bind(&ids)
        .bind(&from)
        .bind(&to)
        .bind(&amounts)
        .bind(&memos)
        .bind(&references)
        .bind(&at)
        .fetch_all(c)
        .await?;
        recorded.into_iter().map(Remittance::try_from).collect()
    }

    pub async fn remittance(&mut self, id: RemittanceId) -> Result<Option<Remittance>> {
        let row: Option<RemittanceRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM remittances WHERE id = $1"
        )))
        .bind(id.as_uuid())
        .fetch_optional(c)
        .await)?;
        row.map(Remittance::try_from).transpose()
    }

    /// The remittances with these ids (those that exist), in no particular order.
    pub async fn remittances_by_ids(&mut self, ids: &[RemittanceId]) -> Result<Vec<Remittance>> {
        let ids: Vec<Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
        let rows: Vec<RemittanceRow> = self
            .rows_with_ids(&format!("SELECT {COLUMNS} FROM remittances"), "", &ids)
            .await?;
        rows.into_iter().map(Remittance::try_from).collect()
    }

    /// Moves a remittance from `change.from` to `change.to`; `false` (nothing written) when it
    /// is no longer in `change.from` — another worker moved it first.
    pub async fn change_remittance_status(&mut self, id: RemittanceId, change: &StatusChange<'_>) -> Result<bool> {
        self.assert_writable();
        let completed = change.to.is_final().then_some(DbTime(change.at));
        let f = change.failure;
        let n = on_db!(self, c => sqlx::query(
            "UPDATE remittances SET status = $3, held_status = $4, updated_at = $5,
                 completed_at = COALESCE($6, completed_at),
                 failure_step = COALESCE($7, failure_step), failure_code = COALESCE($8, failure_code),
                 failure_message = COALESCE($9, failure_message), failure_attempts = COALESCE($10, failure_attempts)
             WHERE id = $1 AND status = $2",
        )
        .bind(id.as_uuid())
        .bind(change.from.as_str())
        .bind(change.to.as_str())
        .bind(change.held.map(RemittanceStatus::as_str))
        .bind(DbTime(change.at))
        .bind(completed)
        .bind(f.map(|f| f.step.as_str()))
        .bind(f.map(|f| f.code.as_str()))
        .bind(f.map(|f| f.message.as_str()))
        .bind(f.map(|f| f.attempts))
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// [`Self::change_remittance_status`] for many remittances (one statement on PostgreSQL):
    /// for each, in order, whether it moved.
    pub async fn change_remittance_statuses(
        &mut self,
        changes: &[(RemittanceId, StatusChange<'_>)],
    ) -> Result<Vec<bool>> {
        self.assert_writable();
        let Db::Pg(c) = self.db() else {
            let mut moved = Vec::with_capacity(changes.len());
            for (id, change) in changes {
                moved.push(self.change_remittance_status(*id, change).await?);
            }
            return Ok(moved);
        };
        let ids: Vec<Uuid> = changes.iter().map(|(id, _)| id.as_uuid()).collect();
        let col = |f: fn(&StatusChange<'_>) -> Option<String>| changes.iter().map(|(_, c)| f(c)).collect::<Vec<_>>();
        let from = col(|c| Some(c.from.as_str().to_owned()));
        let to = col(|c| Some(c.to.as_str().to_owned()));
        let held = col(|c| c.held.map(|h| h.as_str().to_owned()));
        let step = col(|c| c.failure.map(|f| f.step.as_str().to_owned()));
        let code = col(|c| c.failure.map(|f| f.code.clone()));
        let message = col(|c| c.failure.map(|f| f.message.clone()));
        let attempts: Vec<Option<i32>> = changes.iter().map(|(_, c)| c.failure.map(|f| f.attempts)).collect();
        let at: Vec<DbTime> = changes.iter().map(|(_, c)| DbTime(c.at)).collect();
        let completed: Vec<Option<DbTime>> = changes
            .iter()
            .map(|(_, c)| c.to.is_final().then_some(DbTime(c.at)))
            .collect();
        let moved: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE remittances r SET status = t.to_status, held_status = t.held, updated_at = t.at,
                 completed_at = COALESCE(t.completed, r.completed_at),
                 failure_step = COALESCE(t.step, r.failure_step), failure_code = COALESCE(t.code, r.failure_code),
                 failure_message = COALESCE(t.message, r.failure_message),
                 failure_attempts = COALESCE(t.attempts, r.failure_attempts)
             FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[],
                         $7::text[], $8::text[], $9::text[], $10::int4[])
                  AS t(id, from_status, to_status, held, at, completed, step, code, message, attempts)
             WHERE r.id = t.id AND r.status = t.from_status
             RETURNING r.id",
        )
        .bind(&ids)
        .bind(&from)
        .bind(&to)
        .bind(&held)
        .bind(&at)
        .bind(&completed)
        .bind(&step)
        .bind(&code)
        .bind(&message)
        .bind(&attempts)
        .fetch_all(c)
        .await?;
        Ok(ids.iter().map(|id| moved.contains(id)).collect())
    }

    /// Records attempts (one statement on PostgreSQL).
    pub async fn insert_remittance_attempts(&mut self, attempts: &[NewRemittanceAttempt<'_>]) -> Result<()> {
        self.assert_writable();
        let Db::Pg(c) = self.db() else {
            for a in attempts {
                self.insert_remittance_attempt(a).await?;
            }
            return Ok(());
        };
        let ids: Vec<Uuid> = attempts.iter().map(|_| Uuid::now_v7()).collect();
        let remittances: Vec<Uuid> = attempts.iter().map(|a| a.remittance_id.as_uuid()).collect();
        let steps: Vec<&str> = attempts.iter().map(|a| a.step.as_str()).collect();
        let outcomes: Vec<&str> = attempts.iter().map(|a| a.outcome.as_str()).collect();
        let errors: Vec<Option<&str>> = attempts.iter().map(|a| a.error).collect();
        let bank_ids: Vec<Option<&str>> = attempts.iter().map(|a| a.bank_tran_id).collect();
        let started: Vec<DbTime> = attempts.iter().map(|a| DbTime(a.started_at)).collect();
        let finished: Vec<DbTime> = attempts.iter().map(|a| DbTime(a.finished_at)).collect();
        sqlx::query(
            "INSERT INTO remittance_attempts (id, remittance_id, step, outcome, error, bank_tran_id, started_at, finished_at)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                                  $7::timestamptz[], $8::timestamptz[])",
        )
        .bind(&ids)
        .bind(&remittances)
        .bind(&steps)
        .bind(&outcomes)
        .bind(&errors)
        .bind(&bank_ids)
        .bind(&started)
        .bind(&finished)
        .execute(c)
        .await?;
        Ok(())
    }

    pub async fn insert_remittance_attempt(&mut self, a: &NewRemittanceAttempt<'_>) -> Result<()> {
        self.assert_writable();
        on_db!(self, c => sqlx::query(
            "INSERT INTO remittance_attempts (id, remittance_id, step, outcome, error, bank_tran_id, started_at, finished_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(Uuid::now_v7())
        .bind(a.remittance_id.as_uuid())
        .bind(a.step.as_str())
        .bind(a.outcome.as_str())
        .bind(a.error)
        .bind(a.bank_tran_id)
        .bind(DbTime(a.started_at))
        .bind(DbTime(a.finished_at))
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// How many attempts a remittance's step has had.
    pub async fn count_remittance_attempts(&mut self, id: RemittanceId, step: Step) -> Result<i64> {
        let n: i64 = on_db!(self, c => sqlx::query_scalar(
            "SELECT COUNT(*) FROM remittance_attempts WHERE remittance_id = $1 AND step = $2",
        )
        .bind(id.as_uuid())
        .bind(step.as_str())
        .fetch_one(c)
        .await)?;
        Ok(n)
    }

    /// Every attempt of the given remittances, oldest first.
    pub async fn remittance_attempts(&mut self, ids: &[RemittanceId]) -> Result<Vec<RemittanceAttempt>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
        let sql = format!(
            "SELECT id, remittance_id, step, outcome, error, bank_tran_id, started_at, finished_at
             FROM remittance_attempts WHERE remittance_id IN ({}) ORDER BY started_at, id",
            placeholders.join(", ")
        );
        let rows: Vec<AttemptRow> = on_db!(self, c => {
            let mut q = sqlx::query_as(sqlx::AssertSqlSafe(sql.clone()));
            for id in ids {
                q = q.bind(id.as_uuid());
            }
            q.fetch_all(c).await
        })?;
        rows.into_iter().map(RemittanceAttempt::try_from).collect()
    }

    /// Remittances newest first, after the keyset cursor `after`.
    pub async fn remittances(
        &mut self,
        filter: &RemittanceFilter,
        after: Option<(Timestamp, Uuid)>,
        limit: u32,
    ) -> Result<Vec<Remittance>> {
        let (after_at, after_id) = after.map_or((DbTime(Timestamp::MAX), Uuid::max()), |(t, id)| (DbTime(t), id));
        let rows: Vec<RemittanceRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM remittances
             WHERE (created_at, id) < ($1, $2)
               AND ($3 IS NULL OR from_business_id = $3 OR to_business_id = $3)
               AND ($4 IS NULL OR status = $4)
             ORDER BY created_at DESC, id DESC LIMIT $5"
        )))
        .bind(after_at)
        .bind(after_id)
        .bind(filter.business.map(|b| b.as_uuid()))
        .bind(filter.status.map(RemittanceStatus::as_str))
        .bind(i64::from(limit))
        .fetch_all(c)
        .await)?;
        rows.into_iter().map(Remittance::try_from).collect()
    }

    /// Unfinished remittances (not final: waiting for a step or for a person) requested at or
    /// before `before`, oldest first, after the keyset cursor `after`.
    pub async fn unfinished_remittances(
        &mut self,
        before: Timestamp,
        after: Option<(Timestamp, Uuid)>,
        limit: u32,
    ) -> Result<Vec<Remittance>> {
        // The first page starts at the epoch, as the other ascending keysets do: PostgreSQL's
        // timestamptz cannot hold `Timestamp::MIN`.
        let (after_at, after_id) =
            after.map_or((DbTime(Timestamp::UNIX_EPOCH), Uuid::nil()), |(t, id)| (DbTime(t), id));
        let rows: Vec<RemittanceRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {COLUMNS} FROM remittances
             WHERE created_at <= $1 AND (created_at, id) > ($2, $3)
               AND status IN ('requested', 'collected', 'credited', 'debited', 'refunding', 'needs_attention')
             ORDER BY created_at, id LIMIT $4"
        )))
        .bind(DbTime(before))
        .bind(after_at)
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(c)
        .await)?;
        rows.into_iter().map(Remittance::try_from).collect()
    }
}
