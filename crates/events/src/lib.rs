//! Events (DESIGN.md "Events"): written to the outbox in the transaction of the change they
//! report, relayed in order to NATS JetStream — or, with no event engine configured, handed
//! straight to the in-process consumers — and consumed at least once by idempotent consumers
//! whose deliveries are keyed jobs on the durable queue: retried on the injected clock,
//! dead-lettered with their reason after the last attempt, never dropped. In embedded mode a
//! consumer that only writes to the platform's database may instead be applied inside the
//! dispatcher's own transaction (no deliveries). Webhooks to businesses are recorded with
//! the final statuses they announce (by the transaction that makes a payment's or refund's
//! final, by consumers of a remittance's final-status events) and retried by a job.

pub mod alerts;
mod consumer;
mod dispatch;
mod engine;
mod event;
mod jetstream;
mod replay;
#[cfg(feature = "testing")]
pub mod testing;
pub mod webhooks;

pub use consumer::{Consumer, Failure, InTransaction, RetryPolicy, as_batch_of_one, delivery_kind};
pub use engine::{DispatchShape, EngineStats, Events, EventsConfig};
pub use event::{Event, emit, emit_all, new_event};
pub use replay::{ReplaySource, replay};
