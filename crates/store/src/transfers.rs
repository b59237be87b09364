//! Transfers between users' main accounts.

use crate::session::{Db, Session};
use crate::types::DbTime;
use crate::{Result, StoreError};
use jiff::Timestamp;
use minipay_core::ledger::EntryKind;
use minipay_core::transfer::TransferStatus;
use minipay_core::{AccountId, Amount, ChargeId, JournalId, TransferId, UserId};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    pub id: TransferId,
    pub status: TransferStatus,
    pub amount: Amount,
    pub from_account_id: AccountId,
    pub to_account_id: AccountId,
    pub from_user_id: UserId,
    pub to_user_id: UserId,
    pub from_name: String,
    pub display_name: String,
    pub memo: Option<String>,
    pub auto_charged: i64,
    pub charge_id: Option<ChargeId>,
    pub journal_id: Option<JournalId>,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub resolved_at: Option<Timestamp>,
    /// `Transfer`, or `SettlementPayment` when it pays a share of a split bill.
    pub kind: EntryKind,
    /// When the receiver was reminded of a pending transfer (at most once).
    pub reminded_at: Option<Timestamp>,
}

/// A new transfer row; the same shape as a stored one.
pub type NewTransfer = Transfer;

/// Which side of a transfer the caller is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Incoming,
    Outgoing,
}

/// Position in a newest-first list: the last item's `(created_at, id)`.
pub type TransferCursor = (Timestamp, TransferId);

#[derive(sqlx::FromRow)]
struct TransferRow {
    id: Uuid,
    status: String,
    amount: i64,
    from_account_id: Uuid,
    to_account_id: Uuid,
    from_user_id: Uuid,
    to_user_id: Uuid,
    from_name: String,
    display_name: String,
    memo: Option<String>,
    auto_charged: i64,
    charge_id: Option<Uuid>,
    journal_id: Option<Uuid>,
    created_at: DbTime,
    expires_at: Option<DbTime>,
    resolved_at: Option<DbTime>,
    kind: String,
    reminded_at: Option<DbTime>,
}

impl TryFrom<TransferRow> for Transfer {
    type Error = StoreError;
    fn try_from(r: TransferRow) -> Result<Self> {
        Ok(Self {
            id: TransferId::from_uuid(r.id),
            status: TransferStatus::parse(&r.status).ok_or_else(|| StoreError::corrupt(&r.status))?,
            amount: Amount::parse(r.amount).map_err(StoreError::corrupt)?,
            from_account_id: AccountId::from_uuid(r.from_account_id),
            to_account_id: AccountId::from_uuid(r.to_account_id),
            from_user_id: UserId::from_uuid(r.from_user_id),
            to_user_id: UserId::from_uuid(r.to_user_id),
            from_name: r.from_name,
            display_name: r.display_name,
            memo: r.memo,
            auto_charged: r.auto_charged,
            charge_id: r.charge_id.map(ChargeId::from_uuid),
            journal_id: r.journal_id.map(JournalId::from_uuid),
            created_at: r.created_at.0,
            expires_at: r.expires_at.map(|t| t.0),
            resolved_at: r.resolved_at.map(|t| t.0),
            kind: EntryKind::parse(&r.kind).ok_or_else(|| StoreError::corrupt(&r.kind))?,
            reminded_at: r.reminded_at.map(|t| t.0),
        })
    }
}

macro_rules! select_transfers {
    ($rest:literal) => {
        concat!(
            "SELECT id, status, amount, from_account_id, to_account_id, from_user_id, to_user_id, from_name,
                    display_name, memo, auto_charged, charge_id, journal_id, created_at, expires_at, resolved_at,
                    kind, reminded_at
             FROM transfers ",
            $rest
        )
    };
}

impl Session {
    pub async fn insert_transfer(&mut self, t: &NewTransfer) -> Result<()> {
        self.insert_transfers(&[t]).await
    }

