//! Each upstream's terms as the routing configuration in force states them: its fee rate
//! (settlement) and where its settlement file is served (reconciliation). Read from the
//! configuration document the gateway stores, taking only these fields.

use minipay_core::gateway::FeeRate;
use minipay_store::{Store, StoreError};
use serde::Deserialize;

/// One upstream's terms.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct UpstreamTerms {
    pub id: String,
    #[serde(default)]
    pub fee_rate_bp: Option<u32>,
    /// `http(s)://…`; `date=YYYY-MM-DD` is added to its query.
    #[serde(default)]
    pub settlement_url: Option<String>,
}

#[derive(Deserialize)]
struct RoutingDocument {
    #[serde(default)]
    card_companies: Vec<UpstreamTerms>,
    #[serde(default)]
    vans: Vec<UpstreamTerms>,
}

/// Every upstream's terms (card companies first, then VANs); none before the first routing
/// configuration.
pub async fn current(store: &Store) -> Result<Vec<UpstreamTerms>, StoreError> {
    let Some(version) = store.read().await?.current_routing_version().await? else {
        return Ok(Vec::new());
    };
    let doc: RoutingDocument = serde_json::from_str(&version.config)
        .map_err(|e| StoreError::Corrupt(format!("routing version {}: {e}", version.version)))?;
    Ok(doc.card_companies.into_iter().chain(doc.vans).collect())
}

impl UpstreamTerms {
    /// The fee rate (none configured: no fee). The gateway validated it against the same bound.
    pub fn fee_rate(&self) -> FeeRate {
        self.fee_rate_bp
            .and_then(|bp| FeeRate::from_bp(bp).ok())
            .unwrap_or(FeeRate::ZERO)
    }
}
