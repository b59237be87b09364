//! Each upstream's terms as a routing configuration states them: its fee rate (settlement) and
//! where its settlement file is served (reconciliation). Read from the versions the gateway
//! stores, parsed as the gateway's own `RoutingConfig` (a field it renames fails loudly here).

use jiff::Timestamp;
use minipay_core::gateway::FeeRate;
use minipay_gateway::routing::RoutingConfig;
use minipay_store::{RoutingVersion, Store, StoreError};

/// One upstream's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamTerms {
    pub id: String,
    pub fee_rate_bp: Option<u32>,
    /// `http(s)://…`; `date=YYYY-MM-DD` is added to its query.
    pub settlement_url: Option<String>,
}

impl UpstreamTerms {
    /// The fee rate (none configured: no fee). The gateway validated it against the same bound.
    pub fn fee_rate(&self) -> FeeRate {
        self.fee_rate_bp
            .and_then(|bp| FeeRate::from_bp(bp).ok())
            .unwrap_or(FeeRate::ZERO)
    }
}

/// Every upstream's terms in the configuration in force now (card companies first, then
/// VANs); none before the first configuration.
pub async fn current(store: &Store) -> Result<Vec<UpstreamTerms>, StoreError> {
    terms_of(store.read().await?.current_routing_version().await?)
}

/// Every upstream's terms in the configuration that was in force at `at`.
pub async fn in_force_at(store: &Store, at: Timestamp) -> Result<Vec<UpstreamTerms>, StoreError> {
    terms_of(store.read().await?.routing_version_at(at).await?)
}

fn terms_of(version: Option<RoutingVersion>) -> Result<Vec<UpstreamTerms>, StoreError> {
    let Some(version) = version else {
        return Ok(Vec::new());
    };
    let config: RoutingConfig = serde_json::from_str(&version.config)
        .map_err(|e| StoreError::Corrupt(format!("routing version {}: {e}", version.version)))?;
    let urls = config
        .card_companies
        .iter()
        .map(|c| (&c.id, &c.settlement_url))
        .chain(config.vans.iter().map(|v| (&v.id, &v.settlement_url)));
    Ok(urls
        .map(|(id, url)| UpstreamTerms {
            id: id.clone(),
            fee_rate_bp: config.fee_rate_bp(id),
            settlement_url: url.clone(),
        })
        .collect())
}
