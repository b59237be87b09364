//! Group commit for the ledger: concurrent transfers and charge postings share one transaction.
//!
//! Two kinds of command join a batch: a transfer, and the posting of a charge whose money the
//! bank has confirmed taken (the bank call itself is never made here). Each command still gets
//! its own answer. In one transaction per batch the transfers' keys are read, both sides
//! resolved, every account of the batch locked once (in the one lock order), then the commands
//! are applied one after another to the locked balances in memory — every rule re-checked —
//! and what they changed is written back with a statement per table, each free key inserted
//! once with its answer (a key taken meanwhile rolls the batch back). A command
//! that fails (an overdrawn sender, a bad recipient) fails alone; a transfer that needs an
//! auto-charge (a bank call), or a charge someone else resolved first, leaves the batch and
//! runs on its own. Nothing is answered before the batch commits; if the batch cannot commit
//! for a reason that is not any one command's fault, its commands run one by one instead.

use crate::Wallet;
use crate::error::{ServiceError, ServiceResult};
use crate::idempotency::{IdempotentRequest, Reply, peek_all, record_all};
use crate::transfers::{
    KnownUsers, PaymentPurpose, Sides, TransferRecipient, TransferRequest, announce, nothing_to_charge_from,
};
use crate::views::{ChargeView, TransferView};
use jiff::Timestamp;
use minipay_core::charge::auto_charge_amount;
use minipay_core::ledger::{LockedAccounts, PostedJournal};
use minipay_core::{KeyOwner, TransferId, UserId};
use minipay_store::{Charge, Session, StoreError, StoredResponse, Transfer};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};
use tokio::time::Instant;

/// How transfers are grouped. `max_commands <= 1` turns batching off.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// Most commands in one transaction.
    pub max_commands: usize,
    /// Longest a command waits for others to join its batch.
    pub max_wait: Duration,
    /// Batches one instance runs at once: while one waits for its commit (the WAL flush), the
    /// next reads its keys and its users, then waits for the first's row locks. The
    /// best number depends on how long a flush takes (see docs/decisions.md).
    pub in_flight_max: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_commands: 128,
            max_wait: Duration::from_micros(1_000),
            in_flight_max: 2,
        }
    }
}

impl BatchConfig {
    pub fn enabled(&self) -> bool {
        self.max_commands > 1
    }
}

/// What this instance's batcher has done (for operators and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BatchStats {
    /// Batches committed.
    pub batches: u64,
    /// Commands answered by a committed batch.
    pub commands: u64,
    /// Of those, charge postings.
    pub charges: u64,
    /// The most commands one committed batch answered.
    pub largest: u64,
    /// Commands that left a batch to run on their own (a transfer needing an auto-charge, a
    /// charge resolved elsewhere first, or every command of a batch that failed).
    pub unbatched: u64,
    /// Batches that failed as a whole and were run one by one.
    pub failed: u64,
    /// Of those, batches that gave way to another party: a key taken by another request, or a
    /// lock wait past [`BATCH_LOCK_WAIT_MAX`] (another instance's batch on the same accounts).
    /// Expected under contention; any other failure is worth a look.
    pub gave_way: u64,
}

/// The commands waiting for a batch, and the statistics.
pub(crate) struct TransferBatcher {
    state: Mutex<Waiting>,
    /// Wakes a waiting leader when its batch is full.
    full: Notify,
    /// A permit is held while a batch runs.
    running: tokio::sync::Semaphore,
}

impl TransferBatcher {
    pub(crate) fn new(config: &BatchConfig) -> Self {
        Self {
            state: Mutex::default(),
            full: Notify::new(),
            running: tokio::sync::Semaphore::new(config.in_flight_max.max(1)),
        }
    }
}

