//! Idempotency-Key handling: a request's fingerprint, claiming its key inside the money
//! transaction, and storing the reply in that same transaction.

use crate::error::{ServiceError, ServiceResult};
use jiff::{SignedDuration, Timestamp};
use minipay_core::KeyOwner;
use minipay_core::request::{IDEMPOTENCY_KEY_TTL_HOURS, IdempotencyKey};
use minipay_store::{Claim, Session, StoredResponse};
use serde::Serialize;

/// A money request that carries an `Idempotency-Key`: the key and a SHA-256 of what the
/// request asks for (operation, target and the validated body), so that reusing the key for
/// anything else is caught.
#[derive(Debug, Clone)]
pub struct IdempotentRequest {
    key: IdempotencyKey,
    fingerprint: Vec<u8>,
}

impl IdempotentRequest {
    pub fn new(key: Option<IdempotencyKey>, operation: &str, target: &str, body: &impl Serialize) -> Option<Self> {
        let key = key?;
        let canonical = serde_json::to_vec(&(operation, target, body)).expect("request bodies serialise");
        let fingerprint = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &canonical)
            .as_ref()
            .to_vec();
        Some(Self { key, fingerprint })
    }

    pub fn key(&self) -> &str {
        self.key.as_str()
    }

    /// The digest of what the request asks for, stored with its key's answer.
    pub fn fingerprint(&self) -> &[u8] {
        &self.fingerprint
    }

    /// Whether `other` asks for exactly what this request asks for.
    pub(crate) fn same_request(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }
}

/// The answer to a money request: executed now, or the stored answer to an earlier request
/// with the same key (replayed byte for byte, whatever its status).
#[derive(Debug)]
pub enum Reply<T> {
    Fresh(T),
    Replayed(StoredResponse),
}

impl<T> Reply<T> {
    /// The fresh value; panics on a replay (for tests and internal callers without keys).
    pub fn into_fresh(self) -> T {
        match self {
            Self::Fresh(v) => v,
            Self::Replayed(_) => panic!("expected a fresh reply"),
        }
    }

    /// The same reply with its fresh value converted.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Reply<U> {
        match self {
            Self::Fresh(v) => Reply::Fresh(f(v)),
            Self::Replayed(stored) => Reply::Replayed(stored),
        }
    }
}

/// Claims the request's key in `tx`. `Ok(Some(..))` is a stored reply to return instead of
/// executing; `Ok(None)` means this request owns the key (or has none) and goes ahead.
pub async fn claim(
    tx: &mut Session,
    owner: impl Into<KeyOwner>,
    req: Option<&IdempotentRequest>,
    now: Timestamp,
) -> ServiceResult<Option<StoredResponse>> {
    let Some(req) = req else { return Ok(None) };
    claim_all(tx, &[(owner.into(), req)], now)
        .await?
        .pop()
        .expect("one verdict per key")
}

/// [`claim`] for several requests with different keys at once (a batch): each request's
/// verdict, in input order. `Err` only when the claiming itself failed.
pub(crate) async fn claim_all(
    tx: &mut Session,
    requests: &[(KeyOwner, &IdempotentRequest)],
    now: Timestamp,
) -> ServiceResult<Vec<ServiceResult<Option<StoredResponse>>>> {
    let expires = key_expiry(now);
    let keys: Vec<_> = requests
        .iter()
        .map(|(user, req)| (*user, req.key(), req.fingerprint.as_slice()))
        .collect();
    let claims = tx.claim_idempotency_keys(&keys, now, expires).await?;
    Ok(claims.into_iter().map(verdict).collect())
}

/// When a key recorded at `now` expires (then a request may use it afresh).
pub fn key_expiry(now: Timestamp) -> Timestamp {
    now + SignedDuration::from_hours(IDEMPOTENCY_KEY_TTL_HOURS)
}

