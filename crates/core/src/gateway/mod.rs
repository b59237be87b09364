//! The card-approval gateway's pure rules: the upstream breaker, routing, the network-cancel
//! schedule, the read side's fold of a transaction's events, reconciliation against an
//! upstream's settlement file, and settlement arithmetic.

pub mod breaker;
pub mod cancel;
pub mod projection;
pub mod reconciliation;
pub mod routing;
pub mod settlement;

pub use breaker::{Admission, Breaker, BreakerPolicy, BreakerState, Outcome, Phase, Transition};
pub use cancel::{CancelNext, CancelPolicy};
pub use projection::{ApprovalHistory, ApprovalState, CancelStatus, Recorded, RequestStatus, Step};
pub use reconciliation::{
    Discrepancy, FileError, Finding, Reconciliation, RecordType, SettledRecord, parse_settlement_file, reconcile,
};
pub use routing::{CardCompany, NetworkCancelMode, Route, RoutingError, RoutingTable, Van};
pub use settlement::{FeeRate, FeeRateTooHigh, Settlement, UpstreamDay, UpstreamFee, settle};
