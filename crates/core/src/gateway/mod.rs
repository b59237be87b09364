//! The card-approval gateway's pure rules: the upstream breaker, routing, the network-cancel
//! schedule, and the read side's fold of a transaction's events.

pub mod breaker;
pub mod cancel;
pub mod projection;
pub mod routing;

pub use breaker::{Admission, Breaker, BreakerPolicy, BreakerState, Outcome, Phase, Transition};
pub use cancel::{CancelNext, CancelPolicy};
pub use projection::{ApprovalHistory, ApprovalState, CancelStatus, Recorded, RequestStatus, Step};
pub use routing::{CardCompany, NetworkCancelMode, Route, RoutingError, RoutingTable, Van};