/// What a request does given its key's claim: go ahead (`Ok(None)`), replay, or be refused.
fn verdict(claim: Claim) -> ServiceResult<Option<StoredResponse>> {
    match claim {
        Claim::Claimed => Ok(None),
        Claim::Replay(stored) => Ok(Some(stored)),
        Claim::Mismatch => Err(ServiceError::IdempotencyKeyReused),
        Claim::InProgress => Err(ServiceError::Conflict(
            "a request with this Idempotency-Key is still being processed; retry shortly".into(),
        )),
    }
}

/// For a batch, which writes each key once: what each request's key says now, without taking
/// it — `Ok(None)` where the key is free and the request goes ahead. The batch then records
/// the answers with [`record_all`] in the transaction that executes the requests.
pub async fn peek_all(
    tx: &mut Session,
    requests: &[(KeyOwner, &IdempotentRequest)],
    now: Timestamp,
) -> ServiceResult<Vec<ServiceResult<Option<StoredResponse>>>> {
    let keys: Vec<_> = requests
        .iter()
        .map(|(user, req)| (*user, req.key(), req.fingerprint.as_slice()))
        .collect();
    let found = tx.peek_idempotency_keys(&keys, now).await?;
    Ok(found.into_iter().map(|c| c.map_or(Ok(None), verdict)).collect())
}

/// For a request that runs in one short transaction with no remote call inside: what its key
/// says now, without taking it — `Ok(None)` when the key is free (or there is none) and the
/// request goes ahead. Its answer is then written once, completed, with [`record`] in the same
/// transaction: a write instead of a claim and an update.
pub async fn peek(
    tx: &mut Session,
    owner: impl Into<KeyOwner>,
    req: Option<&IdempotentRequest>,
    now: Timestamp,
) -> ServiceResult<Option<StoredResponse>> {
    let Some(req) = req else { return Ok(None) };
    peek_all(tx, &[(owner.into(), req)], now)
        .await?
        .pop()
        .expect("one verdict per key")
}

/// Writes the answer of a request whose key [`peek`] found free, completed. `Ok(false)`:
/// another request took the key meanwhile; the caller rolls back and asks again (to replay).
pub async fn record(
    tx: &mut Session,
    owner: impl Into<KeyOwner>,
    req: Option<&IdempotentRequest>,
    answer: &StoredResponse,
    now: Timestamp,
) -> ServiceResult<bool> {
    let Some(req) = req else { return Ok(true) };
    record_all(tx, &[(owner.into(), req, answer)], now).await
}

/// Stores the answers of requests whose keys [`peek_all`] found free. `Ok(false)`: another
/// request took one of the keys meanwhile; the caller must roll back.
pub async fn record_all(
    tx: &mut Session,
    answered: &[(KeyOwner, &IdempotentRequest, &StoredResponse)],
    now: Timestamp,
) -> ServiceResult<bool> {
    let expires = key_expiry(now);
    let keys: Vec<_> = answered
        .iter()
        .map(|(user, req, stored)| (*user, req.key(), req.fingerprint.as_slice(), *stored))
        .collect();
    Ok(tx.insert_completed_idempotency_keys(&keys, now, expires).await?)
}

/// Ends a money transaction: stores the reply under the key (if any) and commits, or rolls
/// back on a transient failure (which leaves the key free for a retry).
///
/// A *final* error commits what the transaction wrote. Callers return final errors either
/// before writing anything, or when what they wrote must stand (a charge that landed even
/// though the transfer it was for could not complete).
pub async fn conclude<T: Serialize>(
    mut tx: Session,
    owner: impl Into<KeyOwner>,
    req: Option<&IdempotentRequest>,
    success_status: u16,
    result: ServiceResult<T>,
) -> ServiceResult<Reply<T>> {
    let stored = match &result {
        Ok(v) => StoredResponse {
            status: success_status,
            body: serde_json::to_string(v).expect("views serialise"),
        },
        Err(e) if e.is_final() => StoredResponse {
            status: e.code().status(),
            body: e.body().to_string(),
        },
        Err(_) => {
            tx.rollback().await?;
            return result.map(Reply::Fresh);
        }
    };
    if let Some(req) = req {
        tx.complete_idempotency_key(owner.into(), req.key(), &stored).await?;
    }
    tx.commit().await?;
    result.map(Reply::Fresh)
}
