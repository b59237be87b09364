//! The job runner's tables: the run history (whose rows are also the once-per-slot claims)
//! and the durable queue.

use crate::session::{Db, Session};
use crate::types::DbTime;
use crate::{Result, StoreError};
use jiff::Timestamp;
use std::collections::HashSet;
use uuid::Uuid;

/// One run of a job, scheduled or by hand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRun {
    pub id: Uuid,
    pub job: String,
    pub slot: Timestamp,
    pub trigger: String,
    pub instance: String,
    pub started_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub processed: Option<i64>,
    pub details: Option<serde_json::Value>,
    pub error: Option<String>,
}

#[derive(sqlx::FromRow)]
struct JobRunRow {
    id: Uuid,
    job: String,
    slot: DbTime,
    trigger: String,
    instance: String,
    started_at: DbTime,
    finished_at: Option<DbTime>,
    processed: Option<i64>,
    details: Option<String>,
    error: Option<String>,
}

impl TryFrom<JobRunRow> for JobRun {
    type Error = StoreError;
    fn try_from(r: JobRunRow) -> Result<Self> {
        Ok(Self {
            id: r.id,
            job: r.job,
            slot: r.slot.0,
            trigger: r.trigger,
            instance: r.instance,
            started_at: r.started_at.0,
            finished_at: r.finished_at.map(|t| t.0),
            processed: r.processed,
            details: r
                .details
                .map(|d| serde_json::from_str(&d))
                .transpose()
                .map_err(StoreError::corrupt)?,
            error: r.error,
        })
    }
}

/// Keyed work as `UNNEST` takes it: a new id, the key and the JSON payload, column by column.
fn keyed_columns(items: &[(String, serde_json::Value)]) -> (Vec<Uuid>, Vec<&str>, Vec<String>) {
    let ids = items.iter().map(|_| Uuid::now_v7()).collect();
    let keys = items.iter().map(|(k, _)| k.as_str()).collect();
    let payloads = items.iter().map(|(_, p)| p.to_string()).collect();
    (ids, keys, payloads)
}

/// A unit of durable work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedJob {
    pub id: Uuid,
    pub kind: String,
    pub payload: serde_json::Value,
    pub run_at: Timestamp,
    /// Attempts made so far, this one included once claimed.
    pub attempts: i32,
    pub attempts_max: i32,
}

/// A keyed job attempted once before it had a row, to record (see
/// [`Session::record_attempted_jobs`]).
#[derive(Debug, Clone, Copy)]
pub struct AttemptedJob<'a> {
    pub id: Uuid,
    pub key: &'a str,
    pub payload: &'a serde_json::Value,
    pub attempts_max: i32,
    pub outcome: QueuedOutcome<'a>,
}

#[derive(sqlx::FromRow)]
struct QueuedJobRow {
    id: Uuid,
    kind: String,
    payload: String,
    run_at: DbTime,
    attempts: i32,
    attempts_max: i32,
}

impl TryFrom<QueuedJobRow> for QueuedJob {
    type Error = StoreError;
    fn try_from(r: QueuedJobRow) -> Result<Self> {
        Ok(Self {
            id: r.id,
            kind: r.kind,
            payload: serde_json::from_str(&r.payload).map_err(StoreError::corrupt)?,
            run_at: r.run_at.0,
            attempts: r.attempts,
            attempts_max: r.attempts_max,
        })
    }
}

impl Session {
    /// Claims the scheduled run of `job` for `slot`: exactly one caller across all instances
    /// gets `Some(run id)`. An existing claim is taken over only if its run stopped beating
    /// before `stale_before` without finishing (its instance died), or finished with an error
    /// before `retry_before` (a failed run is tried again).
    pub async fn claim_job_slot(
        &mut self,
        job: &str,
        slot: Timestamp,
        instance: &str,
        now: Timestamp,
        stale_before: Timestamp,
        retry_before: Timestamp,
    ) -> Result<Option<Uuid>> {
        self.assert_writable();
        let id = Uuid::now_v7();
        let claimed: Option<Uuid> = on_db!(self, c => sqlx::query_scalar(
            "INSERT INTO job_runs (id, job, slot, trigger, instance, started_at, heartbeat_at)
             VALUES ($1, $2, $3, 'scheduled', $4, $5, $5)
             ON CONFLICT (job, slot) WHERE trigger = 'scheduled' DO UPDATE
                SET instance = excluded.instance, started_at = excluded.started_at,
                    heartbeat_at = excluded.heartbeat_at, finished_at = NULL, processed = NULL, details = NULL,
                    error = NULL
              WHERE (job_runs.finished_at IS NULL AND COALESCE(job_runs.heartbeat_at, job_runs.started_at) < $6)
                 OR (job_runs.error IS NOT NULL AND job_runs.finished_at < $7)
             RETURNING id",
        )
        .bind(id)
        .bind(job)
        .bind(DbTime(slot))
        .bind(instance)
        .bind(DbTime(now))
        .bind(DbTime(stale_before))
        .bind(DbTime(retry_before))
        .fetch_optional(c)
        .await)?;
        Ok(claimed)
    }

