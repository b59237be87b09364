//! Transaction history at volume: an account's entries by keyset, monthly totals, and the
//! 12-month retention — monthly partitions on PostgreSQL (created ahead, dropped whole), batched
//! deletes on SQLite — with the export of a month before it goes.

use crate::session::{Db, Session};
use crate::types::DbTime;
use crate::{Result, StoreError};
use jiff::Timestamp;
use minipay_core::ledger::EntryKind;
use minipay_core::{AccountId, BusinessMonth, EntryId, JournalId, UserId};
use sqlx::PgConnection;
use uuid::Uuid;

/// One line of an account's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub id: EntryId,
    pub journal_id: JournalId,
    pub account_id: AccountId,
    pub owner: Option<UserId>,
    pub occurred_at: Timestamp,
    pub kind: EntryKind,
    /// Signed: positive money in, negative money out.
    pub amount: i64,
    pub balance_after: i64,
    pub counterparty_name: String,
    pub counterparty_user_id: Option<UserId>,
    pub counterparty_account_id: Option<AccountId>,
    pub memo: Option<String>,
}

#[derive(sqlx::FromRow)]
struct EntryRow {
    id: Uuid,
    journal_id: Uuid,
    account_id: Uuid,
    owner_user_id: Option<Uuid>,
    occurred_at: DbTime,
    kind: String,
    amount: i64,
    balance_after: i64,
    counterparty_name: String,
    counterparty_user_id: Option<Uuid>,
    counterparty_account_id: Option<Uuid>,
    memo: Option<String>,
}

impl TryFrom<EntryRow> for HistoryEntry {
    type Error = StoreError;
    fn try_from(r: EntryRow) -> Result<Self> {
        Ok(Self {
            id: EntryId::from_uuid(r.id),
            journal_id: JournalId::from_uuid(r.journal_id),
            account_id: AccountId::from_uuid(r.account_id),
            owner: r.owner_user_id.map(UserId::from_uuid),
            occurred_at: r.occurred_at.0,
            kind: EntryKind::parse(&r.kind).ok_or_else(|| StoreError::corrupt(&r.kind))?,
            amount: r.amount,
            balance_after: r.balance_after,
            counterparty_name: r.counterparty_name,
            counterparty_user_id: r.counterparty_user_id.map(UserId::from_uuid),
            counterparty_account_id: r.counterparty_account_id.map(AccountId::from_uuid),
            memo: r.memo,
        })
    }
}

macro_rules! select_entries {
    ($rest:literal) => {
        concat!(
            "SELECT id, journal_id, account_id, owner_user_id, occurred_at, kind, amount, balance_after,
                    counterparty_name, counterparty_user_id, counterparty_account_id, memo FROM entries ",
            $rest
        )
    };
}

/// Which entries a history page shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    /// From this instant (inclusive).
    pub from: Option<Timestamp>,
    /// Before this instant (exclusive).
    pub to: Option<Timestamp>,
    pub kind: Option<EntryKind>,
}

/// An account's money over one month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonthTotals {
    pub opening_balance: i64,
    pub total_in: i64,
    pub total_out: i64,
    pub count: i64,
}

/// What one retirement step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetiredMonth {
    /// Whether the month is now wholly retired (SQLite retires a month in several steps).
    pub complete: bool,
}

fn partition(table: &str, month: BusinessMonth) -> String {
    format!("{table}_p{}", month.compact())
}

impl Session {
    /// An account's entries, newest first (ties on time broken by id), filtered, after the
    /// keyset cursor. One range scan of `entries_account_time_idx` whatever the page's depth:
    /// the cursor and `to` both become the scan's upper bound (`to` as "before (to, nil id)"),
    /// `from` its lower bound, and the bounds on `occurred_at` prune the month partitions.
    pub async fn history(
        &mut self,
        account: AccountId,
        filter: HistoryFilter,
        after: Option<(Timestamp, EntryId)>,
        limit: u32,
    ) -> Result<Vec<HistoryEntry>> {
        let cursor = after.map_or((Timestamp::MAX, Uuid::max()), |(t, id)| (t, id.as_uuid()));
        let (before_at, before_id) = match filter.to {
            Some(to) if (to, Uuid::nil()) < cursor => (to, Uuid::nil()),
            _ => cursor,
        };
        let from = DbTime(filter.from.unwrap_or(Timestamp::UNIX_EPOCH));
        let rows: Vec<EntryRow> = on_db!(self, c => sqlx::query_as(select_entries!(
            "WHERE account_id = $1 AND (occurred_at, id) < ($2, $3) AND occurred_at <= $2 AND occurred_at >= $4
               AND ($5 IS NULL OR kind = $5)
             ORDER BY occurred_at DESC, id DESC LIMIT $6"
        ))
        .bind(account.as_uuid())
        .bind(DbTime(before_at))
        .bind(before_id)
        .bind(from)
        .bind(filter.kind.map(EntryKind::as_str))
        .bind(i64::from(limit))
        .fetch_all(c)
        .await)?;
        rows.into_iter().map(HistoryEntry::try_from).collect()
    }

