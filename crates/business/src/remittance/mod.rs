//! Business remittance (A → platform → B): a request is recorded and answered at once; two
//! consumers run the steps — collect and credit the float on `remittance.requested`, debit it
//! and pay out on `remittance.credited` — each step retried, dead-lettered, retried in rounds
//! by a job, and handed to a person when that is not enough. Every step is a row.

mod accept;
mod consumers;
mod jobs;
mod payout;
mod request;
mod steps;
pub mod views;
mod webhooks;

pub use consumers::consumers;
pub use jobs::{SCHEDULES, jobs};
pub use request::{NewRemittance, REFERENCE_LEN_MAX, Recipient};
pub use webhooks::webhook_consumers;

use crate::Businesses;
use jiff::SignedDuration;
use minipay_bank::Bank;
use minipay_core::remittance::{RemittanceStatus, Step};
use minipay_core::request::{IdempotencyKey, PageLimit};
use minipay_core::{BusinessId, Clock, RemittanceId};
use minipay_events::{Events, emit};
use minipay_services::BatchConfig;
use minipay_services::RegisterBankAccount;
use minipay_services::group_commit::GroupCommit;
use minipay_services::idempotency::{IdempotentRequest, Reply, peek, record};
use minipay_services::pagination::{decode_cursor, page_of, rows_for};
use minipay_services::views::Page;
use minipay_services::{ServiceError, ServiceResult, bank_failure};
use minipay_store::{
    NewBusinessRemittance, NewRemittanceRecord, Remittance, RemittanceFilter, StatusChange, Store, StoredResponse,
};
use std::sync::Arc;
use views::{RemittanceDetailView, RemittanceView};

/// Subjects of the remittance's events.
pub mod subjects {
    /// A remittance was recorded: the collect side takes it.
    pub const REQUESTED: &str = "remittance.requested";
    /// The money is in the float: the payout side takes it (the contract's hand-over).
    pub const CREDITED: &str = "remittance.credited";
    pub const COMPLETED: &str = "remittance.completed";
    pub const COLLECT_FAILED: &str = "remittance.collect_failed";
    pub const REFUNDED: &str = "remittance.refunded";
    pub const NEEDS_ATTENTION: &str = "remittance.needs_attention";
}

/// How hard the remittance tries. Every limit is named with its unit.
#[derive(Debug, Clone)]
pub struct RemitConfig {
    /// Attempts per step before it is dead-lettered (`MINIPAY_REMIT_ATTEMPTS`).
    pub attempts_max: i32,
    /// Between a step's attempts (`MINIPAY_REMIT_RETRY_DELAY_MS`).
    pub retry_delay: SignedDuration,
    /// Rounds the `remittance-retry` job gives a dead letter before a person must decide.
    pub retry_rounds_max: i32,
    /// Between the job's rounds for one dead letter.
    pub retry_round_delay: SignedDuration,
    /// A remittance unfinished this long after it was requested raises one alert.
    pub stuck_after: SignedDuration,
    /// How concurrent requests are grouped into one transaction (the wallet's settings).
    pub accept_batching: BatchConfig,
}

impl Default for RemitConfig {
    fn default() -> Self {
        Self {
            attempts_max: 3,
            retry_delay: SignedDuration::from_secs(10),
            retry_rounds_max: 3,
            retry_round_delay: SignedDuration::from_secs(60),
            stuck_after: SignedDuration::from_mins(10),
            accept_batching: BatchConfig::default(),
        }
    }
}

/// The remittance use-cases over one store, bank, clock and event engine.
pub struct Remittances {
    store: Store,
    bank: Arc<dyn Bank>,
    clock: Arc<dyn Clock>,
    events: Events,
    businesses: Arc<Businesses>,
    config: RemitConfig,
    accepts: GroupCommit<accept::Accept, accept::Accepted>,
}

/// A bank account a remittance pays (not a business's), and the sender's account.
struct Destination {
    sender_fin: String,
    bank_code: String,
    account_number_masked: String,
    holder_name: String,
    fintech_use_num: String,
}

impl Remittances {
    pub fn new(
        store: Store,
        bank: Arc<dyn Bank>,
        clock: Arc<dyn Clock>,
        events: Events,
        businesses: Arc<Businesses>,
        config: RemitConfig,
    ) -> Self {
        let groups = accept::AcceptGroups {
            store: store.clone(),
            clock: clock.clone(),
            events: events.clone(),
        };
        Self {
            accepts: GroupCommit::new(config.accept_batching, Arc::new(groups)),
            store,
            bank,
            clock,
            events,
            businesses,
            config,
        }
    }

