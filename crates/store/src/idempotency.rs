//! Idempotency-Key records: claim or peek at a key, store the response to replay, release it.

use crate::Result;
use crate::session::{Db, Session};
use crate::types::DbTime;
use jiff::Timestamp;
use minipay_core::{ChargeId, KeyOwner};
use uuid::Uuid;

/// What an insert of a key does when the key exists: take it over only if its record has
/// expired (a claim inserts it in progress, a batch inserts it completed).
macro_rules! claim_conflict {
    () => {
        "ON CONFLICT (user_id, key) DO UPDATE
            SET request_hash = excluded.request_hash, state = excluded.state,
                response_status = excluded.response_status, response_body = excluded.response_body,
                charge_id = NULL, created_at = excluded.created_at, expires_at = excluded.expires_at
          WHERE idempotency_keys.expires_at <= excluded.created_at AND idempotency_keys.state = 'completed'"
    };
}

/// A response stored under an idempotency key, replayed byte for byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredResponse {
    pub status: u16,
    pub body: String,
}

/// The outcome of trying to claim a key for a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// This request owns the key now; it must complete or release it in its transaction.
    Claimed,
    /// The key already finished with the same request: replay its response.
    Replay(StoredResponse),
    /// The key is held by a request still running (e.g. waiting on the bank).
    InProgress,
    /// The key was used for a different request.
    Mismatch,
}

fn expect_one_key(updated: u64, key: &str) -> Result<()> {
    if updated == 1 {
        Ok(())
    } else {
        Err(crate::StoreError::Corrupt(format!(
            "idempotency key {key:?} is no longer held by this request"
        )))
    }
}

#[derive(sqlx::FromRow)]
struct KeyRow {
    request_hash: Vec<u8>,
    state: String,
    response_status: Option<i32>,
    response_body: Option<String>,
    expires_at: DbTime,
}

impl KeyRow {
    /// Whether the record has run its course and the key may be used afresh.
    fn expired(&self, now: Timestamp) -> bool {
        self.state == "completed" && Timestamp::from(self.expires_at) <= now
    }

    /// What the key says to a request with fingerprint `hash` that could not take it.
    fn verdict(self, hash: &[u8]) -> Claim {
        if self.request_hash != hash {
            Claim::Mismatch
        } else if self.state == "completed" {
            Claim::Replay(StoredResponse {
                status: self.response_status.and_then(|s| u16::try_from(s).ok()).unwrap_or(500),
                body: self.response_body.unwrap_or_default(),
            })
        } else {
            Claim::InProgress
        }
    }
}

const SELECT_KEY: &str = "SELECT request_hash, state, response_status, response_body, expires_at
                            FROM idempotency_keys WHERE user_id = $1 AND key = $2";

