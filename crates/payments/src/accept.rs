//! Recording payment and refund requests: one short transaction each — the key read, the row
//! and its event written, the answer stored under the key — answered `202` before the bank is
//! called. A refund takes its amount from the payment (one conditional statement) and, last
//! before the commit, its money from the business's balance (under the account locks) in that
//! same transaction. Concurrent requests go in groups first (`accept_group`, `refund_group`);
//! what a group hands back is recorded here, on its own.

use crate::accept_group::AcceptPayment;
use crate::refund_group::AcceptRefund;
use crate::views::{PaymentView, RefundView};
use crate::{NewPayment, NewRefund, Payments, internal, subjects};
use jiff::Timestamp;
use minipay_core::ledger::BalancePosting;
use minipay_core::payment::{PaymentStatus, RefundRefusal, check_refund, pull_tran_id, push_tran_id};
use minipay_core::request::IdempotencyKey;
use minipay_core::{BusinessId, PaymentId, RefundId};
use minipay_events::emit;
use minipay_services::balances::take_from_balance;
use minipay_services::idempotency::{IdempotentRequest, Reply, peek, record};
use minipay_services::{ServiceError, ServiceResult};
use minipay_store::{BankAccount, Payment, Refund, RefundAmountTake, Session, StoredResponse};
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// A request recorded under a key that another request took meanwhile is run once more (it
/// then replays that request's answer).
const RECORD_TRIES_MAX: usize = 2;

impl Payments {
    /// `POST /v1/biz/payments`: records the payment (`accepted`) and hands it to the pull side.
    /// The same key and body return the same payment; so does the same order id with the same
    /// body; the same order id with another body is `409 conflict`.
    #[tracing::instrument(name = "minipay.payments.request", skip_all, err(level = "debug"))]
    pub async fn request_payment(
        &self,
        business: BusinessId,
        req: NewPayment,
        key: Option<IdempotencyKey>,
    ) -> ServiceResult<Reply<PaymentView>> {
        let key = key.ok_or_else(|| ServiceError::validation("Idempotency-Key is required for a payment"))?;
        let idem = IdempotentRequest::new(Some(key), "payment", "", &req).expect("a key was given");
        // With others in one statement when requests come together (one commit for all; each
        // user's bank account read by the statement that records the payments).
        if self.config.accept_batching.enabled() {
            let grouped = AcceptPayment {
                business,
                req: req.clone(),
                idem: idem.clone(),
            };
            if let Some(reply) = self.accepts.submit_or_alone(grouped).await? {
                metrics::counter!("minipay_payments_requested_total").increment(1);
                return Ok(reply);
            }
        }
        // A key used before answers first, whatever the body asks: a replay, or `422` for
        // another body (even one naming a user with no bank account).
        if let Some(stored) = self.replay(business, &idem).await? {
            return Ok(Reply::Replayed(stored));
        }
        let bank_account = self.pull_account(&req).await?;
        for _ in 0..RECORD_TRIES_MAX {
            if let Some(reply) = self.record_payment(business, &req, &idem, &bank_account).await? {
                self.events.wake();
                metrics::counter!("minipay_payments_requested_total").increment(1);
                return Ok(reply);
            }
        }
        Err(busy_key())
    }

    /// The answer stored under the request's key, read outside any transaction; `None` when the
    /// key is free.
    async fn replay(&self, business: BusinessId, idem: &IdempotentRequest) -> ServiceResult<Option<StoredResponse>> {
        let mut s = self.store.read().await?;
        peek(&mut s, business, Some(idem), self.clock.now()).await
    }

    /// The user's registered bank account the payment will pull from.
    async fn pull_account(&self, req: &NewPayment) -> ServiceResult<BankAccount> {
        let mut s = self.store.read().await?;
        if let Some(account) = s.charging_bank_account(req.user_id).await? {
            return Ok(account);
        }
        // Rare: told apart only when there is no account to pull from.
        match s.user(req.user_id).await? {
            None => Err(ServiceError::NotFound("user")),
            Some(_) => Err(ServiceError::InvalidState(
                "the user has no registered bank account to pay from".into(),
            )),
        }
    }