    /// Inserts new transfer rows; one statement on PostgreSQL.
    pub async fn insert_transfers(&mut self, transfers: &[&NewTransfer]) -> Result<()> {
        self.assert_writable();
        if transfers.is_empty() {
            return Ok(());
        }
        match self.db() {
            Db::Pg(c) => {
                let col = |f: fn(&NewTransfer) -> Uuid| transfers.iter().map(|t| f(t)).collect::<Vec<_>>();
                let opt = |f: fn(&NewTransfer) -> Option<Uuid>| transfers.iter().map(|t| f(t)).collect::<Vec<_>>();
                let time = |f: fn(&NewTransfer) -> Option<Timestamp>| {
                    transfers.iter().map(|t| f(t).map(DbTime)).collect::<Vec<_>>()
                };
                sqlx::query(
                    "INSERT INTO transfers (id, status, amount, from_account_id, to_account_id, from_user_id,
                                            to_user_id, from_name, display_name, memo, auto_charged, charge_id,
                                            journal_id, created_at, expires_at, resolved_at, kind)
                     SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::int8[], $4::uuid[], $5::uuid[], $6::uuid[],
                                          $7::uuid[], $8::text[], $9::text[], $10::text[], $11::int8[], $12::uuid[],
                                          $13::uuid[], $14::timestamptz[], $15::timestamptz[], $16::timestamptz[],
                                          $17::text[])",
                )
                .bind(col(|t| t.id.as_uuid()))
                .bind(transfers.iter().map(|t| t.status.as_str()).collect::<Vec<_>>())
                .bind(transfers.iter().map(|t| t.amount.won()).collect::<Vec<_>>())
                .bind(col(|t| t.from_account_id.as_uuid()))
                .bind(col(|t| t.to_account_id.as_uuid()))
                .bind(col(|t| t.from_user_id.as_uuid()))
                .bind(col(|t| t.to_user_id.as_uuid()))
                .bind(transfers.iter().map(|t| t.from_name.as_str()).collect::<Vec<_>>())
                .bind(transfers.iter().map(|t| t.display_name.as_str()).collect::<Vec<_>>())
                .bind(transfers.iter().map(|t| t.memo.as_deref()).collect::<Vec<_>>())
                .bind(transfers.iter().map(|t| t.auto_charged).collect::<Vec<_>>())
                .bind(opt(|t| t.charge_id.map(|c| c.as_uuid())))
                .bind(opt(|t| t.journal_id.map(|j| j.as_uuid())))
                .bind(time(|t| Some(t.created_at)))
                .bind(time(|t| t.expires_at))
                .bind(time(|t| t.resolved_at))
                .bind(transfers.iter().map(|t| t.kind.as_str()).collect::<Vec<_>>())
                .execute(c)
                .await?;
            }
            Db::Sqlite(c) => {
                for t in transfers {
                    sqlx::query(
                        "INSERT INTO transfers (id, status, amount, from_account_id, to_account_id, from_user_id,
                                                to_user_id, from_name, display_name, memo, auto_charged, charge_id,
                                                journal_id, created_at, expires_at, resolved_at, kind)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
                    )
                    .bind(t.id.as_uuid())
                    .bind(t.status.as_str())
                    .bind(t.amount.won())
                    .bind(t.from_account_id.as_uuid())
                    .bind(t.to_account_id.as_uuid())
                    .bind(t.from_user_id.as_uuid())
                    .bind(t.to_user_id.as_uuid())
                    .bind(&t.from_name)
                    .bind(&t.display_name)
                    .bind(t.memo.as_deref())
                    .bind(t.auto_charged)
                    .bind(t.charge_id.map(|c| c.as_uuid()))
                    .bind(t.journal_id.map(|j| j.as_uuid()))
                    .bind(DbTime(t.created_at))
                    .bind(t.expires_at.map(DbTime))
                    .bind(t.resolved_at.map(DbTime))
                    .bind(t.kind.as_str())
                    .execute(&mut *c)
                    .await?;
                }
            }
        }
        Ok(())
    }

    pub async fn transfer(&mut self, id: TransferId) -> Result<Option<Transfer>> {
        let row: Option<TransferRow> = on_db!(self, c => sqlx::query_as(select_transfers!("WHERE id = $1"))
            .bind(id.as_uuid())
            .fetch_optional(c)
            .await)?;
        row.map(Transfer::try_from).transpose()
    }

    /// A user's transfers, newest first, optionally one direction and one status, after the
    /// keyset cursor. Fetches `limit` rows.
    pub async fn transfers_of(
        &mut self,
        user: UserId,
        direction: Option<Direction>,
        status: Option<TransferStatus>,
        after: Option<TransferCursor>,
        limit: u32,
    ) -> Result<Vec<Transfer>> {
        // No cursor: start above every real row, so one statement (and one plan) serves all pages.
        let (after_at, after_id) = match after {
            Some((at, id)) => (DbTime(at), id.as_uuid()),
            None => (DbTime(Timestamp::MAX), Uuid::max()),
        };
        let outgoing = direction != Some(Direction::Incoming);
        let incoming = direction != Some(Direction::Outgoing);
        // Each side has its own (user, created_at, id) index; each branch reads at most
        // `limit` rows from its index (a row-value range scan) and the outer query merges them.
        let rows: Vec<TransferRow> = on_db!(self, c => sqlx::query_as(concat!(
            "SELECT * FROM (SELECT * FROM (",
            select_transfers!(
                "WHERE $2 AND from_user_id = $1 AND ($4 IS NULL OR status = $4) AND (created_at, id) < ($5, $6)
                 ORDER BY created_at DESC, id DESC LIMIT $7"
            ),
            ") AS o UNION ALL SELECT * FROM (",
            select_transfers!(
                "WHERE $3 AND to_user_id = $1 AND ($4 IS NULL OR status = $4) AND (created_at, id) < ($5, $6)
                 ORDER BY created_at DESC, id DESC LIMIT $7"
            ),
            ") AS i) AS t ORDER BY created_at DESC, id DESC LIMIT $7"
        ))
        .bind(user.as_uuid())
        .bind(outgoing)
        .bind(incoming)
        .bind(status.map(TransferStatus::as_str))
        .bind(after_at)
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(c)
        .await)?;
        rows.into_iter().map(Transfer::try_from).collect()
    }

    /// Moves a pending transfer to its final state, only if it is still pending (and, for
    /// accept and cancel, not yet due to expire). Returns whether this call made the change:
    /// exactly one of accept, cancel and expire wins.
    pub async fn resolve_pending_transfer(
        &mut self,
        id: TransferId,
        status: TransferStatus,
        journal_id: Option<JournalId>,
        at: Timestamp,
    ) -> Result<bool> {
        self.assert_writable();
        assert!(
            TransferStatus::Pending.can_become(status),
            "not a resolution: {status:?}"
        );
        // Accept and cancel must happen before the expiry; the expiry at or after it.
        let sql = if status == TransferStatus::Expired {
            "UPDATE transfers SET status = $2, journal_id = $3, resolved_at = $4
             WHERE id = $1 AND status = 'pending' AND expires_at <= $4"
        } else {
            "UPDATE transfers SET status = $2, journal_id = $3, resolved_at = $4
             WHERE id = $1 AND status = 'pending' AND expires_at > $4"
        };
        let n = on_db!(self, c => sqlx::query(sql)
            .bind(id.as_uuid())
            .bind(status.as_str())
            .bind(journal_id.map(|j| j.as_uuid()))
            .bind(DbTime(at))
            .execute(c)
            .await
            .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Pending transfers due to expire at `at`, in (expires_at, id) order after the cursor.
    pub async fn expiring_transfers(
        &mut self,
        at: Timestamp,
        after: Option<(Timestamp, TransferId)>,
        limit: u32,
    ) -> Result<Vec<Transfer>> {
        let (after_at, after_id) = match after {
            Some((t, id)) => (DbTime(t), id.as_uuid()),
            None => (DbTime(Timestamp::UNIX_EPOCH), Uuid::nil()),
        };
        let rows: Vec<TransferRow> = on_db!(self, c => sqlx::query_as(select_transfers!(
            "WHERE status = 'pending' AND expires_at <= $1 AND (expires_at, id) > ($2, $3)
             ORDER BY expires_at, id LIMIT $4"
        ))
        .bind(DbTime(at))
        .bind(after_at)
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(c)
        .await)?;
        rows.into_iter().map(Transfer::try_from).collect()
    }

    /// Marks up to `limit` pending transfers with 24 hours or less left (expiring after `at`
    /// but at or before `due_until`) as reminded at `at`, each at most once ever, and returns
    /// them (for their notifications).
    pub async fn mark_reminded(&mut self, due_until: Timestamp, at: Timestamp, limit: u32) -> Result<Vec<Transfer>> {
        self.assert_writable();
        // The outer conditions are re-checked under each row's lock, so two instances can never
        // both remind a transfer. On PostgreSQL the rows are taken in id order, skipping any that
        // the expiry job has locked (so the two jobs never wait on each other).
        let pick = match self.kind() {
            crate::BackendKind::Postgres => "ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED",
            crate::BackendKind::Sqlite => "ORDER BY id LIMIT $3",
        };
        let sql = sqlx::AssertSqlSafe(format!(
            "UPDATE transfers SET reminded_at = $2
             WHERE id IN (SELECT id FROM transfers
                          WHERE status = 'pending' AND reminded_at IS NULL AND expires_at > $2 AND expires_at <= $1
                          {pick})
               AND status = 'pending' AND reminded_at IS NULL AND expires_at > $2
             RETURNING id, status, amount, from_account_id, to_account_id, from_user_id, to_user_id, from_name,
                       display_name, memo, auto_charged, charge_id, journal_id, created_at, expires_at, resolved_at,
                       kind, reminded_at"
        ));
        let rows: Vec<TransferRow> = on_db!(self, c => sqlx::query_as(sql)
            .bind(DbTime(due_until))
            .bind(DbTime(at))
            .bind(i64::from(limit))
            .fetch_all(c)
            .await)?;
        rows.into_iter().map(Transfer::try_from).collect()
    }

    /// Expires these pending transfers (those still pending and due at `at`) and returns the
    /// ones this call expired: exactly once each, whoever else is trying.
    pub async fn expire_pending_transfers(&mut self, ids: &[TransferId], at: Timestamp) -> Result<Vec<Transfer>> {
        self.assert_writable();
        let rows: Vec<TransferRow> = match self.db() {
            crate::session::Db::Pg(c) => {
                let ids: Vec<Uuid> = ids.iter().map(|t| t.as_uuid()).collect();
                sqlx::query_as(
                    "UPDATE transfers SET status = 'expired', resolved_at = $2
                     WHERE id = ANY($1) AND status = 'pending' AND expires_at <= $2
                     RETURNING id, status, amount, from_account_id, to_account_id, from_user_id, to_user_id, from_name,
                               display_name, memo, auto_charged, charge_id, journal_id, created_at, expires_at,
                               resolved_at, kind, reminded_at",
                )
                .bind(&ids)
                .bind(DbTime(at))
                .fetch_all(c)
                .await?
            }
            crate::session::Db::Sqlite(c) => {
                let mut rows = Vec::with_capacity(ids.len());
                for id in ids {
                    let row: Option<TransferRow> = sqlx::query_as(
                        "UPDATE transfers SET status = 'expired', resolved_at = $2
                         WHERE id = $1 AND status = 'pending' AND expires_at <= $2
                         RETURNING id, status, amount, from_account_id, to_account_id, from_user_id, to_user_id,
                                   from_name, display_name, memo, auto_charged, charge_id, journal_id, created_at,
                                   expires_at, resolved_at, kind, reminded_at",
                    )
                    .bind(id.as_uuid())
                    .bind(DbTime(at))
                    .fetch_optional(&mut *c)
                    .await?;
                    rows.extend(row);
                }
                rows
            }
        };
        rows.into_iter().map(Transfer::try_from).collect()
    }
}
