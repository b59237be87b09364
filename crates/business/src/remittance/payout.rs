//! Payouts (API-business.md, "Business balance and payouts"): a business's balance on the
//! platform paid out to its own bank account through the remittance's payout side. One
//! transaction takes the amount from the balance into the float (under the two accounts'
//! locks, `insufficient_funds` when short) and records the remittance `credited`, from the
//! balance; the payout side then debits the float and pushes, retried and dead-lettered like
//! any remittance. A payout the bank refuses goes back into the balance.

use super::views::RemittanceView;
use super::{Remittances, internal, subjects, trigger};
use minipay_core::ledger::BalancePosting;
use minipay_core::request::IdempotencyKey;
use minipay_core::{Amount, BusinessId, RemittanceId};
use minipay_events::emit;
use minipay_services::balances::take_from_balance;
use minipay_services::idempotency::{IdempotentRequest, Reply, peek, record};
use minipay_services::{ServiceError, ServiceResult};
use minipay_store::{NewPayout, StoredResponse};

impl Remittances {
    /// `POST /v1/biz/payouts`: pays `amount` of the business's balance out to its bank account.
    /// The same key and amount return the same payout.
    #[tracing::instrument(name = "minipay.remittances.payout", skip_all, err(level = "debug"))]
    pub async fn request_payout(
        &self,
        business: BusinessId,
        amount: Amount,
        key: Option<IdempotencyKey>,
    ) -> ServiceResult<Reply<RemittanceView>> {
        let key = key.ok_or_else(|| ServiceError::validation("Idempotency-Key is required for a payout"))?;
        let idem = IdempotentRequest::new(Some(key), "payout", "", &amount.won()).expect("a key was given");
        for _ in 0..2 {
            if let Some(reply) = self.record_payout(business, amount, &idem).await? {
                self.events.wake();
                metrics::counter!("minipay_payouts_requested_total").increment(1);
                return Ok(reply);
            }
        }
        Err(ServiceError::Conflict(
            "a request with this Idempotency-Key is being processed; retry shortly".into(),
        ))
    }

    /// One transaction; `None` when the key was taken meanwhile (nothing is written then).
    async fn record_payout(
        &self,
        business: BusinessId,
        amount: Amount,
        idem: &IdempotentRequest,
    ) -> ServiceResult<Option<Reply<RemittanceView>>> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        if let Some(stored) = peek(&mut tx, business, Some(idem), now).await? {
            return Ok(Some(Reply::Replayed(stored)));
        }
        let id = RemittanceId::new();
        let payout = tx
            .insert_payout(&NewPayout {
                id,
                business,
                amount: amount.won(),
                at: now,
            })
            .await?
            .ok_or(ServiceError::NotFound("business"))?;
        let about = format!("remittance {id}");
        take_from_balance(
            &mut tx,
            BalancePosting::PayoutTaken,
            business,
            &about,
            amount,
            "payout",
            now,
        )
        .await?;
        emit(&mut tx, subjects::CREDITED, &trigger(id), now).await?;
        let view = RemittanceView::new(&payout, &[]);
        let answer = StoredResponse {
            status: 202,
            body: serde_json::to_string(&view).map_err(|e| internal(&format!("a payout view: {e}")))?,
        };
        if !record(&mut tx, business, Some(idem), &answer, now).await? {
            tx.rollback().await?;
            return Ok(None);
        }
        tx.commit().await?;
        Ok(Some(Reply::Fresh(view)))
    }
}