    /// One transaction; `None` when the key was taken meanwhile (nothing is written then).
    async fn record_payment(
        &self,
        business: BusinessId,
        req: &NewPayment,
        idem: &IdempotentRequest,
        bank_account: &BankAccount,
    ) -> ServiceResult<Option<Reply<PaymentView>>> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        if let Some(stored) = peek(&mut tx, business, Some(idem), now).await? {
            return Ok(Some(Reply::Replayed(stored)));
        }
        let ids = NewPaymentIds::new();
        let payment = match tx
            .insert_payment(&ids.payment(business, req, now), bank_account)
            .await?
        {
            Some(p) => {
                emit(&mut tx, subjects::ACCEPTED, &trigger(p.id), now).await?;
                p
            }
            None => same_order(&mut tx, business, req).await?,
        };
        let view = PaymentView::from(&payment);
        if !record(&mut tx, business, Some(idem), &stored_answer(&view)?, now).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(Reply::Fresh(view)))
    }

    /// `POST /v1/biz/payments/{id}/refunds`: takes the amount from what is left to refund of
    /// the payment and from the business's balance (into refunds in transit), records the
    /// refund (`accepted`) and hands it to the push side. Refused, changing nothing, when the
    /// payment is not paid (`409 invalid_state`), the refunds would exceed it (`422
    /// refund_exceeds_payment`) or the balance is short (`422 insufficient_funds`).
    #[tracing::instrument(name = "minipay.payments.refund", skip_all, err(level = "debug"))]
    pub async fn request_refund(
        &self,
        business: BusinessId,
        payment: PaymentId,
        req: NewRefund,
        key: Option<IdempotencyKey>,
    ) -> ServiceResult<Reply<RefundView>> {
        let key = key.ok_or_else(|| ServiceError::validation("Idempotency-Key is required for a refund"))?;
        let idem = IdempotentRequest::new(Some(key), "refund", &payment.to_string(), &req).expect("a key was given");
        // With others in one transaction when requests come together (the accounts every
        // refund's money goes through locked once for all).
        if self.config.accept_batching.enabled() {
            let grouped = AcceptRefund {
                business,
                payment,
                req: req.clone(),
                idem: idem.clone(),
            };
            if let Some(reply) = self.refunds.submit_or_alone(grouped).await? {
                metrics::counter!("minipay_refunds_requested_total").increment(1);
                return Ok(reply);
            }
        }
        for _ in 0..RECORD_TRIES_MAX {
            if let Some(reply) = self.record_refund(business, payment, &req, &idem).await? {
                self.events.wake();
                metrics::counter!("minipay_refunds_requested_total").increment(1);
                return Ok(reply);
            }
        }
        Err(busy_key())
    }

    /// One transaction; `None` when the key was taken meanwhile (nothing is written then).
    async fn record_refund(
        &self,
        business: BusinessId,
        payment: PaymentId,
        req: &NewRefund,
        idem: &IdempotentRequest,
    ) -> ServiceResult<Option<Reply<RefundView>>> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        if let Some(stored) = peek(&mut tx, business, Some(idem), now).await? {
            return Ok(Some(Reply::Replayed(stored)));
        }
        let asked = RefundAsked { business, payment, req };
        let Some((p, refund)) = take_refunds(&mut tx, &[asked], now).await?.pop().flatten() else {
            return Err(refusal(&mut tx, business, payment, req.amount.won()).await);
        };
        emit(&mut tx, subjects::REFUND_ACCEPTED, &refund_trigger(refund.id), now).await?;
        let view = RefundView::from(&refund);
        if !record(&mut tx, business, Some(idem), &stored_answer(&view)?, now).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        // The money last, right before the commit: the accounts it locks (refunds in transit is
        // every refund's) are held for as short a time as can be. Short: nothing above stays.
        take_from_balance(
            &mut tx,
            BalancePosting::RefundTaken,
            business,
            &order_label(&p),
            req.amount,
            "refund",
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Some(Reply::Fresh(view)))
    }
}