/// Longest a batch waits for a row lock or a key before it gives up and its commands run one
/// by one. A batch takes its keys after its accounts (the other way round from a request on
/// its own): should one of those hold a key the batch wants while waiting for an account the
/// batch holds, the batch — not the request — gives way, well before PostgreSQL's deadlock
/// check (1 s by default) would pick either.
const BATCH_LOCK_WAIT_MAX: Duration = Duration::from_millis(500);

/// Why a batch was rolled back as a whole (its commands then run one by one).
enum Abandoned {
    /// Another request took one of the batch's keys after the batch found it free.
    KeyTaken,
    Failed(ServiceError),
}

impl From<ServiceError> for Abandoned {
    fn from(e: ServiceError) -> Self {
        Self::Failed(e)
    }
}

impl From<StoreError> for Abandoned {
    fn from(e: StoreError) -> Self {
        Self::Failed(e.into())
    }
}

impl Abandoned {
    /// Whether the batch lost to another party (see [`BatchStats::gave_way`]).
    fn gave_way(&self) -> bool {
        match self {
            Self::KeyTaken => true,
            Self::Failed(ServiceError::Internal(cause)) => cause
                .downcast_ref::<StoreError>()
                .is_some_and(StoreError::is_lock_conflict),
            Self::Failed(_) => false,
        }
    }
}

#[derive(Default)]
struct Waiting {
    queue: Vec<Queued>,
    /// Whether a leader task is waiting to take the queue.
    led: bool,
    stats: BatchStats,
}

struct Queued {
    me: UserId,
    command: Command,
    /// The request's key. A transfer's is written by its batch; a charge's was claimed when
    /// its intent was recorded and is still held.
    idem: Option<IdempotentRequest>,
    answer: oneshot::Sender<Batched>,
}

#[allow(clippy::large_enum_variant)] // one per queued command
enum Command {
    Transfer(TransferRequest),
    /// Post a charge the bank confirmed taken into the owner's main account.
    PostCharge {
        charge: Charge,
        bank_label: String,
    },
}

impl Command {
    fn is_transfer(&self) -> bool {
        matches!(self, Self::Transfer(_))
    }
}

/// What a command of a batch did.
#[allow(clippy::large_enum_variant)] // sent once per command, never stored
pub(crate) enum Posted {
    Transfer(TransferView),
    Charge(ChargeView),
}

/// How a batch answered one command.
#[allow(clippy::large_enum_variant)] // sent once per command, never stored
enum Batched {
    Done(ServiceResult<Reply<Posted>>),
    /// Not executed: run it on its own.
    Alone,
}

/// Where one command stands while its batch is built.
#[allow(clippy::large_enum_variant)] // one per command of a batch, for the batch's duration
enum Slot {
    /// Answered without writing anything of its own (a replay, a refused key, bad input).
    Answered(ServiceResult<Reply<TransferView>>),
    /// A refusal stored under the command's key (a money decision, replayed on retry).
    Refused(ServiceError),
    /// The same key as an earlier command of this batch, with the same request: it gets
    /// that command's answer, replayed.
    SameKeyAs(usize),
    /// Both sides resolved; to be applied under the locks.
    Ready(Sides),
    /// A charge to post under the locks.
    Landed,
    /// Applied: the transfer is written with the batch.
    Applied(Transfer),
    /// Posted: the charge is written with the batch.
    Charged(ChargeView),
    /// Leaves the batch and runs on its own: a transfer's key is released, a charge's stays
    /// with the request that holds it.
    Alone,
}

impl Wallet {
    /// Queues a transfer for the next batch and waits for its answer. `None`: run it alone.
    pub(crate) async fn transfer_in_batch(
        self: &Arc<Self>,
        me: UserId,
        req: &TransferRequest,
        idem: Option<&IdempotentRequest>,
    ) -> Option<ServiceResult<Reply<TransferView>>> {
        let answer = self.in_batch(me, Command::Transfer(req.clone()), idem).await?;
        Some(answer.map(|reply| {
            reply.map(|posted| match posted {
                Posted::Transfer(view) => view,
                Posted::Charge(_) => unreachable!("a transfer is answered with a transfer"),
            })
        }))
    }

