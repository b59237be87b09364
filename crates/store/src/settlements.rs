//! Split bills: a settlement and its participants' shares.

use crate::session::Session;
use crate::types::DbTime;
use crate::{Result, StoreError};
use jiff::Timestamp;
use minipay_core::split::SplitMethod;
use minipay_core::{TransferId, UserId};
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareStatus {
    Requested,
    Paid,
}

impl ShareStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::Paid => "paid",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "requested" => Some(Self::Requested),
            "paid" => Some(Self::Paid),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Share {
    pub user_id: UserId,
    pub amount: i64,
    pub status: ShareStatus,
    pub transfer_id: Option<TransferId>,
    pub paid_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub id: Uuid,
    pub requester_user_id: UserId,
    pub total_amount: i64,
    pub method: SplitMethod,
    pub memo: Option<String>,
    /// `true` once every share is paid.
    pub completed: bool,
    pub created_at: Timestamp,
    pub completed_at: Option<Timestamp>,
    /// In the order the requester gave the participants.
    pub shares: Vec<Share>,
}

#[derive(sqlx::FromRow)]
struct SettlementRow {
    id: Uuid,
    requester_user_id: Uuid,
    total_amount: i64,
    method: String,
    memo: Option<String>,
    status: String,
    created_at: DbTime,
    completed_at: Option<DbTime>,
}

#[derive(sqlx::FromRow)]
struct ShareRow {
    user_id: Uuid,
    amount: i64,
    status: String,
    transfer_id: Option<Uuid>,
    paid_at: Option<DbTime>,
}

impl TryFrom<ShareRow> for Share {
    type Error = StoreError;
    fn try_from(r: ShareRow) -> Result<Self> {
        Ok(Self {
            user_id: UserId::from_uuid(r.user_id),
            amount: r.amount,
            status: ShareStatus::parse(&r.status).ok_or_else(|| StoreError::corrupt(&r.status))?,
            transfer_id: r.transfer_id.map(TransferId::from_uuid),
            paid_at: r.paid_at.map(|t| t.0),
        })
    }
}

fn assemble(row: SettlementRow, shares: Vec<Share>) -> Result<Settlement> {
    Ok(Settlement {
        id: row.id,
        requester_user_id: UserId::from_uuid(row.requester_user_id),
        total_amount: row.total_amount,
        method: SplitMethod::parse(&row.method).ok_or_else(|| StoreError::corrupt(&row.method))?,
        memo: row.memo,
        completed: row.status == "completed",
        created_at: row.created_at.0,
        completed_at: row.completed_at.map(|t| t.0),
        shares,
    })
}

const SETTLEMENT_COLUMNS: &str = "id, requester_user_id, total_amount, method, memo, status, created_at, completed_at";

/// Which settlements a listing returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettlementRole {
    Requester,
    Participant,
}

