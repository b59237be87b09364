//! Approvals written a group at a time with their events: each group one atomic write — on
//! PostgreSQL a single statement (data-modifying CTEs, no `BEGIN`/`COMMIT` round trips), on
//! SQLite one transaction on the writer.

use super::approvals::{ApprovalOutcome, NewApproval};
use crate::NewEvent;
use crate::Result;
use crate::Store;
use crate::types::DbTime;
use std::collections::HashSet;
use uuid::Uuid;

/// A terminal's request recorded already routed: its `received` and `routed` events take
/// sequence numbers 1 and 2.
#[derive(Debug, Clone)]
pub struct RoutedApproval<'a> {
    pub approval: NewApproval<'a>,
    pub issuer: Option<&'a str>,
    pub upstream: &'a str,
    pub upstream_ref: &'a str,
}

/// An answer to record: its final event takes sequence number `seq`, which must be the next
/// one (else the approval changed meanwhile and is left alone).
#[derive(Debug, Clone)]
pub struct AnsweredApproval<'a> {
    pub id: Uuid,
    pub outcome: ApprovalOutcome<'a>,
    pub seq: i32,
}

/// An outbox event of one approval: written exactly when that approval's change is.
#[derive(Debug, Clone)]
pub struct ApprovalStep {
    pub approval_id: Uuid,
    pub event: NewEvent,
}

const INSERT_APPROVAL: &str = "INSERT INTO approvals (id, terminal_id, merchant_id, seq_no, sent_at, tx_type, amount,
    card_masked, original_id, issuer, upstream, upstream_ref, status, event_seq, received_at)";
const ON_REPEAT: &str = "ON CONFLICT (terminal_id, seq_no, sent_at) DO NOTHING RETURNING id";
/// The steps (`$1`–`$5`) of the approvals a CTE named `changed` returned, in their order.
const INSERT_STEPS: &str = "INSERT INTO outbox (id, subject, payload, created_at)
    SELECT e.id, e.subject, e.payload, e.at
    FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[]) WITH ORDINALITY
         AS e(owner, id, subject, payload, at, n)
    WHERE e.owner IN (SELECT id FROM changed) ORDER BY n";

/// The steps as PostgreSQL arrays, bound first.
struct StepArrays {
    owners: Vec<Uuid>,
    ids: Vec<Uuid>,
    subjects: Vec<String>,
    payloads: Vec<String>,
    at: Vec<DbTime>,
}

impl StepArrays {
    fn of(steps: &[ApprovalStep]) -> Self {
        Self {
            owners: steps.iter().map(|s| s.approval_id).collect(),
            ids: steps.iter().map(|s| s.event.id).collect(),
            subjects: steps.iter().map(|s| s.event.subject.clone()).collect(),
            payloads: steps.iter().map(|s| s.event.payload.to_string()).collect(),
            at: steps.iter().map(|s| DbTime(s.event.created_at)).collect(),
        }
    }
}

impl StepArrays {
    /// Binds the steps as `$1`–`$5`, the parameters of [`INSERT_STEPS`].
    fn bind<'q, O>(&'q self, q: PgQueryScalar<'q, O>) -> PgQueryScalar<'q, O> {
        q.bind(&self.owners)
            .bind(&self.ids)
            .bind(&self.subjects)
            .bind(&self.payloads)
            .bind(&self.at)
    }
}

type PgQueryScalar<'q, O> = sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>;

/// The events of the approvals in `changed`, in order.
fn steps_of(steps: &[ApprovalStep], changed: &HashSet<Uuid>) -> Vec<NewEvent> {
    steps
        .iter()
        .filter(|s| changed.contains(&s.approval_id))
        .map(|s| s.event.clone())
        .collect()
}

