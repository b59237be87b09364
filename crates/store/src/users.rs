//! Users: signup (with the main account), lookup by id or email, profile changes.

use crate::session::Session;
use crate::types::DbTime;
use crate::{Result, StoreError};
use jiff::Timestamp;
use minipay_core::transfer::TransferMode;
use minipay_core::{AccountId, UserId};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct User {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub password_hash: String,
    pub transfer_mode: TransferMode,
    pub main_account_id: AccountId,
    pub created_at: Timestamp,
}

pub struct NewUser<'a> {
    pub id: UserId,
    pub email: &'a str,
    pub name: &'a str,
    pub password_hash: &'a str,
    pub main_account_id: AccountId,
    pub at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct UserRow {
    id: Uuid,
    email: String,
    name: String,
    password_hash: String,
    transfer_mode: String,
    main_account_id: Uuid,
    created_at: DbTime,
}

impl TryFrom<UserRow> for User {
    type Error = StoreError;
    fn try_from(r: UserRow) -> Result<Self> {
        Ok(Self {
            id: UserId::from_uuid(r.id),
            email: r.email,
            name: r.name,
            password_hash: r.password_hash,
            transfer_mode: TransferMode::parse(&r.transfer_mode)
                .ok_or_else(|| StoreError::corrupt(&r.transfer_mode))?,
            main_account_id: AccountId::from_uuid(r.main_account_id),
            created_at: r.created_at.0,
        })
    }
}

/// `SELECT ... FROM users` followed by the given clause, as a `&'static str`.
macro_rules! select_users {
    ($rest:literal) => {
        concat!(
            "SELECT id, email, name, password_hash, transfer_mode, main_account_id, created_at FROM users ",
            $rest
        )
    };
}

impl Session {
    /// Creates the user and their main account in this transaction.
    /// A duplicate email fails with `StoreError::Unique`.
    pub async fn insert_user(&mut self, u: &NewUser<'_>) -> Result<()> {
        self.assert_writable();
        on_db!(self, c => {
            sqlx::query(
                "INSERT INTO users (id, email, name, password_hash, transfer_mode, main_account_id, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, 'immediate', $5, $6, $6)",
            )
            .bind(u.id.as_uuid())
            .bind(u.email)
            .bind(u.name)
            .bind(u.password_hash)
            .bind(u.main_account_id.as_uuid())
            .bind(DbTime(u.at))
            .execute(&mut *c)
            .await?;
            sqlx::query("INSERT INTO accounts (id, owner_user_id, kind, created_at) VALUES ($1, $2, 'main', $3)")
                .bind(u.main_account_id.as_uuid())
                .bind(u.id.as_uuid())
                .bind(DbTime(u.at))
                .execute(&mut *c)
                .await
                .map(|r| r.rows_affected())
        })?;
        Ok(())
    }

    pub async fn user(&mut self, id: UserId) -> Result<Option<User>> {
        let sql = select_users!("WHERE id = $1");
        let row: Option<UserRow> = on_db!(self, c => sqlx::query_as(sql).bind(id.as_uuid()).fetch_optional(c).await)?;
        row.map(User::try_from).transpose()
    }

    /// The users with these ids that exist, in no particular order; one query on PostgreSQL.
    pub async fn users_with_ids(&mut self, ids: &[UserId]) -> Result<Vec<User>> {
        let ids: Vec<Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
        let rows: Vec<UserRow> = self.rows_with_ids(select_users!(""), "", &ids).await?;
        rows.into_iter().map(User::try_from).collect()
    }

    pub async fn user_by_email(&mut self, email: &str) -> Result<Option<User>> {
        let sql = select_users!("WHERE email = $1");
        let row: Option<UserRow> = on_db!(self, c => sqlx::query_as(sql).bind(email).fetch_optional(c).await)?;
        row.map(User::try_from).transpose()
    }

    /// Changes the name and/or transfer mode; `None` leaves a field as it is.
    pub async fn update_user(
        &mut self,
        id: UserId,
        name: Option<&str>,
        mode: Option<TransferMode>,
        at: Timestamp,
    ) -> Result<()> {
        self.assert_writable();
        on_db!(self, c => sqlx::query(
            "UPDATE users SET name = COALESCE($2, name), transfer_mode = COALESCE($3, transfer_mode), updated_at = $4
             WHERE id = $1",
        )
        .bind(id.as_uuid())
        .bind(name)
        .bind(mode.map(TransferMode::as_str))
        .bind(DbTime(at))
        .execute(c)
        .await.map(|r| r.rows_affected()))?;
        Ok(())
    }
}
