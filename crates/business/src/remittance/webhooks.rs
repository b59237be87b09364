//! The remittance's final statuses as webhooks to the business that sent it: one consumer per
//! final status, each recording the webhook with the remittance as `GET` shows it.

use super::{Remittances, subjects};
use async_trait::async_trait;
use minipay_core::RemittanceId;
use minipay_events::webhooks::{WebhookConsumer, WebhookObject, WebhookSource, Webhooks};
use minipay_events::{Consumer, Event, Failure};
use std::sync::Arc;

/// The webhook consumers of the remittance's final statuses.
pub fn webhook_consumers(remittances: &Arc<Remittances>, webhooks: &Arc<Webhooks>) -> Vec<Arc<dyn Consumer>> {
    let source: Arc<dyn WebhookSource> = Arc::new(RemittanceObjects(remittances.clone()));
    [
        ("webhook-remittance-completed", subjects::COMPLETED),
        ("webhook-remittance-refunded", subjects::REFUNDED),
        ("webhook-remittance-needs-attention", subjects::NEEDS_ATTENTION),
    ]
    .into_iter()
    .map(|(name, subject)| {
        Arc::new(WebhookConsumer::new(name, subject, source.clone(), webhooks.clone())) as Arc<dyn Consumer>
    })
    .collect()
}

struct RemittanceObjects(Arc<Remittances>);

#[derive(serde::Deserialize)]
struct Trigger {
    remittance_id: RemittanceId,
}

#[async_trait]
impl WebhookSource for RemittanceObjects {
    async fn object(&self, event: &Event) -> Result<Option<WebhookObject>, Failure> {
        let t: Trigger = event
            .data()
            .map_err(|e| Failure::new(format!("an event without a remittance id: {e}")))?;
        let detail = match self.0.remittance_detail(t.remittance_id).await {
            Ok(d) => d,
            Err(minipay_services::ServiceError::NotFound(_)) => return Ok(None),
            Err(e) => return Err(Failure::new(format!("reading the remittance: {e}"))),
        };
        let r = detail.remittance;
        Ok(Some(WebhookObject {
            business: r.from_business_id,
            id: r.id.as_uuid(),
            data: serde_json::to_value(&r).map_err(|e| Failure::new(format!("a remittance view: {e}")))?,
        }))
    }
}