/// A refund asked for: whose, of which payment, what.
pub(crate) struct RefundAsked<'a> {
    pub business: BusinessId,
    pub payment: PaymentId,
    pub req: &'a NewRefund,
}

/// Takes each refund's amount from what is left to refund of its business's payment and
/// records the refunds (`accepted`), in the caller's transaction: for each, the payment as it
/// is then and the refund, or `None` — nothing written for it — when the payment does not give
/// the amount (not the business's, not paid, or the refunds would exceed it). The refunds' rows
/// are written together (one statement on PostgreSQL).
pub(crate) async fn take_refunds(
    tx: &mut Session,
    asked: &[RefundAsked<'_>],
    now: Timestamp,
) -> ServiceResult<Vec<Option<(Payment, Refund)>>> {
    let taken = take_amounts(tx, asked, now).await?;
    let ids: Vec<Option<RefundId>> = taken.iter().map(|p| p.as_ref().map(|_| RefundId::new())).collect();
    let tran_ids: Vec<String> = ids.iter().flatten().map(|id| push_tran_id(*id)).collect();
    let mut rows = Vec::with_capacity(tran_ids.len());
    for ((a, p), id) in asked.iter().zip(&taken).zip(&ids) {
        let (Some(p), Some(id)) = (p, id) else { continue };
        check_refund_taken(p)?;
        rows.push(minipay_store::NewRefund {
            id: *id,
            payment_id: p.id,
            business_id: a.business,
            amount: a.req.amount.won(),
            reason: a.req.reason.as_deref(),
            bank_transaction_id: &tran_ids[rows.len()],
            at: now,
        });
    }
    let mut recorded: HashMap<RefundId, Refund> =
        tx.insert_refunds(&rows).await?.into_iter().map(|r| (r.id, r)).collect();
    taken
        .into_iter()
        .zip(ids)
        .map(|(p, id)| match (p, id) {
            (Some(p), Some(id)) => {
                let refund = recorded
                    .remove(&id)
                    .ok_or_else(|| internal(&format!("refund {id} not recorded")))?;
                Ok(Some((p, refund)))
            }
            _ => Ok(None),
        })
        .collect()
}

/// Takes each refund's amount from its payment: the payment after, or `None` when it does not
/// give the amount. The first refund of each payment is taken with the others' by one
/// conditional statement, another refund of the same payment after them, on its own.
async fn take_amounts(
    tx: &mut Session,
    asked: &[RefundAsked<'_>],
    now: Timestamp,
) -> ServiceResult<Vec<Option<Payment>>> {
    let mut seen = HashSet::new();
    let first_of_its_payment: Vec<bool> = asked.iter().map(|a| seen.insert(a.payment)).collect();
    let firsts: Vec<RefundAmountTake> = asked
        .iter()
        .zip(&first_of_its_payment)
        .filter(|(_, first)| **first)
        .map(|(a, _)| RefundAmountTake {
            payment: a.payment,
            business: a.business,
            amount: a.req.amount.won(),
        })
        .collect();
    let mut given: HashMap<PaymentId, Payment> = tx
        .take_refund_amounts(&firsts, now)
        .await?
        .into_iter()
        .map(|p| (p.id, p))
        .collect();
    let mut taken = Vec::with_capacity(asked.len());
    for (a, first) in asked.iter().zip(first_of_its_payment) {
        taken.push(if first {
            given.remove(&a.payment)
        } else {
            tx.take_refund_amount(a.payment, a.business, a.req.amount.won(), now)
                .await?
        });
    }
    Ok(taken)
}

/// The store sets a payment's status in the statement that takes a refund's amount; it must be
/// core's rule.
fn check_refund_taken(p: &Payment) -> ServiceResult<()> {
    if p.status != PaymentStatus::after_refunds(p.amount, p.refunded_amount) {
        return Err(internal(&format!(
            "payment {} is {} with {} of {} won refunded",
            p.id,
            p.status.as_str(),
            p.refunded_amount,
            p.amount
        )));
    }
    Ok(())
}

/// A new payment's id and its pull's transfer id, fixed with it (unique by construction).
pub(crate) struct NewPaymentIds {
    id: PaymentId,
    tran_id: String,
}

impl NewPaymentIds {
    pub(crate) fn new() -> Self {
        let id = PaymentId::new();
        Self {
            id,
            tran_id: pull_tran_id(id),
        }
    }

    pub(crate) fn id(&self) -> PaymentId {
        self.id
    }

    /// The payment's row as the store records it.
    pub(crate) fn payment<'a>(
        &'a self,
        business: BusinessId,
        req: &'a NewPayment,
        at: Timestamp,
    ) -> minipay_store::NewPayment<'a> {
        minipay_store::NewPayment {
            id: self.id,
            business_id: business,
            user_id: req.user_id,
            order_id: req.order_id.as_str(),
            amount: req.amount.won(),
            description: req.description.as_deref(),
            bank_transaction_id: &self.tran_id,
            at,
        }
    }
}

