//! Ledger accounts: reading them, opening savings accounts, locking them in id order and
//! writing applied journals (balances, journals, entries) back.

use crate::savings::InterestPaid;
use crate::session::{Db, Session};
use crate::types::{DbDate, DbTime};
use crate::{Result, StoreError};
use jiff::Timestamp;
use minipay_core::ledger::{
    AccountBalance, AccountKind, JournalDraft, LockedAccounts, PostedJournal, SavingsProduct, SystemAccount,
};
use minipay_core::{AccountId, BusinessDate, JournalId, UserId};
use uuid::Uuid;

/// A user's account as shown to them (`balance` is the posted balance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    pub owner: Option<UserId>,
    pub kind: AccountKind,
    pub product: Option<SavingsProduct>,
    pub daily_amount: Option<i64>,
    pub posted: i64,
    pub pending_out: i64,
    /// When the latest entry on this account happened.
    pub last_entry_at: Option<Timestamp>,
    pub created_at: Timestamp,
}

impl Account {
    pub fn available(&self) -> i64 {
        self.posted - self.pending_out
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct AccountRow {
    id: Uuid,
    owner_user_id: Option<Uuid>,
    kind: String,
    product: Option<String>,
    daily_amount: Option<i64>,
    posted: i64,
    pending_out: i64,
    last_entry_at: Option<DbTime>,
    created_at: DbTime,
}

impl TryFrom<AccountRow> for Account {
    type Error = StoreError;
    fn try_from(r: AccountRow) -> Result<Self> {
        let product = match r.product {
            Some(p) => Some(SavingsProduct::parse(&p).ok_or_else(|| StoreError::corrupt(&p))?),
            None => None,
        };
        Ok(Self {
            id: AccountId::from_uuid(r.id),
            owner: r.owner_user_id.map(UserId::from_uuid),
            kind: AccountKind::parse(&r.kind).ok_or_else(|| StoreError::corrupt(&r.kind))?,
            product,
            daily_amount: r.daily_amount,
            posted: r.posted,
            pending_out: r.pending_out,
            last_entry_at: r.last_entry_at.map(|t| t.0),
            created_at: r.created_at.0,
        })
    }
}

impl From<&Account> for AccountBalance {
    fn from(a: &Account) -> Self {
        AccountBalance {
            id: a.id,
            owner: a.owner,
            kind: a.kind,
            posted: a.posted,
            pending_out: a.pending_out,
            last_entry_at: a.last_entry_at,
        }
    }
}

/// System accounts have fixed ids below every UUIDv7 (see `SystemAccount::id`).
fn is_system_account(id: Uuid) -> bool {
    SystemAccount::ALL.iter().any(|s| s.id().as_uuid() == id)
}

macro_rules! select_accounts {
    ($rest:literal) => {
        concat!(
            "SELECT id, owner_user_id, kind, product, daily_amount, posted, pending_out, last_entry_at, created_at FROM accounts ",
            $rest
        )
    };
}

/// `SELECT <account columns> FROM accounts`, for queries built elsewhere in the crate.
pub(crate) fn select_accounts_sql() -> &'static str {
    select_accounts!("")
}

impl Session {
    pub async fn account(&mut self, id: AccountId) -> Result<Option<Account>> {
        let row: Option<AccountRow> = on_db!(self, c => sqlx::query_as(select_accounts!("WHERE id = $1"))
            .bind(id.as_uuid())
            .fetch_optional(c)
            .await)?;
        row.map(Account::try_from).transpose()
    }

    /// The user's accounts, main first, then savings in the order they were opened.
    pub async fn accounts_of(&mut self, owner: UserId) -> Result<Vec<Account>> {
        let rows: Vec<AccountRow> = on_db!(self, c => sqlx::query_as(select_accounts!(
            "WHERE owner_user_id = $1 ORDER BY CASE kind WHEN 'main' THEN 0 ELSE 1 END, created_at, id"
        ))
        .bind(owner.as_uuid())
        .fetch_all(c)
        .await)?;
        rows.into_iter().map(Account::try_from).collect()
    }

