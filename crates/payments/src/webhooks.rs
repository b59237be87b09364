//! The final statuses of payments and refunds as webhooks to their business: one consumer per
//! final status, each recording the webhook with the payment (or refund) as `GET` shows it.

use crate::views::{PaymentView, RefundView};
use crate::{Payments, subjects};
use async_trait::async_trait;
use minipay_core::{PaymentId, RefundId};
use minipay_events::webhooks::{WebhookConsumer, WebhookObject, WebhookSource, Webhooks};
use minipay_events::{Consumer, Event, Failure};
use minipay_store::Payment;
use std::collections::HashMap;
use std::sync::Arc;

/// The webhook consumers of the payments' and refunds' final statuses.
pub fn webhook_consumers(payments: &Arc<Payments>, webhooks: &Arc<Webhooks>) -> Vec<Arc<dyn Consumer>> {
    let payment: Arc<dyn WebhookSource> = Arc::new(PaymentObjects(payments.clone()));
    let refund: Arc<dyn WebhookSource> = Arc::new(RefundObjects(payments.clone()));
    [
        ("webhook-payment-paid", subjects::PAID, &payment),
        ("webhook-payment-failed", subjects::FAILED, &payment),
        ("webhook-refund-succeeded", subjects::REFUND_SUCCEEDED, &refund),
        ("webhook-refund-failed", subjects::REFUND_FAILED, &refund),
    ]
    .into_iter()
    .map(|(name, subject, source)| {
        Arc::new(WebhookConsumer::new(name, subject, source.clone(), webhooks.clone())) as Arc<dyn Consumer>
    })
    .collect()
}

struct PaymentObjects(Arc<Payments>);
struct RefundObjects(Arc<Payments>);

#[derive(serde::Deserialize)]
struct PaymentTrigger {
    payment_id: PaymentId,
}

#[derive(serde::Deserialize)]
struct RefundTrigger {
    refund_id: RefundId,
}

fn unreadable(e: impl std::fmt::Display) -> Failure {
    Failure::new(format!("reading the object: {e}"))
}

#[async_trait]
impl WebhookSource for PaymentObjects {
    async fn object(&self, event: &Event) -> Result<Option<WebhookObject>, Failure> {
        self.objects(std::slice::from_ref(event))
            .await
            .pop()
            .unwrap_or(Ok(None))
    }

    /// The batch's payments read in one query.
    async fn objects(&self, events: &[Event]) -> Vec<Result<Option<WebhookObject>, Failure>> {
        let ids: Vec<Result<PaymentId, Failure>> = events
            .iter()
            .map(|e| e.data::<PaymentTrigger>().map(|t| t.payment_id).map_err(unreadable))
            .collect();
        let wanted: Vec<PaymentId> = ids.iter().flatten().copied().collect();
        let read = async { self.0.store.read().await?.payments_by_ids(&wanted).await }.await;
        let payments: HashMap<PaymentId, Payment> = match read {
            Ok(rows) => rows.into_iter().map(|p| (p.id, p)).collect(),
            Err(e) => {
                let e = unreadable(e);
                return events.iter().map(|_| Err(e.clone())).collect();
            }
        };
        ids.into_iter()
            .map(|id| payments.get(&id?).map(payment_object).transpose())
            .collect()
    }
}

fn payment_object(p: &Payment) -> Result<WebhookObject, Failure> {
    Ok(WebhookObject {
        business: p.business_id,
        id: p.id.as_uuid(),
        data: serde_json::to_value(PaymentView::from(p)).map_err(unreadable)?,
    })
}

#[async_trait]
impl WebhookSource for RefundObjects {
    async fn object(&self, event: &Event) -> Result<Option<WebhookObject>, Failure> {
        let t: RefundTrigger = event.data().map_err(unreadable)?;
        let Some(r) = self
            .0
            .store
            .read()
            .await
            .map_err(unreadable)?
            .refund(t.refund_id)
            .await
            .map_err(unreadable)?
        else {
            return Ok(None);
        };
        Ok(Some(WebhookObject {
            business: r.business_id,
            id: r.id.as_uuid(),
            data: serde_json::to_value(RefundView::from(&r)).map_err(unreadable)?,
        }))
    }
}