    /// Queues the posting of a charge the bank confirmed taken (its intent committed, its key
    /// held) and waits for its answer. `None`: post it alone.
    pub(crate) async fn post_charge_in_batch(
        self: &Arc<Self>,
        charge: &Charge,
        bank_label: String,
        idem: Option<&IdempotentRequest>,
    ) -> Option<ServiceResult<Reply<ChargeView>>> {
        let command = Command::PostCharge {
            charge: charge.clone(),
            bank_label,
        };
        let answer = self.in_batch(charge.user_id, command, idem).await?;
        Some(answer.map(|reply| {
            reply.map(|posted| match posted {
                Posted::Charge(view) => view,
                Posted::Transfer(_) => unreachable!("a charge is answered with a charge"),
            })
        }))
    }

    async fn in_batch(
        self: &Arc<Self>,
        me: UserId,
        command: Command,
        idem: Option<&IdempotentRequest>,
    ) -> Option<ServiceResult<Reply<Posted>>> {
        let (answer, answered) = oneshot::channel();
        let lead = {
            let mut waiting = self.batcher.state.lock().expect("batcher lock");
            waiting.queue.push(Queued {
                me,
                command,
                idem: idem.cloned(),
                answer,
            });
            if waiting.queue.len() >= self.batching.max_commands {
                self.batcher.full.notify_waiters();
            }
            !std::mem::replace(&mut waiting.led, true)
        };
        if lead {
            // The batch is run by its own task, so that a caller who goes away (a dropped
            // connection) never abandons the others' batch half-way.
            let wallet = Arc::clone(self);
            tokio::spawn(async move { wallet.lead_batch().await });
        }
        match answered.await {
            Ok(Batched::Done(result)) => Some(result),
            Ok(Batched::Alone) => None,
            // The batch task died (a panic): whether it committed is unknown, so the command
            // is not run again here; a retry with the same Idempotency-Key finds out (and an
            // open charge is settled by the recovery step).
            Err(_) => Some(Err(ServiceError::Internal(anyhow::anyhow!(
                "the ledger batch ended without answering"
            )))),
        }
    }