    pub fn config(&self) -> &RemitConfig {
        &self.config
    }

    /// `POST /v1/biz/remittances`: records the remittance and hands it to the collect side;
    /// the money moves in the background. The same key and body return the same remittance.
    #[tracing::instrument(name = "minipay.remittances.request", skip_all, err(level = "debug"))]
    pub async fn request(
        &self,
        from: BusinessId,
        req: NewRemittance,
        key: Option<IdempotencyKey>,
    ) -> ServiceResult<Reply<RemittanceView>> {
        let key = key.ok_or_else(|| ServiceError::validation("Idempotency-Key is required for a remittance"))?;
        let idem = IdempotentRequest::new(Some(key), "remittance", "", &req.fingerprint());
        // A bank account is registered with the bank first, with no transaction open.
        let to_account = match &req.to {
            Recipient::Business(id) if *id == from => return Err(yourself()),
            Recipient::Business(_) => None,
            Recipient::BankAccount(account) => Some(self.bank_destination(from, account).await?),
        };
        // A remittance to a business joins the next group of requests (one transaction for all).
        if let (Recipient::Business(_), Some(idem)) = (&req.to, &idem)
            && self.config.accept_batching.enabled()
        {
            let grouped = accept::Accept {
                from,
                req: req.clone(),
                idem: idem.clone(),
            };
            if let Some(reply) = self.accepts.submit_or_alone(grouped).await? {
                metrics::counter!("minipay_remittances_requested_total").increment(1);
                return Ok(reply);
            }
        }
        // On its own. Once more if another request took the key between reading it and
        // writing it: the second time replays that request's answer.
        for _ in 0..2 {
            if let Some(reply) = self
                .record_request(from, &req, idem.as_ref(), to_account.as_ref())
                .await?
            {
                self.events.wake();
                metrics::counter!("minipay_remittances_requested_total").increment(1);
                return Ok(reply);
            }
        }
        Err(ServiceError::Conflict(
            "a request with this Idempotency-Key is being processed; retry shortly".into(),
        ))
    }

