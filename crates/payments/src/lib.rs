//! minipay's payments (API-business.md, "Payments and refunds"): a business takes a payment
//! from a wallet user's registered bank account, refunds it in part or in full, and keeps a
//! balance on the platform's ledger. A request is recorded and answered at once (`202`); the
//! bank is called in the background by the consumers, outside any transaction, under a
//! transfer id fixed when the request was recorded; every bank call is a row.

mod accept;
mod accept_group;
mod batch;
mod consumers;
mod jobs;
mod refund_batch;
mod refund_group;
mod request;
mod settle;
pub mod views;
mod webhooks;

pub use consumers::consumers;
pub use jobs::{SCHEDULES, jobs};
pub use request::{NewPayment, NewRefund};

use jiff::SignedDuration;
use minipay_bank::Bank;
use minipay_core::ledger::business_account;
use minipay_core::request::PageLimit;
use minipay_core::{BusinessId, Clock, PaymentId, UserId};
use minipay_events::Events;
use minipay_events::webhooks::Webhooks;
use minipay_services::BatchConfig;
use minipay_services::group_commit::GroupCommit;
use minipay_services::pagination::{decode_cursor, page_of, rows_for};
use minipay_services::views::Page;
use minipay_services::{ServiceError, ServiceResult};
use minipay_store::{Payment, PaymentFilter, Store};
use std::sync::Arc;
use views::{AcceptGroupsView, BalanceView, PaymentHistoryView, PaymentView, RefundView};

/// Subjects of the payments' events.
pub mod subjects {
    /// A payment was recorded: the pull side takes it.
    pub const ACCEPTED: &str = "payment.accepted";
    pub const PAID: &str = "payment.paid";
    pub const FAILED: &str = "payment.failed";
    /// A refund was recorded (its amount already taken from the business's balance).
    pub const REFUND_ACCEPTED: &str = "refund.accepted";
    pub const REFUND_SUCCEEDED: &str = "refund.succeeded";
    pub const REFUND_FAILED: &str = "refund.failed";
}

/// How hard the payments try. Every limit is named with its unit.
#[derive(Debug, Clone)]
pub struct PaymentsConfig {
    /// Deliveries of an event before it is dead-lettered (the business side's
    /// `MINIPAY_REMIT_ATTEMPTS`).
    pub attempts_max: i32,
    /// Between deliveries (`MINIPAY_REMIT_RETRY_DELAY_MS`).
    pub retry_delay: SignedDuration,
    /// A transfer the bank would not take (unavailable) is sent at most this many times;
    /// then the payment (or refund) fails with `bank_unavailable`. Nothing moved.
    pub sends_max: usize,
    /// The recovery job settles payments and refunds that have not moved for this long
    /// (a crash, a delivery that gave up).
    pub recover_after: SignedDuration,
    /// How concurrent payment requests (one statement a group), and refund requests (one
    /// transaction a group), are grouped (the wallet's settings).
    pub accept_batching: BatchConfig,
}

impl Default for PaymentsConfig {
    fn default() -> Self {
        Self {
            attempts_max: 3,
            retry_delay: SignedDuration::from_secs(10),
            sends_max: 5,
            recover_after: SignedDuration::from_mins(1),
            accept_batching: BatchConfig::default(),
        }
    }
}

/// The payments' use-cases over one store, bank, clock and event engine.
pub struct Payments {
    store: Store,
    bank: Arc<dyn Bank>,
    clock: Arc<dyn Clock>,
    events: Events,
    /// Records the final statuses' webhooks (in the settling transaction) and tries them.
    webhooks: Arc<Webhooks>,
    config: PaymentsConfig,
    accepts: GroupCommit<accept_group::AcceptPayment, accept_group::Accepted>,
    refunds: GroupCommit<refund_group::AcceptRefund, refund_group::RefundAccepted>,
    /// What the payment groups recorded.
    payment_counter: Arc<accept_group::GroupCounter>,
    /// What the refund groups recorded.
    refund_counter: Arc<accept_group::GroupCounter>,
}

impl Payments {
    pub fn new(
        store: Store,
        bank: Arc<dyn Bank>,
        clock: Arc<dyn Clock>,
        events: Events,
        webhooks: Arc<Webhooks>,
        config: PaymentsConfig,
    ) -> Self {
        let (payment_counter, refund_counter) = (
            Arc::new(accept_group::GroupCounter::new("payment")),
            Arc::new(accept_group::GroupCounter::new("refund")),
        );
        let groups = accept_group::PaymentGroups {
            store: store.clone(),
            clock: clock.clone(),
            events: events.clone(),
            counter: Arc::clone(&payment_counter),
        };
        let refund_groups = refund_group::RefundGroups {
            store: store.clone(),
            clock: clock.clone(),
            events: events.clone(),
            counter: Arc::clone(&refund_counter),
        };
        Self {
            payment_counter,
            refund_counter,
            // A full intake holds the consumers back (settling, pushing refunds) for a moment.
            accepts: GroupCommit::new(config.accept_batching, Arc::new(groups)).reporting_to(events.intake_load()),
            refunds: GroupCommit::new(config.accept_batching, Arc::new(refund_groups))
                .reporting_to(events.intake_load()),
            store,
            bank,
            clock,
            events,
            webhooks,
            config,
        }
    }