    /// Waits until the batch is full or the oldest command has waited long enough, then — once
    /// one of the instance's `in_flight_max` slots is free — runs what is queued (in batches
    /// of at most `max_commands`).
    async fn lead_batch(self: Arc<Self>) {
        let deadline = Instant::now() + self.batching.max_wait;
        loop {
            let full = self.batcher.full.notified();
            tokio::pin!(full);
            full.as_mut().enable();
            if self.batcher.state.lock().expect("batcher lock").queue.len() >= self.batching.max_commands {
                break;
            }
            tokio::select! {
                _ = full => {}
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        // At most `in_flight_max` per instance: what arrives meanwhile waits for the next
        // batch, so batches grow with the load instead of competing for the same rows.
        let _running = self
            .batcher
            .running
            .acquire()
            .await
            .expect("the semaphore is never closed");
        let mut queued = {
            let mut waiting = self.batcher.state.lock().expect("batcher lock");
            waiting.led = false;
            std::mem::take(&mut waiting.queue)
        };
        while !queued.is_empty() {
            let rest = queued.split_off(queued.len().min(self.batching.max_commands));
            self.run_batch(queued).await;
            queued = rest;
        }
    }

    async fn run_batch(&self, batch: Vec<Queued>) {
        let size = batch.len();
        let started = std::time::Instant::now();
        let (answers, failed, gave_way) = match self.try_batch(&batch).await {
            Ok(answers) => (answers, false, false),
            Err(abandoned) => {
                let gave_way = abandoned.gave_way();
                match abandoned {
                    Abandoned::KeyTaken => tracing::info!(
                        size,
                        "another request took an Idempotency-Key of a ledger batch; its commands run one by one"
                    ),
                    Abandoned::Failed(e) => tracing::warn!(
                        error = ?e,
                        size,
                        "a ledger batch failed as a whole; its commands run one by one"
                    ),
                }
                (batch.iter().map(|_| Batched::Alone).collect(), true, gave_way)
            }
        };
        {
            let mut waiting = self.batcher.state.lock().expect("batcher lock");
            let stats = &mut waiting.stats;
            let alone = answers.iter().filter(|a| matches!(a, Batched::Alone)).count() as u64;
            stats.unbatched += alone;
            if failed {
                stats.failed += 1;
                stats.gave_way += u64::from(gave_way);
            } else {
                let charges = batch
                    .iter()
                    .zip(&answers)
                    .filter(|(q, a)| !q.command.is_transfer() && matches!(a, Batched::Done(Ok(_))))
                    .count();
                stats.batches += 1;
                stats.charges += charges as u64;
                stats.commands += size as u64 - alone;
                stats.largest = stats.largest.max(size as u64 - alone);
            }
        }
        metrics::histogram!("minipay_transfer_batch_size").record(size as f64);
        metrics::histogram!("minipay_transfer_batch_seconds").record(started.elapsed().as_secs_f64());
        for (queued, answer) in batch.into_iter().zip(answers) {
            // The caller may have gone away; its transfer stands either way.
            let _ = queued.answer.send(answer);
        }
    }

    /// One transaction for the whole batch. `Err`: nothing was committed and no command has
    /// an answer yet — except a failed commit, which is answered (outcome unknown) rather than
    /// run again.
    async fn try_batch(&self, batch: &[Queued]) -> Result<Vec<Batched>, Abandoned> {
        let now = self.clock.now();
        let mut tx = self.store.begin_with_lock_wait(BATCH_LOCK_WAIT_MAX).await?;
        let mut slots: Vec<Slot> = batch
            .iter()
            .map(|q| match q.command {
                Command::Transfer(_) => Slot::Alone,
                Command::PostCharge { .. } => Slot::Landed,
            })
            .collect();

        // Transfers' keys first, all at once: read, not taken. Each is written once, with its
        // answer, when the batch has run (a key taken meanwhile by another request makes the
        // batch roll back, and its commands run alone). A charge's key is already held by its
        // request: a transfer reusing it finds it busy.
        let mut first_with_key: HashMap<(UserId, &str), usize> = HashMap::new();
        let mut to_peek: Vec<(KeyOwner, &IdempotentRequest)> = Vec::new();
        let mut peekers: Vec<usize> = Vec::new();
        for (i, q) in batch.iter().enumerate() {
            let Some(idem) = q.idem.as_ref().filter(|_| q.command.is_transfer()) else {
                continue;
            };
            match first_with_key.get(&(q.me, idem.key())) {
                Some(&first) => {
                    slots[i] = if batch[first].idem.as_ref().is_some_and(|f| f.same_request(idem)) {
                        Slot::SameKeyAs(first)
                    } else {
                        Slot::Answered(Err(ServiceError::IdempotencyKeyReused))
                    };
                }
                None => {
                    first_with_key.insert((q.me, idem.key()), i);
                    to_peek.push((q.me.into(), idem));
                    peekers.push(i);
                }
            }
        }
        // Transfers whose keys this batch records (free when read).
        let mut key_free = vec![false; batch.len()];
        for (i, verdict) in peekers.into_iter().zip(peek_all(&mut tx, &to_peek, now).await?) {
            match verdict {
                Ok(None) => key_free[i] = true,
                Ok(Some(stored)) => slots[i] = Slot::Answered(Ok(Reply::Replayed(stored))),
                Err(e) => slots[i] = Slot::Answered(Err(e)),
            }
        }

        // Both sides of every command still in, their users read with one query.
        let mut ids: Vec<UserId> = Vec::new();
        for (i, q) in batch.iter().enumerate() {
            if matches!(slots[i], Slot::Alone | Slot::Landed) {
                ids.push(q.me);
                if let Command::Transfer(TransferRequest {
                    recipient: TransferRecipient::User(to),
                    ..
                }) = q.command
                {
                    ids.push(to);
                }
            }
        }
        let known: KnownUsers = tx.users_with_ids(&ids).await?.into_iter().map(|u| (u.id, u)).collect();
        for (i, q) in batch.iter().enumerate() {
            let (Slot::Alone, Command::Transfer(req)) = (&slots[i], &q.command) else {
                continue;
            };
            slots[i] = match self
                .payment_sides(&mut tx, q.me, req, PaymentPurpose::Transfer, &known)
                .await
            {
                Ok(sides) => Slot::Ready(sides),
                Err(e @ ServiceError::Internal(_)) => return Err(e.into()),
                Err(e) if e.is_final() => Slot::Refused(e),
                Err(e) => Slot::Answered(Err(e)),
            };
        }

        // Every account of the batch, locked once; then the commands in arrival order.
        let accounts = batch.iter().zip(&slots).flat_map(|(q, s)| match (s, &q.command) {
            (Slot::Ready(sides), _) => sides.accounts().to_vec(),
            (Slot::Landed, Command::PostCharge { charge, .. }) => Self::charge_accounts(charge).to_vec(),
            _ => Vec::new(),
        });
        let mut locked = tx.lock_accounts(accounts.collect::<Vec<_>>()).await?;
        let mut journals = Vec::new();
        for (i, q) in batch.iter().enumerate() {
            slots[i] = match (std::mem::replace(&mut slots[i], Slot::Alone), &q.command) {
                (Slot::Ready(sides), Command::Transfer(req)) => {
                    self.apply_transfer(&mut tx, &mut locked, &mut journals, (q.me, now), &sides, req)
                        .await?
                }
                (Slot::Landed, Command::PostCharge { charge, bank_label }) => {
                    let owner = known
                        .get(&charge.user_id)
                        .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("charge owner not found")))?;
                    match self
                        .complete_charge_in(&mut tx, &mut locked, charge, &owner.name, bank_label)
                        .await?
                    {
                        Some(posted) => {
                            journals.push(posted);
                            let balance = *locked.get(charge.account_id).expect("charged account is locked");
                            Slot::Charged(self.charge_view_in(&mut tx, charge, Some(&balance)).await?)
                        }
                        // Resolved by someone else (recovery): the request's own path answers.
                        None => Slot::Alone,
                    }
                }
                (slot, _) => slot,
            };
        }

        // What each key answers from now on: a transfer's key is recorded with its answer, a
        // posted charge's (held since its intent) completed. A transfer that leaves the batch
        // never wrote its key; a charge that did not post keeps its key for its own request.
        let stored: Vec<Option<StoredResponse>> = batch
            .iter()
            .zip(&slots)
            .enumerate()
            .map(|(i, (q, slot))| {
                q.idem.as_ref().filter(|_| key_free[i] || !q.command.is_transfer())?;
                match slot {
                    Slot::Applied(t) => Some(stored_view(&TransferView::from(t))),
                    Slot::Charged(view) => Some(stored_view(view)),
                    Slot::Refused(e) => Some(StoredResponse {
                        status: e.code().status(),
                        body: e.body().to_string(),
                    }),
                    _ => None,
                }
            })
            .collect();
        let (mut recorded, mut completed) = (Vec::new(), Vec::new());
        for (q, answer) in batch.iter().zip(&stored) {
            let (Some(idem), Some(answer)) = (q.idem.as_ref(), answer.as_ref()) else {
                continue;
            };
            match q.command {
                Command::Transfer(_) => recorded.push((q.me.into(), idem, answer)),
                Command::PostCharge { .. } => completed.push((q.me.into(), idem.key(), answer)),
            }
        }
        if !record_all(&mut tx, &recorded, now).await? {
            return Err(Abandoned::KeyTaken);
        }
        tx.complete_idempotency_keys(&completed).await?;

        let transfers: Vec<&Transfer> = slots
            .iter()
            .filter_map(|s| match s {
                Slot::Applied(t) => Some(t),
                _ => None,
            })
            .collect();
        tx.write_postings(&locked, &journals).await?;
        tx.insert_transfers(&transfers).await?;
        let notes: Vec<_> = transfers.iter().flat_map(|t| announce(t)).collect();
        tx.insert_notifications(&notes).await?;
        if let Err(e) = tx.commit().await {
            // It may have committed: answer every command with the failure rather than risk
            // running one twice. A retry with the same Idempotency-Key finds out which it was;
            // a charge left open is settled by the recovery step.
            tracing::error!(error = ?e, size = batch.len(), "a ledger batch's commit failed");
            return Ok(batch
                .iter()
                .map(|_| Batched::Done(Err(ServiceError::Internal(anyhow::anyhow!("batch commit failed")))))
                .collect());
        }
        Ok(slots
            .into_iter()
            .map(|slot| match slot {
                Slot::Answered(result) => Batched::Done(result.map(|r| r.map(Posted::Transfer))),
                Slot::Refused(e) => Batched::Done(Err(e)),
                Slot::Applied(t) => Batched::Done(Ok(Reply::Fresh(Posted::Transfer(TransferView::from(&t))))),
                Slot::Charged(view) => Batched::Done(Ok(Reply::Fresh(Posted::Charge(view)))),
                Slot::SameKeyAs(first) => match &stored[first] {
                    Some(response) => Batched::Done(Ok(Reply::Replayed(response.clone()))),
                    // The first one left the batch: this one runs alone too, and its key
                    // decides between them.
                    None => Batched::Alone,
                },
                Slot::Ready(_) | Slot::Landed | Slot::Alone => Batched::Alone,
            })
            .collect())
    }

