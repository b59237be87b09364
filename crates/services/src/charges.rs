//! Charges: pulling money from the user's bank under the daily limit, as a small state
//! machine — record the intent and commit; call the bank with no transaction open; record
//! the outcome in a new transaction; a recovery step resolves what was left unknown by
//! asking the bank, never by pulling again.

use crate::Wallet;
use crate::error::{ServiceError, ServiceResult};
use crate::idempotency::{IdempotentRequest, Reply, claim, conclude};
use crate::views::{AccountView, ChargeView};
use crate::wallet_accounts::owned;
use anyhow::Context;
use jiff::SignedDuration;
use minipay_bank::{BankError, TransferRequest, TransferStatus};
use minipay_core::charge::{ChargePurpose, ChargeStatus};
use minipay_core::ledger::{
    AccountBalance, AccountKind, LockedAccounts, Party, PostedJournal, SystemAccount, charge_journal,
};
use minipay_core::{AccountId, Amount, BusinessDate, ChargeId, JournalId, UserId};
use minipay_store::{BankAccount, Charge, NewCharge, Session, StoredResponse, User};
use std::sync::Arc;

/// The queued job that settles a charge whose request may have died.
pub const RECOVER_CHARGE: &str = "charge.recover";
/// Attempts before a charge whose outcome stays unknown is handed to a person (dead letter):
/// with the queue's backoff (30 s doubling to an hour) that is about 15 hours of asking.
pub const RECOVERY_ATTEMPTS_MAX: i32 = 20;

/// How the recovery step treats open charges. Every limit is named with its unit.
#[derive(Debug, Clone)]
pub struct RecoveryConfig {
    /// Charges younger than this are left to the request that is still handling them. Must
    /// be well above the longest a request can spend on a pull (deadline × attempts).
    pub grace_secs: i64,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self { grace_secs: 60 }
    }
}

/// How a pull ended, as far as the platform can tell after asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChargeOutcome {
    /// The money left the user's bank account.
    Taken,
    /// The money did not move; the error says why.
    NotTaken(BankError),
    /// Neither the pull nor the status inquiry gave an answer. Recovery will ask again.
    Unknown,
}

/// A charge recorded and committed, waiting for its bank call.
pub(crate) struct StartedCharge {
    pub charge: Charge,
    pub bank_account: BankAccount,
}

impl Wallet {
    /// Counts the amount against today's limit and records the intent, in the caller's
    /// transaction. Fails with `daily_limit_exceeded`, changing nothing, if it does not fit.
    pub(crate) async fn start_charge_in(
        &self,
        tx: &mut Session,
        user: &User,
        bank_account: BankAccount,
        amount: Amount,
        purpose: ChargePurpose,
    ) -> ServiceResult<StartedCharge> {
        let now = self.clock.now();
        let today = BusinessDate::containing(now);
        if tx.reserve_charge_limit(user.id, today, amount).await?.is_none() {
            let limit = tx.charge_limit(user.id, today).await?;
            return Err(ServiceError::DailyLimitExceeded(limit));
        }
        let charge = NewCharge {
            id: ChargeId::new(),
            user_id: user.id,
            account_id: user.main_account_id,
            bank_account_id: bank_account.id,
            amount,
            business_date: today,
            purpose,
            at: now,
        };
        tx.insert_charge(&charge).await?;
        // The follow-up exists iff the intent does: if this request dies before recording
        // the bank's answer, the recovery job settles the charge.
        let recover_at = now + SignedDuration::from_secs(self.recovery.grace_secs);
        let payload = serde_json::json!({ "charge_id": charge.id });
        tx.enqueue_job(RECOVER_CHARGE, &payload, recover_at, RECOVERY_ATTEMPTS_MAX, now)
            .await?;
        let charge = tx.charge(charge.id).await?.context("charge just inserted")?;
        Ok(StartedCharge { charge, bank_account })
    }

