//! The test harness: a real server per test (random port, fresh SQLite file or PostgreSQL
//! database), an HTTP client with one method per endpoint, and the invariant audit.

use minipay_bank::BankSimulator;
use minipay_server::{Application, ClockKind, Settings};
use minipay_services::auth::Secret;
use reqwest::Method;
use serde_json::{Value, json};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const ADMIN_TOKEN: &str = "test-admin-token-that-is-long-enough-0123";
/// Tests start at noon in Seoul, far from the midnight limit reset.
pub const T0: &str = "2026-11-21T03:00:00Z";
/// A bank account number whose pulls succeed (the simulator's default behaviour). A bank
/// account belongs to one user: use it once per test, or `fresh_bank_account_number()`.
pub const GOOD_BANK_ACCOUNT: &str = "1002003001";

static BANK_ACCOUNT_SEQ: AtomicU64 = AtomicU64::new(0);

/// A bank account number no other test user has linked, with the simulator's default
/// behaviour (it ends in 1, never in one of the test suffixes 0002–0009).
pub fn fresh_bank_account_number() -> String {
    format!("9{:08}1", BANK_ACCOUNT_SEQ.fetch_add(1, Ordering::Relaxed))
}

static REGISTRATION_SEQ: AtomicU64 = AtomicU64::new(0);

/// A valid business registration number (dashed) that no other test business in this process
/// has: nine digits from a counter and the check digit core computes.
pub fn fresh_registration_number() -> String {
    let prefix = format!(
        "{:09}",
        200_000_000 + REGISTRATION_SEQ.fetch_add(1, Ordering::Relaxed) % 100_000_000
    );
    minipay_core::business::RegistrationNumber::with_check_digit(&prefix)
        .expect("nine digits")
        .to_string()
}

/// The database engines every storage test runs on.
pub use minipay_store::BackendKind as Backend;
/// A database made for one test and removed after it.
pub use minipay_store::testing::TestDb;

fn init_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if std::env::var_os("TEST_LOG").is_some() {
            tracing_subscriber::fmt()
                .with_env_filter("info")
                .with_test_writer()
                .init();
        }
    });
}

/// A running server and a client for it. Cheap to clone (for concurrent requests).
#[derive(Clone)]
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    pub backend: Backend,
    /// Where POS terminals connect over TCP, when the server was started with `pos_listen`.
    pub pos_addr: Option<String>,
    running: Arc<Running>,
}

struct Running {
    db: TestDb,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    server: Mutex<Option<Server>>,
    bank: TestBank,
    /// What an in-process server was started with (for a twin); `None` for a process.
    settings: Option<Settings>,
}

/// The bank a test server talks to: its in-process simulator (shared with any second instance
/// on the same database), or a `minipay sim bank` process that outlives server restarts.
enum TestBank {
    InProcess(Option<Arc<BankSimulator>>),
    /// The simulator's URL, and the process when this app started it (and stops it).
    Process(String, Mutex<Option<Box<tokio::process::Child>>>),
}

/// The server under test: in this process, or the real `minipay` binary as a child process.
enum Server {
    InProcess(JoinHandle<anyhow::Result<()>>),
    Process(tokio::process::Child),
}

/// The settings every test server starts with: manual clock, no background recovery timer
/// (tests run the recovery job by hand).
pub fn test_settings(db_url: &str) -> Settings {
    Settings {
        listen: "127.0.0.1:0".into(),
        database_url: db_url.into(),
        admin_token: Some(Secret::new(ADMIN_TOKEN)),
        jwt_secret: Some(Secret::new("test-jwt-secret-that-is-long-enough-0123")),
        clock: ClockKind::Manual,
        clock_start: Some(T0.parse().expect("T0 is a timestamp")),
        scheduler: false,
        events_poll_ms: 20,
        ..Settings::default()
    }
}

pub async fn spawn_app_with(backend: Backend, configure: impl FnOnce(&mut Settings)) -> Option<TestApp> {
    init_logs();
    let db = TestDb::create(backend).await?;
    let mut settings = test_settings(&db.url);
    configure(&mut settings);
    Some(start(backend, db, settings).await)
}

/// Starts a server on an existing database (e.g. a second instance on the same one).
pub async fn start(backend: Backend, db: TestDb, settings: Settings) -> TestApp {
    start_on_bank(backend, db, settings, None).await
}

/// A second server on `first`'s database and bank (as two real instances would share both).
pub async fn start_beside(first: &TestApp, settings: Settings) -> TestApp {
    let bank = match &first.running.bank {
        TestBank::InProcess(sim) => sim.clone(),
        TestBank::Process(..) => panic!("start_beside needs an in-process first instance"),
    };
    start_on_bank(first.backend, TestDb::borrow(first.db_url()), settings, bank).await
}

