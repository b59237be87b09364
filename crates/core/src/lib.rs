//! minipay's rules in one place: money, ids, business time, ledger postings, charge limits and state machines (pure, no IO).

pub mod bank;
pub mod business;
pub mod charge;
pub mod gateway;
pub mod ids;
pub mod interest;
pub mod ledger;
pub mod money;
pub mod payment;
pub mod remittance;
pub mod request;
pub mod schedule;
pub mod split;
pub mod time;
pub mod transfer;
pub mod user;

pub use ids::*;
pub use money::{Amount, AmountError};
pub use time::{BusinessDate, BusinessMonth, Clock, ManualClock, SystemClock};
