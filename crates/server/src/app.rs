//! Building the application: store, bank, clock, wallet, businesses, router and background work.

use crate::config::{ClockKind, Settings};
use crate::error::error_response;
use crate::openapi::{ApiDoc, SharedResponses};
use crate::routes::{
    accounts, admin, bank_accounts, businesses, gateway_admin, health, operations, payments, pos, readside,
    remittances, settlements, transfers, users,
};
use crate::state::{AppContext, AppState};
use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use minipay_bank::{Bank, BankPolicy, BankSimulator, HttpBank, ResilientBank};
use minipay_business::Businesses;
use minipay_business::remittance::{self, RemitConfig, Remittances};
use minipay_core::{Clock, ManualClock, SystemClock};
use minipay_events::alerts::AlertWebhook;
use minipay_events::webhooks::{self, WebhookConfig, Webhooks};
use minipay_events::{Consumer, Events, EventsConfig, ReplaySource};
use minipay_gateway::{Gateway, GatewayConfig};
use minipay_jobs::JobRunner;
use minipay_payments::{Payments, PaymentsConfig};
use minipay_readside::{ReadSide, RebuildReport};
use minipay_services::auth::Secret;
use minipay_services::jobs::job_runner;
use minipay_services::operations::Operations;
use minipay_services::{BatchConfig, ErrorCode, RecoveryConfig, Wallet, WalletConfig, history::HistoryConfig};
use minipay_store::{Store, StoreOptions};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

/// Request bodies larger than this are refused with 413.
pub const REQUEST_BODY_BYTES_MAX: usize = 64 * 1024;

/// The wallet, the business side and the jobs, wired from settings: what `serve` runs behind
/// HTTP, and what `minipay jobs run` runs without it.
pub struct Core {
    pub wallet: Arc<Wallet>,
    pub businesses: Arc<Businesses>,
    pub remittances: Arc<Remittances>,
    pub payments: Arc<Payments>,
    pub gateway: Arc<Gateway>,
    /// The approval read side (its projection is one of the consumers).
    pub readside: Arc<ReadSide>,
    pub jobs: Arc<JobRunner>,
    /// The event engine; started by [`Core::start_events`] (`serve` does, `jobs run` does not).
    pub events: Events,
    consumers: Vec<Arc<dyn Consumer>>,
    pub manual_clock: Option<Arc<ManualClock>>,
    pub bank_sim: Option<Arc<BankSimulator>>,
}