    /// Applies one transfer of a batch to the locked balances. A sender who is short leaves
    /// the batch (an auto-charge calls the bank, never done inside a transaction) or, with no
    /// bank account to charge from, is refused alone.
    async fn apply_transfer(
        &self,
        tx: &mut Session,
        locked: &mut LockedAccounts,
        journals: &mut Vec<PostedJournal>,
        (me, now): (UserId, Timestamp),
        sides: &Sides,
        req: &TransferRequest,
    ) -> ServiceResult<Slot> {
        let available = locked
            .get(sides.sender.main_account_id)
            .ok_or_else(|| ServiceError::Internal(anyhow::anyhow!("sender account not locked")))?
            .available();
        if auto_charge_amount(available, req.amount).is_some() {
            return Ok(match tx.charging_bank_account(me).await? {
                Some(_) => Slot::Alone,
                None => Slot::Refused(nothing_to_charge_from()),
            });
        }
        let journal = self
            .apply_payment(locked, sides, req, now)
            .expect("available covers the amount");
        let transfer = self.transfer_row(
            sides,
            req,
            PaymentPurpose::Transfer,
            (TransferId::new(), now),
            journal.as_ref(),
            None,
        );
        journals.extend(journal);
        metrics::counter!("minipay_transfers_total", "mode" => sides.mode.as_str(), "auto_charged" => "no")
            .increment(1);
        Ok(Slot::Applied(transfer))
    }

    /// This instance's batching so far.
    pub fn transfer_batch_stats(&self) -> BatchStats {
        self.batcher.state.lock().expect("batcher lock").stats
    }
}

fn stored_view<T: serde::Serialize>(view: &T) -> StoredResponse {
    StoredResponse {
        status: 201,
        body: serde_json::to_string(view).expect("views serialise"),
    }
}
