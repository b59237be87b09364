//! Settling a payment's pull and a refund's push with the bank. The transfer's row is
//! committed (`sent`) before the bank is called, with no transaction open during the call;
//! the answer is recorded with the status change it causes, in one transaction. A transfer
//! with no answer is settled by the status inquiry (and a void when the bank has no record),
//! never by sending it again; one the bank would not take is sent again under the same id.

use crate::Payments;
use jiff::Timestamp;
use minipay_bank::{BankError, TransferRequest, TransferStatus};
use minipay_core::payment::{BankCallKind, BankCallOutcome, NextBankCall, PaymentStatus, RefundStatus, next_bank_call};
use minipay_core::{Amount, BankCallId, PaymentId, RefundId};
use minipay_store::{FinishedBankCall, NewBankCall, Payment, PaymentFailure, Refund, Session, StoreError};

/// What shows on the user's bank statement.
const PAYMENT_PRINT: &str = "minipay payment";
const REFUND_PRINT: &str = "minipay refund";

/// A transfer the payments make: a payment's pull, or a refund's push to the user.
pub(crate) struct Transfer<'a> {
    pub payment: &'a Payment,
    pub refund: Option<&'a Refund>,
}

impl<'a> Transfer<'a> {
    /// A payment's pull.
    pub(crate) fn pull(payment: &'a Payment) -> Self {
        Self { payment, refund: None }
    }
    /// A refund's push.
    pub(crate) fn push(payment: &'a Payment, refund: &'a Refund) -> Self {
        Self {
            payment,
            refund: Some(refund),
        }
    }
    fn kind(&self) -> BankCallKind {
        if self.refund.is_some() {
            BankCallKind::Push
        } else {
            BankCallKind::Pull
        }
    }
    fn tran_id(&self) -> &str {
        self.refund
            .map_or(&self.payment.bank_transaction_id, |r| &r.bank_transaction_id)
    }
    fn amount(&self) -> i64 {
        self.refund.map_or(self.payment.amount, |r| r.amount)
    }
    fn request(&self) -> TransferRequest {
        TransferRequest {
            tran_id: self.tran_id().to_owned(),
            fintech_use_num: self.payment.fintech_use_num.clone(),
            amount: self.amount(),
            print_content: if self.refund.is_some() {
                REFUND_PRINT
            } else {
                PAYMENT_PRINT
            }
            .into(),
        }
    }
}

/// What the bank's answers make of a transfer.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// The money moved.
    Moved,
    /// Nothing moved and nothing will: the payment (or refund) fails with this.
    NotMoved(PaymentFailure),
    /// Not settled yet (the bank would not take it, or could not say): try again later.
    NotYet(String),
}

/// A bank call made, to record with the verdict.
#[derive(Debug)]
pub(crate) struct Call {
    id: BankCallId,
    kind: BankCallKind,
    outcome: BankCallOutcome,
    bank_tran_id: Option<String>,
    error: Option<String>,
    started_at: Timestamp,
    finished_at: Timestamp,
    /// Its row was written (`sent`) before the call: finish it rather than insert it.
    sent_row: bool,
}

/// The verdict and the calls that led to it.
pub(crate) struct Settled {
    pub verdict: Verdict,
    pub calls: Vec<Call>,
}

fn failure(code: &str, message: impl Into<String>) -> PaymentFailure {
    PaymentFailure {
        code: code.into(),
        message: message.into(),
    }
}

impl Payments {
    /// Settles a payment's pull: sends it when it was never sent (or the bank would not take
    /// it), asks the bank otherwise, and records the outcome. Idempotent: a settled payment is
    /// left alone. `Err`: not settled yet, try again later.
    pub(crate) async fn settle_payment(&self, id: PaymentId) -> Result<(), String> {
        let p = self.payment_row(id).await.map_err(store_failure)?;
        let Some(p) = p.filter(|p| !p.status.is_settled()) else {
            return Ok(());
        };
        let t = Transfer::pull(&p);
        let settled = match p.status {
            PaymentStatus::Accepted => match self.mark_sent(&t).await? {
                Some(call) => self.send(&t, call).await,
                None => return Ok(()), // another worker took it
            },
            _ => self.settle_transfer(&t).await?,
        };
        self.record_payment_outcome(&p, &settled).await
    }

