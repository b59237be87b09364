//! Running a remittance's steps. A bank step calls the bank with no transaction open, under
//! the step's one transfer id (so a retry, a second instance or a restart can never move the
//! money twice), settles a missing answer by the status inquiry, and records the outcome; a
//! ledger step posts under the account locks. Each outcome is a conditional status change, so
//! of two workers on one remittance only one records it.

use super::{Remittances, dead_letter_kind, subjects, trigger};
use jiff::Timestamp;
use minipay_bank::{BankError, TransferRequest, TransferStatus};
use minipay_core::JournalId;
use minipay_core::ledger::remittance_journal;
use minipay_core::remittance::{AttemptOutcome, RemittanceStatus, Step, StepOutcome};
use minipay_events::alerts;
use minipay_store::{NewAlert, NewRemittanceAttempt, Remittance, RemittanceFailure, Session, StatusChange, StoreError};

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

impl Remittances {
    /// Runs the steps of `side` that the remittance waits for, until it hands over to the other
    /// side, ends, or a step fails for now. Idempotent: a remittance past `side` is left alone.
    pub(crate) async fn advance(&self, id: minipay_core::RemittanceId, side: Side) -> Result<(), StepFailure> {
        loop {
            let read = self.store.read().await;
            let r = match read {
                Ok(mut s) => s.remittance(id).await,
                Err(e) => Err(e),
            };
            let r = match r {
                Ok(Some(r)) => r,
                Ok(None) => return Ok(()), // nothing to do for an id nobody recorded
                Err(e) => return Err(store_failure(Step::Collect, &e)),
            };
            let Some(step) = r.status.next_step().filter(|s| side_of(*s) == side) else {
                return Ok(());
            };
            self.run_step(&r, step).await?;
        }
    }

    async fn run_step(&self, r: &Remittance, step: Step) -> Result<(), StepFailure> {
        let started = self.clock.now();
        let verdict = match step {
            Step::CreditFloat | Step::DebitFloat => Verdict::Succeeded(None),
            Step::Collect | Step::Payout | Step::Refund => self.call_bank(r, step).await,
        };
        let recorded = match verdict {
            Verdict::Succeeded(bank_id) => {
                self.finish(r, step, StepOutcome::Succeeded, bank_id.as_deref(), None, started)
                    .await
            }
            Verdict::Refused(why) => {
                self.finish(r, step, StepOutcome::Refused, None, Some(&why), started)
                    .await
            }
            Verdict::NotYet(outcome, why) => {
                self.record_attempt(r, step, outcome, &why, started).await;
                return Err(StepFailure { step, reason: why });
            }
        };
        if let Err(e) = recorded {
            let failure = store_failure(step, &e);
            tracing::warn!(remittance = %r.id, step = step.as_str(), error = ?e, "recording a step failed");
            // The attempt happened and failed (a write failed): its history says so, as for a
            // bank that did not answer — the ledger steps fail no other way.
            self.record_attempt(r, step, AttemptOutcome::Failed, &failure.reason, started)
                .await;
            return Err(failure);
        }
        Ok(())
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

    /// How often the bank refused `step` for good (each refusal closed a transfer id).
    async fn refusals(&self, r: &Remittance, step: Step) -> Result<usize, StoreError> {
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

    /// Records a step's outcome: the status change (only if still where it was read), the
    /// ledger posting that goes with it, the attempt, and the events it sets off — one
    /// transaction. A remittance someone else moved meanwhile is left as they left it.
    async fn finish(
        &self,
        r: &Remittance,
        step: Step,
        outcome: StepOutcome,
        bank_tran_id: Option<&str>,
        refusal: Option<&str>,
        started: Timestamp,
    ) -> Result<(), StoreError> {
        let to = r
            .status
            .after(step, outcome)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let attempts = tx.count_remittance_attempts(r.id, step).await? + 1;
        let failure = refusal.map(|why| RemittanceFailure {
            step,
            code: "bank_declined".into(),
            message: why.to_owned(),
            attempts: attempts as i32,
        });
        let change = StatusChange {
            from: r.status,
            to,
            held: (to == RemittanceStatus::NeedsAttention).then_some(r.status),
            failure: failure.as_ref(),
            at: now,
        };
        if !tx.change_remittance_status(r.id, &change).await? {
            tx.rollback().await?;
            return Ok(());
        }
        if outcome == StepOutcome::Succeeded && step != Step::Collect {
            self.post(&mut tx, r, step, now).await?;
        }
        tx.insert_remittance_attempt(&NewRemittanceAttempt {
            remittance_id: r.id,
            step,
            outcome: match outcome {
                StepOutcome::Succeeded => AttemptOutcome::Succeeded,
                StepOutcome::Refused => AttemptOutcome::Refused,
            },
            error: refusal,
            bank_tran_id,
            started_at: started,
            finished_at: now,
        })
        .await?;
        self.announce(&mut tx, r, to, now).await?;
        tx.commit().await?;
        self.events.wake();
        metrics::counter!("minipay_remittance_steps_total", "step" => step.as_str(), "outcome" => to.as_str())
            .increment(1);
        Ok(())
    }

    /// The ledger side of a step: into the float, out of it, or out of transit once paid.
    async fn post(&self, tx: &mut Session, r: &Remittance, step: Step, now: Timestamp) -> Result<(), StoreError> {
        let amount = minipay_core::Amount::parse(r.amount).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        // The platform's own accounts on both sides: the remittance is what each entry is about.
        let journal = remittance_journal(step, &format!("remittance {}", r.id), amount);
        let mut locked = tx.lock_accounts(journal.accounts()).await?;
        let posted = locked
            .post(&journal, JournalId::new(), now)
            .map_err(|e| StoreError::Corrupt(format!("posting a remittance: {e}")))?;
        tx.write_postings(&locked, &[posted]).await
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
        let subject = match to {
            RemittanceStatus::Credited => subjects::CREDITED,
            RemittanceStatus::Completed => subjects::COMPLETED,
            RemittanceStatus::CollectFailed => subjects::COLLECT_FAILED,
            RemittanceStatus::Refunded => subjects::REFUNDED,
            RemittanceStatus::NeedsAttention => subjects::NEEDS_ATTENTION,
            _ => return Ok(()),
        };
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

    /// Records an attempt that got nowhere (best effort: the delivery's retry is what matters;
    /// a lost history row is logged).
    async fn record_attempt(&self, r: &Remittance, step: Step, outcome: AttemptOutcome, why: &str, started: Timestamp) {
        let attempt = NewRemittanceAttempt {
            remittance_id: r.id,
            step,
            outcome,
            error: Some(why),
            bank_tran_id: None,
            started_at: started,
            finished_at: self.clock.now(),
        };
        let recorded = async {
            let mut tx = self.store.begin().await?;
            tx.insert_remittance_attempt(&attempt).await?;
            tx.commit().await
        };
        if let Err(e) = recorded.await {
            tracing::warn!(remittance = %r.id, step = step.as_str(), error = ?e, "recording a failed attempt failed");
        }
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
