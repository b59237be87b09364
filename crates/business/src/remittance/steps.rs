//! Running a remittance's steps. A bank step calls the bank with no transaction open, under
//! the step's one transfer id (so a retry, a second instance or a restart can never move the
//! money twice), settles a missing answer by the status inquiry, and records the outcome; a
//! ledger step posts under the account locks. Each outcome is a conditional status change, so
//! of two workers on one remittance only one records it.

use super::{Remittances, dead_letter_kind, subjects, trigger};
use jiff::Timestamp;
use minipay_bank::{BankError, TransferRequest, TransferStatus};
use minipay_core::ledger::JournalDraft;
use minipay_core::ledger::{BalancePosting, balance_journal, business_account, remittance_journal};
use minipay_core::remittance::{AttemptOutcome, RemittanceSource, RemittanceStatus, Step, StepOutcome};
use minipay_events::alerts;
use minipay_store::{NewAlert, NewRemittanceAttempt, Remittance, RemittanceFailure, Session, StatusChange, StoreError};
use std::collections::HashMap;

/// The two halves of the way, joined by the `remittance.credited` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// Collect from A and credit the float.
    Collect,
    /// Debit the float and pay B (or refund A).
    Payout,
}

pub(crate) fn side_of(step: Step) -> Side {
    match step {
        Step::Collect | Step::CreditFloat => Side::Collect,
        Step::DebitFloat | Step::Payout | Step::Refund => Side::Payout,
    }
}

/// A step that did not get anywhere this time (it will be tried again).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StepFailure {
    pub step: Step,
    pub reason: String,
}

/// What the bank's answer means for a bank step.
enum Verdict {
    Succeeded(Option<String>),
    Refused(String),
    NotYet(AttemptOutcome, String),
}

/// What shows on bank statements.
const PRINT_CONTENT: &str = "minipay remittance";

/// A side takes at most this many steps in one go (debit, payout, refund).
const STEPS_PER_SIDE_MAX: usize = 3;

/// One remittance's outcome of one step, ready to record.
struct Outcome {
    r: Remittance,
    step: Step,
    verdict: Verdict,
    started: Timestamp,
}

impl Remittances {
    /// Runs the steps of `side` that the remittance waits for, until it hands over to the other
    /// side, ends, or a step fails for now. Idempotent: a remittance past `side` is left alone.
    pub(crate) async fn advance(&self, id: minipay_core::RemittanceId, side: Side) -> Result<(), StepFailure> {
        self.advance_batch(&[id], side).await.pop().unwrap_or(Ok(()))
    }

    /// [`Self::advance`] for many remittances together: each round runs one step for every
    /// remittance still waiting on `side` — the bank calls overlapped, the outcomes recorded in
    /// one transaction — until none is left waiting. One answer per id, in order.
    pub(crate) async fn advance_batch(
        &self,
        ids: &[minipay_core::RemittanceId],
        side: Side,
    ) -> Vec<Result<(), StepFailure>> {
        let mut failed: HashMap<minipay_core::RemittanceId, StepFailure> = HashMap::new();
        let mut waiting: Vec<minipay_core::RemittanceId> = ids.to_vec();
        waiting.sort();
        waiting.dedup();
        for _ in 0..STEPS_PER_SIDE_MAX {
            if waiting.is_empty() {
                break;
            }
            let rows = match self.read_remittances(&waiting).await {
                Ok(rows) => rows,
                Err(e) => {
                    for id in &waiting {
                        failed.insert(*id, store_failure(Step::Collect, &e));
                    }
                    break;
                }
            };
            let due: Vec<(Remittance, Step)> = rows
                .into_iter()
                .filter_map(|r| r.status.next_step().filter(|s| side_of(*s) == side).map(|s| (r, s)))
                .collect();
            let outcomes = self.run_steps(due).await;
            waiting = outcomes
                .iter()
                .filter(|o| !matches!(o.verdict, Verdict::NotYet(..)))
                .map(|o| o.r.id)
                .collect();
            for (id, failure) in self.record(outcomes).await {
                waiting.retain(|w| *w != id);
                failed.insert(id, failure);
            }
        }
        ids.iter()
            .map(|id| failed.get(id).cloned().map_or(Ok(()), Err))
            .collect()
    }