/// The payment already recorded for the order: the same one when the request asks for the
/// same thing, `409 conflict` otherwise.
async fn same_order(tx: &mut Session, business: BusinessId, req: &NewPayment) -> ServiceResult<Payment> {
    let existing = tx
        .payment_by_order(business, req.order_id.as_str())
        .await?
        .ok_or_else(|| internal("an order id taken by no payment"))?;
    let same = existing.user_id == req.user_id
        && existing.amount == req.amount.won()
        && existing.description.as_deref() == req.description.as_deref();
    if !same {
        return Err(ServiceError::Conflict(format!(
            "order_id {:?} is already used by another payment of this business",
            req.order_id.as_str()
        )));
    }
    Ok(existing)
}

/// Why no refund amount could be taken from the payment (read in the same transaction).
async fn refusal(tx: &mut Session, business: BusinessId, payment: PaymentId, amount: i64) -> ServiceError {
    let p = match tx.payment(payment).await {
        Ok(Some(p)) if p.business_id == business => p,
        Ok(_) => return ServiceError::NotFound("payment"),
        Err(e) => return e.into(),
    };
    match check_refund(p.status, p.amount, p.refunded_amount, amount) {
        Err(RefundRefusal::NotPaid(status)) => ServiceError::InvalidState(format!(
            "only a paid payment can be refunded; this one is {}",
            status.as_str()
        )),
        Err(e @ RefundRefusal::ExceedsPayment { .. }) => ServiceError::RefundExceedsPayment(e.to_string()),
        Ok(()) => internal("a refund refused by the store and allowed by the rules"),
    }
}

/// What the ledger's entries show for a payment's money: its order.
pub(crate) fn order_label(p: &Payment) -> String {
    format!("order {}", p.order_id)
}

pub(crate) fn stored_answer(view: &impl Serialize) -> ServiceResult<StoredResponse> {
    Ok(StoredResponse {
        status: 202,
        body: serde_json::to_string(view).map_err(|e| internal(&format!("a view: {e}")))?,
    })
}

fn busy_key() -> ServiceError {
    ServiceError::Conflict("a request with this Idempotency-Key is being processed; retry shortly".into())
}

/// The data of the event that sets the pull side to work.
pub(crate) fn trigger(id: PaymentId) -> serde_json::Value {
    serde_json::json!({ "payment_id": id })
}

/// The data of the event that sets the push side to work.
pub(crate) fn refund_trigger(id: RefundId) -> serde_json::Value {
    serde_json::json!({ "refund_id": id })
}
