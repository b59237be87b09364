//! Recording a group of new payments at once: each payment (pulling from its user's charging
//! bank account), the event that sets its pull going and the answer stored under its
//! request's idempotency key — one statement, so one round trip, on PostgreSQL.

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

/// The primary key of `idempotency_keys`: a group's key taken meanwhile by another request.
const KEY_TAKEN: &str = "idempotency_keys_pkey";

impl Session {
    /// Records a group of payments, each with its event and its key's answer, all or nothing;
    /// the ids recorded. On PostgreSQL it is one statement: run it in a
    /// [`crate::Store::one_statement`] session, which then commits by itself. A payment is left
    /// out, nothing of it written, when its user has no registered bank account, its business
    /// has its order id already, or its key has a record (on PostgreSQL even an expired one;
    /// SQLite reuses an expired key here) — its request then runs on its own, which says why.
    /// The keys must all be different. `Ok(None)`: a key was taken meanwhile by another
    /// request, and nothing was written (on SQLite the caller rolls back).
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
        let Db::Pg(c) = self.db() else {
            return self
                .insert_accepted_payments_one_by_one(group, now, keys_expire_at)
                .await;
        };
        let uuids = |f: fn(&AcceptedPayment<'_>) -> Uuid| group.iter().map(f).collect::<Vec<Uuid>>();
        let recorded: std::result::Result<Vec<(Uuid,)>, sqlx::Error> = sqlx::query_as(INSERT_GROUP)
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
            .await;
        match recorded.map_err(StoreError::from) {
            Ok(ids) => Ok(Some(ids.into_iter().map(|(id,)| PaymentId::from_uuid(id)).collect())),
            Err(StoreError::Unique(what)) if what == KEY_TAKEN => Ok(None),
            Err(e) => Err(e),
        }
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

/// The group's rows (`t`, in the callers' order) without those whose key has a record; the
/// payments of those whose user has a charging account and whose order id is free (`paid`);
/// then, for those alone, the events (in the group's order: the outbox's `seq`) and the keys
/// (in key order, as every writer of keys takes them). A key inserted meanwhile by another
/// request fails the whole statement (`idempotency_keys_pkey`): no `ON CONFLICT` there.
const INSERT_GROUP: &str = concat!(
    "WITH t AS (
         SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::int8[], $6::text[], $7::text[],
                              $8::uuid[], $9::text[], $10::text[], $11::uuid[], $12::text[], $13::bytea[],
                              $14::int4[], $15::text[]) WITH ORDINALITY
              AS t(id, business_id, user_id, order_id, amount, description, tran_id, event_id, subject, payload,
                   key_owner, key, fingerprint, status, body, n)
         WHERE NOT EXISTS (SELECT 1 FROM idempotency_keys i WHERE i.user_id = t.key_owner AND i.key = t.key)
     ),
     paid AS (
         INSERT INTO payments (id, business_id, user_id, order_id, amount, description, bank_account_id,
                               fintech_use_num, bank_transaction_id, status, created_at, updated_at)
         SELECT t.id, t.business_id, t.user_id, t.order_id, t.amount, t.description, a.id, a.fintech_use_num,
                t.tran_id, 'accepted', $16, $16
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
);
