//! Recording a group of new payments at once: each payment (pulling from its user's charging
//! bank account), the event that sets its pull going and the answer stored under its
//! request's idempotency key — one statement, so one round trip, on PostgreSQL (two when a key
//! of the group has a record).

use super::payment::NewPayment;
use crate::bank_accounts::charging_account;
use crate::events::NewEvent;
use crate::idempotency::StoredResponse;
use crate::session::{Db, Session};
use crate::types::DbTime;
use crate::{Result, StoreError};
use jiff::Timestamp;
use minipay_core::{KeyOwner, PaymentId};
use uuid::Uuid;

/// A new payment, with what commits with it.
#[derive(Debug, Clone)]
pub struct AcceptedPayment<'a> {
    pub payment: NewPayment<'a>,
    /// The event that sets its pull going.
    pub event: NewEvent,
    /// Its request's idempotency key, and the answer stored under it (completed).
    pub key_owner: KeyOwner,
    pub key: &'a str,
    pub fingerprint: &'a [u8],
    pub answer: &'a StoredResponse,
}

/// The primary key of `idempotency_keys`: a group's key has a record, or was taken meanwhile by
/// another request.
const KEY_TAKEN: &str = "idempotency_keys_pkey";

impl Session {
    /// Records a group of payments, each with its event and its key's answer, all or nothing;
    /// the ids recorded. On PostgreSQL run it in a [`crate::Store::one_statement`] session,
    /// which then commits by itself. A payment is left out, nothing of it written, when its
    /// user has no registered bank account, its business has its order id already, or its key
    /// has a record (on PostgreSQL even an expired one; SQLite reuses an expired key here) —
    /// its request then runs on its own, which says why. The keys must all be different.
    /// `Ok(None)`: a key was taken meanwhile by another request (on PostgreSQL, while the group
    /// ran a second time), and nothing was written (on SQLite the caller rolls back).
    ///
    /// On PostgreSQL it is one statement that does not look the keys up: a key with a record
    /// fails it as a whole (its insert meets the primary key), and then the group is run once
    /// more by a statement that leaves such keys out. A client's retry of a payment never
    /// fails the first (its order id is taken, so its key is not inserted): only a key with a
    /// record whose request's order id is free does — one reused for another order, an expired
    /// one reused, one taken meanwhile for another order. The common group reads nothing of
    /// `idempotency_keys`, so no plan of its statement can read the table whole
    /// (docs/bench/payments.md, run 18).
    pub async fn insert_accepted_payments(
        &mut self,
        group: &[AcceptedPayment<'_>],
        now: Timestamp,
        keys_expire_at: Timestamp,
    ) -> Result<Option<Vec<PaymentId>>> {
        self.assert_writable();
        if group.is_empty() {
            return Ok(Some(Vec::new()));
        }
        assert!(
            group.iter().all(|a| a.payment.at == now && a.event.created_at == now),
            "a group is recorded at one instant"
        );
        if self.kind() == crate::BackendKind::Sqlite {
            return self
                .insert_accepted_payments_one_by_one(group, now, keys_expire_at)
                .await;
        }
        assert!(
            self.is_one_statement(),
            "a group is recorded in a one-statement session: a first try that fails writes nothing"
        );
        for (n, &(statement, persistent)) in GROUP_TRIES.iter().enumerate() {
            if n > 0 {
                tracing::debug!(
                    payments = group.len(),
                    "a key of the group has a record: trying again without it"
                );
            }
            match self
                .run_group_statement(statement, persistent, group, now, keys_expire_at)
                .await
            {
                Ok(ids) => return Ok(Some(ids)),
                Err(StoreError::Unique(what)) if what == KEY_TAKEN => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Runs one of the group's statements (PostgreSQL; `persistent`: prepared once on the
    /// connection, its plan cached): the ids recorded.
    async fn run_group_statement(
        &mut self,
        statement: &'static str,
        persistent: bool,
        group: &[AcceptedPayment<'_>],
        now: Timestamp,
        keys_expire_at: Timestamp,
    ) -> Result<Vec<PaymentId>> {
        let Db::Pg(c) = self.db() else {
            unreachable!("the group's statements are PostgreSQL's")
        };
        let uuids = |f: fn(&AcceptedPayment<'_>) -> Uuid| group.iter().map(f).collect::<Vec<Uuid>>();
        let recorded: Vec<(Uuid,)> = sqlx::query_as(statement)
            .persistent(persistent)
            .bind(uuids(|a| a.payment.id.as_uuid()))
            .bind(uuids(|a| a.payment.business_id.as_uuid()))
            .bind(uuids(|a| a.payment.user_id.as_uuid()))
            .bind(group.iter().map(|a| a.payment.order_id).collect::<Vec<_>>())
            .bind(group.iter().map(|a| a.payment.amount).collect::<Vec<_>>())
            .bind(group.iter().map(|a| a.payment.description).collect::<Vec<_>>())
            .bind(group.iter().map(|a| a.payment.bank_transaction_id).collect::<Vec<_>>())
            .bind(uuids(|a| a.event.id))
            .bind(group.iter().map(|a| a.event.subject.as_str()).collect::<Vec<_>>())
            .bind(group.iter().map(|a| a.event.payload.to_string()).collect::<Vec<_>>())
            .bind(uuids(|a| a.key_owner.as_uuid()))
            .bind(group.iter().map(|a| a.key).collect::<Vec<_>>())
            .bind(group.iter().map(|a| a.fingerprint).collect::<Vec<_>>())
            .bind(group.iter().map(|a| i32::from(a.answer.status)).collect::<Vec<_>>())
            .bind(group.iter().map(|a| a.answer.body.as_str()).collect::<Vec<_>>())
            .bind(DbTime(now))
            .bind(DbTime(keys_expire_at))
            .fetch_all(c)
            .await?;
        Ok(recorded.into_iter().map(|(id,)| PaymentId::from_uuid(id)).collect())
    }

    /// [`Self::insert_accepted_payments`] one payment at a time, in the caller's transaction.
    async fn insert_accepted_payments_one_by_one(
        &mut self,
        group: &[AcceptedPayment<'_>],
        now: Timestamp,
        keys_expire_at: Timestamp,
    ) -> Result<Option<Vec<PaymentId>>> {
        let keys: Vec<(KeyOwner, &str, &[u8])> = group.iter().map(|a| (a.key_owner, a.key, a.fingerprint)).collect();
        let claims = self.peek_idempotency_keys(&keys, now).await?;
        let (mut recorded, mut events, mut answers) = (Vec::new(), Vec::new(), Vec::new());
        for (a, claim) in group.iter().zip(claims) {
            if claim.is_some() {
                continue;
            }
            let Some(account) = self.charging_bank_account(a.payment.user_id).await? else {
                continue;
            };
            let Some(payment) = self.insert_payment(&a.payment, &account).await? else {
                continue;
            };
            recorded.push(payment.id);
            events.push(a.event.clone());
            answers.push((a.key_owner, a.key, a.fingerprint, a.answer));
        }
        self.insert_events(&events).await?;
        let keys_recorded = self
            .insert_completed_idempotency_keys(&answers, now, keys_expire_at)
            .await?;
        Ok(keys_recorded.then_some(recorded))
    }
}

/// The statement for a group's rows (`t`, in the callers' order, filtered by `$which_rows`):
/// the payments of those whose user has a charging account and whose order id is free
/// (`paid`); then, for those alone, the events (in the group's order: the outbox's `seq`) and
/// the keys (in key order, as every writer of keys takes them). A key with a record, or
/// inserted meanwhile by another request, fails the whole statement (`idempotency_keys_pkey`):
/// no `ON CONFLICT` there.
macro_rules! insert_group {
    ($which_rows:literal) => {
        concat!(
            "WITH t AS (
                 SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::int8[], $6::text[],
                                      $7::text[], $8::uuid[], $9::text[], $10::text[], $11::uuid[], $12::text[],
                                      $13::bytea[], $14::int4[], $15::text[]) WITH ORDINALITY
                      AS t(id, business_id, user_id, order_id, amount, description, tran_id, event_id, subject,
                           payload, key_owner, key, fingerprint, status, body, n) ",
            $which_rows,
            "
             ),
             paid AS (
                 INSERT INTO payments (id, business_id, user_id, order_id, amount, description, bank_account_id,
                                       fintech_use_num, bank_transaction_id, status, created_at, updated_at)
                 SELECT t.id, t.business_id, t.user_id, t.order_id, t.amount, t.description, a.id,
                        a.fintech_use_num, t.tran_id, 'accepted', $16, $16
                 FROM t CROSS JOIN LATERAL (SELECT id, fintech_use_num FROM bank_accounts
                                            WHERE user_id = t.user_id AND ",
            charging_account!(),
            ") a
                 ON CONFLICT (business_id, order_id) DO NOTHING
                 RETURNING id
             ),
             events AS (
                 INSERT INTO outbox (id, subject, payload, created_at)
                 SELECT t.event_id, t.subject, t.payload, $16 FROM t JOIN paid USING (id) ORDER BY t.n
             ),
             answers AS (
                 INSERT INTO idempotency_keys
                        (user_id, key, request_hash, state, response_status, response_body, created_at, expires_at)
                 SELECT t.key_owner, t.key, t.fingerprint, 'completed', t.status, t.body, $16, $17
                 FROM t JOIN paid USING (id) ORDER BY t.key_owner, t.key
             )
             SELECT id FROM paid"
        )
    };
}

/// The group's statement without a key lookup: a key with a record fails it.
const INSERT_GROUP: &str = insert_group!("");

/// The group's statement leaving out the rows whose key has a record (even an expired one):
/// the second try, after [`INSERT_GROUP`] met a key with a record.
const INSERT_GROUP_LEAVING_USED_KEYS_OUT: &str = insert_group!(
    "WHERE NOT EXISTS (SELECT 1 FROM idempotency_keys i WHERE i.user_id = t.key_owner AND i.key = t.key)"
);

/// The group's statements in the order they are tried, and whether each is prepared once per
/// connection. The first reads nothing of `idempotency_keys`. The second, run only after the
/// first met a key with a record, is planned afresh every time: a cached generic plan of its
/// key check can read the whole table (docs/bench/payments.md, run 17).
const GROUP_TRIES: [(&str, bool); 2] = [(INSERT_GROUP, true), (INSERT_GROUP_LEAVING_USED_KEYS_OUT, false)];

/// The statement a group tries first, to look at its plans (tests).
#[cfg(feature = "testing")]
pub const PAYMENT_GROUP_STATEMENT: &str = GROUP_TRIES[0].0;