impl Session {
    /// Claims `key` for `user`'s request with fingerprint `hash`. On PostgreSQL a second
    /// request racing for the same key waits on the first one's insert and then sees its
    /// committed outcome, so concurrent duplicates replay instead of executing twice. A key
    /// whose record has expired is claimed afresh.
    pub async fn claim_idempotency_key(
        &mut self,
        user: KeyOwner,
        key: &str,
        hash: &[u8],
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Claim> {
        let mut claims = self
            .claim_idempotency_keys(&[(user, key, hash)], now, expires_at)
            .await?;
        Ok(claims.pop().expect("one claim per key"))
    }

    /// [`Self::claim_idempotency_key`] for several different keys at once, claimed in
    /// `(user, key)` order (so that two transactions claiming overlapping keys wait for each
    /// other instead of deadlocking); one statement on PostgreSQL. Answers in input order.
    pub async fn claim_idempotency_keys(
        &mut self,
        keys: &[(KeyOwner, &str, &[u8])],
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Vec<Claim>> {
        self.assert_writable();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let claimed: std::collections::HashSet<(Uuid, String)> = match self.db() {
            Db::Pg(c) => {
                let rows: Vec<(Uuid, String)> = sqlx::query_as(concat!(
                    "INSERT INTO idempotency_keys (user_id, key, request_hash, state, created_at, expires_at)
                     SELECT u, k, h, 'in_progress', $4, $5 FROM UNNEST($1::uuid[], $2::text[], $3::bytea[]) AS t(u, k, h)
                     ORDER BY u, k ",
                    claim_conflict!(),
                    " RETURNING user_id, key"
                ))
                .bind(keys.iter().map(|k| k.0.as_uuid()).collect::<Vec<_>>())
                .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
                .bind(keys.iter().map(|k| k.2).collect::<Vec<_>>())
                .bind(DbTime(now))
                .bind(DbTime(expires_at))
                .fetch_all(&mut *c)
                .await?;
                rows.into_iter().collect()
            }
            Db::Sqlite(c) => {
                let mut sorted: Vec<_> = keys.iter().collect();
                sorted.sort_by_key(|k| (k.0, k.1));
                let mut claimed = std::collections::HashSet::new();
                for (user, key, hash) in sorted {
                    let n = sqlx::query(concat!(
                        "INSERT INTO idempotency_keys (user_id, key, request_hash, state, created_at, expires_at)
                         VALUES ($1, $2, $3, 'in_progress', $4, $5) ",
                        claim_conflict!()
                    ))
                    .bind(user.as_uuid())
                    .bind(*key)
                    .bind(*hash)
                    .bind(DbTime(now))
                    .bind(DbTime(expires_at))
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                    if n == 1 {
                        claimed.insert((user.as_uuid(), (*key).to_owned()));
                    }
                }
                claimed
            }
        };
        let mut claims = Vec::with_capacity(keys.len());
        for &(user, key, hash) in keys {
            if claimed.contains(&(user.as_uuid(), key.to_owned())) {
                claims.push(Claim::Claimed);
                continue;
            }
            let row: Option<KeyRow> = on_db!(self, c => sqlx::query_as(SELECT_KEY)
            .bind(user.as_uuid())
            .bind(key)
            .fetch_optional(c)
            .await)?;
            claims.push(match row {
                // Released between our insert and this read: the other request gave up; the
                // client may simply retry.
                None => Claim::InProgress,
                Some(r) => r.verdict(hash),
            });
        }
        Ok(claims)
    }

    /// Reads what each key says without taking it: `None` where the key is free (never used,
    /// or its record expired), otherwise the claim a request would get. Nothing is written or
    /// locked, so a key seen free may be taken before [`Self::insert_completed_idempotency_keys`]
    /// — which then reports it. Answers in input order.
    pub async fn peek_idempotency_keys(
        &mut self,
        keys: &[(KeyOwner, &str, &[u8])],
        now: Timestamp,
    ) -> Result<Vec<Option<Claim>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut found: std::collections::HashMap<(Uuid, String), KeyRow> = match self.db() {
            Db::Pg(c) => {
                #[derive(sqlx::FromRow)]
                struct Found {
                    user_id: Uuid,
                    key: String,
                    #[sqlx(flatten)]
                    row: KeyRow,
                }
                let rows: Vec<Found> = sqlx::query_as(
                    "SELECT i.user_id, i.key, i.request_hash, i.state, i.response_status, i.response_body, i.expires_at
                       FROM idempotency_keys AS i
                       JOIN UNNEST($1::uuid[], $2::text[]) AS t(u, k) ON i.user_id = t.u AND i.key = t.k",
                )
                .bind(keys.iter().map(|k| k.0.as_uuid()).collect::<Vec<_>>())
                .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
                .fetch_all(&mut *c)
                .await?;
                rows.into_iter().map(|f| ((f.user_id, f.key), f.row)).collect()
            }
            Db::Sqlite(c) => {
                let mut found = std::collections::HashMap::new();
                for &(user, key, _) in keys {
                    let row: Option<KeyRow> = sqlx::query_as(SELECT_KEY)
                        .bind(user.as_uuid())
                        .bind(key)
                        .fetch_optional(&mut *c)
                        .await?;
                    found.extend(row.map(|r| ((user.as_uuid(), key.to_owned()), r)));
                }
                found
            }
        };
        Ok(keys
            .iter()
            .map(|&(user, key, hash)| {
                let row = found.remove(&(user.as_uuid(), key.to_owned()))?;
                (!row.expired(now)).then(|| row.verdict(hash))
            })
            .collect())
    }

    /// Records finished requests under keys that were free ([`Self::peek_idempotency_keys`]),
    /// with the responses to replay, in `(user, key)` order; one statement on PostgreSQL. The
    /// keys must all be different. `Ok(false)`: a key was taken meanwhile by another request
    /// (its insert committed first, or, on PostgreSQL, was waited for) — the caller must roll
    /// back, or it would answer twice for one key.
    pub async fn insert_completed_idempotency_keys(
        &mut self,
        keys: &[(KeyOwner, &str, &[u8], &StoredResponse)],
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<bool> {
        self.assert_writable();
        if keys.is_empty() {
            return Ok(true);
        }
        let inserted = match self.db() {
            Db::Pg(c) => sqlx::query(concat!(
                "INSERT INTO idempotency_keys
                        (user_id, key, request_hash, state, response_status, response_body, created_at, expires_at)
                 SELECT u, k, h, 'completed', s, b, $6, $7
                   FROM UNNEST($1::uuid[], $2::text[], $3::bytea[], $4::int4[], $5::text[]) AS t(u, k, h, s, b)
                  ORDER BY u, k ",
                claim_conflict!()
            ))
            .bind(keys.iter().map(|k| k.0.as_uuid()).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.2).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| i32::from(k.3.status)).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.3.body.as_str()).collect::<Vec<_>>())
            .bind(DbTime(now))
            .bind(DbTime(expires_at))
            .execute(&mut *c)
            .await?
            .rows_affected(),
            Db::Sqlite(c) => {
                let mut sorted: Vec<_> = keys.iter().collect();
                sorted.sort_by_key(|k| (k.0, k.1));
                let mut n = 0;
                for (user, key, hash, response) in sorted {
                    n += sqlx::query(concat!(
                        "INSERT INTO idempotency_keys
                                (user_id, key, request_hash, state, response_status, response_body, created_at,
                                 expires_at)
                         VALUES ($1, $2, $3, 'completed', $4, $5, $6, $7) ",
                        claim_conflict!()
                    ))
                    .bind(user.as_uuid())
                    .bind(*key)
                    .bind(*hash)
                    .bind(i32::from(response.status))
                    .bind(&response.body)
                    .bind(DbTime(now))
                    .bind(DbTime(expires_at))
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                }
                n
            }
        };
        Ok(inserted == keys.len() as u64)
    }

    /// Stores the final response for a claimed key.
    /// Fails if this request no longer holds the key (someone else completed or released it):
    /// the caller must then roll back rather than commit money under a key it does not own.
    pub async fn complete_idempotency_key(
        &mut self,
        user: KeyOwner,
        key: &str,
        response: &StoredResponse,
    ) -> Result<()> {
        self.complete_idempotency_keys(&[(user, key, response)]).await
    }

    /// [`Self::complete_idempotency_key`] for several keys; one statement on PostgreSQL.
    pub async fn complete_idempotency_keys(&mut self, keys: &[(KeyOwner, &str, &StoredResponse)]) -> Result<()> {
        self.assert_writable();
        if keys.is_empty() {
            return Ok(());
        }
        let updated = match self.db() {
            Db::Pg(c) => sqlx::query(
                "UPDATE idempotency_keys AS i
                    SET state = 'completed', response_status = v.status, response_body = v.body, charge_id = NULL
                   FROM UNNEST($1::uuid[], $2::text[], $3::int4[], $4::text[]) AS v(user_id, key, status, body)
                  WHERE i.user_id = v.user_id AND i.key = v.key AND i.state = 'in_progress'",
            )
            .bind(keys.iter().map(|k| k.0.as_uuid()).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.1).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| i32::from(k.2.status)).collect::<Vec<_>>())
            .bind(keys.iter().map(|k| k.2.body.as_str()).collect::<Vec<_>>())
            .execute(&mut *c)
            .await?
            .rows_affected(),
            Db::Sqlite(c) => {
                let mut n = 0;
                for (user, key, response) in keys {
                    n += sqlx::query(
                        "UPDATE idempotency_keys SET state = 'completed', response_status = $3, response_body = $4,
                                charge_id = NULL
                         WHERE user_id = $1 AND key = $2 AND state = 'in_progress'",
                    )
                    .bind(user.as_uuid())
                    .bind(*key)
                    .bind(i32::from(response.status))
                    .bind(&response.body)
                    .execute(&mut *c)
                    .await?
                    .rows_affected();
                }
                n
            }
        };
        if updated == keys.len() as u64 {
            Ok(())
        } else {
            Err(crate::StoreError::Corrupt(format!(
                "{} of {} idempotency keys are no longer held by their requests",
                keys.len() as u64 - updated,
                keys.len()
            )))
        }
    }

    /// Notes that the request holding `key` is waiting on a bank pull, so that whoever
    /// resolves the pull can also release the key.
    pub async fn attach_charge_to_key(&mut self, user: KeyOwner, key: &str, charge: ChargeId) -> Result<()> {
        self.assert_writable();
        let n = on_db!(self, c => sqlx::query(
            "UPDATE idempotency_keys SET charge_id = $3 WHERE user_id = $1 AND key = $2 AND state = 'in_progress'",
        )
        .bind(user.as_uuid())
        .bind(key)
        .bind(charge.as_uuid())
        .execute(c)
        .await.map(|r| r.rows_affected()))?;
        expect_one_key(n, key)
    }

    /// Forgets a claim whose request did not finish (a transient failure): the client may
    /// retry with the same key.
    pub async fn release_idempotency_key(&mut self, user: KeyOwner, key: &str) -> Result<()> {
        self.assert_writable();
        on_db!(self, c => sqlx::query(
            "DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND state = 'in_progress'",
        )
        .bind(user.as_uuid())
        .bind(key)
        .execute(c)
        .await.map(|r| r.rows_affected()))?;
        Ok(())
    }

    /// Releases any in-progress claim waiting on `charge` (used when recovery resolves it).
    pub async fn release_keys_waiting_on(&mut self, charge: ChargeId) -> Result<u64> {
        self.assert_writable();
        let n = on_db!(self, c => sqlx::query(
            "DELETE FROM idempotency_keys WHERE charge_id = $1 AND state = 'in_progress'",
        )
        .bind(charge.as_uuid())
        .execute(c)
        .await.map(|r| r.rows_affected()))?;
        Ok(n)
    }

    /// Completes any in-progress claim waiting on `charge` with `response` (used when
    /// recovery finds that a requested charge landed: a retry must replay it, not pull again).
    pub async fn complete_keys_waiting_on(&mut self, charge: ChargeId, response: &StoredResponse) -> Result<u64> {
        self.assert_writable();
        let n = on_db!(self, c => sqlx::query(
            "UPDATE idempotency_keys SET state = 'completed', response_status = $2, response_body = $3, charge_id = NULL
             WHERE charge_id = $1 AND state = 'in_progress'",
        )
        .bind(charge.as_uuid())
        .bind(i32::from(response.status))
        .bind(&response.body)
        .execute(c)
        .await.map(|r| r.rows_affected()))?;
        Ok(n)
    }

    /// Deletes up to `limit` records that expired before `now`; returns how many.
    pub async fn purge_idempotency_keys(&mut self, now: Timestamp, limit: u32) -> Result<u64> {
        self.assert_writable();
        let n = on_db!(self, c => sqlx::query(
            "DELETE FROM idempotency_keys WHERE (user_id, key) IN (
                 SELECT user_id, key FROM idempotency_keys WHERE expires_at <= $1 AND state = 'completed'
                 ORDER BY expires_at LIMIT $2)",
        )
        .bind(DbTime(now))
        .bind(i64::from(limit))
        .execute(c)
        .await.map(|r| r.rows_affected()))?;
        Ok(n)
    }
}