/// A second in-process server with `first`'s settings (database, events, knobs) on its bank:
/// two instances of one deployment.
pub async fn start_twin(first: &TestApp) -> TestApp {
    let settings = first
        .running
        .settings
        .clone()
        .expect("start_twin needs an in-process first instance");
    start_beside(first, settings).await
}

async fn start_on_bank(backend: Backend, db: TestDb, settings: Settings, bank: Option<Arc<BankSimulator>>) -> TestApp {
    let started_with = settings.clone();
    let app = Application::build_with_bank(settings, bank)
        .await
        .expect("application builds");
    let bank = TestBank::InProcess(app.state().bank_sim.clone());
    let base = format!("http://{}", app.local_addr());
    let pos_addr = app.pos_addr().map(|a| a.to_string());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .unwrap();
    let app = TestApp {
        base,
        http,
        backend,
        pos_addr,
        running: Arc::new(Running {
            db,
            stop: Mutex::new(Some(stop)),
            server: Mutex::new(Some(Server::InProcess(server))),
            bank,
            settings: Some(started_with),
        }),
    };
    // The manual clock starts where the settings say (`test_settings`: T0); it is not reset
    // here, so an instance started later in a test keeps its own start time.
    app
}

/// The path of the `minipay` binary cargo built for these tests.
pub fn minipay_bin() -> &'static str {
    env!("CARGO_BIN_EXE_minipay")
}

/// Runs `minipay ARGS` as a child process and waits for its `listening on http://...` line.
pub async fn spawn_process(args: &[&str], env: &[(&str, &str)]) -> (tokio::process::Child, String) {
    spawn_process_logging(args, env, std::process::Stdio::null()).await
}

