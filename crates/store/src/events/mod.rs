//! The event tables: the transactional outbox (and the relay's leadership), dead letters,
//! alerts and webhooks to businesses. Deliveries to consumers are keyed jobs on the durable queue (`jobs.rs`).

mod alerts;
mod dead_letters;
mod outbox;
mod webhooks;

pub use alerts::{Alert, AlertFilter, NewAlert};
pub use dead_letters::{DeadLetter, DeadLetterFilter, NewDeadLetter};
pub use outbox::{Leadership, NewEvent, OutboxEvent};
pub use webhooks::{NewWebhook, Webhook, WebhookAttempt, WebhookDelivery, WebhookNext};