impl Session {
    /// Writes a new settlement with its shares (in the given order).
    pub async fn insert_settlement(&mut self, s: &Settlement) -> Result<()> {
        self.assert_writable();
        let total: i64 = s.shares.iter().map(|sh| sh.amount).sum();
        assert_eq!(total, s.total_amount, "shares must sum to the total");
        on_db!(self, c => {
            sqlx::query(
                "INSERT INTO settlements (id, requester_user_id, total_amount, method, memo, status, created_at, completed_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(s.id)
            .bind(s.requester_user_id.as_uuid())
            .bind(s.total_amount)
            .bind(s.method.as_str())
            .bind(s.memo.as_deref())
            .bind(if s.completed { "completed" } else { "open" })
            .bind(DbTime(s.created_at))
            .bind(s.completed_at.map(DbTime))
            .execute(&mut *c)
            .await?;
            for (position, sh) in s.shares.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO settlement_shares (settlement_id, user_id, position, amount, status, transfer_id, paid_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(s.id)
                .bind(sh.user_id.as_uuid())
                .bind(i64::try_from(position).expect("at most 100 participants"))
                .bind(sh.amount)
                .bind(sh.status.as_str())
                .bind(sh.transfer_id.map(|t| t.as_uuid()))
                .bind(sh.paid_at.map(DbTime))
                .execute(&mut *c)
                .await?;
            }
            Ok::<_, sqlx::Error>(())
        })?;
        Ok(())
    }

    pub async fn settlement(&mut self, id: Uuid) -> Result<Option<Settlement>> {
        let sql = sqlx::AssertSqlSafe(format!("SELECT {SETTLEMENT_COLUMNS} FROM settlements WHERE id = $1"));
        let row: Option<SettlementRow> = on_db!(self, c => sqlx::query_as(sql).bind(id).fetch_optional(c).await)?;
        let Some(row) = row else { return Ok(None) };
        let shares = self.shares_of(id).await?;
        assemble(row, shares).map(Some)
    }

    /// A user's settlements (as requester or as participant), newest first, after the cursor.
    pub async fn settlements_of(
        &mut self,
        user: UserId,
        role: SettlementRole,
        after: Option<(Timestamp, Uuid)>,
        limit: u32,
    ) -> Result<Vec<Settlement>> {
        let (after_at, after_id) = after.map_or((DbTime(Timestamp::MAX), Uuid::max()), |(t, id)| (DbTime(t), id));
        let filter = match role {
            SettlementRole::Requester => "requester_user_id = $1",
            SettlementRole::Participant => "id IN (SELECT settlement_id FROM settlement_shares WHERE user_id = $1)",
        };
        let sql = sqlx::AssertSqlSafe(format!(
            "SELECT {SETTLEMENT_COLUMNS} FROM settlements WHERE {filter} AND (created_at, id) < ($2, $3)
             ORDER BY created_at DESC, id DESC LIMIT $4"
        ));
        let rows: Vec<SettlementRow> = on_db!(self, c => sqlx::query_as(sql)
            .bind(user.as_uuid())
            .bind(after_at)
            .bind(after_id)
            .bind(i64::from(limit))
            .fetch_all(c)
            .await)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id = row.id;
            let shares = self.shares_of(id).await?;
            out.push(assemble(row, shares)?);
        }
        Ok(out)
    }

    /// A settlement's shares, in the order the requester gave the participants.
    async fn shares_of(&mut self, settlement: Uuid) -> Result<Vec<Share>> {
        let rows: Vec<ShareRow> = on_db!(self, c => sqlx::query_as(
            "SELECT user_id, amount, status, transfer_id, paid_at FROM settlement_shares
             WHERE settlement_id = $1 ORDER BY position",
        )
        .bind(settlement)
        .fetch_all(c)
        .await)?;
        rows.into_iter().map(Share::try_from).collect()
    }

    /// Marks a participant's share paid by `transfer`, only if it is still requested. Returns
    /// whether this call did it (paying twice is refused).
    pub async fn mark_share_paid(
        &mut self,
        settlement: Uuid,
        user: UserId,
        transfer: Option<TransferId>,
        at: Timestamp,
    ) -> Result<bool> {
        self.assert_writable();
        let n = on_db!(self, c => sqlx::query(
            "UPDATE settlement_shares SET status = 'paid', transfer_id = $3, paid_at = $4
             WHERE settlement_id = $1 AND user_id = $2 AND status = 'requested'",
        )
        .bind(settlement)
        .bind(user.as_uuid())
        .bind(transfer.map(|t| t.as_uuid()))
        .bind(DbTime(at))
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }

    /// Completes the settlement if no share is left to pay.
    pub async fn complete_settlement_if_paid(&mut self, settlement: Uuid, at: Timestamp) -> Result<bool> {
        self.assert_writable();
        let n = on_db!(self, c => sqlx::query(
            "UPDATE settlements SET status = 'completed', completed_at = $2
             WHERE id = $1 AND status = 'open'
               AND NOT EXISTS (SELECT 1 FROM settlement_shares WHERE settlement_id = $1 AND status = 'requested')",
        )
        .bind(settlement)
        .bind(DbTime(at))
        .execute(c)
        .await
        .map(|r| r.rows_affected()))?;
        Ok(n == 1)
    }
}
