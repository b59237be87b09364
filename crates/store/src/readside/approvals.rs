//! Approval transactions as the read side keeps them: history rows keyed by (transaction,
//! sequence number), conflicting events beside them, and one final-state row per transaction
//! written under a per-transaction lock so that concurrent consumers never lose a step.

use crate::session::Db;
use crate::types::{DbDate, DbTime};
use crate::{Result, Session};
use jiff::Timestamp;
use jiff::civil::Date;
use uuid::Uuid;

/// One step of a transaction as its event carried it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryStep {
    pub transaction_id: Uuid,
    pub seq: i32,
    /// `received`, `routed`, `approved`... (the event's subject without `approval.`).
    pub step: String,
    pub upstream: Option<String>,
    /// The event's `detail`, JSON.
    pub detail: String,
    pub at: Timestamp,
    pub event_id: Uuid,
}

#[derive(sqlx::FromRow)]
struct HistoryRow {
    transaction_id: Uuid,
    seq: i32,
    step: String,
    upstream: Option<String>,
    detail: String,
    at: DbTime,
    event_id: Uuid,
}

impl From<HistoryRow> for HistoryStep {
    fn from(r: HistoryRow) -> Self {
        Self {
            transaction_id: r.transaction_id,
            seq: r.seq,
            step: r.step,
            upstream: r.upstream,
            detail: r.detail,
            at: r.at.0,
            event_id: r.event_id,
        }
    }
}

/// A transaction's final state (see the migration `0012_readside` for each column).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalView {
    pub transaction_id: Uuid,
    pub merchant_id: Option<Uuid>,
    pub terminal_id: Option<String>,
    pub seq_no: Option<i64>,
    pub sent_at: Option<String>,
    pub tx_type: Option<String>,
    pub amount: Option<i64>,
    pub card_masked: Option<String>,
    pub original_id: Option<Uuid>,
    pub status: String,
    pub upstream: Option<String>,
    pub response_code: Option<String>,
    pub approval_no: Option<String>,
    pub approved_at: Option<String>,
    pub business_date: Option<Date>,
    pub cancel_status: String,
    pub cancel_sends: i32,
    pub cancel_date: Option<Date>,
    pub late_response_code: Option<String>,
    pub late_approval_no: Option<String>,
    pub last_seq: i32,
    pub gaps: bool,
    pub conflicts: i32,
    pub received_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct ViewRow {
    transaction_id: Uuid,
    merchant_id: Option<Uuid>,
    terminal_id: Option<String>,
    seq_no: Option<i64>,
    sent_at: Option<String>,
    tx_type: Option<String>,
    amount: Option<i64>,
    card_masked: Option<String>,
    original_id: Option<Uuid>,
    status: String,
    upstream: Option<String>,
    response_code: Option<String>,
    approval_no: Option<String>,
    approved_at: Option<String>,
    business_date: Option<DbDate>,
    cancel_status: String,
    cancel_sends: i32,
    cancel_date: Option<DbDate>,
    late_response_code: Option<String>,
    late_approval_no: Option<String>,
    last_seq: i32,
    gaps: bool,
    conflicts: i32,
    received_at: Option<DbTime>,
    updated_at: DbTime,
}

impl From<ViewRow> for ApprovalView {
    fn from(r: ViewRow) -> Self {
        Self {
            transaction_id: r.transaction_id,
            merchant_id: r.merchant_id,
            terminal_id: r.terminal_id,
            seq_no: r.seq_no,
            sent_at: r.sent_at,
            tx_type: r.tx_type,
            amount: r.amount,
            card_masked: r.card_masked,
            original_id: r.original_id,
            status: r.status,
            upstream: r.upstream,
            response_code: r.response_code,
            approval_no: r.approval_no,
            approved_at: r.approved_at,
            business_date: r.business_date.map(|d| d.0),
            cancel_status: r.cancel_status,
            cancel_sends: r.cancel_sends,
            cancel_date: r.cancel_date.map(|d| d.0),
            late_response_code: r.late_response_code,
            late_approval_no: r.late_approval_no,
            last_seq: r.last_seq,
            gaps: r.gaps,
            conflicts: r.conflicts,
            received_at: r.received_at.map(|t| t.0),
            updated_at: r.updated_at.0,
        }
    }
}

