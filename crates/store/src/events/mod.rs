//! The event tables: the transactional outbox (and the relay's leadership), dead letters and
//! alerts. Deliveries to consumers are keyed jobs on the durable queue (`jobs.rs`).

mod alerts;
mod dead_letters;
mod outbox;

pub use alerts::{Alert, AlertFilter, NewAlert};
pub use dead_letters::{DeadLetter, DeadLetterFilter, NewDeadLetter};
pub use outbox::{Leadership, NewEvent, OutboxEvent};