    /// Shows that a run is still working (so it is not taken over).
    pub async fn beat_job_run(&mut self, id: Uuid, now: Timestamp) -> Result<()> {
        self.assert_writable();
        on_db!(self, c => sqlx::query("UPDATE job_runs SET heartbeat_at = $2 WHERE id = $1 AND finished_at IS NULL")
            .bind(id)
            .bind(DbTime(now))
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Records the start of a run by hand ("as of" `slot`).
    pub async fn insert_manual_run(
        &mut self,
        job: &str,
        slot: Timestamp,
        instance: &str,
        now: Timestamp,
    ) -> Result<Uuid> {
        self.assert_writable();
        let id = Uuid::now_v7();
        on_db!(self, c => sqlx::query(
            "INSERT INTO job_runs (id, job, slot, trigger, instance, started_at) VALUES ($1, $2, $3, 'manual', $4, $5)",
        )
        .bind(id)
        .bind(job)
        .bind(DbTime(slot))
        .bind(instance)
        .bind(DbTime(now))
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(id)
    }

    pub async fn finish_job_run(
        &mut self,
        id: Uuid,
        now: Timestamp,
        processed: i64,
        details: &serde_json::Value,
        error: Option<&str>,
    ) -> Result<()> {
        self.assert_writable();
        on_db!(self, c => sqlx::query(
            "UPDATE job_runs SET finished_at = $2, processed = $3, details = $4, error = $5 WHERE id = $1",
        )
        .bind(id)
        .bind(DbTime(now))
        .bind(processed)
        .bind(details.to_string())
        .bind(error)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// The scheduled run of `job` for `slot`, if claimed.
    pub async fn job_slot(&mut self, job: &str, slot: Timestamp) -> Result<Option<SlotState>> {
        let row: Option<SlotRow> = on_db!(self, c => sqlx::query_as(
            "SELECT started_at, heartbeat_at, finished_at, error FROM job_runs
             WHERE job = $1 AND slot = $2 AND trigger = 'scheduled'",
        )
        .bind(job)
        .bind(DbTime(slot))
        .fetch_optional(c)
        .await)?;
        Ok(row.map(|r| SlotState {
            last_sign_of_life: r.heartbeat_at.unwrap_or(r.started_at).0,
            finished_at: r.finished_at.map(|t| t.0),
            failed: r.error.is_some(),
        }))
    }

    /// Runs, newest first, optionally of one job, after the keyset cursor `(started_at, id)`.
    pub async fn job_runs(
        &mut self,
        job: Option<&str>,
        after: Option<(Timestamp, Uuid)>,
        limit: u32,
    ) -> Result<Vec<JobRun>> {
        let (after_at, after_id) = after.map_or((DbTime(Timestamp::MAX), Uuid::max()), |(t, id)| (DbTime(t), id));
        let rows: Vec<JobRunRow> = on_db!(self, c => sqlx::query_as(
            "SELECT id, job, slot, trigger, instance, started_at, finished_at, processed, details, error FROM job_runs
             WHERE ($1 IS NULL OR job = $1) AND (started_at, id) < ($2, $3)
             ORDER BY started_at DESC, id DESC LIMIT $4",
        )
        .bind(job)
        .bind(after_at)
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(c)
        .await)?;
        rows.into_iter().map(JobRun::try_from).collect()
    }

    /// Enqueues durable work, in the caller's transaction (so it exists iff the change that
    /// needs it commits).
    pub async fn enqueue_job(
        &mut self,
        kind: &str,
        payload: &serde_json::Value,
        run_at: Timestamp,
        attempts_max: i32,
        now: Timestamp,
    ) -> Result<Uuid> {
        self.assert_writable();
        let id = Uuid::now_v7();
        on_db!(self, c => sqlx::query(
            "INSERT INTO queued_jobs (id, kind, payload, run_at, attempts_max, state, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, 'queued', $6, $6)",
        )
        .bind(id)
        .bind(kind)
        .bind(payload.to_string())
        .bind(DbTime(run_at))
        .bind(attempts_max)
        .bind(DbTime(now))
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(id)
    }

    /// Enqueues keyed work in the caller's transaction: one job per `(key, payload)`, skipping
    /// keys this `kind` already has (whatever their state). Returns how many were new. A key
    /// makes enqueueing idempotent: an event delivered twice is queued once.
    pub async fn enqueue_keyed_jobs(
        &mut self,
        kind: &str,
        items: &[(String, serde_json::Value)],
        attempts_max: i32,
        now: Timestamp,
    ) -> Result<u64> {
        self.assert_writable();
        const INSERT: &str =
            "INSERT INTO queued_jobs (id, kind, key, payload, run_at, attempts_max, state, created_at, updated_at)";
        let added = match self.db() {
            // One statement for the batch.
            Db::Pg(c) => {
                let (ids, keys, payloads) = keyed_columns(items);
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{INSERT} SELECT id, $2, key, payload, $5, $6, 'queued', $5, $5
                     FROM UNNEST($1::uuid[], $3::text[], $4::text[]) AS t(id, key, payload)
                     ON CONFLICT (kind, key) WHERE key IS NOT NULL DO NOTHING"
                )))
                .bind(&ids)
                .bind(kind)
                .bind(&keys)
                .bind(&payloads)
                .bind(DbTime(now))
                .bind(attempts_max)
                .execute(c)
                .await?
                .rows_affected()
            }
            Db::Sqlite(c) => {
                let mut added = 0;
                for (key, payload) in items {
                    added += sqlx::query(sqlx::AssertSqlSafe(format!(
                        "{INSERT} VALUES ($1, $2, $3, $4, $5, $6, 'queued', $5, $5)
                         ON CONFLICT (kind, key) WHERE key IS NOT NULL DO NOTHING"
                    )))
                    .bind(Uuid::now_v7())
                    .bind(kind)
                    .bind(key)
                    .bind(payload.to_string())
                    .bind(DbTime(now))
                    .bind(attempts_max)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                }
                added
            }
        };
        Ok(added)
    }

    /// The keys among `keys` that `kind` has a job for, in any state.
    pub async fn queued_job_keys(&mut self, kind: &str, keys: &[&str]) -> Result<HashSet<String>> {
        if keys.is_empty() {
            return Ok(HashSet::new());
        }
        let found: Vec<String> = match self.db() {
            Db::Pg(c) => {
                sqlx::query_scalar("SELECT key FROM queued_jobs WHERE kind = $1 AND key = ANY($2)")
                    .bind(kind)
                    .bind(keys)
                    .fetch_all(c)
                    .await?
            }
            Db::Sqlite(c) => {
                let mut found = Vec::new();
                for key in keys {
                    found.extend(
                        sqlx::query_scalar::<_, String>("SELECT key FROM queued_jobs WHERE kind = $1 AND key = $2")
                            .bind(kind)
                            .bind(*key)
                            .fetch_optional(&mut *c)
                            .await?,
                    );
                }
                found
            }
        };
        Ok(found.into_iter().collect())
    }

    /// Records keyed jobs whose first attempt the caller has made without a row (a JetStream
    /// delivery: the message was the claim), each in the state the attempt left it — done,
    /// queued for its retry, or dead — unless `kind` has its key already (another attempt
    /// recorded it meanwhile: that record stands). For each job, in order, whether this call
    /// recorded it. One statement on PostgreSQL.
    pub async fn record_attempted_jobs(
        &mut self,
        kind: &str,
        jobs: &[AttemptedJob<'_>],
        now: Timestamp,
    ) -> Result<Vec<bool>> {
        self.assert_writable();
        const INSERT: &str = "INSERT INTO queued_jobs (id, kind, key, payload, run_at, attempts, attempts_max, state,
                                                       last_error, created_at, updated_at)";
        const ON_CONFLICT: &str = "ON CONFLICT (kind, key) WHERE key IS NOT NULL DO NOTHING RETURNING id";
        let Db::Pg(c) = self.db() else {
            let mut recorded = Vec::with_capacity(jobs.len());
            for j in jobs {
                let (state, run_at, error) = j.outcome.columns();
                let id: Option<Uuid> = on_db!(self, c => sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "{INSERT} VALUES ($1, $2, $3, $4, $5, 1, $6, $7, $8, $9, $9) {ON_CONFLICT}"
                )))
                .bind(j.id)
                .bind(kind)
                .bind(j.key)
                .bind(j.payload.to_string())
                .bind(DbTime(run_at.unwrap_or(now)))
                .bind(j.attempts_max)
                .bind(state)
                .bind(error)
                .bind(DbTime(now))
                .fetch_optional(c)
                .await)?;
                recorded.push(id.is_some());
            }
            return Ok(recorded);
        };
        let ids: Vec<Uuid> = jobs.iter().map(|j| j.id).collect();
        let keys: Vec<&str> = jobs.iter().map(|j| j.key).collect();
        let payloads: Vec<String> = jobs.iter().map(|j| j.payload.to_string()).collect();
        let attempts_max: Vec<i32> = jobs.iter().map(|j| j.attempts_max).collect();
        let (mut states, mut run_ats, mut errors) = (Vec::new(), Vec::new(), Vec::new());
        for j in jobs {
            let (state, run_at, error) = j.outcome.columns();
            states.push(state);
            run_ats.push(DbTime(run_at.unwrap_or(now)));
            errors.push(error);
        }
        let recorded: HashSet<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "{INSERT} SELECT id, $2, key, payload, run_at, 1, attempts_max, state, error, $8, $8
             FROM UNNEST($1::uuid[], $3::text[], $4::text[], $5::timestamptz[], $6::int4[], $7::text[], $9::text[])
                  AS t(id, key, payload, run_at, attempts_max, state, error)
             {ON_CONFLICT}"
        )))
        .bind(&ids)
        .bind(kind)
        .bind(&keys)
        .bind(&payloads)
        .bind(&run_ats)
        .bind(&attempts_max)
        .bind(&states)
        .bind(DbTime(now))
        .bind(&errors)
        .fetch_all(c)
        .await?
        .into_iter()
        .collect();
        Ok(ids.iter().map(|id| recorded.contains(id)).collect())
    }

    /// Claims up to `limit` jobs of `kind` due at `now` — queued, or running with an expired
    /// lease (their worker died) — leasing them until `lease_until`. One statement: a worker
    /// may run it in [`crate::Store::one_statement`]. Concurrent workers on PostgreSQL skip
    /// each other's rows (`SKIP LOCKED`); SQLite has a single writer.
    pub async fn claim_queued_jobs(
        &mut self,
        kind: &str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> Result<Vec<QueuedJob>> {
        self.assert_writable();
        let rows: Vec<QueuedJobRow> = match self.db() {
            Db::Pg(c) => sqlx::query_as(
                "UPDATE queued_jobs SET state = 'running', attempts = attempts + 1, locked_until = $3, updated_at = $2
                     WHERE id IN (SELECT id FROM queued_jobs
                                  WHERE kind = $1 AND run_at <= $2
                                    AND (state = 'queued' OR (state = 'running' AND locked_until < $2))
                                  ORDER BY run_at, id LIMIT $4 FOR UPDATE SKIP LOCKED)
                     RETURNING id, kind, payload, run_at, attempts, attempts_max",
            )
            .bind(kind)
            .bind(DbTime(now))
            .bind(DbTime(lease_until))
            .bind(i64::from(limit))
            .fetch_all(c)
            .await?,
            Db::Sqlite(c) => sqlx::query_as(
                "UPDATE queued_jobs SET state = 'running', attempts = attempts + 1, locked_until = $3, updated_at = $2
                     WHERE id IN (SELECT id FROM queued_jobs
                                  WHERE kind = $1 AND run_at <= $2
                                    AND (state = 'queued' OR (state = 'running' AND locked_until < $2))
                                  ORDER BY run_at, id LIMIT $4)
                     RETURNING id, kind, payload, run_at, attempts, attempts_max",
            )
            .bind(kind)
            .bind(DbTime(now))
            .bind(DbTime(lease_until))
            .bind(i64::from(limit))
            .fetch_all(c)
            .await?,
        };
        rows.into_iter().map(QueuedJob::try_from).collect()
    }

    /// [`Self::settle_queued_job`] for many jobs (one statement on PostgreSQL): for each job,
    /// in order, whether this worker still held it and settled it.
    pub async fn settle_queued_jobs(
        &mut self,
        jobs: &[(Uuid, i32, QueuedOutcome<'_>)],
        now: Timestamp,
    ) -> Result<Vec<bool>> {
        self.assert_writable();
        let Db::Pg(c) = self.db() else {
            let mut settled = Vec::with_capacity(jobs.len());
            for (id, attempts, outcome) in jobs {
                settled.push(self.settle_queued_job(*id, *attempts, *outcome, now).await?);
            }
            return Ok(settled);
        };
        let ids: Vec<Uuid> = jobs.iter().map(|j| j.0).collect();
        let attempts: Vec<i32> = jobs.iter().map(|j| j.1).collect();
        let (mut states, mut run_ats, mut errors) = (Vec::new(), Vec::new(), Vec::new());
        for (_, _, outcome) in jobs {
            let (state, run_at, error) = outcome.columns();
            states.push(state);
            run_ats.push(run_at.map(DbTime));
            errors.push(error);
        }
        let settled: Vec<Uuid> = sqlx::query_scalar(
            "UPDATE queued_jobs q SET state = t.state, run_at = COALESCE(t.run_at, q.run_at),
                    last_error = COALESCE(t.error, q.last_error), locked_until = NULL, updated_at = $6
             FROM UNNEST($1::uuid[], $2::int4[], $3::text[], $4::timestamptz[], $5::text[])
                  AS t(id, attempts, state, run_at, error)
             WHERE q.id = t.id AND q.state = 'running' AND q.attempts = t.attempts
             RETURNING q.id",
        )
        .bind(&ids)
        .bind(&attempts)
        .bind(&states)
        .bind(&run_ats)
        .bind(&errors)
        .bind(DbTime(now))
        .fetch_all(c)
        .await?;
        Ok(ids.iter().map(|id| settled.contains(id)).collect())
    }

    /// Ends a claimed job: `Done`, back to the queue at `retry_at`, or dead with the reason —
    /// only if this worker still holds it (its claim was attempt `attempts`). Returns whether it
    /// did; `false` means the lease ran out and another worker took the job over.
    pub async fn settle_queued_job(
        &mut self,
        id: Uuid,
        attempts: i32,
        outcome: QueuedOutcome<'_>,
        now: Timestamp,
    ) -> Result<bool> {
        self.assert_writable();
        let (state, run_at, error) = outcome.columns();
        let n = on_db!(self, c => sqlx::query(
            "UPDATE queued_jobs SET state = $2, run_at = COALESCE($3, run_at), last_error = COALESCE($4, last_error),
                    locked_until = NULL, updated_at = $5
             WHERE id = $1 AND state = 'running' AND attempts = $6",
        )
        .bind(id)
        .bind(state)
        .bind(run_at.map(DbTime))
        .bind(error)
        .bind(DbTime(now))
        .bind(attempts)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Deletes up to `limit` finished queued jobs (`done`) last touched before `before`.
    pub async fn purge_done_jobs(&mut self, before: Timestamp, limit: u32) -> Result<u64> {
        self.assert_writable();
        let n = on_db!(self, c => sqlx::query(
            "DELETE FROM queued_jobs WHERE id IN (
                 SELECT id FROM queued_jobs WHERE state = 'done' AND updated_at < $1 LIMIT $2)",
        )
        .bind(DbTime(before))
        .bind(i64::from(limit))
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n)
    }

    /// Deletes up to `limit` job runs that started before `before`.
    pub async fn purge_job_runs(&mut self, before: Timestamp, limit: u32) -> Result<u64> {
        self.assert_writable();
        let n = on_db!(self, c => sqlx::query(
            "DELETE FROM job_runs WHERE id IN (SELECT id FROM job_runs WHERE started_at < $1 LIMIT $2)",
        )
        .bind(DbTime(before))
        .bind(i64::from(limit))
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n)
    }

    /// How many queued jobs are in each state, by kind (for operators).
    pub async fn queue_counts(&mut self) -> Result<Vec<(String, String, i64)>> {
        let rows: Vec<(String, String, i64)> = on_db!(self, c => sqlx::query_as(
            "SELECT kind, state, COUNT(*) FROM queued_jobs GROUP BY kind, state ORDER BY kind, state",
        )
        .fetch_all(c)
        .await)?;
        Ok(rows)
    }
}

#[derive(sqlx::FromRow)]
struct SlotRow {
    started_at: DbTime,
    heartbeat_at: Option<DbTime>,
    finished_at: Option<DbTime>,
    error: Option<String>,
}

/// A scheduled run's claim, as another instance sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotState {
    /// When the run last showed it was working (its heartbeat, or its start).
    pub last_sign_of_life: Timestamp,
    pub finished_at: Option<Timestamp>,
    /// It finished with an error.
    pub failed: bool,
}

/// How a claimed queued job ended.
#[derive(Debug, Clone, Copy)]
pub enum QueuedOutcome<'a> {
    Done,
    Retry { at: Timestamp, error: &'a str },
    Dead { error: &'a str },
}

impl<'a> QueuedOutcome<'a> {
    /// The job's new state, when it runs again, and the error kept with it.
    fn columns(self) -> (&'static str, Option<Timestamp>, Option<&'a str>) {
        match self {
            Self::Done => ("done", None, None),
            Self::Retry { at, error } => ("queued", Some(at), Some(error)),
            Self::Dead { error } => ("dead", None, Some(error)),
        }
    }
}