/// Which final states to list (every field optional), newest first.
#[derive(Debug, Clone, Default)]
pub struct ApprovalViewFilter {
    pub merchant_id: Option<Uuid>,
    pub terminal_id: Option<String>,
    pub status: Option<String>,
    /// Received at or after.
    pub from: Option<Timestamp>,
    /// Received before.
    pub to: Option<Timestamp>,
}

const VIEW_COLUMNS: &str = "transaction_id, merchant_id, terminal_id, seq_no, sent_at, tx_type, amount,
    card_masked, original_id, status, upstream, response_code, approval_no, approved_at, business_date,
    cancel_status, cancel_sends, cancel_date, late_response_code, late_approval_no, last_seq, gaps,
    conflicts, received_at, updated_at";

/// Every column a later fold rewrites (all but the key and the conflict count, which only
/// grows by the conflicts recorded).
const VIEW_UPDATE: &str = "ON CONFLICT (transaction_id) DO UPDATE SET
    merchant_id = excluded.merchant_id, terminal_id = excluded.terminal_id, seq_no = excluded.seq_no,
    sent_at = excluded.sent_at, tx_type = excluded.tx_type, amount = excluded.amount,
    card_masked = excluded.card_masked, original_id = excluded.original_id, status = excluded.status,
    upstream = excluded.upstream, response_code = excluded.response_code, approval_no = excluded.approval_no,
    approved_at = excluded.approved_at, business_date = excluded.business_date,
    cancel_status = excluded.cancel_status, cancel_sends = excluded.cancel_sends,
    cancel_date = excluded.cancel_date,
    late_response_code = excluded.late_response_code, late_approval_no = excluded.late_approval_no,
    last_seq = excluded.last_seq, gaps = excluded.gaps, received_at = excluded.received_at,
    updated_at = excluded.updated_at";

const HISTORY_COLUMNS: &str = "transaction_id, seq, step, upstream, detail, at, event_id";

/// The views as PostgreSQL arrays, one per column in [`VIEW_COLUMNS`] order.
struct ViewArrays {
    ids: Vec<Uuid>,
    merchants: Vec<Option<Uuid>>,
    terminals: Vec<Option<String>>,
    seq_nos: Vec<Option<i64>>,
    sent_at: Vec<Option<String>>,
    tx_types: Vec<Option<String>>,
    amounts: Vec<Option<i64>>,
    cards: Vec<Option<String>>,
    originals: Vec<Option<Uuid>>,
    statuses: Vec<String>,
    upstreams: Vec<Option<String>>,
    codes: Vec<Option<String>>,
    approval_nos: Vec<Option<String>>,
    approved_at: Vec<Option<String>>,
    dates: Vec<Option<DbDate>>,
    cancel_statuses: Vec<String>,
    cancel_sends: Vec<i32>,
    cancel_dates: Vec<Option<DbDate>>,
    late_codes: Vec<Option<String>>,
    late_nos: Vec<Option<String>>,
    last_seqs: Vec<i32>,
    gaps: Vec<bool>,
    conflicts: Vec<i32>,
    received: Vec<Option<DbTime>>,
    updated: Vec<DbTime>,
}

impl ViewArrays {
    fn of(views: &[ApprovalView]) -> Self {
        fn col<T>(views: &[ApprovalView], f: impl Fn(&ApprovalView) -> T) -> Vec<T> {
            views.iter().map(f).collect()
        }
        Self {
            ids: col(views, |v| v.transaction_id),
            merchants: col(views, |v| v.merchant_id),
            terminals: col(views, |v| v.terminal_id.clone()),
            seq_nos: col(views, |v| v.seq_no),
            sent_at: col(views, |v| v.sent_at.clone()),
            tx_types: col(views, |v| v.tx_type.clone()),
            amounts: col(views, |v| v.amount),
            cards: col(views, |v| v.card_masked.clone()),
            originals: col(views, |v| v.original_id),
            statuses: col(views, |v| v.status.clone()),
            upstreams: col(views, |v| v.upstream.clone()),
            codes: col(views, |v| v.response_code.clone()),
            approval_nos: col(views, |v| v.approval_no.clone()),
            approved_at: col(views, |v| v.approved_at.clone()),
            dates: col(views, |v| v.business_date.map(DbDate)),
            cancel_statuses: col(views, |v| v.cancel_status.clone()),
            cancel_sends: col(views, |v| v.cancel_sends),
            cancel_dates: col(views, |v| v.cancel_date.map(DbDate)),
            late_codes: col(views, |v| v.late_response_code.clone()),
            late_nos: col(views, |v| v.late_approval_no.clone()),
            last_seqs: col(views, |v| v.last_seq),
            gaps: col(views, |v| v.gaps),
            conflicts: col(views, |v| v.conflicts),
            received: col(views, |v| v.received_at.map(DbTime)),
            updated: col(views, |v| DbTime(v.updated_at)),
        }
    }
}