/// [`spawn_process`] with the child's log (its stderr) sent to `log`.
pub async fn spawn_process_logging(
    args: &[&str],
    env: &[(&str, &str)],
    log: std::process::Stdio,
) -> (tokio::process::Child, String) {
    use tokio::io::AsyncBufReadExt;
    let mut cmd = tokio::process::Command::new(minipay_bin());
    cmd.args(args)
        .kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .stderr(log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("minipay starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let wait = async {
        while let Some(line) = lines.next_line().await.expect("read stdout") {
            if let Some(addr) = line.split("listening on ").nth(1) {
                return addr.trim().to_owned();
            }
        }
        panic!("minipay exited before listening");
    };
    let base = tokio::time::timeout(std::time::Duration::from_secs(60), wait)
        .await
        .expect("listening within 60 s");
    (child, base)
}

/// `minipay serve` as a child process on a fresh database of `backend`, on the manual clock,
/// with `env` added to its environment. `None` when PostgreSQL is skipped.
pub async fn spawn_serve_process(backend: Backend, env: &[(&str, &str)]) -> Option<TestApp> {
    let db = TestDb::create(backend).await?;
    Some(serve_process_on(backend, db, env).await)
}

/// `minipay serve` as a child process on `db` (see [`spawn_serve_process`]).
async fn serve_process_on(backend: Backend, db: TestDb, env: &[(&str, &str)]) -> TestApp {
    // The bank must outlive the server (a restart after a crash finds it as it was), so a
    // server process gets a simulator process of its own unless the test chose a bank.
    let bank = match env.iter().find(|(k, _)| *k == "MINIPAY_BANK_URL") {
        Some((_, url)) => TestBank::Process((*url).to_owned(), Mutex::new(None)),
        None => {
            let (sim, url) = spawn_process(&["sim", "bank", "--listen", "127.0.0.1:0"], &[]).await;
            TestBank::Process(url, Mutex::new(Some(Box::new(sim))))
        }
    };
    serve_process_with(backend, db, env, bank).await
}

async fn serve_process_with(backend: Backend, db: TestDb, env: &[(&str, &str)], bank: TestBank) -> TestApp {
    let TestBank::Process(bank_url, _) = &bank else {
        unreachable!("a server process talks to a bank process")
    };
    let mut all = vec![
        ("MINIPAY_LISTEN", "127.0.0.1:0"),
        ("MINIPAY_DATABASE_URL", db.url.as_str()),
        ("MINIPAY_ADMIN_TOKEN", ADMIN_TOKEN),
        ("MINIPAY_JWT_SECRET", "test-jwt-secret-that-is-long-enough-0123"),
        ("MINIPAY_CLOCK", "manual"),
        ("MINIPAY_CLOCK_START", T0),
        ("MINIPAY_SCHEDULER", "false"),
        ("MINIPAY_EVENTS_POLL_MS", "20"),
        ("MINIPAY_LOG", "warn"),
        ("MINIPAY_BANK_URL", bank_url.as_str()),
    ];
    all.extend(env.iter().filter(|(k, _)| *k != "MINIPAY_BANK_URL"));
    let (child, base) = spawn_process(&["serve"], &all).await;
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .unwrap();
    let server = Mutex::new(Some(Server::Process(child)));
    let app = TestApp {
        base,
        http,
        backend,
        pos_addr: None,
        running: Arc::new(Running {
            db,
            stop: Mutex::new(None),
            server,
            bank,
            settings: None,
        }),
    };
    app.set_clock(T0).await;
    app
}

/// Runs a scenario on a fresh server, then audits the ledger and tears everything down.
pub async fn run<F, Fut>(backend: Backend, scenario: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: Future<Output = ()>,
{
    run_with(backend, |_| {}, scenario).await
}

/// [`run`] on a server whose settings `configure` adjusts first.
pub async fn run_with<F, Fut>(backend: Backend, configure: impl FnOnce(&mut Settings), scenario: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(app) = spawn_app_with(backend, configure).await else {
        return;
    };
    scenario(app.clone()).await;
    app.assert_invariants().await;
    app.teardown().await;
}

/// How events travel in a test server: the embedded dispatcher, or NATS JetStream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Embedded,
    JetStream,
}

/// The events of one test's servers: the embedded dispatcher, or JetStream on a stream and
/// subjects of the test's own (every instance and restart of the test shares them).
#[derive(Debug, Clone)]
pub struct TestEvents {
    jetstream: Option<minipay_events::EventsConfig>,
}

impl TestEvents {
    /// `engine`'s events; `None` (with a message) when JetStream is wanted but the shared NATS
    /// server is unreachable and not required: the test is then skipped.
    pub async fn on(engine: Engine) -> Option<Self> {
        match engine {
            Engine::Embedded => Some(Self { jetstream: None }),
            Engine::JetStream => Some(Self::jetstream_at(&minipay_events::testing::nats_url().await?)),
        }
    }

    /// JetStream at `nats_url` (a server of the test's own, say), on a new stream.
    pub fn jetstream_at(nats_url: &str) -> Self {
        Self {
            jetstream: Some(minipay_events::testing::isolated_config(Some(nats_url.to_owned()))),
        }
    }

    /// The JetStream configuration (none for the embedded dispatcher).
    pub fn config(&self) -> Option<&minipay_events::EventsConfig> {
        self.jetstream.as_ref()
    }

    /// Makes an in-process server's settings use these events.
    pub fn apply(&self, settings: &mut Settings) {
        if let Some(js) = &self.jetstream {
            settings.nats_url = js.nats_url.clone();
            settings.nats_stream = js.stream.clone();
            settings.nats_subject_prefix = js.subject_prefix.clone();
            settings.nats_ack_wait_ms = js.ack_wait.as_millis() as u64;
        }
    }

    /// The same for a `minipay serve` process: its environment.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        match &self.jetstream {
            None => Vec::new(),
            Some(js) => vec![
                ("MINIPAY_NATS_URL", js.nats_url.clone().unwrap_or_default()),
                ("MINIPAY_NATS_STREAM", js.stream.clone()),
                ("MINIPAY_NATS_SUBJECT_PREFIX", js.subject_prefix.clone()),
                ("MINIPAY_NATS_ACK_WAIT_MS", js.ack_wait.as_millis().to_string()),
            ],
        }
    }

    /// Deletes the test's stream (nothing to do for the embedded dispatcher).
    pub async fn remove(&self) {
        if let Some(js) = &self.jetstream {
            minipay_events::testing::delete_stream(js).await;
        }
    }
}

/// Borrows `(key, value)` pairs as the `&[(&str, &str)]` a process's environment is given as.
pub fn env_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// [`run`] with events on `engine` (JetStream: the shared NATS server, skipped with a message
/// when it is unreachable and not required; the test's stream is deleted after).
pub async fn run_on<F, Fut>(backend: Backend, engine: Engine, scenario: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: Future<Output = ()>,
{
    run_on_with(backend, engine, |_| {}, scenario).await
}

/// [`run_on`] on a server whose settings `configure` adjusts first.
pub async fn run_on_with<F, Fut>(backend: Backend, engine: Engine, configure: impl FnOnce(&mut Settings), scenario: F)
where
    F: FnOnce(TestApp) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(events) = TestEvents::on(engine).await else {
        return;
    };
    run_with(
        backend,
        |s| {
            events.apply(s);
            configure(s);
        },
        scenario,
    )
    .await;
    events.remove().await;
}

/// Declares scenarios that run on SQLite and PostgreSQL, each with the embedded event
/// dispatcher and with NATS JetStream.
#[macro_export]
macro_rules! on_every_engine {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            use $crate::helpers::{Backend, Engine, run_on};
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() { run_on(Backend::Sqlite, Engine::Embedded, super::$name).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() { run_on(Backend::Postgres, Engine::Embedded, super::$name).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite_jetstream() { run_on(Backend::Sqlite, Engine::JetStream, super::$name).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres_jetstream() { run_on(Backend::Postgres, Engine::JetStream, super::$name).await }
        }
    )+};
}