    /// The account's opening balance for `month` (its balance after the last entry before
    /// the month, or else the balance its kept history starts from) and the month's totals.
    pub async fn month_totals(&mut self, account: AccountId, month: BusinessMonth) -> Result<MonthTotals> {
        let (start, end) = (DbTime(month.starts_at()), DbTime(month.ends_at()));
        let opening: i64 = on_db!(self, c => sqlx::query_scalar(
            "SELECT COALESCE(
                 (SELECT balance_after FROM entries WHERE account_id = $1 AND occurred_at < $2
                  ORDER BY occurred_at DESC, id DESC LIMIT 1),
                 (SELECT opening_balance FROM account_openings WHERE account_id = $1))",
        )
        .bind(account.as_uuid())
        .bind(start)
        .fetch_one(c)
        .await)?;
        let (total_in, total_out, count): (i64, i64, i64) = on_db!(self, c => sqlx::query_as(
            "SELECT CAST(COALESCE(SUM(CASE WHEN amount > 0 THEN amount ELSE 0 END), 0) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN amount < 0 THEN -amount ELSE 0 END), 0) AS BIGINT),
                    COUNT(*)
             FROM entries WHERE account_id = $1 AND occurred_at >= $2 AND occurred_at < $3",
        )
        .bind(account.as_uuid())
        .bind(start)
        .bind(end)
        .fetch_one(c)
        .await)?;
        Ok(MonthTotals {
            opening_balance: opening,
            total_in,
            total_out,
            count,
        })
    }

    /// Where retention has reached: history before this instant has been retired.
    pub async fn retired_before(&mut self) -> Result<Option<Timestamp>> {
        let t: Option<DbTime> = on_db!(self, c => sqlx::query_scalar("SELECT retired_before FROM ledger_retention")
            .fetch_optional(c)
            .await)?;
        Ok(t.map(|t| t.0))
    }

    /// The month of the oldest entry still kept, if any. SQLite reads it off `entries_time_idx`;
    /// PostgreSQL has no index leading with the time, so it takes the oldest month partition
    /// holding a row (or an older row left in the DEFAULT partition, which is kept near-empty).
    pub async fn oldest_history_month(&mut self) -> Result<Option<BusinessMonth>> {
        let oldest: Option<DbTime> = match self.db() {
            Db::Sqlite(c) => {
                sqlx::query_scalar("SELECT MIN(occurred_at) FROM entries")
                    .fetch_one(c)
                    .await?
            }
            Db::Pg(c) => {
                let partitions: Vec<String> = sqlx::query_scalar(
                    "SELECT c.relname::TEXT FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                     WHERE i.inhparent = 'entries'::regclass AND c.relname::TEXT LIKE 'entries\\_p%'
                     ORDER BY c.relname",
                )
                .fetch_all(&mut *c)
                .await?;
                let mut oldest = None;
                for name in partitions {
                    oldest = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT occurred_at FROM {name} LIMIT 1")))
                        .fetch_optional(&mut *c)
                        .await?;
                    if oldest.is_some() {
                        break;
                    }
                }
                let stray: Option<DbTime> = sqlx::query_scalar("SELECT MIN(occurred_at) FROM entries_default")
                    .fetch_one(&mut *c)
                    .await?;
                oldest.into_iter().chain(stray).min()
            }
        };
        Ok(oldest.map(|t| BusinessMonth::containing(t.0)))
    }

    /// PostgreSQL: makes sure `month` has its own journal and entry partitions, moving any of
    /// its rows out of the DEFAULT partitions first. SQLite: nothing to do. Idempotent. Takes
    /// no lock when both partitions exist (the hourly run's usual case); otherwise the history
    /// DDL locks (`lock_history_for_ddl`), so keep the transaction to this call.
    pub async fn ensure_history_partition(&mut self, month: BusinessMonth) -> Result<()> {
        self.assert_writable();
        let Db::Pg(c) = self.db() else { return Ok(()) };
        if missing_partitions(c, month).await?.is_empty() {
            return Ok(());
        }
        lock_history_for_ddl(c).await?;
        // Again under the lock: another run may have made them meanwhile.
        for table in missing_partitions(c, month).await? {
            make_partition(c, table, month).await?;
        }
        Ok(())
    }

    /// Prepares the retirement of `month` (all of it older than the retention period) and
    /// returns how many entries it holds. PostgreSQL: writes each affected account's balance at
    /// the month's end into `carried_balances`, read from the month's partition without locking
    /// anything — the month is closed (no entry is ever written before the clock's now), and the
    /// rows stay out of force until [`Self::retire_history_month`] moves the retention mark.
    /// Rerunnable. The month's partitions must exist ([`Self::ensure_history_partition`], in a
    /// transaction of its own: its locks are not to be held through the totals). SQLite: only
    /// counts (its slices carry balances as they go).
    pub async fn prepare_history_retirement(&mut self, month: BusinessMonth) -> Result<u64> {
        self.assert_writable();
        let end = DbTime(month.ends_at());
        let n: i64 = match self.db() {
            Db::Sqlite(c) => {
                sqlx::query_scalar("SELECT COUNT(*) FROM entries WHERE occurred_at >= $1 AND occurred_at < $2")
                    .bind(DbTime(month.starts_at()))
                    .bind(end)
                    .fetch_one(c)
                    .await?
            }
            Db::Pg(c) => {
                sqlx::query(
                    "DELETE FROM carried_balances WHERE through = $1
                       AND NOT EXISTS (SELECT 1 FROM ledger_retention WHERE retired_before >= $1)",
                )
                .bind(end)
                .execute(&mut *c)
                .await?;
                // Two statements on purpose: the balances are read (through `account_openings`,
                // which looks into carried_balances) before any row is added to that table. In one
                // statement each account's lookup would also wade through the rows the same
                // statement had just inserted (invisible to it, but still visited): quadratic.
                let entries = partition("entries", month);
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "CREATE TEMP TABLE retiring_balances ON COMMIT DROP AS
                     SELECT m.account_id, o.opening_balance + m.total AS balance, m.n
                     FROM (SELECT account_id, SUM(amount) AS total, COUNT(*) AS n FROM {entries} GROUP BY account_id) AS m
                     JOIN account_openings o ON o.account_id = m.account_id"
                )))
                .persistent(false)
                .execute(&mut *c)
                .await?;
                sqlx::query(
                    "INSERT INTO carried_balances (account_id, through, balance)
                     SELECT account_id, $1, balance FROM retiring_balances",
                )
                .persistent(false) // the temporary table is a new one each time
                .bind(end)
                .execute(&mut *c)
                .await?;
                // The table just grew by an account per affected account: fresh statistics keep
                // `account_openings` lookups on its index (without them the planner may take the
                // table for empty and scan it once per account).
                sqlx::query("ANALYZE carried_balances").execute(&mut *c).await?;
                sqlx::query_scalar("SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM retiring_balances")
                    .persistent(false)
                    .fetch_one(&mut *c)
                    .await?
            }
        };
        Ok(n as u64)
    }

    /// Retires `month`, prepared by [`Self::prepare_history_retirement`]. PostgreSQL, in one
    /// go: moves the retention mark to the month's end (which puts the carried balances in
    /// force) and drops the month's partitions — no account row is touched. SQLite, one slice
    /// of at most `slice_max` entries per call (call again until `complete`): carries the
    /// slice's balances, moves the mark to the slice's end and deletes the slice. Either way the
    /// ledger invariants hold after every commit.
    pub async fn retire_history_month(&mut self, month: BusinessMonth, slice_max: u32) -> Result<RetiredMonth> {
        self.assert_writable();
        match self.db() {
            Db::Pg(_) => self.retire_partition(month).await,
            Db::Sqlite(_) => self.retire_oldest_slice(month, slice_max).await,
        }
    }

    /// Moves the retention mark forward to `until` (never back); whether it moved. Its row
    /// lock serialises concurrent retirements.
    async fn mark_retired_before(&mut self, until: DbTime) -> Result<bool> {
        let moved = on_db!(self, c => sqlx::query(
            "INSERT INTO ledger_retention (singleton, retired_before) VALUES (TRUE, $1)
             ON CONFLICT (singleton) DO UPDATE SET retired_before = excluded.retired_before
             WHERE ledger_retention.retired_before < excluded.retired_before",
        )
        .bind(until)
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(moved > 0)
    }

    async fn retire_partition(&mut self, month: BusinessMonth) -> Result<RetiredMonth> {
        let Db::Pg(c) = self.db() else {
            unreachable!("PostgreSQL only")
        };
        // Before the mark: another run's DDL goes first, and the drops find the parents locked.
        lock_history_for_ddl(c).await?;
        if self.mark_retired_before(DbTime(month.ends_at())).await? {
            let Db::Pg(c) = self.db() else {
                unreachable!("PostgreSQL only")
            };
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP TABLE {}; DROP TABLE {};",
                partition("entries", month),
                partition("journals", month)
            )))
            .execute(&mut *c)
            .await?;
        }
        Ok(RetiredMonth { complete: true })
    }

    async fn retire_oldest_slice(&mut self, month: BusinessMonth, slice_max: u32) -> Result<RetiredMonth> {
        let Db::Sqlite(c) = self.db() else {
            unreachable!("SQLite only")
        };
        let (start, end) = (DbTime(month.starts_at()), DbTime(month.ends_at()));
        // The slice ends before the instant of the month's (MAX+1)-th oldest entry, so it holds
        // whole journals; if that instant is the first (one instant holding more than the batch),
        // the slice is that instant.
        let first: Option<DbTime> =
            sqlx::query_scalar("SELECT MIN(occurred_at) FROM entries WHERE occurred_at >= $1 AND occurred_at < $2")
                .bind(start)
                .bind(end)
                .fetch_one(&mut *c)
                .await?;
        let cut: Option<DbTime> = sqlx::query_scalar(
            "SELECT occurred_at FROM entries WHERE occurred_at >= $1 AND occurred_at < $2
             ORDER BY occurred_at LIMIT 1 OFFSET $3",
        )
        .bind(start)
        .bind(end)
        .bind(i64::from(slice_max))
        .fetch_optional(&mut *c)
        .await?;
        let (until, complete) = match (cut, first) {
            (Some(cut), Some(first)) if cut == first => (DbTime(cut.0 + jiff::SignedDuration::from_micros(1)), false),
            (Some(cut), _) => (cut, false),
            (None, _) => (end, true),
        };
        // Balances carried with the mark as it stands, then the mark moved, then the rows gone.
        sqlx::query(
            "INSERT INTO carried_balances (account_id, through, balance)
             SELECT t.account_id, $3, o.opening_balance + t.total
             FROM (SELECT account_id, SUM(amount) AS total FROM entries
                   WHERE occurred_at >= $1 AND occurred_at < $2 GROUP BY account_id) AS t
             JOIN account_openings o ON o.account_id = t.account_id",
        )
        .bind(start)
        .bind(until)
        .bind(until)
        .execute(&mut *c)
        .await?;
        self.mark_retired_before(until).await?;
        let Db::Sqlite(c) = self.db() else {
            unreachable!("SQLite only")
        };
        for table in ["entries", "journals"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE occurred_at >= $1 AND occurred_at < $2"
            )))
            .bind(start)
            .bind(until)
            .execute(&mut *c)
            .await?;
        }
        Ok(RetiredMonth { complete })
    }

    /// Deletes carried balances superseded by a later one in force (never read again); returns
    /// how many. Outside the retiring transaction: it only tidies.
    pub async fn prune_carried_balances(&mut self) -> Result<u64> {
        self.assert_writable();
        let n = on_db!(self, c => sqlx::query(
            "DELETE FROM carried_balances
             WHERE through < (SELECT retired_before FROM ledger_retention)
               AND EXISTS (SELECT 1 FROM carried_balances n
                           WHERE n.account_id = carried_balances.account_id AND n.through > carried_balances.through
                             AND n.through <= (SELECT retired_before FROM ledger_retention))",
        )
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n)
    }

    /// Every entry of `month`, oldest first, handed to `row` one at a time (streamed from the
    /// database, never all in memory): what `minipay history export` writes.
    pub async fn each_entry_of_month(
        &mut self,
        month: BusinessMonth,
        mut row: impl FnMut(HistoryEntry) -> std::io::Result<()> + Send,
    ) -> Result<u64> {
        use futures_core_free::next;
        let (start, end) = (DbTime(month.starts_at()), DbTime(month.ends_at()));
        let sql = select_entries!("WHERE occurred_at >= $1 AND occurred_at < $2 ORDER BY occurred_at, id");
        let mut n = 0u64;
        on_db!(self, c => {
            let mut rows = sqlx::query_as::<_, EntryRow>(sql).bind(start).bind(end).fetch(c);
            while let Some(r) = next(&mut rows).await {
                row(HistoryEntry::try_from(r?)?).map_err(|e| StoreError::Corrupt(format!("writing the export: {e}")))?;
                n += 1;
            }
            Ok::<_, StoreError>(())
        })?;
        Ok(n)
    }
}

