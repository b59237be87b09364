//! Settling a batch of refunds' pushes like the payments' pulls: one transaction marks every
//! `accepted` refund of the batch `processing` with its push's `sent` row; the pushes then go
//! to the bank all at once, with no transaction open; one transaction records every answer —
//! the calls, the status changes, the amounts of failed ones given back to their payments, the
//! events and webhooks, and last, right before the commit, the postings under one lock of the
//! accounts they touch (refunds in transit and bank settlement are every refund's other side).
//! If recording the batch fails, each refund is recorded on its own.

use crate::accept::{order_label, refund_trigger};
use crate::settle::{
    Call, Settled, Transfer, Verdict, amount, commit_sent_rows, sent_call, store_failure, verdict_result, write_calls,
};
use crate::webhooks::{Final, FinalStatus};
use crate::{Payments, subjects};
use minipay_core::ledger::{BalancePosting, balance_journal, business_account};
use minipay_core::payment::{BankCallKind, RefundStatus};
use minipay_core::{PaymentId, RefundId};
use minipay_store::{Payment, Refund, StoreError};
use std::collections::HashMap;

/// A refund with the payment it gives money back from.
type RefundOf = (Payment, Refund);

impl Payments {
    /// [`Self::settle_refund`] for many: one answer per id, in order.
    pub(crate) async fn settle_refunds(&self, ids: &[RefundId]) -> Vec<Result<(), String>> {
        let rows = match self.refunds_with_payments(ids).await {
            Ok(rows) => rows,
            Err(e) => {
                let why = store_failure(e);
                return ids.iter().map(|_| Err(why.clone())).collect();
            }
        };
        let mut answers: HashMap<RefundId, Result<(), String>> = HashMap::new();
        let (fresh, waiting): (Vec<RefundOf>, Vec<RefundOf>) = rows
            .into_iter()
            .filter(|(_, r)| r.status.in_transit())
            .partition(|(_, r)| r.status == RefundStatus::Accepted);
        // Those already processing (asked about, or sent again): rare, one at a time.
        for (_, r) in &waiting {
            answers.insert(r.id, self.settle_refund(r.id).await);
        }
        match self.mark_refunds_sent(fresh).await {
            Ok(marked) => answers.extend(self.push_and_record(marked).await),
            Err(e) => {
                let why = store_failure(e);
                answers.extend(ids.iter().map(|id| (*id, Err(why.clone()))));
            }
        }
        ids.iter().map(|id| answers.remove(id).unwrap_or(Ok(()))).collect()
    }

    /// The refunds with these ids that exist, each with its payment (two reads).
    async fn refunds_with_payments(&self, ids: &[RefundId]) -> Result<Vec<RefundOf>, StoreError> {
        let mut s = self.store.read().await?;
        let refunds = s.refunds_by_ids(ids).await?;
        let payment_ids: Vec<PaymentId> = refunds.iter().map(|r| r.payment_id).collect();
        let payments: HashMap<PaymentId, Payment> = s
            .payments_by_ids(&payment_ids)
            .await?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        Ok(refunds
            .into_iter()
            .filter_map(|r| Some((payments.get(&r.payment_id)?.clone(), r)))
            .collect())
    }

    /// One transaction: each refund still `accepted` moved to `processing` with its push's
    /// `sent` row. Those it moved (another worker may have taken some), with their calls.
    async fn mark_refunds_sent(&self, refunds: Vec<RefundOf>) -> Result<Vec<(RefundOf, Call)>, StoreError> {
        if refunds.is_empty() {
            return Ok(Vec::new());
        }
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let mut marked = Vec::with_capacity(refunds.len());
        for (p, r) in refunds {
            if tx
                .change_refund_status(r.id, RefundStatus::Accepted, RefundStatus::Processing, None, now)
                .await?
            {
                marked.push(((p, r), sent_call(BankCallKind::Push, now)));
            }
        }
        commit_sent_rows(tx, &marked).await?;
        Ok(marked)
    }

    /// The pushes, all at once; then their answers recorded together (or one by one if that
    /// fails).
    async fn push_and_record(&self, marked: Vec<(RefundOf, Call)>) -> Vec<(RefundId, Result<(), String>)> {
        let outcomes: Vec<(Payment, Refund, Settled)> = self
            .send_all(marked)
            .await
            .into_iter()
            .map(|((p, r), settled)| (p, r, settled))
            .collect();
        if outcomes.is_empty() {
            return Vec::new();
        }
        let triples: Vec<(&Payment, &Refund, &Settled)> = outcomes.iter().map(|(p, r, s)| (p, r, s)).collect();
        match self.record_refund_outcomes(&triples).await {
            Ok(()) => {
                self.events.wake();
                outcomes
                    .iter()
                    .map(|(_, r, s)| (r.id, verdict_result(&s.verdict)))
                    .collect()
            }
            Err(e) => {
                tracing::info!(refunds = outcomes.len(), error = ?e, "recording a batch failed; recording one by one");
                let mut answers = Vec::with_capacity(outcomes.len());
                for (p, r, s) in &outcomes {
                    answers.push((r.id, self.record_refund_outcome(p, r, s).await));
                }
                answers
            }
        }
    }

    /// One transaction for a batch's answers: the calls; each settled refund succeeded
    /// (refunds in transit → bank settlement) or failed (the money back in the business's
    /// balance, the amount back in the payment), only if it is still `processing`; the events
    /// and webhooks; then the postings under one lock of the accounts they touch; the webhooks
    /// are tried once it has committed.
    pub(crate) async fn record_refund_outcomes(
        &self,
        outcomes: &[(&Payment, &Refund, &Settled)],
    ) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let transfers: Vec<(Transfer, &[Call])> = outcomes
            .iter()
            .map(|(p, r, settled)| (Transfer::push(p, r), settled.calls.as_slice()))
            .collect();
        write_calls(&mut tx, &transfers).await?;
        let mut journals = Vec::new();
        let mut events = Vec::new();
        let mut finals = Vec::new();
        for (p, r, settled) in outcomes {
            let (to, fail, posting, subject) = match &settled.verdict {
                Verdict::Moved => (
                    RefundStatus::Succeeded,
                    None,
                    BalancePosting::RefundPaid,
                    subjects::REFUND_SUCCEEDED,
                ),
                Verdict::NotMoved(f) => (
                    RefundStatus::Failed,
                    Some(f),
                    BalancePosting::RefundReturned,
                    subjects::REFUND_FAILED,
                ),
                Verdict::NotYet(_) => continue,
            };
            if !tx
                .change_refund_status(r.id, RefundStatus::Processing, to, fail, now)
                .await?
            {
                continue;
            }
            if to == RefundStatus::Failed {
                tx.return_refund_amount(p.id, r.amount, now).await?;
            }
            journals.push(balance_journal(
                posting,
                business_account(p.business_id),
                &order_label(p),
                amount(r.amount)?,
            ));
            events.push((subject, refund_trigger(r.id)));
            finals.push(FinalStatus {
                subject,
                business: r.business_id,
                object: Final::Refund(r.id),
            });
            metrics::counter!("minipay_refunds_settled_total", "status" => to.as_str()).increment(1);
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