impl Session {
    /// Takes the per-transaction locks of `ids` for this transaction, in one order (so two
    /// consumers never deadlock): whoever folds a transaction's history holds its lock, so
    /// no step committed meanwhile is missed. SQLite's one writer needs none.
    pub async fn lock_approval_transactions(&mut self, ids: &[Uuid]) -> Result<()> {
        self.assert_writable();
        if let Db::Pg(c) = self.db() {
            sqlx::query(
                "SELECT pg_advisory_xact_lock(k) FROM (
                     SELECT DISTINCT hashtextextended(CAST(id AS text), 0) AS k
                     FROM UNNEST($1::uuid[]) AS t(id) ORDER BY k) AS keys",
            )
            .bind(ids)
            .execute(c)
            .await?;
        }
        Ok(())
    }

    /// Records steps not recorded before: a step whose (transaction, sequence number) is taken
    /// is left out (a redelivery, or a conflict the caller records apart).
    pub async fn insert_history_steps(&mut self, steps: &[HistoryStep], now: Timestamp) -> Result<()> {
        self.assert_writable();
        const INSERT: &str = "INSERT INTO approval_history (transaction_id, seq, step, upstream, detail, at,
            event_id, recorded_at)";
        const ON_TAKEN: &str = "ON CONFLICT (transaction_id, seq) DO NOTHING";
        match self.db() {
            Db::Pg(c) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{INSERT} SELECT *, $8 FROM UNNEST($1::uuid[], $2::int4[], $3::text[], $4::text[],
                         $5::text[], $6::timestamptz[], $7::uuid[]) {ON_TAKEN}"
                )))
                .bind(steps.iter().map(|s| s.transaction_id).collect::<Vec<_>>())
                .bind(steps.iter().map(|s| s.seq).collect::<Vec<_>>())
                .bind(steps.iter().map(|s| s.step.as_str()).collect::<Vec<_>>())
                .bind(steps.iter().map(|s| s.upstream.as_deref()).collect::<Vec<_>>())
                .bind(steps.iter().map(|s| s.detail.as_str()).collect::<Vec<_>>())
                .bind(steps.iter().map(|s| DbTime(s.at)).collect::<Vec<_>>())
                .bind(steps.iter().map(|s| s.event_id).collect::<Vec<_>>())
                .bind(DbTime(now))
                .execute(c)
                .await?;
            }
            Db::Sqlite(c) => {
                for s in steps {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "{INSERT} VALUES ($1, $2, $3, $4, $5, $6, $7, $8) {ON_TAKEN}"
                    )))
                    .bind(s.transaction_id)
                    .bind(s.seq)
                    .bind(&s.step)
                    .bind(s.upstream.as_deref())
                    .bind(&s.detail)
                    .bind(DbTime(s.at))
                    .bind(s.event_id)
                    .bind(DbTime(now))
                    .execute(&mut *c)
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// Records events that conflicted with a step already recorded; the transactions given a
    /// conflict not recorded before (once per new conflict) have their count raised.
    pub async fn record_history_conflicts(&mut self, steps: &[HistoryStep], now: Timestamp) -> Result<()> {
        self.assert_writable();
        for s in steps {
            let added = on_db!(self, c => sqlx::query(
                "INSERT INTO approval_conflicts (event_id, transaction_id, seq, step, detail, at, recorded_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (event_id) DO NOTHING",
            )
            .bind(s.event_id)
            .bind(s.transaction_id)
            .bind(s.seq)
            .bind(&s.step)
            .bind(&s.detail)
            .bind(DbTime(s.at))
            .bind(DbTime(now))
            .execute(&mut *c)
            .await
            .map(|r| r.rows_affected()))?;
            if added > 0 {
                on_db!(self, c => sqlx::query(
                    "UPDATE approval_views SET conflicts = conflicts + 1 WHERE transaction_id = $1",
                )
                .bind(s.transaction_id)
                .execute(&mut *c)
                .await
                .map(|_| ()))?;
            }
        }
        Ok(())
    }

    /// The recorded steps of `ids`, by transaction and sequence number.
    pub async fn history_of(&mut self, ids: &[Uuid]) -> Result<Vec<HistoryStep>> {
        let rows: Vec<HistoryRow> = match self.db() {
            Db::Pg(c) => {
                sqlx::query_as(sqlx::AssertSqlSafe(format!(
                    "SELECT {HISTORY_COLUMNS} FROM approval_history WHERE transaction_id = ANY($1)
                     ORDER BY transaction_id, seq"
                )))
                .bind(ids)
                .fetch_all(c)
                .await?
            }
            Db::Sqlite(c) => {
                let mut rows = Vec::new();
                for id in ids {
                    rows.extend(
                        sqlx::query_as::<_, HistoryRow>(sqlx::AssertSqlSafe(format!(
                            "SELECT {HISTORY_COLUMNS} FROM approval_history WHERE transaction_id = $1
                             ORDER BY seq"
                        )))
                        .bind(id)
                        .fetch_all(&mut *c)
                        .await?,
                    );
                }
                rows
            }
        };
        Ok(rows.into_iter().map(HistoryStep::from).collect())
    }

    /// Writes final states (new ones, or over the earlier fold of the same transaction).
    pub async fn save_approval_views(&mut self, views: &[ApprovalView]) -> Result<()> {
        self.assert_writable();
        match self.db() {
            Db::Pg(c) => {
                let a = ViewArrays::of(views);
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "INSERT INTO approval_views ({VIEW_COLUMNS})
                     SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::int8[], $5::text[],
                         $6::text[], $7::int8[], $8::text[], $9::uuid[], $10::text[], $11::text[],
                         $12::text[], $13::text[], $14::text[], $15::date[], $16::text[], $17::int4[],
                         $18::date[], $19::text[], $20::text[], $21::int4[], $22::bool[], $23::int4[],
                         $24::timestamptz[], $25::timestamptz[])
                     {VIEW_UPDATE}"
                )))
                .bind(&a.ids)
                .bind(&a.merchants)
                .bind(&a.terminals)
                .bind(&a.seq_nos)
                .bind(&a.sent_at)
                .bind(&a.tx_types)
                .bind(&a.amounts)
                .bind(&a.cards)
                .bind(&a.originals)
                .bind(&a.statuses)
                .bind(&a.upstreams)
                .bind(&a.codes)
                .bind(&a.approval_nos)
                .bind(&a.approved_at)
                .bind(&a.dates)
                .bind(&a.cancel_statuses)
                .bind(&a.cancel_sends)
                .bind(&a.cancel_dates)
                .bind(&a.late_codes)
                .bind(&a.late_nos)
                .bind(&a.last_seqs)
                .bind(&a.gaps)
                .bind(&a.conflicts)
                .bind(&a.received)
                .bind(&a.updated)
                .execute(c)
                .await?;
            }
            Db::Sqlite(c) => {
                for v in views {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "INSERT INTO approval_views ({VIEW_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7,
                             $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25)
                         {VIEW_UPDATE}"
                    )))
                    .bind(v.transaction_id)
                    .bind(v.merchant_id)
                    .bind(&v.terminal_id)
                    .bind(v.seq_no)
                    .bind(&v.sent_at)
                    .bind(&v.tx_type)
                    .bind(v.amount)
                    .bind(&v.card_masked)
                    .bind(v.original_id)
                    .bind(&v.status)
                    .bind(&v.upstream)
                    .bind(&v.response_code)
                    .bind(&v.approval_no)
                    .bind(&v.approved_at)
                    .bind(v.business_date.map(DbDate))
                    .bind(&v.cancel_status)
                    .bind(v.cancel_sends)
                    .bind(v.cancel_date.map(DbDate))
                    .bind(&v.late_response_code)
                    .bind(&v.late_approval_no)
                    .bind(v.last_seq)
                    .bind(v.gaps)
                    .bind(v.conflicts)
                    .bind(v.received_at.map(DbTime))
                    .bind(DbTime(v.updated_at))
                    .execute(&mut *c)
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// One transaction's final state.
    pub async fn approval_view(&mut self, id: Uuid) -> Result<Option<ApprovalView>> {
        let row: Option<ViewRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {VIEW_COLUMNS} FROM approval_views WHERE transaction_id = $1"
        )))
        .bind(id)
        .fetch_optional(c)
        .await)?;
        Ok(row.map(ApprovalView::from))
    }

    /// Final states matching `filter`, newest received first, after the keyset cursor
    /// `(received_at, transaction_id)` of the previous page. Transactions whose `received`
    /// step has not arrived are not listed (they have no time to order by yet).
    pub async fn approval_views(
        &mut self,
        filter: &ApprovalViewFilter,
        after: Option<(Timestamp, Uuid)>,
        limit: u32,
    ) -> Result<Vec<ApprovalView>> {
        let (after_at, after_id) = after.map_or((DbTime(Timestamp::MAX), Uuid::max()), |(t, id)| (DbTime(t), id));
        let rows: Vec<ViewRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {VIEW_COLUMNS} FROM approval_views
             WHERE received_at IS NOT NULL AND (received_at, transaction_id) < ($1, $2)
               AND ($3 IS NULL OR merchant_id = $3) AND ($4 IS NULL OR terminal_id = $4)
               AND ($5 IS NULL OR status = $5) AND ($6 IS NULL OR received_at >= $6)
               AND ($7 IS NULL OR received_at < $7)
             ORDER BY received_at DESC, transaction_id DESC LIMIT $8"
        )))
        .bind(after_at)
        .bind(after_id)
        .bind(filter.merchant_id)
        .bind(filter.terminal_id.as_deref())
        .bind(filter.status.as_deref())
        .bind(filter.from.map(DbTime))
        .bind(filter.to.map(DbTime))
        .bind(i64::from(limit))
        .fetch_all(c)
        .await)?;
        Ok(rows.into_iter().map(ApprovalView::from).collect())
    }

    /// One transaction's history, in sequence order.
    pub async fn approval_history(&mut self, id: Uuid) -> Result<Vec<HistoryStep>> {
        self.history_of(&[id]).await
    }

    /// Forgets the whole read side (a rebuild starts here). On PostgreSQL it first waits for
    /// the projection's transactions in flight (and holds off new ones until it commits).
    pub async fn clear_approval_read_side(&mut self) -> Result<()> {
        self.assert_writable();
        if let Db::Pg(c) = self.db() {
            sqlx::query("LOCK TABLE approval_history, approval_views, approval_conflicts IN SHARE ROW EXCLUSIVE MODE")
                .execute(c)
                .await?;
        }
        for table in ["approval_views", "approval_history", "approval_conflicts"] {
            on_db!(self, c => sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {table}")))
                .execute(&mut *c)
                .await
                .map(|_| ()))?;
        }
        Ok(())
    }
}