    /// Settles a refund's push, like [`Self::settle_payment`].
    pub(crate) async fn settle_refund(&self, id: RefundId) -> Result<(), String> {
        let r = self.refund_row(id).await.map_err(store_failure)?;
        let Some(r) = r.filter(|r| r.status.in_transit()) else {
            return Ok(());
        };
        let p = self
            .payment_row(r.payment_id)
            .await
            .map_err(store_failure)?
            .ok_or_else(|| format!("refund {id} of a payment that does not exist"))?;
        let t = Transfer::push(&p, &r);
        let settled = match r.status {
            RefundStatus::Accepted => match self.mark_sent(&t).await? {
                Some(call) => self.send(&t, call).await,
                None => return Ok(()),
            },
            _ => self.settle_transfer(&t).await?,
        };
        self.record_refund_outcome(&p, &r, &settled).await
    }

    /// Reads on their own connection (no transaction is left open across a bank call).
    async fn payment_row(&self, id: PaymentId) -> Result<Option<Payment>, StoreError> {
        self.store.read().await?.payment(id).await
    }

    async fn refund_row(&self, id: RefundId) -> Result<Option<Refund>, StoreError> {
        self.store.read().await?.refund(id).await
    }

    /// Moves the payment (or refund) from `accepted` to `processing` and writes the transfer's
    /// `sent` row, committed before the bank is called. `None`: another worker moved it first.
    async fn mark_sent(&self, t: &Transfer<'_>) -> Result<Option<Call>, String> {
        let now = self.clock.now();
        let call = sent_call(t.kind(), now);
        let written = async {
            let mut tx = self.store.begin().await?;
            let moved = match t.refund {
                None => {
                    tx.change_payment_status(
                        t.payment.id,
                        PaymentStatus::Accepted,
                        PaymentStatus::Processing,
                        None,
                        now,
                    )
                    .await?
                }
                Some(r) => {
                    tx.change_refund_status(r.id, RefundStatus::Accepted, RefundStatus::Processing, None, now)
                        .await?
                }
            };
            if !moved {
                tx.rollback().await?;
                return Ok(false);
            }
            tx.insert_bank_call(&new_call(t, &call)).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(true)
        };
        Ok(written.await.map_err(store_failure)?.then_some(call))
    }

    /// A transfer already `processing`: sent again if the bank would not take it last time,
    /// asked about otherwise.
    async fn settle_transfer(&self, t: &Transfer<'_>) -> Result<Settled, String> {
        let outcomes = async { self.store.read().await?.transfer_call_outcomes(t.tran_id()).await }
            .await
            .map_err(store_failure)?;
        Ok(match next_bank_call(outcomes.last().copied()) {
            NextBankCall::Ask => self.ask(t, Vec::new()).await,
            NextBankCall::Send if outcomes.len() >= self.config.sends_max => Settled {
                verdict: Verdict::NotMoved(failure(
                    "bank_unavailable",
                    format!(
                        "the bank would not take the transfer in {} tries; nothing moved",
                        outcomes.len()
                    ),
                )),
                calls: Vec::new(),
            },
            NextBankCall::Send => {
                let call = sent_call(t.kind(), self.clock.now());
                let written = async {
                    let mut tx = self.store.begin().await?;
                    tx.insert_bank_call(&new_call(t, &call)).await?;
                    tx.commit().await
                };
                written.await.map_err(store_failure)?;
                self.send(t, call).await
            }
        })
    }

