//! Operations across the platform's systems: the alerts raised for operators (listed,
//! acknowledged) and the dead letters of work that failed its last attempt.

use crate::error::{ServiceError, ServiceResult};
use crate::pagination::{decode_cursor, page_of, rows_for};
use crate::views::Page;
use jiff::Timestamp;
use minipay_core::Clock;
use minipay_core::request::PageLimit;
use minipay_store::{Alert, AlertFilter, DeadLetter, DeadLetterFilter, Store};
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;
use uuid::Uuid;

/// The operators' use-cases over one store and clock.
pub struct Operations {
    store: Store,
    clock: Arc<dyn Clock>,
}

/// An alert as operators see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AlertView {
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    /// e.g. `remittance_stuck`, `remittance_needs_attention`.
    pub kind: String,
    /// What makes it unique: an alert is raised once per cause.
    pub cause: String,
    #[schema(value_type = Option<String>, format = Uuid)]
    pub subject_id: Option<Uuid>,
    pub message: String,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub acknowledged_at: Option<Timestamp>,
}

impl From<&Alert> for AlertView {
    fn from(a: &Alert) -> Self {
        Self {
            id: a.id,
            kind: a.kind.clone(),
            cause: a.cause.clone(),
            subject_id: a.subject_id,
            message: a.message.clone(),
            data: a.data.clone(),
            created_at: a.created_at,
            acknowledged_at: a.acknowledged_at,
        }
    }
}

/// A dead letter as API-business.md lists it (plus the consumer and event when an event's
/// delivery died, and how it was resolved).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeadLetterView {
    #[schema(value_type = String, format = Uuid)]
    pub id: Uuid,
    /// The failing point, e.g. `remittance.payout`.
    pub kind: String,
    #[schema(value_type = String, format = Uuid)]
    pub subject_id: Uuid,
    pub step: String,
    pub attempts: i32,
    /// Rounds the retry job has given it.
    pub rounds: i32,
    pub last_error: String,
    pub consumer: Option<String>,
    #[schema(value_type = Option<String>, format = Uuid)]
    pub event_id: Option<Uuid>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub next_attempt_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub resolved_at: Option<Timestamp>,
    /// `recovered`, `needs_attention`, `retried_by_operator`...
    pub resolution: Option<String>,
}

impl From<&DeadLetter> for DeadLetterView {
    fn from(d: &DeadLetter) -> Self {
        Self {
            id: d.id,
            kind: d.kind.clone(),
            subject_id: d.subject_id,
            step: d.step.clone(),
            attempts: d.attempts,
            rounds: d.rounds,
            last_error: d.last_error.clone(),
            consumer: d.consumer.clone(),
            event_id: d.event_id,
            created_at: d.created_at,
            next_attempt_at: d.next_attempt_at,
            resolved_at: d.resolved_at,
            resolution: d.resolution.clone(),
        }
    }
}

impl Operations {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Alerts, newest first, a cursor page at a time.
    pub async fn alerts(
        &self,
        filter: &AlertFilter,
        limit: PageLimit,
        cursor: Option<&str>,
    ) -> ServiceResult<Page<AlertView>> {
        let after = cursor.map(decode_cursor).transpose()?;
        let rows = self.store.read().await?.alerts(filter, after, rows_for(limit)).await?;
        Ok(page_of(rows, limit, |a| (a.created_at, a.id), |a| AlertView::from(&a)))
    }

    /// An operator acknowledges an alert (a second acknowledgement keeps the first time).
    pub async fn acknowledge_alert(&self, id: Uuid) -> ServiceResult<AlertView> {
        let mut tx = self.store.begin().await?;
        let alert = tx
            .acknowledge_alert(id, self.clock.now())
            .await?
            .ok_or(ServiceError::NotFound("alert"))?;
        tx.commit().await?;
        Ok(AlertView::from(&alert))
    }

    /// Dead letters, newest first, a cursor page at a time.
    pub async fn dead_letters(
        &self,
        filter: &DeadLetterFilter,
        limit: PageLimit,
        cursor: Option<&str>,
    ) -> ServiceResult<Page<DeadLetterView>> {
        let after = cursor.map(decode_cursor).transpose()?;
        let rows = self
            .store
            .read()
            .await?
            .dead_letters(filter, after, rows_for(limit))
            .await?;
        Ok(page_of(
            rows,
            limit,
            |d| (d.created_at, d.id),
            |d| DeadLetterView::from(&d),
        ))
    }
}