/// A record the read side believes an upstream settled (see `core::gateway::reconciliation`):
/// an approval, or a cancel under its original sale's keys and amount.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct SettledRow {
    /// `approval` or `cancel`.
    pub record_type: String,
    pub merchant_id: Uuid,
    pub upstream: String,
    /// The sale's transaction type (`card_approval`, `cash_receipt`).
    pub sale_type: String,
    pub terminal_id: String,
    pub seq_no: i64,
    pub sent_at: String,
    pub amount: i64,
    pub approval_no: Option<String>,
}

/// A stored reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconciliationRecord {
    pub id: Uuid,
    pub upstream: String,
    pub business_date: Date,
    /// `fetched` or `uploaded`.
    pub source: String,
    pub matched: i64,
    pub missing_here: i64,
    pub missing_there: i64,
    pub amount_mismatch: i64,
    /// JSON array of the records that did not match.
    pub discrepancies: String,
    pub created_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct ReconciliationRow {
    id: Uuid,
    upstream: String,
    business_date: DbDate,
    source: String,
    matched: i64,
    missing_here: i64,
    missing_there: i64,
    amount_mismatch: i64,
    discrepancies: String,
    created_at: DbTime,
}

impl From<ReconciliationRow> for ReconciliationRecord {
    fn from(r: ReconciliationRow) -> Self {
        Self {
            id: r.id,
            upstream: r.upstream,
            business_date: r.business_date.0,
            source: r.source,
            matched: r.matched,
            missing_here: r.missing_here,
            missing_there: r.missing_there,
            amount_mismatch: r.amount_mismatch,
            discrepancies: r.discrepancies,
            created_at: r.created_at.0,
        }
    }
}

