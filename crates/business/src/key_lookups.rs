//! Looking API keys up in groups: the keys of concurrent requests are matched by one
//! statement while the previous ones run. Nothing is cached — each key is matched by a
//! statement that starts after its request arrived — so a rotated-out key stops working the
//! moment the rotation commits, on every instance, as before.

use minipay_core::BusinessId;
use minipay_services::BatchConfig;
use minipay_services::group_commit::{BatchRunner, GroupCommit, OrAlone, answers_or_all_alone};
use minipay_store::Store;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// A key's hash matched: the business it belongs to, if any (`Ok(None)`: look it up alone).
pub(crate) type KeyMatch = OrAlone<Option<BusinessId>>;

/// Keys matched by one statement at most.
const KEYS_PER_LOOKUP_MAX: usize = 256;
/// Lookups running at once; keys that arrive meanwhile wait for the next one (no timer: a
/// lone request is looked up at once).
const LOOKUPS_IN_FLIGHT_MAX: usize = 2;

/// The group every business request's key joins.
pub(crate) fn key_lookups(store: Store) -> GroupCommit<Vec<u8>, KeyMatch> {
    let config = BatchConfig {
        max_commands: KEYS_PER_LOOKUP_MAX,
        max_wait: Duration::ZERO,
        in_flight_max: LOOKUPS_IN_FLIGHT_MAX,
    };
    GroupCommit::new(config, Arc::new(KeyLookups { store }))
}

struct KeyLookups {
    store: Store,
}

#[async_trait::async_trait]
impl BatchRunner<Vec<u8>, KeyMatch> for KeyLookups {
    async fn run(&self, hashes: Vec<Vec<u8>>) -> Vec<KeyMatch> {
        let found = async { self.store.read().await?.businesses_by_key_hashes(&hashes).await }.await;
        let answers = found.map(|rows| {
            let owners: HashMap<Vec<u8>, BusinessId> = rows.into_iter().collect();
            hashes.iter().map(|h| Ok(Some(owners.get(h).copied()))).collect()
        });
        answers_or_all_alone(answers, hashes.len(), "API-key lookups")
    }
}
