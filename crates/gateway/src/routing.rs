//! The routing configuration as operators write it (upstreams with endpoints and dialects) and
//! its versions.
//!
//! The pure routing rules (issuer by BIN, VAN draw, fallback order) live in
//! `minipay_core::gateway::routing`; this adds what the gateway needs to reach an upstream
//! (its `host:port` and message dialect) and what settlement needs (its fee rate).

use jiff::Timestamp;
use minipay_core::gateway::routing::{CardCompany, NetworkCancelMode, RoutingTable, Van};
use minipay_core::gateway::settlement::FeeRate;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A host name or address is at most this long (DNS names are at most 253 characters).
pub const HOST_LEN_MAX: usize = 253;
/// A VAN's weight is at most this (a ratio; the total must stay far from overflow).
pub const WEIGHT_MAX: u32 = 1_000_000;
/// A fee rate is at most 100% (10,000 basis points): the settlement rule's bound.
pub const FEE_RATE_BP_MAX: u32 = minipay_core::gateway::settlement::BP_PER_WHOLE;
/// The shipped dialect of the terminal's side: no upstream speaks it.
pub const TERMINAL_DIALECT: &str = "pos";

/// A card company (issuer) and how to reach it directly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CardCompanyConfig {
    /// 1–32 characters of `a-z`, `0-9`, `_`, `-`; unique across card companies and VANs.
    #[schema(example = "shinhan")]
    pub id: String,
    #[schema(example = "신한카드")]
    pub name: String,
    /// Digit prefixes (1–8 digits) of the cards it issues; each BIN belongs to one company.
    #[schema(example = json!(["451842", "9410"]))]
    pub bins: Vec<String>,
    /// Whether we hold a direct contract (카드사 직승인): its cards go to it first.
    pub direct: bool,
    /// `host:port` of its approval endpoint.
    #[schema(example = "cards.example.com:9100")]
    pub endpoint: String,
    /// The message format it speaks: `ksnet` or `iso8583`.
    #[schema(example = "iso8583")]
    pub dialect: String,
    /// Its fee, in basis points of the amount (0–10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 10_000)]
    pub fee_rate_bp: Option<u32>,
    /// Where it serves its daily settlement file (`http(s)://…`; `date=YYYY-MM-DD` is added to
    /// the query): the reconciliation job fetches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "http://van.example.com:9300/sim/settlement-file?sim=ksnet")]
    pub settlement_url: Option<String>,
}

/// A VAN and its share of the volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VanConfig {
    /// 1–32 characters of `a-z`, `0-9`, `_`, `-`; unique across card companies and VANs.
    #[schema(example = "ksnet")]
    pub id: String,
    #[schema(example = "KSNET")]
    pub name: String,
    /// Its share of the volume (the fee contracts' ratio); 0 = fallback only. At least one
    /// VAN needs a weight.
    #[schema(example = 70, minimum = 0, maximum = 1_000_000)]
    pub weight: u32,
    /// `host:port` of its approval endpoint.
    #[schema(example = "van.example.com:9200")]
    pub endpoint: String,
    /// The message format it speaks: `ksnet` or `iso8583`.
    #[schema(example = "ksnet")]
    pub dialect: String,
    /// Its fee, in basis points of the amount (0–10,000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 10_000)]
    pub fee_rate_bp: Option<u32>,
    /// Where it serves its daily settlement file (`http(s)://…`; `date=YYYY-MM-DD` is added to
    /// the query): the reconciliation job fetches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "http://van.example.com:9300/sim/settlement-file?sim=ksnet")]
    pub settlement_url: Option<String>,
}

/// Whether timed-out approvals get a network cancel (망취소). For the OpenAPI document only:
/// the value is [`NetworkCancelMode`].
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = NetworkCancel)]
#[allow(dead_code)]
enum NetworkCancelDoc {
    /// Only when more than one upstream is configured.
    Auto,
    On,
    Off,
}

/// The routing configuration (`PUT /v1/admin/routing`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    pub card_companies: Vec<CardCompanyConfig>,
    pub vans: Vec<VanConfig>,
    /// `auto` (the default), `on` or `off`.
    #[serde(default)]
    #[schema(value_type = NetworkCancelDoc)]
    pub network_cancel: NetworkCancelMode,
}

/// Whether an upstream is a VAN or a card company reached directly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum UpstreamKind {
    Van,
    CardCompany,
}

/// How to reach one upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamEndpoint {
    pub id: String,
    pub kind: UpstreamKind,
    /// `host:port`.
    pub endpoint: String,
    pub dialect: String,
}

/// One kept version of the routing configuration.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RoutingVersionView {
    /// 1 for the first configuration, one more for every change.
    #[schema(example = 3)]
    pub version: i64,
    pub config: RoutingConfig,
    /// Who made the change (the admin token has no user: `admin`).
    #[schema(example = "admin")]
    pub changed_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub changed_at: Timestamp,
}