    /// The transfer itself, with no transaction open; a missing answer is asked about.
    pub(crate) async fn send(&self, t: &Transfer<'_>, mut call: Call) -> Settled {
        let request = t.request();
        let answer = match t.refund {
            None => self.bank.pull(&request).await,
            Some(_) => self.bank.push(&request).await,
        };
        call.finished_at = self.clock.now();
        let verdict = match answer {
            Ok(receipt) => {
                call.outcome = BankCallOutcome::Completed;
                call.bank_tran_id = Some(receipt.bank_tran_id);
                Verdict::Moved
            }
            Err(BankError::Declined(why)) => {
                call.outcome = BankCallOutcome::Declined;
                call.error = Some(why.clone());
                Verdict::NotMoved(failure("bank_declined", why))
            }
            Err(e @ BankError::Unavailable(_)) => {
                call.outcome = BankCallOutcome::Unavailable;
                call.error = Some(e.to_string());
                Verdict::NotYet(e.to_string())
            }
            Err(e @ (BankError::Timeout | BankError::Protocol(_))) => {
                call.outcome = BankCallOutcome::Unknown;
                call.error = Some(e.to_string());
                return self.ask(t, vec![call]).await;
            }
        };
        Settled {
            verdict,
            calls: vec![call],
        }
    }

    /// Asks the bank what became of the transfer; "no record" is made an answer by voiding
    /// the id (once void, it can never execute, so "not moved" is final).
    async fn ask(&self, t: &Transfer<'_>, mut calls: Vec<Call>) -> Settled {
        let tran_id = t.tran_id();
        let started = self.clock.now();
        let status = self.bank.transfer_status(tran_id).await;
        calls.push(answered_call(BankCallKind::Inquiry, &status, started, self.clock.now()));
        let verdict = match status {
            Ok(TransferStatus::Completed) => Verdict::Moved,
            Ok(TransferStatus::Failed) => {
                Verdict::NotMoved(failure("bank_declined", "the bank reports the transfer failed"))
            }
            Ok(TransferStatus::NotFound) => {
                let started = self.clock.now();
                let voided = self.bank.cancel_transfer(tran_id).await;
                calls.push(answered_call(BankCallKind::Void, &voided, started, self.clock.now()));
                match voided {
                    Ok(TransferStatus::Completed) => Verdict::Moved,
                    Ok(TransferStatus::Failed | TransferStatus::NotFound) => Verdict::NotMoved(failure(
                        "bank_no_answer",
                        "the bank did not answer and had no record of the transfer; it was voided, nothing moved",
                    )),
                    Ok(TransferStatus::Processing) => {
                        Verdict::NotYet("the bank is still processing the transfer".into())
                    }
                    Err(e) => Verdict::NotYet(format!("voiding the transfer failed: {e}")),
                }
            }
            Ok(TransferStatus::Processing) => Verdict::NotYet("the bank is still processing the transfer".into()),
            Err(e) => Verdict::NotYet(format!("the status inquiry failed: {e}")),
        };
        Settled { verdict, calls }
    }

    /// Records a payment's verdict on its own (a batch of one): the calls, and paid (the
    /// business's balance credited) or failed, only if the payment is still `processing`.
    pub(crate) async fn record_payment_outcome(&self, p: &Payment, settled: &Settled) -> Result<(), String> {
        self.record_payment_outcomes(&[(p, settled)])
            .await
            .map_err(store_failure)?;
        self.events.wake();
        verdict_result(&settled.verdict)
    }

    /// Records a refund's verdict on its own (a batch of one): succeeded (refunds in transit →
    /// bank settlement) or failed (the money back in the business's balance, the amount back
    /// in the payment), only if the refund is still `processing`.
    pub(crate) async fn record_refund_outcome(&self, p: &Payment, r: &Refund, settled: &Settled) -> Result<(), String> {
        self.record_refund_outcomes(&[(p, r, settled)])
            .await
            .map_err(store_failure)?;
        self.events.wake();
        verdict_result(&settled.verdict)
    }
}

pub(crate) fn verdict_result(verdict: &Verdict) -> Result<(), String> {
    match verdict {
        Verdict::Moved | Verdict::NotMoved(_) => Ok(()),
        Verdict::NotYet(why) => Err(why.clone()),
    }
}

/// A transfer call about to be made (its row is written `sent` first).
pub(crate) fn sent_call(kind: BankCallKind, now: Timestamp) -> Call {
    Call {
        id: BankCallId::new(),
        kind,
        outcome: BankCallOutcome::Sent,
        bank_tran_id: None,
        error: None,
        started_at: now,
        finished_at: now,
        sent_row: true,
    }
}

