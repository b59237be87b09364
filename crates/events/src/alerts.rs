//! Alerts for operators: raised once per cause in the caller's transaction and announced as an
//! `alert.raised` event, which the alert webhook (when one is configured) delivers.

use crate::consumer::{Consumer, Failure};
use crate::event::{Event, emit};
use async_trait::async_trait;
use jiff::Timestamp;
use minipay_store::{Alert, DeadLetter, NewAlert, Session, StoreError};
use std::time::Duration;

/// The subject announcing a new alert.
pub const ALERT_RAISED: &str = "alert.raised";
/// How long the webhook's receiver has to answer.
const WEBHOOK_TIMEOUT_MS: u64 = 5_000;

/// An alert as it travels (the event's data and the webhook's body).
pub fn alert_json(a: &Alert) -> serde_json::Value {
    serde_json::json!({
        "id": a.id, "kind": a.kind, "cause": a.cause, "subject_id": a.subject_id,
        "message": a.message, "data": a.data, "created_at": a.created_at,
        "acknowledged_at": a.acknowledged_at,
    })
}

/// Raises `alert` unless its cause was raised before; the new alert, or `None`.
pub async fn raise(tx: &mut Session, alert: &NewAlert<'_>, now: Timestamp) -> Result<Option<Alert>, StoreError> {
    let raised = tx.insert_alert(alert, now).await?;
    if let Some(a) = &raised {
        emit(tx, ALERT_RAISED, &alert_json(a), now).await?;
        metrics::counter!("minipay_alerts_raised_total", "kind" => a.kind.clone()).increment(1);
        tracing::warn!(kind = %a.kind, cause = %a.cause, message = %a.message, "alert raised");
    }
    Ok(raised)
}

/// The alert of a new dead letter (once per dead letter: a failure added to an open one
/// raises nothing new).
pub const DEAD_LETTER: &str = "dead_letter";

/// Raises the alert of dead letter `d`.
pub async fn raise_dead_letter(tx: &mut Session, d: &DeadLetter, now: Timestamp) -> Result<(), StoreError> {
    let cause = format!("{DEAD_LETTER}:{}", d.id);
    let message = format!(
        "{} of {} failed at {} after {} attempts: {}",
        d.kind, d.subject_id, d.step, d.attempts, d.last_error
    );
    let alert = NewAlert {
        kind: DEAD_LETTER,
        cause: &cause,
        subject_id: Some(d.id),
        message: &message,
        data: serde_json::json!({"dead_letter_id": d.id, "kind": d.kind, "subject_id": d.subject_id,
            "step": d.step, "attempts": d.attempts}),
    };
    raise(tx, &alert, now).await.map(|_| ())
}

/// Posts every raised alert to `MINIPAY_ALERT_WEBHOOK_URL` (a chat channel's incoming
/// webhook, a pager), retried like any delivery.
pub struct AlertWebhook {
    url: String,
    http: reqwest::Client,
}

impl AlertWebhook {
    pub fn new(url: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(WEBHOOK_TIMEOUT_MS))
            .build()?;
        Ok(Self {
            url: url.to_owned(),
            http,
        })
    }
}

#[async_trait]
impl Consumer for AlertWebhook {
    fn name(&self) -> &'static str {
        "alert-webhook"
    }
    fn subject(&self) -> &'static str {
        ALERT_RAISED
    }
    async fn handle(&self, event: &Event) -> Result<(), Failure> {
        let sent = self
            .http
            .post(&self.url)
            .header("Minipay-Event-Id", event.id.to_string())
            .json(&event.data)
            .send()
            .await
            .map_err(|e| Failure::new(format!("posting the alert: {e}")))?;
        if sent.status().is_success() {
            Ok(())
        } else {
            Err(Failure::new(format!("the alert webhook answered {}", sent.status())))
        }
    }
}
