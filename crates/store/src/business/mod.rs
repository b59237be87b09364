//! The business side's tables: businesses and their credentials, remittances and their
//! attempts, one module per aggregate.

mod businesses;
mod remittances;

pub use businesses::{Business, NewBusinessRecord};
pub use remittances::{
    NewBusinessRemittance, NewPayout, NewRemittanceAttempt, NewRemittanceRecord, Remittance, RemittanceAttempt,
    RemittanceFailure, RemittanceFilter, StatusChange,
};