/// Why a routing configuration is refused (shown as `400 validation_failed`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoutingConfigError {
    #[error(transparent)]
    Table(#[from] minipay_core::gateway::RoutingError),
    #[error("the endpoint of {0:?} must be host:port (a port from 1 to 65535)")]
    Endpoint(String),
    #[error("the dialect of {id:?} must be a shipped upstream dialect (ksnet, iso8583), not {dialect:?}")]
    Dialect { id: String, dialect: String },
    #[error("the weight of {0:?} must be at most {WEIGHT_MAX}")]
    Weight(String),
    #[error("the settlement_url of {0:?} must be an http(s) URL")]
    SettlementUrl(String),
    #[error("the fee_rate_bp of {0:?} must be at most {FEE_RATE_BP_MAX}")]
    FeeRate(String),
}

impl RoutingConfig {
    /// The core table's rules, and every upstream reachable in a dialect we speak.
    pub fn validate(&self) -> Result<(), RoutingConfigError> {
        self.table().validate()?;
        if let Some(v) = self.vans.iter().find(|v| v.weight > WEIGHT_MAX) {
            return Err(RoutingConfigError::Weight(v.id.clone()));
        }
        self.upstream_fields().try_for_each(validate_upstream)
    }

    /// The pure routing table (without endpoints and dialects).
    pub fn table(&self) -> RoutingTable {
        RoutingTable {
            card_companies: self.card_companies.iter().map(card_company).collect(),
            vans: self.vans.iter().map(van).collect(),
            network_cancel: self.network_cancel,
        }
    }

    /// How to reach the upstream (or card company) with this id.
    pub fn endpoint_of(&self, upstream_id: &str) -> Option<UpstreamEndpoint> {
        self.upstream_fields()
            .find(|u| u.id == upstream_id)
            .map(|u| u.endpoint())
    }

    /// Every upstream the gateway may send to: the VANs and the direct card companies
    /// (a card company without a direct contract is reached through the VANs).
    pub fn upstreams(&self) -> Vec<UpstreamEndpoint> {
        self.upstream_fields()
            .filter(|u| u.kind == UpstreamKind::Van || u.direct)
            .map(|u| u.endpoint())
            .collect()
    }

    /// An upstream's fee rate in basis points, when configured (for settlement).
    pub fn fee_rate_bp(&self, upstream_id: &str) -> Option<u32> {
        self.upstream_fields()
            .find(|u| u.id == upstream_id)
            .and_then(|u| u.fee_rate_bp)
    }

    /// Card companies first, then VANs, as configured.
    fn upstream_fields(&self) -> impl Iterator<Item = UpstreamFields<'_>> {
        let companies = self.card_companies.iter().map(|c| UpstreamFields {
            id: &c.id,
            kind: UpstreamKind::CardCompany,
            direct: c.direct,
            endpoint: &c.endpoint,
            dialect: &c.dialect,
            fee_rate_bp: c.fee_rate_bp,
            settlement_url: c.settlement_url.as_deref(),
        });
        let vans = self.vans.iter().map(|v| UpstreamFields {
            id: &v.id,
            kind: UpstreamKind::Van,
            direct: false,
            endpoint: &v.endpoint,
            dialect: &v.dialect,
            fee_rate_bp: v.fee_rate_bp,
            settlement_url: v.settlement_url.as_deref(),
        });
        companies.chain(vans)
    }
}

/// The fields card companies and VANs share.
struct UpstreamFields<'a> {
    id: &'a str,
    kind: UpstreamKind,
    direct: bool,
    endpoint: &'a str,
    dialect: &'a str,
    fee_rate_bp: Option<u32>,
    settlement_url: Option<&'a str>,
}

impl UpstreamFields<'_> {
    fn endpoint(&self) -> UpstreamEndpoint {
        UpstreamEndpoint {
            id: self.id.to_owned(),
            kind: self.kind,
            endpoint: self.endpoint.to_owned(),
            dialect: self.dialect.to_owned(),
        }
    }
}

fn card_company(c: &CardCompanyConfig) -> CardCompany {
    CardCompany {
        id: c.id.clone(),
        name: c.name.clone(),
        bins: c.bins.clone(),
        direct: c.direct,
    }
}

fn van(v: &VanConfig) -> Van {
    Van {
        id: v.id.clone(),
        name: v.name.clone(),
        weight: v.weight,
    }
}