/// The key of the transaction-scoped advisory lock every history DDL transaction takes first
/// (PostgreSQL): a fixed number nothing else in the database locks (the bytes of "mp-hist").
const HISTORY_DDL_LOCK_KEY: i64 = 0x006d_702d_6869_7374;

/// How long a history DDL transaction waits for the partitioned tables' locks before it gives
/// way with a lock conflict (which its job retries). Below PostgreSQL's `deadlock_timeout` (1 s
/// by default): in a lock cycle with a transaction that took the tables the other way round
/// (the interest run reads entries before it posts; a reader joining entries to journals), the
/// job gives way before the deadlock check could pick the other side; and requests queue
/// behind its lock request at most this long.
const HISTORY_DDL_LOCK_WAIT_MAX_MS: u64 = 500;

/// Readies a transaction for DDL on the history partitions. First the advisory lock: history
/// DDL transactions (`history-partitions`, `history-retention`, on any instance) run one at a
/// time, and the later one waits there holding nothing (for as long as the first takes: its
/// work is short and its own waits are capped). Then both partitioned tables, `journals`
/// before `entries` — the order every posting takes them in (its statement names them in that
/// order) — so DDL never holds one while a posting holds the other. ACCESS EXCLUSIVE because
/// creating or dropping a partition takes that on the parent anyway (taken up front, nothing
/// is upgraded later), and because it keeps postings out of DEFAULT while its rows move to
/// a new partition. `ONLY`: a posting reaches a partition through its parent's lock.
async fn lock_history_for_ddl(c: &mut PgConnection) -> Result<()> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(HISTORY_DDL_LOCK_KEY)
        .execute(&mut *c)
        .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "SET LOCAL lock_timeout = '{HISTORY_DDL_LOCK_WAIT_MAX_MS}ms';
         LOCK TABLE ONLY journals, ONLY entries IN ACCESS EXCLUSIVE MODE;"
    )))
    .execute(c)
    .await?;
    Ok(())
}

