//! The card approval gateway's tables: merchants and terminals, routing versions, breakers,
//! approvals and network cancels, one module per aggregate.

mod approvals;
mod breakers;
mod cancels;
mod groups;
mod merchants;
mod routing;

pub use approvals::{Approval, ApprovalOutcome, NewApproval, UpstreamCounts, UpstreamMinute};
pub use cancels::{NetworkCancel, QueuedCancel};
pub use groups::{AnsweredApproval, ApprovalStep, RoutedApproval};
pub use merchants::{Merchant, NewMerchantRecord, NewTerminalRecord, Terminal};
pub use routing::RoutingVersion;