impl Core {
    /// Connects and migrates the database and wires the wallet and the business side (one
    /// store, bank and clock between them), and jobs.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        Self::build_with_bank(settings, None).await
    }

    /// [`Core::build`], on `bank_sim` instead of a new simulator when no bank URL is set: two
    /// instances on one database in one process (tests) must see one bank, as real ones would.
    pub async fn build_with_bank(settings: &Settings, bank_sim: Option<Arc<BankSimulator>>) -> anyhow::Result<Self> {
        settings.validate()?;
        let store = Store::connect(
            &settings.database_url,
            &StoreOptions {
                pg_connections_max: settings.db_connections_max,
                pg_connections_min: settings.db_connections_min,
                ..StoreOptions::default()
            },
        )
        .await
        .with_context(|| format!("connecting to {}", redact_url(&settings.database_url)))?;
        store.migrate().await.context("running migrations")?;

        let (clock, manual_clock): (Arc<dyn Clock>, _) = match settings.clock {
            ClockKind::System => (Arc::new(SystemClock), None),
            ClockKind::Manual => {
                let start = settings.clock_start.unwrap_or_else(|| SystemClock.now());
                let manual = Arc::new(ManualClock::new(start));
                (manual.clone(), Some(manual))
            }
        };
        let (raw_bank, bank_sim): (Arc<dyn Bank>, _) = match &settings.bank_url {
            Some(url) => (Arc::new(HttpBank::new(url).context("bank URL")?), None),
            None => {
                let sim = bank_sim.unwrap_or_else(|| Arc::new(BankSimulator::new()));
                (sim.clone(), Some(sim))
            }
        };
        let bank: Arc<dyn Bank> = Arc::new(ResilientBank::new(raw_bank, BankPolicy::default()));
        let businesses = Arc::new(Businesses::new(store.clone(), bank.clone(), clock.clone()));
        let events = Events::new(store.clone(), clock.clone(), events_config(settings));
        let remittances = Arc::new(Remittances::new(
            store.clone(),
            bank.clone(),
            clock.clone(),
            events.clone(),
            businesses.clone(),
            remit_config(settings),
        ));
        let webhooks = Arc::new(Webhooks::new(store.clone(), clock.clone(), WebhookConfig::default())?);
        let payments = Arc::new(Payments::new(
            store.clone(),
            bank.clone(),
            clock.clone(),
            events.clone(),
            webhooks.clone(),
            payments_config(settings),
        ));
        let gateway = Gateway::start(store.clone(), clock.clone(), events.clone(), gateway_config(settings));
        let readside = Arc::new(ReadSide::new(store.clone(), clock.clone(), events_config(settings)));
        let mut consumers = remittance::consumers(&remittances);
        consumers.extend(remittance::webhook_consumers(&remittances, &webhooks));
        consumers.extend(minipay_payments::consumers(&payments));
        consumers.push(Arc::new(readside.projection()));
        if let Some(url) = &settings.alert_webhook_url {
            consumers.push(Arc::new(AlertWebhook::new(url).context("the alert webhook URL")?));
        }
        let jwt_secret = settings.jwt_secret.clone().unwrap_or_else(Secret::generate);
        let config = WalletConfig {
            jwt_secret,
            recovery: RecoveryConfig::default(),
            history: HistoryConfig {
                archive_dir: settings.history_archive_dir.clone(),
                retire_slice_max: settings.history_retire_slice_max,
            },
            batching: batching(settings),
        };
        let wallet = Arc::new(Wallet::new(store, bank, clock, config));
        // The current month's history partitions must exist before the first write lands in
        // the DEFAULT partition; the hourly job keeps them ahead from here on.
        if let Err(e) = wallet.make_history_partitions(wallet.clock().now()).await {
            tracing::warn!(error = %e, "could not make this month's history partitions yet");
        }
        let system_jobs = remittance::jobs(&remittances)
            .into_iter()
            .chain(minipay_payments::jobs(&payments))
            .chain([Arc::new(webhooks::RetryJob(webhooks.clone())) as Arc<dyn minipay_jobs::ScheduledJob>])
            .chain(minipay_readside::jobs(&readside));
        let jobs = Arc::new(job_runner(&wallet, system_jobs.collect()));
        Ok(Self {
            wallet,
            businesses,
            remittances,
            payments,
            gateway,
            readside,
            jobs,
            events,
            consumers,
            manual_clock,
            bank_sim,
        })
    }
}

impl Core {
    /// Starts relaying events and consuming them (JetStream: connects, and creates the stream
    /// and the consumers if missing).
    pub async fn start_events(&mut self) -> anyhow::Result<()> {
        let consumers = std::mem::take(&mut self.consumers);
        self.events.start(consumers).await
    }
}

/// Forgets the approval read side and projects every approval event again from zero
/// (`minipay readside rebuild`): from the outbox, or from the JetStream stream.
pub async fn rebuild_read_side(settings: &Settings, source: ReplaySource) -> anyhow::Result<RebuildReport> {
    settings.validate()?;
    let store = Store::connect(&settings.database_url, &StoreOptions::default())
        .await
        .with_context(|| format!("connecting to {}", redact_url(&settings.database_url)))?;
    store.migrate().await.context("running migrations")?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    ReadSide::new(store, clock, events_config(settings))
        .rebuild(source)
        .await
}

fn events_config(settings: &Settings) -> EventsConfig {
    EventsConfig {
        nats_url: settings.nats_url.clone(),
        stream: settings.nats_stream.clone(),
        subject_prefix: settings.nats_subject_prefix.clone(),
        poll_interval: Duration::from_millis(settings.events_poll_ms.max(1)),
        yield_max: Duration::from_millis(settings.events_yield_max_ms),
        ack_wait: Duration::from_millis(settings.nats_ack_wait_ms.max(1)),
        ..EventsConfig::default()
    }
}

/// How concurrent requests are grouped into one transaction: the wallet's transfers and
/// charge postings, and the remittances businesses request.
fn batching(settings: &Settings) -> BatchConfig {
    BatchConfig {
        max_commands: settings.transfer_batch_max as usize,
        max_wait: std::time::Duration::from_micros(settings.transfer_batch_wait_us),
        in_flight_max: settings.transfer_batches_in_flight as usize,
    }
}

fn gateway_config(settings: &Settings) -> GatewayConfig {
    let defaults = GatewayConfig::default();
    GatewayConfig {
        terminal_key_secret: settings
            .terminal_key_secret
            .as_ref()
            .map_or(defaults.terminal_key_secret.clone(), |s| s.expose().to_owned()),
        upstream_timeout: Duration::from_millis(settings.upstream_timeout_ms.max(1)),
        batching: BatchConfig {
            max_commands: settings.approval_batch_max as usize,
            max_wait: Duration::from_micros(settings.approval_batch_wait_us),
            in_flight_max: settings.approval_batches_in_flight as usize,
        },
        ..defaults
    }
}