const RECONCILIATION_COLUMNS: &str = "id, upstream, business_date, source, matched, missing_here, missing_there,
    amount_mismatch, discrepancies, created_at";

/// Sales whose approval the upstream settles (cash receipts are approvals too), and their
/// cancels.
const SALES: &str = "('card_approval', 'cash_receipt')";
const CANCELS: &str = "('card_cancel', 'cash_receipt_cancel')";

impl Session {
    /// What the read side believes was settled on `date` (through one upstream, for one
    /// merchant, or all): an approval record for each sale approved that day (in its answer, or
    /// late), a cancel record — under the original sale's keys and amount — for each customer
    /// cancel approved that day (in its answer, or late) and each network cancel acknowledged
    /// that day of a sale known to be approved. Reconciliation and settlement both read this.
    pub async fn settled_records(
        &mut self,
        date: Date,
        upstream: Option<&str>,
        merchant_id: Option<Uuid>,
    ) -> Result<Vec<SettledRow>> {
        let rows = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT 'approval' AS record_type, merchant_id, upstream, tx_type AS sale_type, terminal_id, seq_no,
                    sent_at, amount, COALESCE(approval_no, late_approval_no) AS approval_no
             FROM approval_views
             WHERE business_date = $1 AND ($2 IS NULL OR upstream = $2) AND ($3 IS NULL OR merchant_id = $3)
               AND tx_type IN {SALES} AND (status = 'approved' OR late_response_code = '00')
               AND terminal_id IS NOT NULL AND merchant_id IS NOT NULL AND upstream IS NOT NULL
             UNION ALL
             SELECT 'cancel', o.merchant_id, c.upstream, o.tx_type, o.terminal_id, o.seq_no, o.sent_at, o.amount,
                    COALESCE(o.approval_no, o.late_approval_no)
             FROM approval_views c JOIN approval_views o ON o.transaction_id = c.original_id
             WHERE c.business_date = $1 AND ($2 IS NULL OR c.upstream = $2) AND ($3 IS NULL OR o.merchant_id = $3)
               AND c.tx_type IN {CANCELS} AND (c.status = 'approved' OR c.late_response_code = '00')
               AND o.terminal_id IS NOT NULL AND o.merchant_id IS NOT NULL AND c.upstream IS NOT NULL
             UNION ALL
             SELECT 'cancel', merchant_id, upstream, tx_type, terminal_id, seq_no, sent_at, amount, late_approval_no
             FROM approval_views
             WHERE cancel_date = $1 AND ($2 IS NULL OR upstream = $2) AND ($3 IS NULL OR merchant_id = $3)
               AND tx_type IN {SALES} AND cancel_status = 'acknowledged' AND late_response_code = '00'
               AND terminal_id IS NOT NULL AND merchant_id IS NOT NULL AND upstream IS NOT NULL"
        )))
        .bind(DbDate(date))
        .bind(upstream)
        .bind(merchant_id)
        .fetch_all(c)
        .await)?;
        Ok(rows)
    }

    pub async fn insert_reconciliation(&mut self, r: &ReconciliationRecord) -> Result<()> {
        self.assert_writable();
        on_db!(self, c => sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO reconciliations ({RECONCILIATION_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
        )))
        .bind(r.id)
        .bind(&r.upstream)
        .bind(DbDate(r.business_date))
        .bind(&r.source)
        .bind(r.matched)
        .bind(r.missing_here)
        .bind(r.missing_there)
        .bind(r.amount_mismatch)
        .bind(&r.discrepancies)
        .bind(DbTime(r.created_at))
        .execute(c)
        .await
        .map(|_| ()))?;
        Ok(())
    }

    /// Reconciliations, newest first (of one day and upstream when given), after the keyset
    /// cursor `(created_at, id)` of the previous page.
    pub async fn reconciliations(
        &mut self,
        date: Option<Date>,
        upstream: Option<&str>,
        after: Option<(Timestamp, Uuid)>,
        limit: u32,
    ) -> Result<Vec<ReconciliationRecord>> {
        let (after_at, after_id) = after.map_or((DbTime(Timestamp::MAX), Uuid::max()), |(t, id)| (DbTime(t), id));
        let rows: Vec<ReconciliationRow> = on_db!(self, c => sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT {RECONCILIATION_COLUMNS} FROM reconciliations
             WHERE (created_at, id) < ($1, $2) AND ($3 IS NULL OR business_date = $3)
               AND ($4 IS NULL OR upstream = $4)
             ORDER BY created_at DESC, id DESC LIMIT $5"
        )))
        .bind(after_at)
        .bind(after_id)
        .bind(date.map(DbDate))
        .bind(upstream)
        .bind(i64::from(limit))
        .fetch_all(c)
        .await)?;
        Ok(rows.into_iter().map(ReconciliationRecord::from).collect())
    }
}