/// Declares tests calling `$name(backend, engine)` on SQLite and PostgreSQL, each with the
/// embedded dispatcher and with JetStream: scenarios that start their own servers.
#[macro_export]
macro_rules! for_every_engine {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            use $crate::helpers::{Backend, Engine};
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() { super::$name(Backend::Sqlite, Engine::Embedded).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() { super::$name(Backend::Postgres, Engine::Embedded).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite_jetstream() { super::$name(Backend::Sqlite, Engine::JetStream).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres_jetstream() { super::$name(Backend::Postgres, Engine::JetStream).await }
        }
    )+};
}

/// Declares tests calling `$name(backend)` on SQLite and on PostgreSQL: scenarios that start
/// their own servers.
#[macro_export]
macro_rules! for_both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            use $crate::helpers::Backend;
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() { super::$name(Backend::Sqlite).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() { super::$name(Backend::Postgres).await }
        }
    )+};
}

/// Declares scenarios that run once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                $crate::helpers::run($crate::helpers::Backend::Sqlite, super::$name).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                $crate::helpers::run($crate::helpers::Backend::Postgres, super::$name).await
            }
        }
    )+};
}

/// An HTTP answer: status, parsed JSON body (or the text as a JSON string) and headers.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Resp {
    /// Reads an answer; a 500 fails the test on the spot (bad input must never cause one).
    pub async fn read(res: reqwest::Response) -> Self {
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let text = res.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or_else(|_| Value::String(text.clone()));
        assert_ne!(status, 500, "the server answered 500: {text}");
        Self {
            status,
            body,
            headers,
            text,
        }
    }

    /// The stable error code of an error answer.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<no error code>")
    }

    /// Asserts an error answer with this status and code, and that it has a message.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(
            (self.status, self.code()),
            (status, code),
            "unexpected answer: {}",
            self.text
        );
        assert!(
            self.body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()),
            "no message: {}",
            self.text
        );
    }

    #[track_caller]
    pub fn assert_status(&self, status: u16) -> &Value {
        assert_eq!(self.status, status, "unexpected answer: {}", self.text);
        &self.body
    }
}

/// A signed-up, logged-in user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub name: String,
    pub token: String,
    pub main_account_id: String,
}

static USER_SEQ: AtomicU64 = AtomicU64::new(0);

/// An onboarded business and the secrets its onboarding answer showed.
#[derive(Debug, Clone)]
pub struct TestBusiness {
    pub id: String,
    pub name: String,
    pub registration_number: String,
    /// Its bank account's number (at the simulated bank, where its balance can be read).
    pub account_number: String,
    pub api_key: String,
    pub webhook_secret: String,
}

impl TestApp {
    pub async fn teardown(self) {
        if let Some(stop) = self.running.stop.lock().unwrap().take() {
            let _ = stop.send(());
        }
        let server = self.running.server.lock().unwrap().take();
        match server {
            Some(Server::InProcess(task)) => {
                let _ = task.await;
            }
            Some(Server::Process(mut child)) => {
                let _ = child.kill().await;
            }
            None => {}
        }
        if let TestBank::Process(_, sim) = &self.running.bank {
            let sim = sim.lock().unwrap().take();
            if let Some(mut sim) = sim {
                let _ = sim.kill().await;
            }
        }
        self.running.db.remove().await;
    }

    /// The bank simulator's own HTTP API (a server process's external simulator), for what a
    /// test reads behind the platform's back: balances at the bank.
    pub fn bank_sim_url(&self) -> Option<&str> {
        match &self.running.bank {
            TestBank::Process(url, _) => Some(url),
            TestBank::InProcess(_) => None,
        }
    }

    /// An account's balance at the simulated bank (bank code 004), read behind the platform's
    /// back: through the built-in simulator's admin API, or the external simulator's own.
    pub async fn bank_account_balance(&self, account_number: &str) -> i64 {
        let view = match self.bank_sim_url() {
            Some(url) => {
                self.sim_call(Method::GET, &format!("{url}/admin/accounts/{account_number}"), None)
                    .await
            }
            None => self
                .admin_get(&format!("/v1/admin/bank-sim/accounts/{account_number}"))
                .await
                .assert_status(200)
                .clone(),
        };
        view["balances"]["004"]
            .as_i64()
            .unwrap_or_else(|| panic!("the bank holds no account {account_number}: {view}"))
    }

    /// The calls the simulated bank has seen (`pulls`, `pulls_executed`, `pushes`,
    /// `pushes_executed`, `status_inquiries`, ...), from whichever simulator this server uses.
    pub async fn bank_stats(&self) -> Value {
        match self.bank_sim_url() {
            Some(url) => self.sim_call(Method::GET, &format!("{url}/admin/stats"), None).await,
            None => self.bank_sim().await["stats"].clone(),
        }
    }

