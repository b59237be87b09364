//! minipay's card approval gateway (API-gateway.md): POS intake over TCP and HTTP, routing by
//! BIN and VAN fee ratio, the shared N-in-T breaker, network cancel (망취소), and the VAN and
//! card-company simulators.

pub mod admin;
mod approve;
mod breakers;
mod cancels;
pub mod events;
mod groups;
pub mod intake;
pub mod keys;
pub mod live;
pub mod pos_client;
pub mod request;
pub mod routing;
pub mod sim;
pub mod upstream;
pub mod upstreams;

use keys::KeySealer;
use live::RoutingCache;
use minipay_core::Clock;
use minipay_core::gateway::{BreakerPolicy, CancelPolicy};
use minipay_events::Events;
use minipay_services::BatchConfig;
use minipay_services::group_commit::GroupStats;
use minipay_store::Store;
use std::sync::Arc;
use std::time::Duration;

/// How the gateway behaves; every field has a safe default.
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// How long an upstream may take to answer before the request is `timeout` (contract: 5 s).
    pub upstream_timeout: Duration,
    /// Seals terminal keys at rest; production refuses the development default.
    pub terminal_key_secret: String,
    /// When an upstream's breaker opens and how it recovers (contract: 10 errors in 60 s, 30 s).
    pub breaker: BreakerPolicy,
    /// How network cancels are resent (contract: 5 sends, 10 s apart).
    pub cancel: CancelPolicy,
    /// TCP connections per upstream (each carries many requests at once).
    pub upstream_connections: usize,
    /// Group commits of the approval path: requests recorded and routed together, answers
    /// recorded together (`max_commands <= 1` records each on its own).
    pub batching: BatchConfig,
}

/// The development default of [`GatewayConfig::terminal_key_secret`] (refused in production).
pub const DEV_TERMINAL_KEY_SECRET: &str = "minipay-development-terminal-key-secret";

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            upstream_timeout: Duration::from_secs(5),
            terminal_key_secret: DEV_TERMINAL_KEY_SECRET.to_owned(),
            breaker: BreakerPolicy::default(),
            cancel: CancelPolicy::default(),
            upstream_connections: 4,
            batching: BatchConfig {
                max_commands: 256,
                // A group goes as soon as a slot is free: requests wait only for a commit
                // already under way, never for a timer.
                max_wait: Duration::ZERO,
                in_flight_max: 2,
            },
        }
    }
}

/// The gateway's use-cases over one store, one clock and the event engine.
pub struct Gateway {
    store: Store,
    clock: Arc<dyn Clock>,
    events: Events,
    config: GatewayConfig,
    keys: KeySealer,
    routing_cache: tokio::sync::Mutex<RoutingCache>,
    /// Where links hand answers that came too late.
    late_answers: tokio::sync::mpsc::UnboundedSender<upstream::LateAnswer>,
    /// Wakes the network-cancel worker.
    cancels_due: Arc<tokio::sync::Notify>,
    /// The approval path's group commits (`None`: off).
    groups: Option<groups::Groups>,
}

impl Gateway {
    /// The gateway with its background work (network cancels, late answers) running.
    pub fn start(store: Store, clock: Arc<dyn Clock>, events: Events, config: GatewayConfig) -> Arc<Self> {
        let (late_answers, late) = tokio::sync::mpsc::unbounded_channel();
        let keys = KeySealer::new(&config.terminal_key_secret);
        let groups = groups::Groups::new(&store, &clock, &events, config.batching, config.breaker);
        let gateway = Arc::new(Self {
            groups,
            store,
            clock,
            events,
            config,
            keys,
            routing_cache: tokio::sync::Mutex::default(),
            late_answers,
            cancels_due: Arc::default(),
        });
        gateway.start_workers(late);
        gateway
    }

    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// What this instance's group commits have done: (requests recorded and routed, answers
    /// recorded); `None` when grouping is off.
    pub fn group_stats(&self) -> Option<(GroupStats, GroupStats)> {
        self.groups.as_ref().map(|g| (g.intake.stats(), g.finish.stats()))
    }
}
