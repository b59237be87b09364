//! Notifications: what users are told, written in the transaction of the change that causes it.

use crate::session::{Db, Session};
use crate::types::DbTime;
use crate::{Result, StoreError};
use jiff::Timestamp;
use minipay_core::UserId;
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: Uuid,
    pub user_id: UserId,
    pub kind: String,
    /// JSON object with the ids of the related objects.
    pub data: serde_json::Value,
    pub created_at: Timestamp,
}

impl Notification {
    pub fn new(user_id: UserId, kind: &str, data: serde_json::Value, at: Timestamp) -> Self {
        Self {
            id: Uuid::now_v7(),
            user_id,
            kind: kind.to_owned(),
            data,
            created_at: at,
        }
    }
}

#[derive(sqlx::FromRow)]
struct NotificationRow {
    id: Uuid,
    user_id: Uuid,
    kind: String,
    data: String,
    created_at: DbTime,
}

impl TryFrom<NotificationRow> for Notification {
    type Error = StoreError;
    fn try_from(r: NotificationRow) -> Result<Self> {
        Ok(Self {
            id: r.id,
            user_id: UserId::from_uuid(r.user_id),
            kind: r.kind,
            data: serde_json::from_str(&r.data).map_err(StoreError::corrupt)?,
            created_at: r.created_at.0,
        })
    }
}

impl Session {
    pub async fn insert_notifications(&mut self, notes: &[Notification]) -> Result<()> {
        self.assert_writable();
        if notes.is_empty() {
            return Ok(());
        }
        match self.db() {
            Db::Pg(c) => {
                let ids: Vec<Uuid> = notes.iter().map(|n| n.id).collect();
                let users: Vec<Uuid> = notes.iter().map(|n| n.user_id.as_uuid()).collect();
                let kinds: Vec<&str> = notes.iter().map(|n| n.kind.as_str()).collect();
                let data: Vec<String> = notes.iter().map(|n| n.data.to_string()).collect();
                let at: Vec<DbTime> = notes.iter().map(|n| DbTime(n.created_at)).collect();
                sqlx::query(
                    "INSERT INTO notifications (id, user_id, kind, data, created_at)
                     SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::timestamptz[])",
                )
                .bind(&ids)
                .bind(&users)
                .bind(&kinds)
                .bind(&data)
                .bind(&at)
                .execute(c)
                .await?;
            }
            Db::Sqlite(c) => {
                for n in notes {
                    sqlx::query(
                        "INSERT INTO notifications (id, user_id, kind, data, created_at) VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(n.id)
                    .bind(n.user_id.as_uuid())
                    .bind(&n.kind)
                    .bind(n.data.to_string())
                    .bind(DbTime(n.created_at))
                    .execute(&mut *c)
                    .await?;
                }
            }
        }
        Ok(())
    }

    /// A user's notifications, newest first, after the keyset cursor `(created_at, id)`.
    pub async fn notifications_of(
        &mut self,
        user: UserId,
        after: Option<(Timestamp, Uuid)>,
        limit: u32,
    ) -> Result<Vec<Notification>> {
        let (after_at, after_id) = after.map_or((DbTime(Timestamp::MAX), Uuid::max()), |(t, id)| (DbTime(t), id));
        let rows: Vec<NotificationRow> = on_db!(self, c => sqlx::query_as(
            "SELECT id, user_id, kind, data, created_at FROM notifications
             WHERE user_id = $1 AND (created_at, id) < ($2, $3)
             ORDER BY created_at DESC, id DESC LIMIT $4",
        )
        .bind(user.as_uuid())
        .bind(after_at)
        .bind(after_id)
        .bind(i64::from(limit))
        .fetch_all(c)
        .await)?;
        rows.into_iter().map(Notification::try_from).collect()
    }
}