impl Store {
    /// Records routed requests, each unless its terminal sent these keys before (in this
    /// group or earlier), with the `steps` of those recorded: the ids recorded.
    pub async fn record_routed_approvals(
        &self,
        rows: &[RoutedApproval<'_>],
        steps: &[ApprovalStep],
    ) -> Result<Vec<Uuid>> {
        let Some(mut c) = self.autocommit_pg().await? else {
            let mut tx = self.begin().await?;
            let mut recorded = Vec::with_capacity(rows.len());
            for r in rows {
                recorded.extend(tx.insert_routed_approval(r).await?);
            }
            tx.insert_events(&steps_of(steps, &recorded.iter().copied().collect()))
                .await?;
            tx.commit().await?;
            return Ok(recorded);
        };
        let e = StepArrays::of(steps);
        let text = |f: for<'r> fn(&'r RoutedApproval<'r>) -> &'r str| rows.iter().map(f).collect::<Vec<&str>>();
        let ids: Vec<Uuid> = rows.iter().map(|r| r.approval.id).collect();
        let merchants: Vec<Uuid> = rows.iter().map(|r| r.approval.merchant_id).collect();
        let seq_nos: Vec<i64> = rows.iter().map(|r| r.approval.seq_no).collect();
        let amounts: Vec<i64> = rows.iter().map(|r| r.approval.amount).collect();
        let originals: Vec<Option<Uuid>> = rows.iter().map(|r| r.approval.original_id).collect();
        let issuers: Vec<Option<&str>> = rows.iter().map(|r| r.issuer).collect();
        let received: Vec<DbTime> = rows.iter().map(|r| DbTime(r.approval.received_at)).collect();
        let recorded: Vec<Uuid> = e
            .bind(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "WITH changed AS (
                 {INSERT_APPROVAL}
                 SELECT id, terminal_id, merchant_id, seq_no, sent_at, tx_type, amount, card_masked,
                     original_id, issuer, upstream, upstream_ref, 'sent', 2, received_at
                 FROM UNNEST($6::uuid[], $7::text[], $8::uuid[], $9::int8[], $10::text[], $11::text[],
                             $12::int8[], $13::text[], $14::uuid[], $15::text[], $16::text[], $17::text[],
                             $18::timestamptz[])
                      AS t(id, terminal_id, merchant_id, seq_no, sent_at, tx_type, amount, card_masked,
                           original_id, issuer, upstream, upstream_ref, received_at)
                 {ON_REPEAT}
             ), steps AS ({INSERT_STEPS})
             SELECT id FROM changed"
            ))))
            .bind(&ids)
            .bind(text(|r| r.approval.terminal_id))
            .bind(&merchants)
            .bind(&seq_nos)
            .bind(text(|r| r.approval.sent_at))
            .bind(text(|r| r.approval.tx_type))
            .bind(&amounts)
            .bind(text(|r| r.approval.card_masked))
            .bind(&originals)
            .bind(&issuers)
            .bind(text(|r| r.upstream))
            .bind(text(|r| r.upstream_ref))
            .bind(&received)
            .fetch_all(&mut *c)
            .await?;
        Ok(recorded)
    }

    /// Records answers, each only if its approval has none yet and `seq` is its next sequence
    /// number, with the `steps` of those recorded: the ids recorded.
    pub async fn record_answers(&self, done: &[AnsweredApproval<'_>], steps: &[ApprovalStep]) -> Result<Vec<Uuid>> {
        let Some(mut c) = self.autocommit_pg().await? else {
            let mut tx = self.begin().await?;
            let mut recorded = Vec::with_capacity(done.len());
            for a in done {
                if tx
                    .finish_approval(a.id, &a.outcome, 1, Some(a.seq - 1))
                    .await?
                    .is_some()
                {
                    recorded.push(a.id);
                }
            }
            tx.insert_events(&steps_of(steps, &recorded.iter().copied().collect()))
                .await?;
            tx.commit().await?;
            return Ok(recorded);
        };
        let e = StepArrays::of(steps);
        let text = |f: for<'r> fn(&'r ApprovalOutcome<'r>) -> &'r str| {
            done.iter().map(|a| f(&a.outcome)).collect::<Vec<&str>>()
        };
        let maybe = |f: for<'r> fn(&'r ApprovalOutcome<'r>) -> Option<&'r str>| {
            done.iter().map(|a| f(&a.outcome)).collect::<Vec<Option<&str>>>()
        };
        let ids: Vec<Uuid> = done.iter().map(|a| a.id).collect();
        let answers: Vec<String> = done.iter().map(|a| a.outcome.answer.to_string()).collect();
        let upstream_ms: Vec<Option<i32>> = done.iter().map(|a| a.outcome.upstream_ms).collect();
        let answered_at: Vec<DbTime> = done.iter().map(|a| DbTime(a.outcome.answered_at)).collect();
        let seqs: Vec<i32> = done.iter().map(|a| a.seq).collect();
        let recorded: Vec<Uuid> = e
            .bind(sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "WITH changed AS (
                 UPDATE approvals a SET status = u.status, response_code = u.response_code, approval_no = u.approval_no,
                     approved_at = u.approved_at, message = u.message, answer = u.answer, upstream_ms = u.upstream_ms,
                     answered_at = u.answered_at, event_seq = u.seq
                 FROM UNNEST($6::uuid[], $7::text[], $8::text[], $9::text[], $10::text[], $11::text[],
                             $12::text[], $13::int4[], $14::timestamptz[], $15::int4[])
                      AS u(id, status, response_code, approval_no, approved_at, message, answer,
                           upstream_ms, answered_at, seq)
                 WHERE a.id = u.id AND a.answer IS NULL AND a.event_seq = u.seq - 1
                 RETURNING a.id
             ), steps AS ({INSERT_STEPS})
             SELECT id FROM changed"
            ))))
            .bind(&ids)
            .bind(text(|o| o.status))
            .bind(text(|o| o.response_code))
            .bind(maybe(|o| o.approval_no))
            .bind(maybe(|o| o.approved_at))
            .bind(text(|o| o.message))
            .bind(&answers)
            .bind(&upstream_ms)
            .bind(&answered_at)
            .bind(&seqs)
            .fetch_all(&mut *c)
            .await?;
        Ok(recorded)
    }
}

impl crate::Session {
    /// SQLite: one routed request (see [`Store::record_routed_approvals`]); its id if recorded.
    async fn insert_routed_approval(&mut self, r: &RoutedApproval<'_>) -> Result<Option<Uuid>> {
        self.assert_writable();
        let a = &r.approval;
        let id: Option<Uuid> = on_db!(self, c => sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "{INSERT_APPROVAL} VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'sent', 2, $13) {ON_REPEAT}"
        )))
        .bind(a.id)
        .bind(a.terminal_id)
        .bind(a.merchant_id)
        .bind(a.seq_no)
        .bind(a.sent_at)
        .bind(a.tx_type)
        .bind(a.amount)
        .bind(a.card_masked)
        .bind(a.original_id)
        .bind(r.issuer)
        .bind(r.upstream)
        .bind(r.upstream_ref)
        .bind(DbTime(a.received_at))
        .fetch_optional(c)
        .await)?;
        Ok(id)
    }
}