    /// The delay the simulated bank adds to every answer (transfers are applied before it).
    pub async fn set_bank_latency_ms(&self, latency_ms: u64) {
        match self.bank_sim_url() {
            Some(url) => {
                let mut faults = self.sim_call(Method::GET, &format!("{url}/admin/faults"), None).await;
                faults["latency_ms"] = json!(latency_ms);
                self.sim_call(Method::PUT, &format!("{url}/admin/faults"), Some(faults))
                    .await;
            }
            None => self.set_bank_sim(json!({"latency_ms": latency_ms})).await,
        }
    }

    /// One call to the external simulator's admin API, which must answer 200.
    async fn sim_call(&self, method: Method, url: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let answer = Resp::read(req.send().await.expect("the bank simulator answers")).await;
        answer.assert_status(200).clone()
    }

    /// The platform's own balance at the bank, as the ledger audit reads it.
    pub async fn platform_bank_balance(&self) -> i64 {
        let audit = self.admin_get("/v1/admin/ledger/audit").await;
        let audit = audit.assert_status(200);
        audit["platform_bank"]["at_bank"]
            .as_i64()
            .unwrap_or_else(|| panic!("the audit could not ask the bank: {audit}"))
    }

    /// Kills this `minipay serve` child process with SIGKILL, as a crash would, and leaves
    /// its database for [`TestApp::restart_process`].
    pub async fn kill_process(&self) {
        let server = self.running.server.lock().unwrap().take();
        let Some(Server::Process(mut child)) = server else {
            panic!("kill_process needs a server started as a process")
        };
        child.kill().await.expect("the server process is killed");
    }

    /// A new `minipay serve` process on this server's database and bank (which this app still
    /// removes and stops).
    pub async fn restart_process(&self, env: &[(&str, &str)]) -> TestApp {
        let url = self
            .bank_sim_url()
            .expect("restart_process needs a server process")
            .to_owned();
        let bank = TestBank::Process(url, Mutex::new(None));
        serve_process_with(self.backend, TestDb::borrow(self.db_url()), env, bank).await
    }

    pub fn db_url(&self) -> &str {
        &self.running.db.url
    }