fn remit_config(settings: &Settings) -> RemitConfig {
    RemitConfig {
        accept_batching: batching(settings),
        attempts_max: i32::try_from(settings.remit_attempts.max(1)).unwrap_or(i32::MAX),
        retry_delay: jiff::SignedDuration::from_millis(
            i64::try_from(settings.remit_retry_delay_ms).unwrap_or(i64::MAX),
        ),
        ..RemitConfig::default()
    }
}

/// Payments retry like the business side's remittance steps (the same two settings).
fn payments_config(settings: &Settings) -> PaymentsConfig {
    let remit = remit_config(settings);
    PaymentsConfig {
        attempts_max: remit.attempts_max,
        retry_delay: remit.retry_delay,
        accept_batching: remit.accept_batching,
        ..PaymentsConfig::default()
    }
}

/// A built server: bound to its port, ready to run.
pub struct Application {
    listener: TcpListener,
    router: Router,
    state: AppState,
    /// How often the scheduler looks for due job slots; `None` when it is off.
    scheduler_tick: Option<Duration>,
    /// The admin token in force (generated in dev mode when none was configured).
    pub admin_token: Secret,
    /// POS terminals' TCP intake, when `pos_listen` is set.
    pos_listener: Option<TcpListener>,
}

impl Application {
    /// Builds the core, the router, and binds the listener.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_bank(settings, None).await
    }

    /// [`Application::build`] sharing another instance's built-in bank simulator (see
    /// [`Core::build_with_bank`]).
    pub async fn build_with_bank(settings: Settings, bank_sim: Option<Arc<BankSimulator>>) -> anyhow::Result<Self> {
        let mut core = Core::build_with_bank(&settings, bank_sim).await?;
        core.start_events().await.context("starting the event engine")?;
        let admin_token = settings.admin_token.clone().unwrap_or_else(|| {
            let token = Secret::generate();
            tracing::warn!(
                admin_token = token.expose(),
                "no MINIPAY_ADMIN_TOKEN set; generated one for this run"
            );
            token
        });
        let operations = Arc::new(Operations::new(
            core.wallet.store().clone(),
            core.wallet.clock().clone(),
        ));
        let state = Arc::new(AppContext {
            wallet: core.wallet,
            businesses: core.businesses,
            remittances: core.remittances,
            payments: core.payments,
            gateway: core.gateway,
            readside: core.readside,
            operations,
            events: core.events,
            jobs: core.jobs,
            admin_token: admin_token.clone(),
            manual_clock: core.manual_clock,
            bank_sim: core.bank_sim,
            metrics: prometheus(),
            secure_cookies: settings.mode == crate::config::RunMode::Production,
        });
        let router = router(state.clone());
        let listener = TcpListener::bind(&settings.listen)
            .await
            .with_context(|| format!("binding {}", settings.listen))?;
        let pos_listener = match &settings.pos_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding the POS listener {addr}"))?,
            ),
            None => None,
        };
        let scheduler_tick = settings
            .scheduler
            .then(|| Duration::from_millis(settings.scheduler_tick_ms.max(10)));
        Ok(Self {
            listener,
            router,
            state,
            scheduler_tick,
            admin_token,
            pos_listener,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Where POS terminals connect over TCP, when the intake is on.
    pub fn pos_addr(&self) -> Option<SocketAddr> {
        self.pos_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves HTTP until `shutdown` resolves, with the scheduler running beside it (its first
    /// pass, at start, catches up the most recent missed slot of each job).
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let scheduler = self.scheduler_tick.map(|tick| {
            let jobs = self.state.jobs.clone();
            let mut stop = stop_rx.clone();
            tokio::spawn(async move {
                jobs.run_scheduler(tick, async move {
                    let _ = stop.wait_for(|stopped| *stopped).await;
                })
                .await
            })
        });
        let pos = self
            .pos_listener
            .map(|listener| tokio::spawn(self.state.gateway.clone().serve_pos(listener)));
        let served = axum::serve(
            self.listener,
            self.router.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await;
        let _ = stop_tx.send(true);
        if let Some(pos) = pos {
            pos.abort();
        }
        if let Some(s) = scheduler {
            let _ = s.await;
        }
        self.state.events.shutdown().await;
        served.context("serving HTTP")
    }
}

/// The routes, documented and wired to `state`.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = documented_routes();
    api.merge(SwaggerUi::new("/docs").url("/openapi.json", openapi))
        .merge(crate::console::router())
        .fallback(|| async { error_response(ErrorCode::NotFound, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            error_response(ErrorCode::MethodNotAllowed, "this endpoint does not take that method")
        })
        .layer(DefaultBodyLimit::max(REQUEST_BODY_BYTES_MAX))
        .layer(middleware::from_fn(record_metrics))
        .layer(TraceLayer::new_for_http())
        .layer(CatchPanicLayer::custom(|_| {
            error_response(ErrorCode::Internal, "internal error")
        }))
        .with_state(state)
}

/// The API's routes and the OpenAPI document that describes them.
pub(crate) fn documented_routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (routes, mut openapi) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(users::sign_up))
        .routes(routes!(users::token))
        .routes(routes!(users::me, users::update_me))
        .routes(routes!(users::lookup))
        .routes(routes!(bank_accounts::register, bank_accounts::list))
        .routes(routes!(bank_accounts::balance))
        .routes(routes!(accounts::list, accounts::open))
        .routes(routes!(accounts::get))
        .routes(routes!(accounts::charge))
        .routes(routes!(accounts::deposit))
        .routes(routes!(accounts::charge_limit))
        .routes(routes!(accounts::history))
        .routes(routes!(accounts::statement))
        .routes(routes!(transfers::create, transfers::list))
        .routes(routes!(transfers::get))
        .routes(routes!(transfers::accept))
        .routes(routes!(transfers::cancel))
        .routes(routes!(settlements::create, settlements::list))
        .routes(routes!(settlements::get))
        .routes(routes!(settlements::pay))
        .routes(routes!(settlements::notifications))
        .routes(routes!(businesses::onboard, businesses::list))
        .routes(routes!(businesses::get))
        .routes(routes!(businesses::rotate_key))
        .routes(routes!(businesses::me))
        .routes(routes!(businesses::webhook_deliveries))
        .routes(routes!(gateway_admin::onboard_merchant, gateway_admin::list_merchants))
        .routes(routes!(gateway_admin::get_merchant))
        .routes(routes!(gateway_admin::issue_terminal))
        .routes(routes!(gateway_admin::disable_terminal))
        .routes(routes!(gateway_admin::get_routing, gateway_admin::put_routing))
        .routes(routes!(gateway_admin::routing_versions))
        .routes(routes!(gateway_admin::upstreams))
        .routes(routes!(gateway_admin::approval_groups))
        .routes(routes!(pos::approve))
        .routes(routes!(readside::approvals))
        .routes(routes!(readside::approval))
        .routes(routes!(readside::settlements))
        .routes(routes!(readside::reconcile, readside::reconciliations))
        .routes(routes!(remittances::create, remittances::list))
        .routes(routes!(remittances::get))
        .routes(routes!(remittances::admin_list))
        .routes(routes!(remittances::admin_get))
        .routes(routes!(remittances::admin_retry))
        .routes(routes!(remittances::payout))
        .routes(routes!(payments::create, payments::list))
        .routes(routes!(payments::get))
        .routes(routes!(payments::refund, payments::refunds))
        .routes(routes!(payments::get_refund))
        .routes(routes!(payments::balance))
        .routes(routes!(payments::mine))
        .routes(routes!(payments::admin_list))
        .routes(routes!(payments::accept_groups))
        .routes(routes!(payments::admin_get))
        .routes(routes!(operations::alerts))
        .routes(routes!(operations::acknowledge))
        .routes(routes!(operations::dead_letters))
        .routes(routes!(operations::events))
        .routes(routes!(admin::job_runs))
        .routes(routes!(admin::run_job))
        .routes(routes!(admin::get_clock, admin::set_clock))
        .routes(routes!(admin::advance_clock))
        .routes(routes!(admin::set_bank_sim, admin::get_bank_sim))
        .routes(routes!(admin::set_bank_sim_account, admin::get_bank_sim_account))
        .routes(routes!(admin::audit))
        .routes(routes!(admin::transfer_batches))
        .routes(routes!(health::live))
        .routes(routes!(health::ready))
        .routes(routes!(health::metrics))
        .split_for_parts();
    SharedResponses.modify(&mut openapi);
    (routes, openapi)
}

/// Counts requests and their latency by route template and status.
async fn record_metrics(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().to_string();
    let started = Instant::now();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("minipay_http_requests_total", &labels).increment(1);
    metrics::histogram!("minipay_http_request_duration_seconds", &labels).record(started.elapsed().as_secs_f64());
    res
}

/// The process-wide Prometheus recorder (installed once, shared by every app in the process).
fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed; then ours simply stays empty.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// The URL without its password, for logs and errors.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}
