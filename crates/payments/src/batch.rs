//! Settling a batch of payments' pulls in two transactions instead of two per payment: one
//! marks every `accepted` payment of the batch `processing` with its pull's `sent` row; the
//! pulls then go to the bank all at once, with no transaction open; one transaction records
//! every answer — the calls, the status changes, the events, the webhooks of the businesses
//! that have a URL (tried once it has committed), and last, right before the commit,
//! the postings under one lock of the accounts they touch (bank settlement is every payment's
//! other side: the fewer commits that hold it, the more payments go through). If recording the
//! batch fails, each payment is recorded on its own, so one cannot hold the others back.

use crate::accept::{order_label, trigger};
use crate::settle::{
    Call, Settled, Transfer, Verdict, amount, commit_sent_rows, sent_call, store_failure, verdict_result, write_calls,
};
use crate::webhooks::{Final, FinalStatus};
use crate::{Payments, subjects};
use minipay_core::PaymentId;
use minipay_core::ledger::{BalancePosting, balance_journal, business_account};
use minipay_core::payment::{BankCallKind, PaymentStatus};
use minipay_store::{Payment, PaymentStatusChange, StoreError};
use std::collections::HashMap;

impl Payments {
    /// [`Self::settle_payment`] for many: one answer per id, in order.
    pub(crate) async fn settle_payments(&self, ids: &[PaymentId]) -> Vec<Result<(), String>> {
        let rows = match async { self.store.read().await?.payments_by_ids(ids).await }.await {
            Ok(rows) => rows,
            Err(e) => {
                let why = store_failure(e);
                return ids.iter().map(|_| Err(why.clone())).collect();
            }
        };
        let mut answers: HashMap<PaymentId, Result<(), String>> = HashMap::new();
        let (fresh, waiting): (Vec<Payment>, Vec<Payment>) = rows
            .into_iter()
            .filter(|p| !p.status.is_settled())
            .partition(|p| p.status == PaymentStatus::Accepted);
        // Those already processing (asked about, or sent again): rare, one at a time.
        for p in &waiting {
            answers.insert(p.id, self.settle_payment(p.id).await);
        }
        match self.mark_all_sent(fresh).await {
            Ok(marked) => answers.extend(self.pull_and_record(marked).await),
            Err(e) => {
                let why = store_failure(e);
                answers.extend(ids.iter().map(|id| (*id, Err(why.clone()))));
            }
        }
        ids.iter().map(|id| answers.remove(id).unwrap_or(Ok(()))).collect()
    }

    /// One transaction: each payment still `accepted` moved to `processing` with its pull's
    /// `sent` row (one statement each). Those it moved (another worker may have taken some),
    /// with their calls.
    async fn mark_all_sent(&self, payments: Vec<Payment>) -> Result<Vec<(Payment, Call)>, StoreError> {
        if payments.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let changes: Vec<PaymentStatusChange> = payments
            .iter()
            .map(|p| PaymentStatusChange {
                id: p.id,
                from: PaymentStatus::Accepted,
                to: PaymentStatus::Processing,
                failure: None,
            })
            .collect();
        let moved = tx.change_payment_statuses(&changes, now).await?;
        let marked: Vec<(Payment, Call)> = payments
            .into_iter()
            .zip(moved)
            .filter(|(_, moved)| *moved)
            .map(|(p, _)| (p, sent_call(BankCallKind::Pull, now)))
            .collect();
        commit_sent_rows(tx, &marked).await?;
        Ok(marked)
    }

    /// The pulls, all at once; then their answers recorded together (or one by one if that
    /// fails).
    async fn pull_and_record(&self, marked: Vec<(Payment, Call)>) -> Vec<(PaymentId, Result<(), String>)> {
        let outcomes: Vec<(Payment, Settled)> = self.send_all(marked).await;
        if outcomes.is_empty() {
            return Vec::new();
        }
        let pairs: Vec<(&Payment, &Settled)> = outcomes.iter().map(|(p, s)| (p, s)).collect();
        match self.record_payment_outcomes(&pairs).await {
            Ok(()) => {
                self.events.wake();
                outcomes
                    .iter()
                    .map(|(p, s)| (p.id, verdict_result(&s.verdict)))
                    .collect()
            }
            Err(e) => {
                tracing::info!(payments = outcomes.len(), error = ?e, "recording a batch failed; recording one by one");
                let mut answers = Vec::with_capacity(outcomes.len());
                for (p, s) in &outcomes {
                    answers.push((p.id, self.record_payment_outcome(p, s).await));
                }
                answers
            }
        }
    }

    /// One transaction for a batch's answers: the calls and status changes (each only if the
    /// payment is still `processing`; one statement each), the events and webhooks, then the
    /// postings of the paid ones under one lock of the accounts they touch; the webhooks are
    /// tried once it has committed.
    pub(crate) async fn record_payment_outcomes(&self, outcomes: &[(&Payment, &Settled)]) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let transfers: Vec<(Transfer, &[Call])> = outcomes
            .iter()
            .map(|(p, settled)| (Transfer::pull(p), settled.calls.as_slice()))
            .collect();
        write_calls(&mut tx, &transfers).await?;
        // The settled ones: the payment, its status and the event it raises.
        let settled: Vec<(&Payment, PaymentStatusChange, &str)> = outcomes
            .iter()
            .filter_map(|(p, settled)| {
                let (to, failure, subject) = match &settled.verdict {
                    Verdict::Moved => (PaymentStatus::Paid, None, subjects::PAID),
                    Verdict::NotMoved(f) => (PaymentStatus::Failed, Some(f), subjects::FAILED),
                    Verdict::NotYet(_) => return None,
                };
                let change = PaymentStatusChange {
                    id: p.id,
                    from: PaymentStatus::Processing,
                    to,
                    failure,
                };
                Some((*p, change, subject))
            })
            .collect();
        let changes: Vec<PaymentStatusChange> = settled.iter().map(|(_, change, _)| *change).collect();
        let moved = tx.change_payment_statuses(&changes, now).await?;
        let mut journals = Vec::new();
        let mut events = Vec::new();
        let mut finals = Vec::new();
        for ((p, change, subject), _) in settled.iter().zip(moved).filter(|(_, moved)| *moved) {
            if change.to == PaymentStatus::Paid {
                let account = business_account(p.business_id);
                journals.push(balance_journal(
                    BalancePosting::PaymentPaid,
                    account,
                    &order_label(p),
                    amount(p.amount)?,
                ));
            }
            events.push((*subject, trigger(p.id)));
            finals.push(FinalStatus {
                subject,
                business: p.business_id,
                object: Final::Payment(p.id),
            });
            metrics::counter!("minipay_payments_settled_total", "status" => change.to.as_str()).increment(1);
        }
        minipay_events::emit_all(&mut tx, &events, now).await?;
        let webhooks = self.record_webhooks(&mut tx, &finals, now).await?;
        // The platform's accounts last, right before the commit.
        tx.post_journals(&journals.iter().collect::<Vec<_>>(), now).await?;
        tx.commit().await?;
        self.webhooks.attempt_soon(webhooks);
        Ok(())
    }
}