    /// Calls the bank for a recorded charge. No database transaction may be open. The
    /// charge id is the bank transfer id, so the bank executes it at most once; a timeout is
    /// followed by one status inquiry, never by a second pull.
    pub(crate) async fn pull(&self, started: &StartedCharge) -> ChargeOutcome {
        let StartedCharge { charge, bank_account } = started;
        let tran_id = charge.id.to_string();
        let req = TransferRequest {
            tran_id: tran_id.clone(),
            fintech_use_num: bank_account.fintech_use_num.clone(),
            amount: charge.amount.won(),
            print_content: "minipay charge".into(),
        };
        let outcome = match self.bank.pull(&req).await {
            Ok(_) => ChargeOutcome::Taken,
            Err(e) if e.nothing_happened() => ChargeOutcome::NotTaken(e),
            Err(e) => {
                tracing::warn!(charge = %charge.id, error = %e, "pull outcome unknown; asking the bank");
                self.ask_bank(&tran_id).await
            }
        };
        metrics::counter!("minipay_charges_total", "outcome" => outcome_label(&outcome)).increment(1);
        outcome
    }

    /// Finds out from the bank what became of `tran_id`. "No record" is not an answer — the
    /// pull may still be on its way — so it is turned into one by voiding the id: once the
    /// bank confirms the void, the pull can never execute, and "not taken" is final.
    async fn ask_bank(&self, tran_id: &str) -> ChargeOutcome {
        let not_taken =
            || ChargeOutcome::NotTaken(BankError::Unavailable("the bank did not complete the transfer".into()));
        match self.bank.transfer_status(tran_id).await {
            Ok(TransferStatus::Completed) => ChargeOutcome::Taken,
            Ok(TransferStatus::Failed) => not_taken(),
            Ok(TransferStatus::NotFound) => match self.bank.cancel_transfer(tran_id).await {
                Ok(TransferStatus::Completed) => ChargeOutcome::Taken,
                Ok(TransferStatus::Failed | TransferStatus::NotFound) => not_taken(),
                Ok(TransferStatus::Processing) | Err(_) => ChargeOutcome::Unknown,
            },
            Ok(TransferStatus::Processing) | Err(_) => ChargeOutcome::Unknown,
        }
    }

    /// Posts a charge whose money was taken, in the caller's transaction, into accounts the
    /// caller has locked (the user's main account and the bank settlement account). `None`
    /// if the charge was already resolved by someone else (it is posted exactly once).
    pub(crate) async fn complete_charge_in(
        &self,
        tx: &mut Session,
        locked: &mut LockedAccounts,
        charge: &Charge,
        owner_name: &str,
        bank_label: &str,
    ) -> ServiceResult<Option<PostedJournal>> {
        let now = self.clock.now();
        let journal_id = JournalId::new();
        if !tx
            .resolve_charge(charge.id, ChargeStatus::Completed, None, Some(journal_id), now)
            .await?
        {
            let now_status = tx.charge(charge.id).await?.map(|c| c.status);
            if now_status == Some(ChargeStatus::Failed) {
                // Cannot happen while the bank honours voids: a charge is failed only after the
                // bank said the money was not (and never will be) taken. If it does, a person
                // must reconcile it with the bank.
                metrics::counter!("minipay_charge_conflicts_total").increment(1);
                tracing::error!(charge = %charge.id, "the bank reports money taken for a charge already failed");
            }
            return Ok(None);
        }
        let owner = Party {
            user_id: charge.user_id,
            account_id: charge.account_id,
            name: owner_name.to_owned(),
        };
        let posted = locked
            .post(&charge_journal(&owner, bank_label, charge.amount), journal_id, now)
            .expect("crediting a user account cannot overdraw it");
        Ok(Some(posted))
    }

    /// Marks a charge whose money did not move as failed and gives its amount back to the
    /// daily limit. Returns whether this call resolved it.
    pub(crate) async fn fail_charge_in(&self, tx: &mut Session, charge: &Charge, code: &str) -> ServiceResult<bool> {
        if !tx
            .resolve_charge(charge.id, ChargeStatus::Failed, Some(code), None, self.clock.now())
            .await?
        {
            return Ok(false);
        }
        tx.release_charge_limit(charge.user_id, charge.business_date, charge.amount)
            .await?;
        Ok(true)
    }

