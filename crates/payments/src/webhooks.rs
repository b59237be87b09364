//! The final statuses of payments and refunds as webhooks to their business: one consumer per
//! final status, each recording the webhook with the payment (or refund) as `GET` shows it.

use crate::views::{PaymentView, RefundView};
use crate::{Payments, subjects};
use async_trait::async_trait;
use minipay_core::{PaymentId, RefundId};
use minipay_events::webhooks::{WebhookConsumer, WebhookObject, WebhookSource, Webhooks};
use minipay_events::{Consumer, Event, Failure};
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
        let t: PaymentTrigger = event.data().map_err(unreadable)?;
        let Some(p) = self
            .0
            .store
            .read()
            .await
            .map_err(unreadable)?
            .payment(t.payment_id)
            .await
            .map_err(unreadable)?
        else {
            return Ok(None);
        };
        Ok(Some(WebhookObject {
            business: p.business_id,
            id: p.id.as_uuid(),
            data: serde_json::to_value(PaymentView::from(&p)).map_err(unreadable)?,
        }))
    }
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