    /// Opens a savings account. Interest counts from the day after opening: it is marked paid
    /// through the opening business date.
    pub async fn insert_savings_account(
        &mut self,
        id: AccountId,
        owner: UserId,
        product: SavingsProduct,
        daily_amount: Option<i64>,
        at: Timestamp,
    ) -> Result<()> {
        self.assert_writable();
        on_db!(self, c => sqlx::query(
            "INSERT INTO accounts (id, owner_user_id, kind, product, daily_amount, created_at, interest_paid_through)
             VALUES ($1, $2, 'savings', $3, $4, $5, $6)",
        )
        .bind(id.as_uuid())
        .bind(owner.as_uuid())
        .bind(product.as_str())
        .bind(daily_amount)
        .bind(DbTime(at))
        .bind(DbDate(BusinessDate::containing(at).date()))
        .execute(c)
        .await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Locks the given accounts for the rest of the transaction and returns their balances as
    /// of the lock. Unknown ids are simply absent from the result.
    ///
    /// Every lock in the system is taken here, in one total order — users' accounts by
    /// ascending id, then system accounts by ascending id — so two transactions touching the
    /// same accounts can never deadlock. System accounts (touched by every charge) come last
    /// so that their lock is held for the shortest time.
    pub async fn lock_accounts(&mut self, ids: impl IntoIterator<Item = AccountId>) -> Result<LockedAccounts> {
        self.assert_writable();
        let mut ids: Vec<Uuid> = ids.into_iter().map(|id| id.as_uuid()).collect();
        ids.sort_by_key(|id| (is_system_account(*id), *id));
        ids.dedup();
        let rows: Vec<AccountRow> = match self.db() {
            // FOR NO KEY UPDATE: excludes other writers of these rows, but not the key-share
            // locks that foreign-key checks take. The lock is taken row by row in ORDER BY order.
            Db::Pg(c) => {
                sqlx::query_as(select_accounts!(
                    "WHERE id = ANY($1) ORDER BY kind = 'system', id FOR NO KEY UPDATE"
                ))
                .bind(&ids)
                .fetch_all(c)
                .await?
            }
            // SQLite: BEGIN IMMEDIATE already holds the database's single write lock.
            Db::Sqlite(c) => {
                let mut rows = Vec::with_capacity(ids.len());
                for id in &ids {
                    let row = sqlx::query_as(select_accounts!("WHERE id = $1"))
                        .bind(id)
                        .fetch_optional(&mut *c)
                        .await?;
                    rows.extend(row);
                }
                rows
            }
        };
        let accounts: Vec<Account> = rows.into_iter().map(Account::try_from).collect::<Result<_>>()?;
        Ok(LockedAccounts::new(accounts.iter().map(AccountBalance::from)))
    }

    /// Writes back what was applied under the locks: the changed balances (asserting each
    /// row still holds the value read under the lock), the journals and their entries.
    pub async fn write_postings(&mut self, locked: &LockedAccounts, journals: &[PostedJournal]) -> Result<()> {
        self.write_rows(locked, journals, None).await
    }

    /// Posts journals that cannot overdraw an account (the platform's own movements, money
    /// into a balance) under the locks of the accounts they touch, and writes them; none taken
    /// when there is nothing to post. A journal the locked balances refuse is a bug: `Corrupt`.
    pub async fn post_journals(&mut self, journals: &[&JournalDraft], now: Timestamp) -> Result<()> {
        if journals.is_empty() {
            return Ok(());
        }
        let mut locked = self
            .lock_accounts(journals.iter().flat_map(|j| j.accounts().collect::<Vec<_>>()))
            .await?;
        let posted = journals
            .iter()
            .map(|j| {
                locked
                    .post(j, JournalId::new(), now)
                    .map_err(|e| StoreError::Corrupt(format!("posting a {} journal: {e}", j.kind().as_str())))
            })
            .collect::<Result<Vec<_>>>()?;
        self.write_postings(&locked, &posted).await
    }

    /// Like `write_postings`, and in the same row writes records interest paid through `date`
    /// on these savings accounts (paid or not): one UPDATE per batch instead of two.
    pub async fn write_interest_postings(
        &mut self,
        locked: &LockedAccounts,
        journals: &[PostedJournal],
        date: BusinessDate,
        paid: &[InterestPaid],
    ) -> Result<()> {
        self.write_rows(locked, journals, Some((date, paid))).await
    }

    async fn write_rows(
        &mut self,
        locked: &LockedAccounts,
        journals: &[PostedJournal],
        interest: Option<(BusinessDate, &[InterestPaid])>,
    ) -> Result<()> {
        self.assert_writable();
        let rows = RowWrites::new(locked, interest)?;
        match self.db() {
            Db::Pg(c) => {
                let updated = write_rows_pg(c, &rows, journals).await?;
                if updated != rows.ids.len() as u64 {
                    return Err(StoreError::LostUpdate(format!(
                        "{updated} of {} rows matched",
                        rows.ids.len()
                    )));
                }
                Ok(())
            }
            Db::Sqlite(c) => {
                for i in 0..rows.ids.len() {
                    let updated = sqlx::query(
                        "UPDATE accounts SET posted = $2, pending_out = $3, last_entry_at = $6,
                                interest_carry = COALESCE($7, interest_carry),
                                interest_paid_through = COALESCE($8, interest_paid_through)
                         WHERE id = $1 AND posted = $4 AND pending_out = $5",
                    )
                    .bind(rows.ids[i])
                    .bind(rows.posted[i])
                    .bind(rows.pending[i])
                    .bind(rows.old_posted[i])
                    .bind(rows.old_pending[i])
                    .bind(rows.last_entry[i])
                    .bind(rows.carry[i])
                    .bind(rows.paid_through[i])
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                    if updated != 1 {
                        return Err(StoreError::LostUpdate(rows.ids[i].to_string()));
                    }
                }
                insert_journals_sqlite(c, journals).await
            }
        }
    }
}

/// The account rows a write touches, column by column (the shape `UNNEST` takes): every
/// changed balance, plus every account whose interest state is recorded.
struct RowWrites {
    ids: Vec<Uuid>,
    old_posted: Vec<i64>,
    old_pending: Vec<i64>,
    posted: Vec<i64>,
    pending: Vec<i64>,
    last_entry: Vec<Option<DbTime>>,
    carry: Vec<Option<i64>>,
    paid_through: Vec<Option<DbDate>>,
}

impl RowWrites {
    fn new(locked: &LockedAccounts, interest: Option<(BusinessDate, &[InterestPaid])>) -> Result<Self> {
        let mut rows = Self {
            ids: Vec::new(),
            old_posted: Vec::new(),
            old_pending: Vec::new(),
            posted: Vec::new(),
            pending: Vec::new(),
            last_entry: Vec::new(),
            carry: Vec::new(),
            paid_through: Vec::new(),
        };
        let paid: std::collections::HashMap<AccountId, &InterestPaid> = interest
            .map(|(_, p)| p.iter().map(|x| (x.account_id, x)).collect())
            .unwrap_or_default();
        let changed: std::collections::HashSet<AccountId> = locked.changes().iter().map(|c| c.after.id).collect();
        let mut push = |before: AccountBalance, after: AccountBalance| {
            let state = paid.get(&after.id);
            rows.ids.push(after.id.as_uuid());
            rows.old_posted.push(before.posted);
            rows.old_pending.push(before.pending_out);
            rows.posted.push(after.posted);
            rows.pending.push(after.pending_out);
            rows.last_entry.push(after.last_entry_at.map(DbTime));
            rows.carry.push(state.map(|s| s.carry));
            rows.paid_through
                .push(state.and(interest).map(|(date, _)| DbDate(date.date())));
        };
        for ch in locked.changes() {
            push(ch.before, ch.after);
        }
        for id in paid.keys().filter(|id| !changed.contains(id)) {
            let now = *locked
                .get(*id)
                .ok_or_else(|| StoreError::corrupt(format!("account {id} was not locked")))?;
            push(now, now);
        }
        Ok(rows)
    }
}

/// The balances, journals and entries of a posting in one statement (one round trip while the
/// accounts are locked): the accounts `UPDATE` guarded by the old values and filtered by
/// primary key, and the two `INSERT`s, as data-modifying CTEs. Returns how many account rows
/// the guard let through.
async fn write_rows_pg(c: &mut sqlx::PgConnection, r: &RowWrites, journals: &[PostedJournal]) -> Result<u64> {
    let ids: Vec<Uuid> = journals.iter().map(|j| j.id.as_uuid()).collect();
    let kinds: Vec<&str> = journals.iter().map(|j| j.kind.as_str()).collect();
    let memos: Vec<Option<&str>> = journals.iter().map(|j| j.memo.as_deref()).collect();
    let ats: Vec<DbTime> = journals.iter().map(|j| DbTime(j.occurred_at)).collect();
    let entries = || journals.iter().flat_map(|j| j.entries.iter().map(move |e| (j, e)));
    let e_ids: Vec<Uuid> = entries().map(|(_, e)| e.id.as_uuid()).collect();
    let e_journal: Vec<Uuid> = entries().map(|(j, _)| j.id.as_uuid()).collect();
    let e_account: Vec<Uuid> = entries().map(|(_, e)| e.account_id.as_uuid()).collect();
    let e_owner: Vec<Option<Uuid>> = entries().map(|(_, e)| e.owner.map(|o| o.as_uuid())).collect();
    let e_kind: Vec<&str> = entries().map(|(j, _)| j.kind.as_str()).collect();
    let e_amount: Vec<i64> = entries().map(|(_, e)| e.delta).collect();
    let e_after: Vec<i64> = entries().map(|(_, e)| e.balance_after).collect();
    let e_cp_name: Vec<&str> = entries().map(|(_, e)| e.counterparty.name.as_str()).collect();
    let e_cp_user: Vec<Option<Uuid>> = entries()
        .map(|(_, e)| e.counterparty.user_id.map(|u| u.as_uuid()))
        .collect();
    let e_cp_acct: Vec<Option<Uuid>> = entries()
        .map(|(_, e)| e.counterparty.account_id.map(|a| a.as_uuid()))
        .collect();
    let e_memo: Vec<Option<&str>> = entries().map(|(j, _)| j.memo.as_deref()).collect();
    let e_at: Vec<DbTime> = entries().map(|(j, _)| DbTime(j.occurred_at)).collect();
    // Every part runs to completion whether or not the final SELECT reads it (PostgreSQL's
    // rule for data-modifying WITH), all against the same snapshot; none reads another's rows.
    let (updated,): (i64,) = sqlx::query_as(
        "WITH updated AS (
             UPDATE accounts AS a
                SET posted = v.posted, pending_out = v.pending_out, last_entry_at = v.last_entry_at,
                    interest_carry = COALESCE(v.carry, a.interest_carry),
                    interest_paid_through = COALESCE(v.paid_through, a.interest_paid_through)
               FROM UNNEST($1::uuid[], $2::int8[], $3::int8[], $4::int8[], $5::int8[], $6::timestamptz[],
                           $7::int8[], $8::date[])
                    AS v(id, old_posted, old_pending, posted, pending_out, last_entry_at, carry, paid_through)
              WHERE a.id = v.id AND a.posted = v.old_posted AND a.pending_out = v.old_pending
                -- Lets the planner find the rows by primary key: joined on v alone it may
                -- scan the table, which grows with every version a hot account leaves.
                AND a.id = ANY($1::uuid[])
             RETURNING 1
         ), new_journals AS (
             INSERT INTO journals (id, kind, memo, occurred_at)
             SELECT * FROM UNNEST($9::uuid[], $10::text[], $11::text[], $12::timestamptz[])
         ), new_entries AS (
             INSERT INTO entries (id, journal_id, account_id, owner_user_id, kind, amount, balance_after,
                                  counterparty_name, counterparty_user_id, counterparty_account_id, memo,
                                  occurred_at)
             SELECT * FROM UNNEST($13::uuid[], $14::uuid[], $15::uuid[], $16::uuid[], $17::text[], $18::int8[],
                                  $19::int8[], $20::text[], $21::uuid[], $22::uuid[], $23::text[],
                                  $24::timestamptz[])
         )
         SELECT COUNT(*) FROM updated",
    )
    .bind(&r.ids)
    .bind(&r.old_posted)
    .bind(&r.old_pending)
    .bind(&r.posted)
    .bind(&r.pending)
    .bind(&r.last_entry)
    .bind(&r.carry)
    .bind(&r.paid_through)
    .bind(&ids)
    .bind(&kinds)
    .bind(&memos)
    .bind(&ats)
    .bind(&e_ids)
    .bind(&e_journal)
    .bind(&e_account)
    .bind(&e_owner)
    .bind(&e_kind)
    .bind(&e_amount)
    .bind(&e_after)
    .bind(&e_cp_name)
    .bind(&e_cp_user)
    .bind(&e_cp_acct)
    .bind(&e_memo)
    .bind(&e_at)
    .fetch_one(c)
    .await?;
    Ok(updated as u64)
}

async fn insert_journals_sqlite(c: &mut sqlx::SqliteConnection, journals: &[PostedJournal]) -> Result<()> {
    for j in journals {
        sqlx::query("INSERT INTO journals (id, kind, memo, occurred_at) VALUES ($1, $2, $3, $4)")
            .bind(j.id.as_uuid())
            .bind(j.kind.as_str())
            .bind(j.memo.as_deref())
            .bind(DbTime(j.occurred_at))
            .execute(&mut *c)
            .await?;
        for e in &j.entries {
            sqlx::query(
                "INSERT INTO entries (id, journal_id, account_id, owner_user_id, kind, amount, balance_after,
                                      counterparty_name, counterparty_user_id, counterparty_account_id, memo, occurred_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(e.id.as_uuid())
            .bind(j.id.as_uuid())
            .bind(e.account_id.as_uuid())
            .bind(e.owner.map(|o| o.as_uuid()))
            .bind(j.kind.as_str())
            .bind(e.delta)
            .bind(e.balance_after)
            .bind(&e.counterparty.name)
            .bind(e.counterparty.user_id.map(|u| u.as_uuid()))
            .bind(e.counterparty.account_id.map(|a| a.as_uuid()))
            .bind(j.memo.as_deref())
            .bind(DbTime(j.occurred_at))
            .execute(&mut *c)
            .await?;
        }
    }
    Ok(())
}
