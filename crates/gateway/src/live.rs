//! The routing in force, as the intake uses it: the configuration's latest version with a link
//! per upstream, reloaded when a newer version is committed (by this instance at once, by
//! another within `ROUTING_RELOAD_INTERVAL`).

use crate::Gateway;
use crate::routing::RoutingConfig;
use crate::upstream::{LateAnswer, Link};
use minipay_core::gateway::routing::RoutingTable;
use minipay_services::ServiceResult;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How long an instance uses the routing it loaded before it looks for a newer version.
pub const ROUTING_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// One version of the routing with its links.
pub struct LiveRouting {
    pub version: i64,
    pub config: RoutingConfig,
    pub table: RoutingTable,
    pub links: HashMap<String, Arc<Link>>,
}

impl LiveRouting {
    fn new(version: i64, config: RoutingConfig, connections: usize, late: &mpsc::UnboundedSender<LateAnswer>) -> Self {
        let links = config
            .upstreams()
            .into_iter()
            .filter_map(|u| {
                let Some(dialect) = minipay_wire::shipped(&u.dialect) else {
                    tracing::error!(upstream = %u.id, dialect = %u.dialect, "an upstream's dialect is not shipped");
                    return None;
                };
                let link = Link::new(&u.id, &u.endpoint, Arc::new(dialect), connections, late.clone());
                Some((u.id, Arc::new(link)))
            })
            .collect();
        Self {
            version,
            table: config.table(),
            config,
            links,
        }
    }

    /// Whether a timed-out request gets a network cancel under this configuration.
    pub fn network_cancel(&self) -> bool {
        self.table.network_cancel_enabled()
    }
}

/// The cached routing and when it was loaded.
#[derive(Default)]
pub(crate) struct RoutingCache {
    current: Option<(Arc<LiveRouting>, Instant)>,
}

impl Gateway {
    /// The routing in force; `None` when no routing was ever configured.
    pub async fn live_routing(&self) -> ServiceResult<Option<Arc<LiveRouting>>> {
        let mut cache = self.routing_cache.lock().await;
        if let Some((live, loaded)) = &cache.current
            && loaded.elapsed() < ROUTING_RELOAD_INTERVAL
        {
            return Ok(Some(live.clone()));
        }
        let Some(view) = self.routing().await? else {
            return Ok(None);
        };
        let live = match &cache.current {
            Some((live, _)) if live.version == view.version => live.clone(),
            _ => Arc::new(LiveRouting::new(
                view.version,
                view.config,
                self.config.upstream_connections,
                &self.late_answers,
            )),
        };
        cache.current = Some((live.clone(), Instant::now()));
        Ok(Some(live))
    }

    /// Forgets the cached routing (after this instance changed it).
    pub(crate) async fn routing_changed(&self) {
        self.routing_cache.lock().await.current = None;
    }
}
