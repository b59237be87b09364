//! The business side's tables: businesses and their credentials, one module per aggregate.

mod businesses;

pub use businesses::{Business, NewBusinessRecord};