    /// One transaction: the key read, the remittance and its event written, the answer stored
    /// under the key. `None` when the key was taken meanwhile (nothing is written then).
    async fn record_request(
        &self,
        from: BusinessId,
        req: &NewRemittance,
        idem: Option<&IdempotentRequest>,
        to_account: Option<&Destination>,
    ) -> ServiceResult<Option<Reply<RemittanceView>>> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        if let Some(stored) = peek(&mut tx, from, idem, now).await? {
            return Ok(Some(Reply::Replayed(stored)));
        }
        let id = RemittanceId::new();
        let (memo, reference) = (req.memo.as_deref(), req.reference.as_deref());
        let recorded = match (&req.to, to_account) {
            (Recipient::Business(to), _) => tx
                .insert_remittance_to_business(&NewBusinessRemittance {
                    id,
                    from,
                    to: *to,
                    amount: req.amount.won(),
                    memo,
                    reference,
                    at: now,
                })
                .await?
                .ok_or(ServiceError::NotFound("business"))?,
            (_, Some(to)) => {
                tx.insert_remittance(&NewRemittanceRecord {
                    id,
                    from_business_id: from,
                    from_fintech_use_num: &to.sender_fin,
                    to_business_id: None,
                    to_bank_code: &to.bank_code,
                    to_account_number_masked: &to.account_number_masked,
                    to_holder_name: &to.holder_name,
                    to_fintech_use_num: &to.fintech_use_num,
                    amount: req.amount.won(),
                    memo,
                    reference,
                    at: now,
                })
                .await?
            }
            (Recipient::BankAccount(_), None) => return Err(internal("a bank account without its registration")),
        };
        emit(&mut tx, subjects::REQUESTED, &trigger(id), now).await?;
        let view = RemittanceView::new(&recorded, &[]);
        let answer = StoredResponse {
            status: 202,
            body: serde_json::to_string(&view).map_err(|e| internal(&format!("a remittance view: {e}")))?,
        };
        if !record(&mut tx, from, idem, &answer, now).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(Reply::Fresh(view)))
    }

    /// A bank account to pay, registered with the bank now (outside any transaction); paying
    /// one's own account is refused.
    async fn bank_destination(&self, from: BusinessId, account: &RegisterBankAccount) -> ServiceResult<Destination> {
        let sender = self.businesses.record_of(from).await?;
        let fin = self
            .bank
            .register_account(&minipay_bank::RegisterAccount {
                bank_code: account.bank_code.as_str().to_owned(),
                account_number: account.account_number.as_str().to_owned(),
                holder_name: account.holder_name.clone(),
            })
            .await
            .map_err(bank_failure)?;
        if fin.fintech_use_num == sender.fintech_use_num {
            return Err(yourself());
        }
        Ok(Destination {
            sender_fin: sender.fintech_use_num,
            bank_code: account.bank_code.as_str().to_owned(),
            account_number_masked: account.account_number.masked(),
            holder_name: account.holder_name.clone(),
            fintech_use_num: fin.fintech_use_num,
        })
    }

    /// A remittance `business` sent or receives; anyone else's is `not_found`.
    pub async fn remittance_of(&self, business: BusinessId, id: RemittanceId) -> ServiceResult<RemittanceView> {
        let (r, attempts) = self.with_attempts(id).await?;
        if r.from_business_id != business && r.to_business_id != Some(business) {
            return Err(ServiceError::NotFound("remittance"));
        }
        Ok(RemittanceView::new(&r, &attempts))
    }

    /// A remittance with every attempt (operators).
    pub async fn remittance_detail(&self, id: RemittanceId) -> ServiceResult<RemittanceDetailView> {
        let (r, attempts) = self.with_attempts(id).await?;
        Ok(RemittanceDetailView::new(&r, &attempts))
    }

    async fn with_attempts(
        &self,
        id: RemittanceId,
    ) -> ServiceResult<(Remittance, Vec<minipay_store::RemittanceAttempt>)> {
        let mut s = self.store.read().await?;
        let r = s.remittance(id).await?.ok_or(ServiceError::NotFound("remittance"))?;
        let attempts = s.remittance_attempts(&[id]).await?;
        Ok((r, attempts))
    }

    /// Remittances, newest first, a cursor page at a time: a business's (sent and received),
    /// or everyone's for operators.
    pub async fn remittances(
        &self,
        filter: &RemittanceFilter,
        limit: PageLimit,
        cursor: Option<&str>,
    ) -> ServiceResult<Page<RemittanceView>> {
        let after = cursor.map(decode_cursor).transpose()?;
        let mut s = self.store.read().await?;
        let rows = s.remittances(filter, after, rows_for(limit)).await?;
        let ids: Vec<RemittanceId> = rows.iter().map(|r| r.id).collect();
        let attempts = s.remittance_attempts(&ids).await?;
        Ok(page_of(
            rows,
            limit,
            |r| (r.created_at, r.id.as_uuid()),
            |r| RemittanceView::new(&r, &attempts),
        ))
    }

    /// `POST /v1/admin/remittances/{id}/retry`: a person sends a `needs_attention` remittance
    /// on from the step that failed; its open dead letters are closed.
    #[tracing::instrument(name = "minipay.remittances.retry", skip(self), err(level = "debug"))]
    pub async fn retry(&self, id: RemittanceId) -> ServiceResult<RemittanceView> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let r = tx.remittance(id).await?.ok_or(ServiceError::NotFound("remittance"))?;
        let held = match (r.status, r.held_status) {
            (RemittanceStatus::NeedsAttention, Some(held)) => held,
            (status, _) => {
                return Err(ServiceError::InvalidState(format!(
                    "only a remittance that needs attention is retried by hand; this one is {}",
                    status.as_str()
                )));
            }
        };
        let change = StatusChange {
            from: RemittanceStatus::NeedsAttention,
            to: held,
            held: None,
            failure: None,
            at: now,
        };
        if !tx.change_remittance_status(id, &change).await? {
            return Err(ServiceError::Conflict(
                "the remittance changed meanwhile; read it again".into(),
            ));
        }
        tx.resolve_dead_letters(id.as_uuid(), None, "retried_by_operator", now)
            .await?;
        let subject = match held.next_step().map(steps::side_of) {
            Some(steps::Side::Collect) => subjects::REQUESTED,
            _ => subjects::CREDITED,
        };
        emit(&mut tx, subject, &trigger(id), now).await?;
        tx.commit().await?;
        self.events.wake();
        self.remittance_detail(id).await.map(|d| d.remittance)
    }
}

/// The data of the events that set a side to work: which remittance.
pub(crate) fn trigger(id: RemittanceId) -> serde_json::Value {
    serde_json::json!({ "remittance_id": id })
}

fn yourself() -> ServiceError {
    ServiceError::validation("a business cannot send a remittance to itself")
}

pub(crate) fn internal(what: &str) -> ServiceError {
    ServiceError::Internal(anyhow::anyhow!("{what}"))
}

/// The step a dead letter's kind names (`remittance.<step>`).
pub(crate) fn dead_letter_kind(step: Step) -> String {
    format!("remittance.{}", step.as_str())
}
