//! An event: what happened, under a subject, with its id (JetStream's message id) and time.

use jiff::Timestamp;
use minipay_store::{NewEvent, Session, StoreError};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// An event as a consumer receives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub id: Uuid,
    /// Relative to the configured prefix, e.g. `remittance.credited`.
    pub subject: String,
    pub created_at: Timestamp,
    pub data: serde_json::Value,
}

impl Event {
    /// The event's data as `T`.
    pub fn data<T: serde::de::DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_value(self.data.clone())
    }
}

/// An event to write to the outbox, with a fresh id (time-ordered), happening `now`.
pub fn new_event(subject: &str, data: serde_json::Value, now: Timestamp) -> NewEvent {
    NewEvent {
        id: Uuid::now_v7(),
        subject: subject.to_owned(),
        payload: data,
        created_at: now,
    }
}

/// Writes an event to the outbox in the caller's transaction, so it exists iff the change it
/// reports commits. Call [`crate::Events::wake`] after the commit to publish it at once.
pub async fn emit(tx: &mut Session, subject: &str, data: &impl Serialize, now: Timestamp) -> Result<Uuid, StoreError> {
    let payload = serde_json::to_value(data).map_err(|e| StoreError::Corrupt(format!("event data: {e}")))?;
    let event = new_event(subject, payload, now);
    let id = event.id;
    tx.insert_events(&[event]).await?;
    Ok(id)
}

/// [`emit`] for many events at once, in order (one statement on PostgreSQL).
pub async fn emit_all(
    tx: &mut Session,
    events: &[(&str, serde_json::Value)],
    now: Timestamp,
) -> Result<(), StoreError> {
    let rows: Vec<NewEvent> = events
        .iter()
        .map(|(subject, data)| new_event(subject, data.clone(), now))
        .collect();
    tx.insert_events(&rows).await
}