    /// The accounts a landed charge touches, to lock before posting it.
    pub(crate) fn charge_accounts(charge: &Charge) -> [AccountId; 2] {
        [charge.account_id, SystemAccount::BankSettlement.id()]
    }

    /// `POST /v1/accounts/{main}/charges`: pulls `amount` from the caller's registered bank
    /// account into their main account.
    ///
    /// The posting (step 3) joins the next ledger batch (see `batch`) when batching is on.
    #[tracing::instrument(name = "minipay.charges.create", skip_all, err(level = "debug"))]
    pub async fn charge(
        self: &Arc<Self>,
        me: UserId,
        account: AccountId,
        amount: Amount,
        idem: Option<IdempotentRequest>,
    ) -> ServiceResult<Reply<ChargeView>> {
        // 1. Record the intent (and claim the key) and commit.
        let mut tx = self.store.begin().await?;
        if let Some(stored) = claim(&mut tx, me, idem.as_ref(), self.clock.now()).await? {
            return Ok(Reply::Replayed(stored));
        }
        let started = match self.begin_charge_in(&mut tx, me, account, amount).await {
            Ok(started) => started,
            Err(e) => return conclude(tx, me, idem.as_ref(), 201, Err(e)).await,
        };
        self.commit_intent(tx, me, idem.as_ref(), &started).await?;

        // 2. Call the bank with no transaction open.
        let outcome = self.pull(&started).await;

        // 3. Record the outcome.
        let charge = &started.charge;
        if outcome == ChargeOutcome::Taken
            && self.batching.enabled()
            && let Some(answer) = self
                .post_charge_in_batch(charge, started.bank_account.label(), idem.as_ref())
                .await
        {
            return answer;
        }
        let mut tx = self.store.begin().await?;
        match outcome {
            ChargeOutcome::Taken => {
                let user = tx.user(me).await?.context("caller exists")?;
                let mut locked = tx.lock_accounts(Self::charge_accounts(charge)).await?;
                let label = started.bank_account.label();
                let Some(posted) = self
                    .complete_charge_in(&mut tx, &mut locked, charge, &user.name, &label)
                    .await?
                else {
                    tx.rollback().await?;
                    return self.charge_settled_elsewhere(me, charge, idem.as_ref()).await;
                };
                tx.write_postings(&locked, std::slice::from_ref(&posted)).await?;
                let view = self.charge_view_in(&mut tx, charge, None).await?;
                conclude(tx, me, idem.as_ref(), 201, Ok(view)).await
            }
            ChargeOutcome::NotTaken(e) => {
                self.fail_charge_in(&mut tx, charge, failure_code(&e)).await?;
                self.finish_not_taken(tx, me, idem.as_ref(), e).await
            }
            ChargeOutcome::Unknown => self.leave_unknown(tx, charge).await,
        }
    }

    async fn begin_charge_in(
        &self,
        tx: &mut Session,
        me: UserId,
        account: AccountId,
        amount: Amount,
    ) -> ServiceResult<StartedCharge> {
        let main = owned(tx.account(account).await?, me)?;
        if main.kind != AccountKind::Main {
            return Err(ServiceError::InvalidState("charges go into the main account".into()));
        }
        let user = tx.user(me).await?.context("caller exists")?;
        let bank = tx
            .charging_bank_account(me)
            .await?
            .ok_or_else(|| ServiceError::InvalidState("register a bank account before charging".into()))?;
        self.start_charge_in(tx, &user, bank, amount, ChargePurpose::Charge)
            .await
    }