    /// Runs one SQL statement with `$1` bound to the UUID `id`, behind the API's back (to
    /// corrupt the ledger for the audit, or to shape data the API cannot produce).
    pub async fn execute_sql(&self, sql: &str, id: &str) -> u64 {
        use sqlx::Connection;
        let id = uuid::Uuid::parse_str(id).unwrap();
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self.backend {
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(self.db_url()).await.unwrap();
                sqlx::query(sql).bind(id).execute(&mut c).await.unwrap().rows_affected()
            }
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(self.db_url()).await.unwrap();
                sqlx::query(sql).bind(id).execute(&mut c).await.unwrap().rows_affected()
            }
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        key: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Resp::read(req.send().await.expect("request reaches the server")).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.request(Method::GET, path, Some(token), None, None).await
    }
    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.request(Method::POST, path, Some(token), None, Some(body)).await
    }
    pub async fn post_keyed(&self, path: &str, token: &str, key: &str, body: Value) -> Resp {
        self.request(Method::POST, path, Some(token), Some(key), Some(body))
            .await
    }
    pub async fn admin_get(&self, path: &str) -> Resp {
        self.request(Method::GET, path, Some(ADMIN_TOKEN), None, None).await
    }
    pub async fn admin_post(&self, path: &str, body: Value) -> Resp {
        self.request(Method::POST, path, Some(ADMIN_TOKEN), None, Some(body))
            .await
    }
    pub async fn admin_put(&self, path: &str, body: Value) -> Resp {
        self.request(Method::PUT, path, Some(ADMIN_TOKEN), None, Some(body))
            .await
    }

    // --- users -------------------------------------------------------------------------

    pub async fn sign_up_raw(&self, email: &str, password: &str, name: &str) -> Resp {
        let body = json!({"email": email, "password": password, "name": name});
        self.request(Method::POST, "/v1/users", None, None, Some(body)).await
    }

    pub async fn log_in(&self, email: &str, password: &str) -> Resp {
        let body = json!({"email": email, "password": password});
        self.request(Method::POST, "/v1/auth/token", None, None, Some(body))
            .await
    }

    /// A new user with a unique email, logged in.
    pub async fn user(&self, name: &str) -> TestUser {
        let n = USER_SEQ.fetch_add(1, Ordering::Relaxed);
        let email = format!(
            "{}-{n}-{}@example.com",
            name.to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "-"),
            uuid::Uuid::new_v4().simple()
        );
        let created = self.sign_up_raw(&email, "password-123", name).await;
        let created = created.assert_status(201).clone();
        let token = self.log_in(&email, "password-123").await;
        let token = token.assert_status(200)["access_token"].as_str().unwrap().to_owned();
        TestUser {
            id: created["id"].as_str().unwrap().to_owned(),
            email,
            name: name.to_owned(),
            token,
            main_account_id: created["main_account_id"].as_str().unwrap().to_owned(),
        }
    }

    /// A fresh access token for `user` (tokens last an hour of the server's clock).
    pub async fn log_in_again(&self, user: &mut TestUser) {
        let token = self.log_in(&user.email, "password-123").await;
        user.token = token.assert_status(200)["access_token"].as_str().unwrap().to_owned();
    }

    /// Moves the clock and logs the users in again.
    pub async fn advance_clock_for(&self, seconds: i64, users: &mut [&mut TestUser]) {
        self.advance_clock(seconds).await;
        for u in users.iter_mut() {
            self.log_in_again(u).await;
        }
    }

    pub async fn register_bank(&self, user: &TestUser, account_number: &str) -> Resp {
        let body = json!({"bank_code": "004", "account_number": account_number, "holder_name": user.name});
        self.post("/v1/bank-accounts", &user.token, body).await
    }

    /// A new user with a working bank account of their own.
    pub async fn user_with_bank(&self, name: &str) -> TestUser {
        self.user_with_bank_number(name, &fresh_bank_account_number()).await
    }

    pub async fn user_with_bank_number(&self, name: &str, number: &str) -> TestUser {
        let user = self.user(name).await;
        self.register_bank(&user, number).await.assert_status(201);
        user
    }

    /// A new user whose main account holds `won` (charged from their bank).
    pub async fn funded_user(&self, name: &str, won: i64) -> TestUser {
        let user = self.user_with_bank(name).await;
        if won > 0 {
            self.charge(&user, won).await.assert_status(201);
        }
        user
    }

    // --- businesses --------------------------------------------------------------------

    /// A valid onboarding body: a fresh registration number and a fresh working bank account.
    pub fn business_body(name: &str) -> Value {
        json!({
            "name": name,
            "registration_number": fresh_registration_number(),
            "bank_code": "004",
            "account_number": fresh_bank_account_number(),
            "holder_name": name,
        })
    }

    /// Onboards a business (admin) with [`TestApp::business_body`].
    pub async fn onboard_business(&self, name: &str) -> TestBusiness {
        self.onboard_business_at(name, &fresh_bank_account_number()).await
    }

    /// Onboards a business whose bank account is `account_number`.
    pub async fn onboard_business_at(&self, name: &str, account_number: &str) -> TestBusiness {
        let mut body = Self::business_body(name);
        body["account_number"] = json!(account_number);
        self.onboard_business_as(body).await
    }

    /// Onboards the business `body` describes (see [`TestApp::business_body`]).
    pub async fn onboard_business_as(&self, body: Value) -> TestBusiness {
        let account_number = body["account_number"].as_str().unwrap().to_owned();
        let created = self.admin_post("/v1/admin/businesses", body).await;
        let b = created.assert_status(201);
        let text = |field: &str| b[field].as_str().unwrap().to_owned();
        TestBusiness {
            id: text("id"),
            name: text("name"),
            registration_number: text("registration_number"),
            account_number,
            api_key: text("api_key"),
            webhook_secret: text("webhook_secret"),
        }
    }

    // --- money -------------------------------------------------------------------------

    pub async fn charge(&self, user: &TestUser, won: i64) -> Resp {
        self.post(
            &format!("/v1/accounts/{}/charges", user.main_account_id),
            &user.token,
            json!({"amount": won}),
        )
        .await
    }

    pub async fn transfer(&self, from: &TestUser, to: &TestUser, won: i64) -> Resp {
        self.post(
            "/v1/transfers",
            &from.token,
            json!({"to_user_id": to.id, "amount": won}),
        )
        .await
    }

    pub async fn account(&self, user: &TestUser, id: &str) -> Value {
        self.get(&format!("/v1/accounts/{id}"), &user.token)
            .await
            .assert_status(200)
            .clone()
    }

    /// The user's main account balance.
    pub async fn balance(&self, user: &TestUser) -> i64 {
        self.account(user, &user.main_account_id).await["balance"]
            .as_i64()
            .unwrap()
    }

    pub async fn limit_used(&self, user: &TestUser) -> i64 {
        self.get("/v1/charge-limit", &user.token).await.assert_status(200)["used"]
            .as_i64()
            .unwrap()
    }

    pub async fn pending_transfer(&self, from: &TestUser, to: &TestUser, won: i64) -> Resp {
        self.post(
            "/v1/transfers",
            &from.token,
            json!({"to_user_id": to.id, "amount": won, "mode": "pending"}),
        )
        .await
    }

    pub async fn accept(&self, user: &TestUser, transfer_id: &str) -> Resp {
        self.post(&format!("/v1/transfers/{transfer_id}/accept"), &user.token, json!({}))
            .await
    }

    pub async fn cancel(&self, user: &TestUser, transfer_id: &str) -> Resp {
        self.post(&format!("/v1/transfers/{transfer_id}/cancel"), &user.token, json!({}))
            .await
    }

    pub async fn transfer_status(&self, user: &TestUser, transfer_id: &str) -> String {
        let t = self.get(&format!("/v1/transfers/{transfer_id}"), &user.token).await;
        t.assert_status(200)["status"].as_str().unwrap().to_owned()
    }

    /// Every entry of an account's history (`query` adds filters and `limit`), following
    /// `next_cursor` to the end; newest first.
    pub async fn history(&self, user: &TestUser, account: &str, query: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/accounts/{account}/history?{query}");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = self.get(&path, &user.token).await;
            let page = page.assert_status(200);
            all.extend(page["items"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return all,
            }
        }
    }

    /// The user's notifications of one kind (newest first).
    pub async fn notifications(&self, user: &TestUser, kind: &str) -> Vec<Value> {
        let page = self.get("/v1/notifications?limit=200", &user.token).await;
        let items = page.assert_status(200)["items"].as_array().unwrap().clone();
        items.into_iter().filter(|n| n["kind"] == json!(kind)).collect()
    }

    /// Opens a savings account for `user` and returns its id.
    pub async fn open_savings(&self, user: &TestUser, product: &str, daily_amount: Option<i64>) -> String {
        let mut body = json!({"kind": "savings", "product": product});
        if let Some(d) = daily_amount {
            body["daily_amount"] = json!(d);
        }
        let r = self.post("/v1/accounts", &user.token, body).await;
        r.assert_status(201)["id"].as_str().unwrap().to_owned()
    }

    // --- operations --------------------------------------------------------------------

    pub async fn set_clock(&self, at: &str) {
        self.admin_put("/v1/admin/clock", json!({"now": at}))
            .await
            .assert_status(200);
    }

    pub async fn advance_clock(&self, seconds: i64) -> String {
        let r = self
            .admin_post("/v1/admin/clock/advance", json!({"seconds": seconds}))
            .await;
        r.assert_status(200)["now"].as_str().unwrap().to_owned()
    }

    /// Runs a job by hand as of the (manual) clock's now.
    pub async fn run_job(&self, name: &str) -> Value {
        self.admin_post(&format!("/v1/admin/jobs/{name}/run"), json!({}))
            .await
            .assert_status(200)
            .clone()
    }

    pub async fn bank_sim(&self) -> Value {
        self.admin_get("/v1/admin/bank-sim").await.assert_status(200).clone()
    }

    pub async fn set_bank_sim(&self, knobs: Value) {
        self.admin_put("/v1/admin/bank-sim", knobs).await.assert_status(200);
    }

    /// Counts and sums over everything a money request can change.
    pub async fn totals(&self) -> Value {
        self.admin_get("/v1/admin/ledger/audit").await.assert_status(200)["totals"].clone()
    }

    /// DESIGN.md invariants 1–5 (and the charge-limit and journal-reference rules).
    pub async fn assert_invariants(&self) {
        let audit = self.admin_get("/v1/admin/ledger/audit").await;
        let audit = audit.assert_status(200);
        assert_eq!(
            audit["ok"],
            json!(true),
            "ledger invariants violated on {:?}: {}",
            self.backend,
            audit["violations"]
        );
    }

    /// Invariant 6: runs `rejected` (which must answer a 4xx/5xx) and checks nothing changed.
    pub async fn assert_changes_nothing<Fut: Future<Output = Resp>>(&self, rejected: Fut) -> Resp {
        let before = self.totals().await;
        let resp = rejected.await;
        assert!(
            resp.status >= 400,
            "expected a rejection, got {}: {}",
            resp.status,
            resp.text
        );
        assert_eq!(
            self.totals().await,
            before,
            "a rejected request changed the ledger: {}",
            resp.text
        );
        resp
    }
}

