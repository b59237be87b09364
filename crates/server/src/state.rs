//! What every handler can reach: the wallet, the business side, the event engine and
//! operations, the admin token, and the dev-only knobs.

use metrics_exporter_prometheus::PrometheusHandle;
use minipay_bank::BankSimulator;
use minipay_business::Businesses;
use minipay_business::remittance::Remittances;
use minipay_core::ManualClock;
use minipay_events::Events;
use minipay_gateway::Gateway;
use minipay_jobs::JobRunner;
use minipay_payments::Payments;
use minipay_readside::ReadSide;
use minipay_services::Wallet;
use minipay_services::auth::Secret;
use minipay_services::operations::Operations;
use std::sync::Arc;

pub type AppState = Arc<AppContext>;

pub struct AppContext {
    pub wallet: Arc<Wallet>,
    pub businesses: Arc<Businesses>,
    pub remittances: Arc<Remittances>,
    /// Payments from wallet users to businesses, and their refunds.
    pub payments: Arc<Payments>,
    /// The card approval gateway.
    pub gateway: Arc<Gateway>,
    /// The approval read side: final states, histories, settlements.
    pub readside: Arc<ReadSide>,
    /// Alerts and dead letters, for operators.
    pub operations: Arc<Operations>,
    pub events: Events,
    pub jobs: Arc<JobRunner>,
    pub admin_token: Secret,
    /// Present only when the server runs on the manual clock.
    pub manual_clock: Option<Arc<ManualClock>>,
    /// Present only when the server uses the built-in bank simulator.
    pub bank_sim: Option<Arc<BankSimulator>>,
    pub metrics: PrometheusHandle,
    /// The console's session cookie is `Secure` (production runs behind TLS).
    pub secure_cookies: bool,
}
