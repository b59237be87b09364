//! The final statuses of payments and refunds as webhooks to their business: recorded by the
//! transaction that makes the status final (the payment or refund as `GET` shows it then, so
//! a final status is never without its webhook), tried once it has committed.

use crate::views::{PaymentView, RefundView};
use minipay_core::{BusinessId, PaymentId, RefundId};
use minipay_events::webhooks::{WebhookObject, webhook_urls};
use minipay_store::{Session, StoreError};
use std::collections::HashMap;
use uuid::Uuid;

/// A status a settling transaction made final: its event's subject (the webhook's `type`) and
/// what it is about.
pub(crate) struct FinalStatus {
    pub subject: &'static str,
    pub business: BusinessId,
    pub object: Final,
}

#[derive(Clone, Copy)]
pub(crate) enum Final {
    Payment(PaymentId),
    Refund(RefundId),
}

impl Final {
    fn payment(self) -> Option<PaymentId> {
        match self {
            Self::Payment(id) => Some(id),
            Self::Refund(_) => None,
        }
    }

    fn refund(self) -> Option<RefundId> {
        match self {
            Self::Refund(id) => Some(id),
            Self::Payment(_) => None,
        }
    }

    fn id(self) -> Uuid {
        match self {
            Self::Payment(id) => id.as_uuid(),
            Self::Refund(id) => id.as_uuid(),
        }
    }
}

impl crate::Payments {
    /// Records, in the caller's transaction, the webhook of each final status whose business
    /// has a URL, with its payment or refund read back as changed; the ids of those recorded,
    /// to try once the transaction has committed. Nothing is read when no status is final.
    pub(crate) async fn record_webhooks(
        &self,
        tx: &mut Session,
        statuses: &[FinalStatus],
        now: jiff::Timestamp,
    ) -> Result<Vec<Uuid>, StoreError> {
        if statuses.is_empty() {
            return Ok(Vec::new());
        }
        let urls = webhook_urls(tx, statuses.iter().map(|s| s.business)).await?;
        let announced: Vec<&FinalStatus> = statuses.iter().filter(|s| urls.contains_key(&s.business)).collect();
        if announced.is_empty() {
            return Ok(Vec::new());
        }
        let objects = objects_as_changed(tx, &announced).await?;
        let webhooks: Vec<(&str, &WebhookObject, &str)> = announced
            .iter()
            .zip(&objects)
            .filter_map(|(s, object)| Some((s.subject, object.as_ref()?, urls.get(&s.business)?.as_str())))
            .collect();
        self.webhooks.record_all(tx, &webhooks, now).await
    }
}

/// Each status's payment or refund as `GET` shows it, read in the transaction that changed it
/// (one query per kind on PostgreSQL).
async fn objects_as_changed(
    tx: &mut Session,
    statuses: &[&FinalStatus],
) -> Result<Vec<Option<WebhookObject>>, StoreError> {
    let payment_ids: Vec<PaymentId> = statuses.iter().filter_map(|s| s.object.payment()).collect();
    let refund_ids: Vec<RefundId> = statuses.iter().filter_map(|s| s.object.refund()).collect();
    let mut objects: HashMap<Uuid, WebhookObject> = HashMap::new();
    if !payment_ids.is_empty() {
        for p in tx.payments_by_ids(&payment_ids).await? {
            let object = webhook_object(p.business_id, p.id.as_uuid(), &PaymentView::from(&p))?;
            objects.insert(object.id, object);
        }
    }
    if !refund_ids.is_empty() {
        for r in tx.refunds_by_ids(&refund_ids).await? {
            let object = webhook_object(r.business_id, r.id.as_uuid(), &RefundView::from(&r))?;
            objects.insert(object.id, object);
        }
    }
    Ok(statuses.iter().map(|s| objects.remove(&s.object.id())).collect())
}

fn webhook_object(business: BusinessId, id: Uuid, view: &impl serde::Serialize) -> Result<WebhookObject, StoreError> {
    let data = serde_json::to_value(view).map_err(|e| StoreError::Corrupt(format!("a webhook's object: {e}")))?;
    Ok(WebhookObject { business, id, data })
}