/// Runs the futures on tokio tasks, in parallel, and collects their outputs in order.
pub async fn join_all<T: Send + 'static>(
    futs: impl IntoIterator<Item = impl Future<Output = T> + Send + 'static>,
) -> Vec<T> {
    let handles: Vec<_> = futs.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("task completes"));
    }
    out
}

// --- faults and operations -------------------------------------------------------------

/// How long background work (events on the stream, their retries) usually gets before a test
/// fails.
pub const EVENTUALLY_MAX: std::time::Duration = std::time::Duration::from_secs(20);

/// Polls `probe` every 20 ms until it answers `Some`, failing the test after `max` with
/// `what` (no real sleep is longer than a poll).
pub async fn eventually<T>(what: &str, max: std::time::Duration, mut probe: impl AsyncFnMut() -> Option<T>) -> T {
    let started = std::time::Instant::now();
    loop {
        if let Some(found) = probe().await {
            return found;
        }
        assert!(started.elapsed() < max, "never happened within {max:?}: {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// [`eventually`] for a condition.
pub async fn eventually_holds<F, Fut>(what: &str, max: std::time::Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually(what, max, async || check().await.then_some(())).await
}

/// A webhook receiver in the test: records every request it gets and answers 200, or 500 to
/// as many as it was told to fail.
pub struct HookReceiver {
    /// Where to send: `http://127.0.0.1:PORT/hook`.
    pub url: String,
    state: Arc<HookState>,
    task: JoinHandle<()>,
}

#[derive(Default)]
struct HookState {
    received: Mutex<Vec<HookRequest>>,
    failures_left: AtomicU64,
    /// Only bodies whose `kind` is this are failed (others are answered 200).
    failing_kind: Mutex<Option<String>>,
}

/// One request a [`HookReceiver`] got, and the status it answered.
#[derive(Debug, Clone)]
pub struct HookRequest {
    pub method: String,
    pub path: String,
    pub headers: reqwest::header::HeaderMap,
    /// The body as JSON (a JSON string when it was not JSON).
    pub body: Value,
    /// The body as it came, byte for byte (what a signature covers).
    pub raw: String,
    pub answered: u16,
}

impl HookReceiver {
    pub async fn start() -> Self {
        let state = Arc::new(HookState::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for the receiver");
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let router = axum::Router::new().fallback(record_hook).with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { url, state, task }
    }

    /// The next `n` requests are answered 500.
    pub fn fail_next(&self, n: u64) {
        self.state.failures_left.store(n, Ordering::SeqCst);
    }

    /// The next `n` requests whose body's `kind` is `kind` are answered 500 (an alert of
    /// another kind arriving meanwhile takes none of the failures).
    pub fn fail_next_of_kind(&self, kind: &str, n: u64) {
        *self.state.failing_kind.lock().unwrap() = Some(kind.to_owned());
        self.fail_next(n);
    }

    /// Every request so far, in arrival order.
    pub fn received(&self) -> Vec<HookRequest> {
        self.state.received.lock().unwrap().clone()
    }
}

impl Drop for HookReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn record_hook(
    axum::extract::State(state): axum::extract::State<Arc<HookState>>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::http::StatusCode {
    let raw = String::from_utf8_lossy(&body).into_owned();
    let body = serde_json::from_str(&raw).unwrap_or_else(|_| Value::String(raw.clone()));
    let wanted = state.failing_kind.lock().unwrap().clone();
    let failing = wanted.is_none_or(|k| body["kind"] == k.as_str())
        && state
            .failures_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
    let answered = if failing {
        axum::http::StatusCode::INTERNAL_SERVER_ERROR
    } else {
        axum::http::StatusCode::OK
    };
    state.received.lock().unwrap().push(HookRequest {
        method: method.to_string(),
        path: uri.path().to_owned(),
        headers,
        body,
        raw,
        answered: answered.as_u16(),
    });
    answered
}

/// A bank account number no other test uses that ends in `suffix` (four digits choosing the
/// simulator's behaviour, e.g. `0006`: a closed account).
pub fn fresh_bank_account_number_ending(suffix: &str) -> String {
    assert!(
        suffix.len() == 4 && suffix.bytes().all(|b| b.is_ascii_digit()),
        "four digits"
    );
    format!("8{:07}{suffix}", BANK_ACCOUNT_SEQ.fetch_add(1, Ordering::Relaxed))
}

impl TestApp {
    /// Runs a batch of SQL statements behind the API's back (e.g. creating and dropping a
    /// trigger that injects a database fault).
    pub async fn execute_sql_batch(&self, sql: &str) {
        use sqlx::Connection;
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self.backend {
            Backend::Postgres => {
                let mut c = sqlx::PgConnection::connect(self.db_url()).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
            }
            Backend::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(self.db_url()).await.unwrap();
                sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
            }
        }
    }

    /// Injects faults into one account number's calls at the built-in simulator:
    /// `{pull?, push?, inquiry?, times?}`.
    pub async fn set_bank_account_faults(&self, account_number: &str, faults: Value) {
        self.admin_put(&format!("/v1/admin/bank-sim/accounts/{account_number}"), faults)
            .await
            .assert_status(200);
    }

    /// Dead letters of one kind (newest first).
    pub async fn dead_letters(&self, kind: &str) -> Vec<Value> {
        let page = self
            .admin_get(&format!("/v1/admin/dead-letters?kind={kind}&limit=100"))
            .await;
        page.assert_status(200)["items"].as_array().unwrap().clone()
    }

    /// Alerts of one kind (newest first).
    pub async fn alerts(&self, kind: &str) -> Vec<Value> {
        let page = self.admin_get(&format!("/v1/admin/alerts?kind={kind}&limit=100")).await;
        page.assert_status(200)["items"].as_array().unwrap().clone()
    }
}