    pub fn config(&self) -> &PaymentsConfig {
        &self.config
    }

    /// What this instance's accept groups have recorded since it started.
    pub fn accept_groups(&self) -> AcceptGroupsView {
        AcceptGroupsView {
            payments: self.payment_counter.view(),
            refunds: self.refund_counter.view(),
        }
    }

    /// A payment as its business sees it; anyone else's is `not_found`.
    pub async fn payment_of(&self, business: BusinessId, id: PaymentId) -> ServiceResult<PaymentView> {
        let p = self.read_payment(id).await?;
        if p.business_id != business {
            return Err(ServiceError::NotFound("payment"));
        }
        Ok((&p).into())
    }

    async fn read_payment(&self, id: PaymentId) -> ServiceResult<Payment> {
        self.store
            .read()
            .await?
            .payment(id)
            .await?
            .ok_or(ServiceError::NotFound("payment"))
    }

    /// A refund of one of the business's payments.
    pub async fn refund_of(&self, business: BusinessId, id: minipay_core::RefundId) -> ServiceResult<RefundView> {
        let r = self.store.read().await?.refund(id).await?;
        match r {
            Some(r) if r.business_id == business => Ok((&r).into()),
            _ => Err(ServiceError::NotFound("refund")),
        }
    }

    /// Payments, newest first, a cursor page at a time: a business's, a user's, or (for
    /// operators) any filter.
    pub async fn payments(
        &self,
        filter: &PaymentFilter,
        limit: PageLimit,
        cursor: Option<&str>,
    ) -> ServiceResult<Page<PaymentView>> {
        let after = cursor.map(decode_cursor).transpose()?;
        let rows = self
            .store
            .read()
            .await?
            .payments(filter, after, rows_for(limit))
            .await?;
        Ok(page_of(
            rows,
            limit,
            |p| (p.created_at, p.id.as_uuid()),
            |p| (&p).into(),
        ))
    }

    /// A user's own payments (`GET /v1/payments`).
    pub async fn payments_of_user(
        &self,
        user: UserId,
        limit: PageLimit,
        cursor: Option<&str>,
    ) -> ServiceResult<Page<PaymentView>> {
        let filter = PaymentFilter {
            user: Some(user),
            ..PaymentFilter::default()
        };
        self.payments(&filter, limit, cursor).await
    }

    /// Customer support: payments with every refund and bank call, newest first.
    pub async fn payment_histories(
        &self,
        filter: &PaymentFilter,
        limit: PageLimit,
        cursor: Option<&str>,
    ) -> ServiceResult<Page<PaymentHistoryView>> {
        let after = cursor.map(decode_cursor).transpose()?;
        let mut s = self.store.read().await?;
        let rows = s.payments(filter, after, rows_for(limit)).await?;
        let ids: Vec<PaymentId> = rows.iter().map(|p| p.id).collect();
        let refunds = s.refunds_of(&ids).await?;
        let calls = s.bank_calls_of(&ids).await?;
        Ok(page_of(
            rows,
            limit,
            |p| (p.created_at, p.id.as_uuid()),
            |p| PaymentHistoryView::new(&p, &refunds, &calls),
        ))
    }

    /// One payment with every refund and bank call (operators).
    pub async fn payment_history(&self, id: PaymentId) -> ServiceResult<PaymentHistoryView> {
        let mut s = self.store.read().await?;
        let p = s.payment(id).await?.ok_or(ServiceError::NotFound("payment"))?;
        let refunds = s.refunds_of(&[id]).await?;
        let calls = s.bank_calls_of(&[id]).await?;
        Ok(PaymentHistoryView::new(&p, &refunds, &calls))
    }

    /// The refunds of one of the business's payments, oldest first.
    pub async fn refunds_of(&self, business: BusinessId, id: PaymentId) -> ServiceResult<Vec<RefundView>> {
        let mut s = self.store.read().await?;
        match s.payment(id).await? {
            Some(p) if p.business_id == business => {}
            _ => return Err(ServiceError::NotFound("payment")),
        }
        Ok(s.refunds_of(&[id]).await?.iter().map(Into::into).collect())
    }

    /// `GET /v1/biz/balance`: the business's balance on the ledger, and its payouts on their way
    /// (already out of the balance).
    pub async fn balance(&self, business: BusinessId) -> ServiceResult<BalanceView> {
        let mut s = self.store.read().await?;
        let account = s
            .account(business_account(business))
            .await?
            .ok_or(ServiceError::NotFound("business"))?;
        Ok(BalanceView {
            balance: account.posted,
            pending_payouts: s.pending_payouts(business).await?,
        })
    }
}

pub(crate) fn internal(what: &str) -> ServiceError {
    ServiceError::Internal(anyhow::anyhow!("{what}"))
}
