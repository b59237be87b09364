//! minipay's business side: businesses (사업자) onboarded by an operator, their API keys and
//! webhook secrets, business authentication, and remittance between businesses. Like the wallet's use-cases, these own their
//! transactions and never call the bank while one is open.

mod businesses;
pub mod credentials;
mod key_lookups;
pub mod remittance;
pub mod views;

pub use businesses::NewBusiness;

use minipay_bank::Bank;
use minipay_core::Clock;
use minipay_services::group_commit::GroupCommit;
use minipay_store::Store;
use std::sync::Arc;

/// The business side's use-cases over one store, one bank and one clock.
pub struct Businesses {
    store: Store,
    bank: Arc<dyn Bank>,
    clock: Arc<dyn Clock>,
    /// Concurrent requests' API keys, matched together.
    keys: GroupCommit<Vec<u8>, key_lookups::KeyMatch>,
}

impl Businesses {
    pub fn new(store: Store, bank: Arc<dyn Bank>, clock: Arc<dyn Clock>) -> Self {
        Self {
            keys: key_lookups::key_lookups(store.clone()),
            store,
            bank,
            clock,
        }
    }
}