    async fn read_remittances(&self, ids: &[minipay_core::RemittanceId]) -> Result<Vec<Remittance>, StoreError> {
        self.store.read().await?.remittances_by_ids(ids).await
    }

    /// Runs each remittance's step: the bank calls all at once, with no transaction open.
    async fn run_steps(&self, due: Vec<(Remittance, Step)>) -> Vec<Outcome> {
        let started = self.clock.now();
        let verdicts = futures_util::future::join_all(due.iter().map(|(r, step)| async move {
            if step.calls_the_bank_from(r.source) {
                self.call_bank(r, *step).await
            } else {
                Verdict::Succeeded(None)
            }
        }))
        .await;
        due.into_iter()
            .zip(verdicts)
            .map(|((r, step), verdict)| Outcome {
                r,
                step,
                verdict,
                started,
            })
            .collect()
    }

    /// Records outcomes in one transaction; if that fails, one transaction each, so that one
    /// remittance that cannot be recorded does not hold the others back. The failures, by id:
    /// steps that got nowhere this time, and those that could not be recorded.
    async fn record(&self, outcomes: Vec<Outcome>) -> Vec<(minipay_core::RemittanceId, StepFailure)> {
        let mut failures: Vec<_> = outcomes
            .iter()
            .filter_map(|o| match &o.verdict {
                Verdict::NotYet(_, why) => Some((
                    o.r.id,
                    StepFailure {
                        step: o.step,
                        reason: why.clone(),
                    },
                )),
                _ => None,
            })
            .collect();
        if outcomes.is_empty() {
            return failures;
        }
        match self.record_together(&outcomes).await {
            Ok(()) => {}
            Err(e) if outcomes.len() == 1 => failures.push(self.unrecorded(&outcomes[0], &e).await),
            Err(e) => {
                tracing::info!(remittances = outcomes.len(), error = ?e, "recording a batch failed; recording one by one");
                for o in &outcomes {
                    if let Err(e) = self.record_together(std::slice::from_ref(o)).await {
                        failures.push(self.unrecorded(o, &e).await);
                    }
                }
            }
        }
        failures
    }

    /// An outcome that could not be written: the attempt happened and failed, and its history
    /// says so (best effort), as for a bank that did not answer — the ledger steps fail no
    /// other way. The failure to retry.
    async fn unrecorded(&self, o: &Outcome, e: &StoreError) -> (minipay_core::RemittanceId, StepFailure) {
        tracing::warn!(remittance = %o.r.id, step = o.step.as_str(), error = ?e, "recording a step failed");
        let failure = store_failure(o.step, e);
        let attempt = NewRemittanceAttempt {
            remittance_id: o.r.id,
            step: o.step,
            outcome: AttemptOutcome::Failed,
            error: Some(&failure.reason),
            bank_tran_id: None,
            started_at: o.started,
            finished_at: self.clock.now(),
        };
        let recorded = async {
            let mut tx = self.store.begin().await?;
            tx.insert_remittance_attempt(&attempt).await?;
            tx.commit().await
        };
        if let Err(e) = recorded.await {
            tracing::warn!(remittance = %o.r.id, error = ?e, "recording a failed attempt failed too");
        }
        (o.r.id, failure)
    }