/// An inquiry or a void, as answered.
fn answered_call(
    kind: BankCallKind,
    answer: &Result<TransferStatus, BankError>,
    started_at: Timestamp,
    finished_at: Timestamp,
) -> Call {
    let (outcome, error) = match answer {
        Ok(TransferStatus::Completed) => (BankCallOutcome::Completed, None),
        Ok(TransferStatus::Failed) => (BankCallOutcome::Declined, None),
        Ok(TransferStatus::NotFound) => (
            BankCallOutcome::Unknown,
            Some("the bank has no record of it".to_owned()),
        ),
        Ok(TransferStatus::Processing) => (BankCallOutcome::Unknown, Some("still processing".to_owned())),
        Err(e) => (BankCallOutcome::Unknown, Some(e.to_string())),
    };
    Call {
        id: BankCallId::new(),
        kind,
        outcome,
        bank_tran_id: None,
        error,
        started_at,
        finished_at,
        sent_row: false,
    }
}

pub(crate) fn new_call<'a>(t: &'a Transfer<'_>, c: &'a Call) -> NewBankCall<'a> {
    NewBankCall {
        id: c.id,
        payment_id: t.payment.id,
        refund_id: t.refund.map(|r| r.id),
        kind: c.kind,
        tran_id: t.tran_id(),
        outcome: c.outcome,
        bank_tran_id: c.bank_tran_id.as_deref(),
        error: c.error.as_deref(),
        started_at: c.started_at,
        finished_at: (!c.sent_row).then_some(c.finished_at),
    }
}

/// The calls' rows of many transfers: a sent transfer's row finished, the others inserted
/// (one statement each on PostgreSQL).
/// What a batch settles with the bank: a payment (its pull), or a refund with its payment
/// (its push).
pub(crate) trait Transferring: Send + Sync {
    fn transfer(&self) -> Transfer<'_>;
}

impl Transferring for Payment {
    fn transfer(&self) -> Transfer<'_> {
        Transfer::pull(self)
    }
}

impl Transferring for (Payment, Refund) {
    fn transfer(&self) -> Transfer<'_> {
        Transfer::push(&self.0, &self.1)
    }
}

/// The `sent` rows of the marked transfers (one statement), then the commit: no transfer goes
/// to the bank before its row is committed.
pub(crate) async fn commit_sent_rows<T: Transferring>(mut tx: Session, marked: &[(T, Call)]) -> Result<(), StoreError> {
    let transfers: Vec<Transfer> = marked.iter().map(|(item, _)| item.transfer()).collect();
    let rows: Vec<NewBankCall> = transfers
        .iter()
        .zip(marked)
        .map(|(t, (_, call))| new_call(t, call))
        .collect();
    tx.insert_bank_calls(&rows).await?;
    tx.commit().await
}

impl Payments {
    /// Every marked transfer sent at once, with no transaction open; each with what it settled.
    pub(crate) async fn send_all<T: Transferring>(&self, marked: Vec<(T, Call)>) -> Vec<(T, Settled)> {
        let sends = marked.into_iter().map(|(item, call)| async move {
            let settled = self.send(&item.transfer(), call).await;
            (item, settled)
        });
        futures_util::future::join_all(sends).await
    }
}

pub(crate) async fn write_calls(tx: &mut Session, transfers: &[(Transfer<'_>, &[Call])]) -> Result<(), StoreError> {
    let mut finished = Vec::new();
    let mut inserted = Vec::new();
    for (t, calls) in transfers {
        for c in *calls {
            if c.sent_row {
                finished.push(FinishedBankCall {
                    id: c.id,
                    outcome: c.outcome,
                    bank_tran_id: c.bank_tran_id.as_deref(),
                    error: c.error.as_deref(),
                    at: c.finished_at,
                });
            } else {
                inserted.push(new_call(t, c));
            }
        }
    }
    tx.finish_bank_calls(&finished).await?;
    tx.insert_bank_calls(&inserted).await
}

pub(crate) fn amount(won: i64) -> Result<Amount, StoreError> {
    Amount::parse(won).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn store_failure(e: StoreError) -> String {
    format!("recording failed: {e}")
}
