//! The card-approval gateway's pure rules: the upstream breaker, routing and the network-cancel schedule.

pub mod breaker;
pub mod cancel;
pub mod routing;

pub use breaker::{Admission, Breaker, BreakerPolicy, BreakerState, Outcome, Phase, Transition};
pub use cancel::{CancelNext, CancelPolicy};
pub use routing::{CardCompany, NetworkCancelMode, Route, RoutingError, RoutingTable, Van};
