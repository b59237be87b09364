//! The approval read side's tables: each transaction's history (every step once, by its
//! sequence number), the events that conflicted with it, and its final state.

mod approvals;

pub use approvals::{ApprovalView, ApprovalViewFilter, HistoryStep, ReconciliationRecord, SettledRow};