    /// Records a batch's outcomes in one transaction, with one statement per table: the status
    /// changes (each only if still where it was read), every attempt, the events and alerts the
    /// new statuses set off, and — last — the ledger postings that go with them.
    async fn record_together(&self, outcomes: &[Outcome]) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let journals: Vec<Option<JournalDraft>> = outcomes
            .iter()
            .map(|o| {
                let posts = matches!(o.verdict, Verdict::Succeeded(_)) && o.step != Step::Collect;
                posts.then(|| self.journal(&o.r, o.step)).transpose()
            })
            .collect::<Result<_, _>>()?;
        let moved = self.change_statuses(&mut tx, outcomes, now).await?;
        let mut to_post = Vec::new();
        let mut events = Vec::new();
        let mut attempts = Vec::with_capacity(outcomes.len());
        for ((o, journal), to) in outcomes.iter().zip(&journals).zip(&moved) {
            if let Some(to) = to {
                to_post.extend(journal.as_ref());
                if let Some(subject) = announcement(*to) {
                    events.push((subject, trigger(o.r.id)));
                }
                if *to == RemittanceStatus::NeedsAttention {
                    self.raise_needs_attention(&mut tx, &o.r, now).await?;
                }
                metrics::counter!("minipay_remittance_steps_total", "step" => o.step.as_str(), "outcome" => to.as_str())
                    .increment(1);
            }
            // A remittance another worker moved meanwhile: its attempt is theirs to record.
            if to.is_some() || matches!(o.verdict, Verdict::NotYet(..)) {
                attempts.push(attempt_of(o, now));
            }
        }
        tx.insert_remittance_attempts(&attempts).await?;
        minipay_events::emit_all(&mut tx, &events, now).await?;
        // The platform's accounts last, right before the commit: every batch posts to the
        // same few of them, so the less time they are held, the more batches go through.
        tx.post_journals(&to_post, now).await?;
        tx.commit().await?;
        if !events.is_empty() {
            self.events.wake();
        }
        Ok(())
    }

    /// The status changes of the outcomes that ended a step (one statement); for each outcome,
    /// the status it moved to, or `None` (still waiting, or moved by another worker first).
    async fn change_statuses(
        &self,
        tx: &mut Session,
        outcomes: &[Outcome],
        now: Timestamp,
    ) -> Result<Vec<Option<RemittanceStatus>>, StoreError> {
        let mut ended = Vec::new();
        for (i, o) in outcomes.iter().enumerate() {
            let (outcome, refusal) = match &o.verdict {
                Verdict::Succeeded(_) => (StepOutcome::Succeeded, None),
                Verdict::Refused(why) => (StepOutcome::Refused, Some(why.as_str())),
                Verdict::NotYet(..) => continue,
            };
            let to =
                o.r.status
                    .after(o.step, outcome)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            // A refusal is rare: its attempt count is read for the failure it records.
            let failure = match refusal {
                Some(why) => Some(RemittanceFailure {
                    step: o.step,
                    code: "bank_declined".into(),
                    message: why.to_owned(),
                    attempts: tx.count_remittance_attempts(o.r.id, o.step).await? as i32 + 1,
                }),
                None => None,
            };
            ended.push((i, to, failure));
        }
        let changes: Vec<(minipay_core::RemittanceId, StatusChange<'_>)> = ended
            .iter()
            .map(|(i, to, failure)| {
                let r = &outcomes[*i].r;
                let change = StatusChange {
                    from: r.status,
                    to: *to,
                    held: (*to == RemittanceStatus::NeedsAttention).then_some(r.status),
                    failure: failure.as_ref(),
                    at: now,
                };
                (r.id, change)
            })
            .collect();
        let moved = tx.change_remittance_statuses(&changes).await?;
        let mut result = vec![None; outcomes.len()];
        for ((i, to, _), moved) in ended.iter().zip(moved) {
            if moved {
                result[*i] = Some(*to);
            }
        }
        Ok(result)
    }

    /// The ledger side of a step: into the float, out of it, or out of transit once paid —
    /// or, for a payout its bank refused, back into the business's balance.
    fn journal(&self, r: &Remittance, step: Step) -> Result<JournalDraft, StoreError> {
        let amount = minipay_core::Amount::parse(r.amount).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let about = format!("remittance {}", r.id);
        Ok(match (step, r.source) {
            (Step::Refund, RemittanceSource::Balance) => balance_journal(
                BalancePosting::PayoutReturned,
                business_account(r.from_business_id),
                &about,
                amount,
            ),
            // The platform's own accounts on both sides: the remittance is what each entry is about.
            _ => remittance_journal(step, &about, amount),
        })
    }

    /// The step's bank call, with no transaction open.
    async fn call_bank(&self, r: &Remittance, step: Step) -> Verdict {
        let refusals = match self.refusals(r, step).await {
            Ok(n) => n,
            Err(e) => {
                return Verdict::NotYet(
                    AttemptOutcome::Failed,
                    format!("reading the step's history failed: {e}"),
                );
            }
        };
        let request = TransferRequest {
            tran_id: tran_id(r, step, refusals),
            fintech_use_num: match step {
                Step::Payout => r.to_fintech_use_num.clone(),
                _ => r.from_fintech_use_num.clone(),
            },
            amount: r.amount,
            print_content: PRINT_CONTENT.into(),
        };
        let answer = match step {
            Step::Collect => self.bank.pull(&request).await,
            _ => self.bank.push(&request).await,
        };
        match answer {
            Ok(receipt) => Verdict::Succeeded(Some(receipt.bank_tran_id)),
            Err(BankError::Declined(why)) => Verdict::Refused(why),
            Err(BankError::Unavailable(why)) => {
                Verdict::NotYet(AttemptOutcome::Failed, format!("bank unavailable: {why}"))
            }
            Err(BankError::Timeout | BankError::Protocol(_)) => self.inquire(&request.tran_id).await,
        }
    }

    /// How often the bank refused `step` for good (each refusal closed a transfer id). Only a
    /// remittance whose recorded failure is at this step can have been refused at it (an
    /// operator retrying a refused refund), so the others read nothing.
    async fn refusals(&self, r: &Remittance, step: Step) -> Result<usize, StoreError> {
        if !r.failure.as_ref().is_some_and(|f| f.step == step) {
            return Ok(0);
        }
        let attempts = self.store.read().await?.remittance_attempts(&[r.id]).await?;
        Ok(attempts
            .iter()
            .filter(|a| a.step == step && a.outcome == AttemptOutcome::Refused)
            .count())
    }

    /// A transfer with no answer is settled by asking the bank about its id — never by
    /// sending it again under another id.
    async fn inquire(&self, tran_id: &str) -> Verdict {
        match self.bank.transfer_status(tran_id).await {
            Ok(TransferStatus::Completed) => Verdict::Succeeded(None),
            Ok(TransferStatus::Failed) => Verdict::Refused("the bank reports the transfer failed".into()),
            Ok(TransferStatus::NotFound) => Verdict::NotYet(
                AttemptOutcome::Unknown,
                "no answer from the bank, which has no record of the transfer yet".into(),
            ),
            Ok(TransferStatus::Processing) => Verdict::NotYet(
                AttemptOutcome::Unknown,
                "the bank is still processing the transfer".into(),
            ),
            Err(e) => Verdict::NotYet(
                AttemptOutcome::Unknown,
                format!("no answer from the bank, and the status inquiry failed: {e}"),
            ),
        }
    }

    /// The events a new status sets off: the hand-over to the payout side, the final
    /// statuses (for webhooks and the read side), and an alert when a person must decide.
    async fn announce(
        &self,
        tx: &mut Session,
        r: &Remittance,
        to: RemittanceStatus,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let Some(subject) = announcement(to) else { return Ok(()) };
        minipay_events::emit(tx, subject, &trigger(r.id), now).await?;
        if to == RemittanceStatus::NeedsAttention {
            self.raise_needs_attention(tx, r, now).await?;
        }
        Ok(())
    }

    pub(crate) async fn raise_needs_attention(
        &self,
        tx: &mut Session,
        r: &Remittance,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let cause = format!("remittance_needs_attention:{}:{}", r.id, now.as_microsecond());
        let message = format!(
            "remittance {} ({} won) needs a person: it stopped while {}",
            r.id,
            r.amount,
            r.status.as_str()
        );
        alerts::raise(
            tx,
            &NewAlert {
                kind: "remittance_needs_attention",
                cause: &cause,
                subject_id: Some(r.id.as_uuid()),
                message: &message,
                data: serde_json::json!({"remittance_id": r.id, "status": r.status, "amount": r.amount}),
            },
            now,
        )
        .await?;
        Ok(())
    }

    /// Gives up on a remittance the retries could not move: `needs_attention`, holding the
    /// status it stopped in, with an alert. `false` if it moved meanwhile.
    pub(crate) async fn give_up(
        &self,
        tx: &mut Session,
        r: &Remittance,
        step: Step,
        why: &str,
        attempts: i32,
    ) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let failure = RemittanceFailure {
            step,
            code: "retries_exhausted".into(),
            message: why.to_owned(),
            attempts,
        };
        let change = StatusChange {
            from: r.status,
            to: RemittanceStatus::NeedsAttention,
            held: Some(r.status),
            failure: Some(&failure),
            at: now,
        };
        if !tx.change_remittance_status(r.id, &change).await? {
            return Ok(false);
        }
        self.announce(tx, r, RemittanceStatus::NeedsAttention, now).await?;
        Ok(true)
    }

    /// The dead letter's kind for a remittance that failed its step's last attempt.
    pub(crate) fn dead_letter_kind_of(r: &Remittance) -> (Step, String) {
        let step = r.status.next_step().unwrap_or(Step::Collect);
        (step, dead_letter_kind(step))
    }
}