    /// Commits a recorded charge intent, noting it on the request's idempotency key so that
    /// whoever resolves the charge can settle the key too.
    pub(crate) async fn commit_intent(
        &self,
        mut tx: Session,
        me: UserId,
        idem: Option<&IdempotentRequest>,
        started: &StartedCharge,
    ) -> ServiceResult<()> {
        if let Some(req) = idem {
            tx.attach_charge_to_key(me.into(), req.key(), started.charge.id).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Ends a request whose pull certainly did not take money: a decline is final (stored
    /// under the key); an unavailable bank is transient (the key is released for a retry).
    /// The failed charge row and the released limit commit either way.
    pub(crate) async fn finish_not_taken<T: serde::Serialize>(
        &self,
        mut tx: Session,
        me: UserId,
        idem: Option<&IdempotentRequest>,
        e: BankError,
    ) -> ServiceResult<Reply<T>> {
        match e {
            BankError::Declined(reason) => conclude(tx, me, idem, 201, Err(ServiceError::BankDeclined(reason))).await,
            other => {
                if let Some(req) = idem {
                    tx.release_idempotency_key(me.into(), req.key()).await?;
                }
                tx.commit().await?;
                Err(ServiceError::BankUnavailable(format!(
                    "the bank is unavailable; nothing was charged ({other})"
                )))
            }
        }
    }

    /// The bank gave no answer: the charge stays open (with its key held) for recovery.
    pub(crate) async fn leave_unknown<T>(&self, mut tx: Session, charge: &Charge) -> ServiceResult<Reply<T>> {
        tx.mark_charge_unknown(charge.id).await?;
        tx.commit().await?;
        Err(ServiceError::BankUnavailable(
            "the bank did not confirm the charge; it will be resolved with the bank shortly, never charged twice"
                .into(),
        ))
    }

    /// Settles one charge whose request may have died: asks the bank (voiding an id it has
    /// no record of) and posts or fails the charge. `Ok(true)` if this call resolved it,
    /// `Ok(false)` if it was already resolved; an outcome still unknown is an error to retry.
    pub(crate) async fn recover_charge_by_id(&self, id: ChargeId) -> Result<bool, String> {
        let charge = self
            .store
            .read()
            .await
            .map_err(|e| e.to_string())?
            .charge(id)
            .await
            .map_err(|e| e.to_string())?;
        let Some(charge) = charge.filter(|c| c.status.is_open()) else {
            return Ok(false);
        };
        match self.recover_charge(&charge).await {
            Ok(true) => Ok(true),
            Ok(false) if self.charge_is_open(id).await => Err("the bank has not confirmed the outcome yet".into()),
            Ok(false) => Ok(false),
            Err(e) => Err(format!("{e:#}")),
        }
    }

    async fn charge_is_open(&self, id: ChargeId) -> bool {
        match self.store.read().await {
            Ok(mut s) => s.charge(id).await.ok().flatten().is_some_and(|c| c.status.is_open()),
            Err(_) => true,
        }
    }

    async fn recover_charge(&self, charge: &Charge) -> ServiceResult<bool> {
        let outcome = self.ask_bank(&charge.id.to_string()).await;
        let mut tx = self.store.begin().await?;
        let resolved = match outcome {
            ChargeOutcome::Taken => {
                let user = tx.user(charge.user_id).await?.context("charge owner exists")?;
                let bank = tx
                    .bank_account(charge.bank_account_id)
                    .await?
                    .context("charge bank account exists")?;
                let mut locked = tx.lock_accounts(Self::charge_accounts(charge)).await?;
                match self
                    .complete_charge_in(&mut tx, &mut locked, charge, &user.name, &bank.label())
                    .await?
                {
                    Some(posted) => {
                        tx.write_postings(&locked, std::slice::from_ref(&posted)).await?;
                        self.settle_waiting_keys(&mut tx, charge).await?;
                        true
                    }
                    None => false,
                }
            }
            ChargeOutcome::NotTaken(_) => {
                let failed = self.fail_charge_in(&mut tx, charge, "not_taken").await?;
                if failed {
                    // Nothing was charged: a retry may try again.
                    tx.release_keys_waiting_on(charge.id).await?;
                }
                failed
            }
            ChargeOutcome::Unknown => {
                tx.mark_charge_unknown(charge.id).await?;
                false
            }
        };
        tx.commit().await?;
        if resolved {
            tracing::info!(charge = %charge.id, outcome = ?outcome, "recovered a charge");
            // A charge that funded an 08:00 auto-debit whose request died: finish that debit.
            self.finish_auto_debit_after_recovery(charge).await?;
        }
        Ok(resolved)
    }

    /// After recovery posts a charge, the request that asked for it (which answered 503)
    /// gets its final answer: a requested charge replays as the completed charge — a retry
    /// must not pull again; an auto-charge's transfer never ran, so its key is released and
    /// a retry makes the transfer from the money now in the main account.
    async fn settle_waiting_keys(&self, tx: &mut Session, charge: &Charge) -> ServiceResult<()> {
        match charge.purpose {
            ChargePurpose::Charge => {
                let view = self.charge_view_in(tx, charge, None).await?;
                let body = serde_json::to_string(&view).expect("views serialise");
                tx.complete_keys_waiting_on(charge.id, &StoredResponse { status: 201, body })
                    .await?;
            }
            ChargePurpose::AutoCharge => {
                tx.release_keys_waiting_on(charge.id).await?;
            }
        }
        Ok(())
    }

    /// The recovery step resolved this request's charge first (possible when instances'
    /// clocks disagree). If the money landed, the answer is the completed charge — recovery
    /// stored it under the key — otherwise the charge failed and nothing moved.
    async fn charge_settled_elsewhere(
        &self,
        me: UserId,
        charge: &Charge,
        idem: Option<&IdempotentRequest>,
    ) -> ServiceResult<Reply<ChargeView>> {
        let mut tx = self.store.begin().await?;
        let status = tx.charge(charge.id).await?.map(|c| c.status);
        if status != Some(ChargeStatus::Completed) {
            return Err(settled_elsewhere());
        }
        if let Some(stored) = claim(&mut tx, me, idem, self.clock.now()).await? {
            return Ok(Reply::Replayed(stored));
        }
        // No key (or its record is gone): answer with the charge as it stands.
        let view = self.charge_view_in(&mut tx, charge, None).await?;
        tx.rollback().await?;
        Ok(Reply::Fresh(view))
    }

    /// A completed charge's answer. `balance`: the main account's balance right after the
    /// posting, when the transaction has moved it further since (a batch); else as stored.
    pub(crate) async fn charge_view_in(
        &self,
        tx: &mut Session,
        charge: &Charge,
        balance: Option<&AccountBalance>,
    ) -> ServiceResult<ChargeView> {
        let mut main = tx.account(charge.account_id).await?.context("main account exists")?;
        if let Some(b) = balance {
            main.posted = b.posted;
            main.pending_out = b.pending_out;
        }
        let limit = tx.charge_limit(charge.user_id, charge.business_date).await?;
        Ok(ChargeView {
            id: charge.id,
            amount: charge.amount.won(),
            status: ChargeStatus::Completed.as_str().into(),
            account: AccountView::from(&main),
            limit: limit.into(),
        })
    }
}

pub(crate) fn settled_elsewhere() -> ServiceError {
    ServiceError::BankUnavailable("the bank did not complete the charge; nothing was charged".into())
}

pub(crate) fn failure_code(e: &BankError) -> &'static str {
    match e {
        BankError::Declined(_) => "declined",
        BankError::Unavailable(_) => "unavailable",
        BankError::Timeout | BankError::Protocol(_) => "not_taken",
    }
}

fn outcome_label(o: &ChargeOutcome) -> &'static str {
    match o {
        ChargeOutcome::Taken => "taken",
        ChargeOutcome::NotTaken(BankError::Declined(_)) => "declined",
        ChargeOutcome::NotTaken(_) => "not_taken",
        ChargeOutcome::Unknown => "unknown",
    }
}