/// The partitioned tables (`journals`, `entries`, in that order) that have no partition for
/// `month` yet.
async fn missing_partitions(c: &mut PgConnection, month: BusinessMonth) -> Result<Vec<&'static str>> {
    let mut missing = Vec::new();
    for table in ["journals", "entries"] {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
            .bind(partition(table, month))
            .fetch_one(&mut *c)
            .await?;
        if !exists {
            missing.push(table);
        }
    }
    Ok(missing)
}

/// Makes `table`'s partition for `month`, under `lock_history_for_ddl`.
async fn make_partition(c: &mut PgConnection, table: &str, month: BusinessMonth) -> Result<()> {
    let (start, end) = (month.starts_at(), month.ends_at());
    let name = partition(table, month);
    let stray: bool = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT EXISTS (SELECT 1 FROM {table}_default WHERE occurred_at >= $1 AND occurred_at < $2)"
    )))
    .bind(DbTime(start))
    .bind(DbTime(end))
    .fetch_one(&mut *c)
    .await?;
    let bounds = format!("FROM ('{start}') TO ('{end}')");
    let ddl = if stray {
        // Rows landed in DEFAULT before this partition existed: move them, then attach.
        format!(
            "CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS);
             WITH moved AS (DELETE FROM {table}_default WHERE occurred_at >= '{start}' AND occurred_at < '{end}'
                            RETURNING *)
             INSERT INTO {name} SELECT * FROM moved;
             ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES {bounds};"
        )
    } else {
        format!("CREATE TABLE {name} PARTITION OF {table} FOR VALUES {bounds};")
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(ddl)).execute(c).await?;
    Ok(())
}

/// `StreamExt::next`, with only the `Stream` trait (already in the tree through sqlx).
mod futures_core_free {
    use futures_core::Stream;
    use std::future::poll_fn;
    use std::pin::Pin;

    pub async fn next<S: Stream + Unpin>(s: &mut S) -> Option<S::Item> {
        poll_fn(|cx| Pin::new(&mut *s).poll_next(cx)).await
    }
}