fn validate_upstream(u: UpstreamFields<'_>) -> Result<(), RoutingConfigError> {
    if !is_host_port(u.endpoint) {
        return Err(RoutingConfigError::Endpoint(u.id.to_owned()));
    }
    if !is_upstream_dialect(u.dialect) {
        return Err(RoutingConfigError::Dialect {
            id: u.id.to_owned(),
            dialect: u.dialect.to_owned(),
        });
    }
    if u.fee_rate_bp.is_some_and(|bp| FeeRate::from_bp(bp).is_err()) {
        return Err(RoutingConfigError::FeeRate(u.id.to_owned()));
    }
    if u.settlement_url.is_some_and(|url| !is_http_url(url)) {
        return Err(RoutingConfigError::SettlementUrl(u.id.to_owned()));
    }
    Ok(())
}

/// An absolute `http` or `https` URL with a host, at most 2,000 characters.
fn is_http_url(url: &str) -> bool {
    url.len() <= 2_000
        && url::Url::parse(url).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
}

/// A dialect shipped with the wire crate, other than the terminal's own.
fn is_upstream_dialect(name: &str) -> bool {
    name != TERMINAL_DIALECT && minipay_wire::shipped(name).is_some()
}

/// `host:port`: a DNS name or IPv4 address (letters, digits, `.`, `-`), or an IPv6 address in
/// brackets, then a port from 1 to 65535. No scheme, path or spaces.
pub fn is_host_port(endpoint: &str) -> bool {
    let Some((host, port)) = endpoint.rsplit_once(':') else {
        return false;
    };
    let port_ok =
        !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok_and(|p| p > 0);
    port_ok && is_host(host)
}

fn is_host(host: &str) -> bool {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<std::net::Ipv6Addr>().is_ok();
    }
    (1..=HOST_LEN_MAX).contains(&host.len())
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        && !host.starts_with(['.', '-'])
        && !host.ends_with(['.', '-'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RoutingConfig {
        serde_json::from_value(serde_json::json!({
            "card_companies": [
                {"id": "shinhan", "name": "신한카드", "bins": ["451842"], "direct": true,
                 "endpoint": "127.0.0.1:9100", "dialect": "iso8583", "fee_rate_bp": 120},
                {"id": "kb", "name": "KB국민카드", "bins": ["9410"], "direct": false,
                 "endpoint": "kb.example.com:9101", "dialect": "iso8583"}
            ],
            "vans": [{"id": "ksnet", "name": "KSNET", "weight": 7, "endpoint": "[::1]:9200", "dialect": "ksnet"}],
            "network_cancel": "on"
        }))
        .unwrap()
    }

    #[test]
    fn a_good_config_validates_and_maps_to_the_core_table() {
        let c = config();
        c.validate().unwrap();
        let table = c.table();
        assert_eq!(table.issuer_of("4518420000000000").unwrap().id, "shinhan");
        assert_eq!(table.network_cancel, NetworkCancelMode::On);
        let ids: Vec<String> = c.upstreams().into_iter().map(|u| u.id).collect();
        assert_eq!(ids, ["shinhan", "ksnet"], "kb has no direct contract");
        let kb = c.endpoint_of("kb").unwrap();
        assert_eq!(
            (kb.kind, kb.endpoint.as_str()),
            (UpstreamKind::CardCompany, "kb.example.com:9101")
        );
        assert_eq!(c.endpoint_of("ksnet").unwrap().kind, UpstreamKind::Van);
        assert!(c.endpoint_of("nobody").is_none());
        assert_eq!((c.fee_rate_bp("shinhan"), c.fee_rate_bp("kb")), (Some(120), None));
    }

    #[test]
    fn the_config_round_trips_through_json() {
        let c = config();
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(serde_json::from_str::<RoutingConfig>(&text).unwrap(), c);
        assert!(!text.contains("null"), "{text}");
    }

    #[test]
    fn endpoints_must_be_host_and_port() {
        for good in ["a:1", "van.example.com:65535", "10.0.0.1:9000", "[::1]:9000"] {
            assert!(is_host_port(good), "{good}");
        }
        for bad in [
            "",
            "host",
            ":9000",
            "host:",
            "host:0",
            "host:65536",
            "host:+80",
            "http://host:80",
            "host:80/path",
            "ho st:80",
            "-host:80",
            "[zz]:80",
            "::1:80",
        ] {
            assert!(!is_host_port(bad), "{bad}");
        }
    }

    #[test]
    fn bad_upstream_fields_are_refused() {
        let mut c = config();
        c.vans[0].dialect = "pos".into();
        assert!(matches!(c.validate(), Err(RoutingConfigError::Dialect { .. })));
        let mut c = config();
        c.card_companies[1].endpoint = "kb.example.com".into();
        assert_eq!(c.validate(), Err(RoutingConfigError::Endpoint("kb".into())));
        let mut c = config();
        c.vans[0].fee_rate_bp = Some(FEE_RATE_BP_MAX + 1);
        assert_eq!(c.validate(), Err(RoutingConfigError::FeeRate("ksnet".into())));
        let mut c = config();
        c.vans.clear();
        assert!(matches!(c.validate(), Err(RoutingConfigError::Table(_))));
    }
}