/// The event a new status sets off: the hand-over to the payout side, and the final statuses
/// (for webhooks and the read side).
fn announcement(to: RemittanceStatus) -> Option<&'static str> {
    match to {
        RemittanceStatus::Credited => Some(subjects::CREDITED),
        RemittanceStatus::Completed => Some(subjects::COMPLETED),
        RemittanceStatus::CollectFailed => Some(subjects::COLLECT_FAILED),
        RemittanceStatus::Refunded => Some(subjects::REFUNDED),
        RemittanceStatus::NeedsAttention => Some(subjects::NEEDS_ATTENTION),
        _ => None,
    }
}

/// The attempt an outcome records.
fn attempt_of(o: &Outcome, now: Timestamp) -> NewRemittanceAttempt<'_> {
    let (outcome, bank_tran_id, error) = match &o.verdict {
        Verdict::Succeeded(bank_id) => (AttemptOutcome::Succeeded, bank_id.as_deref(), None),
        Verdict::Refused(why) => (AttemptOutcome::Refused, None, Some(why.as_str())),
        Verdict::NotYet(kind, why) => (*kind, None, Some(why.as_str())),
    };
    NewRemittanceAttempt {
        remittance_id: o.r.id,
        step: o.step,
        outcome,
        error,
        bank_tran_id,
        started_at: o.started,
        finished_at: now,
    }
}

/// One transfer id per step of a remittance: what the bank deduplicates on. A new one only
/// after the bank refused the step's last one for good (`refusals`): a refused transfer moved
/// nothing, and the bank answers its id with the same refusal forever, so an operator's retry
/// of a refused refund needs a fresh id. An unknown outcome never gets one.
pub(crate) fn tran_id(r: &Remittance, step: Step, refusals: usize) -> String {
    let id = format!("{}-{}", r.id.as_uuid().simple(), step.tran_suffix());
    match refusals {
        0 => id,
        n => format!("{id}{}", n + 1),
    }
}

fn store_failure(step: Step, e: &StoreError) -> StepFailure {
    StepFailure {
        step,
        reason: format!("recording the step failed: {e}"),
    }
}
