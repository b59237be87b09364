//! The `minipay` binary itself: `serve` on its embedded defaults, production mode's refusals,
//! `migrate`, `sim bank` as the external bank of a server, the midnight reset with the
//! process in UTC, and the PostgreSQL connections a server keeps open from its start.

use crate::helpers::{
    Backend, TestApp, TestDb, fresh_bank_account_number, minipay_bin, spawn_process, spawn_serve_process,
};
use serde_json::json;

#[tokio::test]
async fn serve_runs_on_embedded_sqlite_and_the_built_in_bank_with_no_configuration() {
    let dir = std::env::temp_dir().join(format!("minipay-defaults-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut cmd = tokio::process::Command::new(minipay_bin());
    // Only the port is chosen, to avoid clashing with other tests: everything else is default.
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .current_dir(&dir)
        .env("MINIPAY_LOG", "warn");
    for var in [
        "MINIPAY_DATABASE_URL",
        "MINIPAY_BANK_URL",
        "MINIPAY_CLOCK",
        "MINIPAY_MODE",
        "MINIPAY_CONFIG",
    ] {
        cmd.env_remove(var);
    }
    cmd.kill_on_drop(true)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    let base = {
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(std::time::Duration::from_secs(60), lines.next_line())
            .await
            .unwrap()
            .unwrap();
        line.unwrap()
            .split("listening on ")
            .nth(1)
            .expect("the listening line")
            .trim()
            .to_owned()
    };
    let http = reqwest::Client::new();
    assert_eq!(
        http.get(format!("{base}/health/ready")).send().await.unwrap().status(),
        200
    );
    let signup = json!({"email": "kim@example.com", "password": "password-123", "name": "Kim"});
    let r = http
        .post(format!("{base}/v1/users"))
        .json(&signup)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert!(
        dir.join("minipay.db").exists(),
        "the embedded database is created in the working directory"
    );
    let _ = child.kill().await;
    let _ = std::fs::remove_dir_all(&dir);
}

async fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = tokio::process::Command::new(minipay_bin())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success(), "expected minipay to refuse to start");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn production_mode_refuses_generated_secrets_and_the_manual_clock() {
    let db = format!(
        "sqlite://{}",
        std::env::temp_dir().join("minipay-prod-refusal.db").display()
    );
    let base = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--mode",
        "production",
        "--database-url",
        db.as_str(),
    ];
    let err = refused(&base, &[]).await;
    assert!(err.contains("MINIPAY_ADMIN_TOKEN"), "{err}");
    let strong = "x".repeat(40);
    let err = refused(
        &base,
        &[("MINIPAY_ADMIN_TOKEN", &strong), ("MINIPAY_JWT_SECRET", "short")],
    )
    .await;
    assert!(err.contains("MINIPAY_JWT_SECRET"), "{err}");
    let secrets = [
        ("MINIPAY_ADMIN_TOKEN", strong.as_str()),
        ("MINIPAY_JWT_SECRET", strong.as_str()),
    ];
    let err = refused(&base, &secrets).await;
    assert!(err.contains("MINIPAY_TERMINAL_KEY_SECRET"), "{err}");
    let secrets = [
        ("MINIPAY_ADMIN_TOKEN", strong.as_str()),
        ("MINIPAY_JWT_SECRET", strong.as_str()),
        ("MINIPAY_TERMINAL_KEY_SECRET", strong.as_str()),
    ];
    let err = refused(&[&base[..], &["--clock", "manual"]].concat(), &secrets).await;
    assert!(err.contains("manual clock"), "{err}");
}

async fn migrate_applies_and_is_repeatable(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    for _ in 0..2 {
        let out = tokio::process::Command::new(minipay_bin())
            .args(["migrate", "--database-url", &db.url])
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stdout).contains("migrations applied"));
    }
    db.remove().await;
}

/// The server's bank is `minipay sim bank` over HTTP: the open-banking client end to end.
async fn a_server_uses_the_bank_simulator_over_http(backend: Backend) {
    let (mut sim, sim_url) = spawn_process(&["sim", "bank", "--listen", "127.0.0.1:0"], &[]).await;
    let Some(app) = spawn_serve_process(backend, &[("MINIPAY_BANK_URL", &sim_url)]).await else {
        return;
    };
    let kim = app.user_with_bank("Kim").await;
    let lee = app.user("Lee").await;
    app.charge(&kim, 10_000).await.assert_status(201);
    assert_eq!(
        app.transfer(&kim, &lee, 15_000).await.assert_status(201)["auto_charged"],
        json!(10_000)
    );

    let declined = app.user_with_bank_number("Park", "1110000002").await;
    app.assert_changes_nothing(app.charge(&declined, 10_000))
        .await
        .assert_error(422, "bank_declined");
    let timeout = app.user_with_bank_number("Choi", "1110000004").await;
    app.assert_changes_nothing(app.charge(&timeout, 10_000))
        .await
        .assert_error(503, "bank_unavailable");
    let taken = app.user_with_bank_number("Jung", "1110000005").await;
    app.charge(&taken, 10_000).await.assert_status(201);
    app.register_bank(&lee, "1110000009")
        .await
        .assert_error(422, "bank_declined");

    // The knobs belong to the built-in simulator only.
    app.admin_get("/v1/admin/bank-sim").await.assert_error(404, "not_found");
    let stats: serde_json::Value = reqwest::get(format!("{sim_url}/admin/stats"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["pulls_executed"], json!(3), "{stats}");
    assert_eq!(stats["pulls"], json!(5), "one pull per charge, none resent: {stats}");

    // An external simulator takes per-account faults on its own admin API, not on minipay's.
    let number = fresh_bank_account_number();
    let yoon = app.user_with_bank_number("Yoon", &number).await;
    let account_path = format!("/v1/admin/bank-sim/accounts/{number}");
    app.admin_get(&account_path).await.assert_error(404, "not_found");
    let fault = reqwest::Client::new()
        .put(format!("{sim_url}/admin/accounts/{number}"))
        .json(&json!({"pull": "decline", "times": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(fault.status().as_u16(), 200);
    app.assert_changes_nothing(app.charge(&yoon, 10_000))
        .await
        .assert_error(422, "bank_declined");
    app.charge(&yoon, 10_000).await.assert_status(201);

    app.assert_invariants().await;
    app.teardown().await;
    let _ = sim.kill().await;
}

async fn the_limit_resets_at_seoul_midnight_with_the_process_in_utc(backend: Backend) {
    let Some(app) = spawn_serve_process(backend, &[("TZ", "UTC")]).await else {
        return;
    };
    limit_reset_scenario(&app).await;
    app.assert_invariants().await;
    app.teardown().await;
}

async fn limit_reset_scenario(app: &TestApp) {
    app.set_clock("2026-11-21T14:59:30Z").await; // 23:59:30 in Seoul, 14:59:30 in the process's zone
    let user = app.user_with_bank("Kim").await;
    app.charge(&user, 3_000_000).await.assert_status(201);
    app.charge(&user, 10_000)
        .await
        .assert_error(422, "daily_limit_exceeded");
    app.advance_clock(30).await;
    let limit = app.get("/v1/charge-limit", &user.token).await;
    let limit = limit.assert_status(200);
    assert_eq!(
        (limit["date"].clone(), limit["used"].clone()),
        (json!("2026-11-22"), json!(0))
    );
    assert_eq!(limit["resets_at"], json!("2026-11-22T15:00:00Z"));
    app.charge(&user, 3_000_000).await.assert_status(201);
}

/// `MINIPAY_DB_CONNECTIONS_MIN`: the server opens that many PostgreSQL connections before it
/// listens (none of its first requests waits for one to open), and refuses to start when it
/// is more than the pool may hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_opens_its_minimum_of_connections_before_it_listens() {
    let err = refused(
        &["serve", "--listen", "127.0.0.1:0", "--db-connections-max", "4"],
        &[("MINIPAY_DB_CONNECTIONS_MIN", "5")],
    )
    .await;
    assert!(
        err.contains("MINIPAY_DB_CONNECTIONS_MIN (5)") && err.contains("(4)"),
        "{err}"
    );
    let Some(db) = TestDb::create(Backend::Postgres).await else {
        return;
    };
    let open_now = || async {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&db.url).await.unwrap();
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'minipay'",
        )
        .fetch_one(&mut c)
        .await
        .unwrap();
        n
    };
    let env = [
        ("MINIPAY_LISTEN", "127.0.0.1:0"),
        ("MINIPAY_DATABASE_URL", db.url.as_str()),
        ("MINIPAY_SCHEDULER", "false"),
        ("MINIPAY_LOG", "warn"),
        ("MINIPAY_DB_CONNECTIONS_MAX", "32"),
    ];
    // Without the setting, starting opens far fewer (the migrations and the workers' first
    // polls: 10 here).
    let (mut child, _base) = spawn_process(&["serve"], &env).await;
    let opened_by_starting = open_now().await;
    assert!(
        opened_by_starting < 30,
        "{opened_by_starting} connections open without the setting"
    );
    let _ = child.kill().await;
    let _ = child.wait().await;
    let env = [&env[..], &[("MINIPAY_DB_CONNECTIONS_MIN", "30")]].concat();
    let (mut child, _base) = spawn_process(&["serve"], &env).await;
    assert!(
        open_now().await >= 30,
        "the server listens with its 30 connections open"
    );
    let _ = child.kill().await;
    let _ = child.wait().await;
    db.remove().await;
}

/// `minipay jobs run NAME --at TIME` runs a job by hand on the configured database and records
/// the run; an unknown job fails; `minipay jobs list` names them all.
async fn jobs_run_by_hand_from_the_command_line(backend: Backend) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let run = |args: Vec<String>| async move {
        tokio::process::Command::new(minipay_bin())
            .args(args)
            .env("MINIPAY_LOG", "warn")
            .output()
            .await
            .unwrap()
    };
    let base = |job: &str| {
        vec![
            "jobs".into(),
            "run".into(),
            job.into(),
            "--at".into(),
            "2026-11-22T04:00:00+09:00".into(),
        ]
        .into_iter()
        .chain(["--database-url".to_owned(), db.url.clone()])
        .collect::<Vec<String>>()
    };
    let out = run(base("savings-interest")).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["job"], json!("savings-interest"));
    assert_eq!(report["at"], json!("2026-11-21T19:00:00Z"));
    assert_eq!(report["error"], json!(null));
    assert!(!run(base("no-such-job")).await.status.success());

    // The run is in the history a server on the same database shows.
    let mut settings = crate::helpers::test_settings(&db.url);
    settings.scheduler = false;
    let app = crate::helpers::start(backend, TestDb::borrow(&db.url), settings).await;
    let runs = app.admin_get("/v1/admin/jobs/runs?job=savings-interest").await;
    let runs = runs.assert_status(200)["items"].as_array().unwrap().clone();
    assert_eq!(runs.len(), 1);
    assert_eq!(
        (runs[0]["trigger"].clone(), runs[0]["slot"].clone()),
        (json!("manual"), json!("2026-11-21T19:00:00Z"))
    );
    app.teardown().await;

    // `jobs list` takes the same settings as `jobs run`.
    for args in [
        vec!["jobs".to_owned(), "list".to_owned()],
        vec!["jobs".into(), "list".into(), "--database-url".into(), db.url.clone()],
    ] {
        let out = run(args.clone()).await;
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let list = String::from_utf8_lossy(&out.stdout);
        for job in [
            "pending-reminders",
            "pending-expiry",
            "savings-interest",
            "savings-auto-debit",
            "charge-recovery",
            "history-partitions",
            "history-retention",
        ] {
            assert!(list.contains(job), "{list}");
        }
    }
    db.remove().await;
}

/// Client errors are logged below ERROR (a fuzzer's thousands of 404s must not look like
/// server faults); the log at `info` shows refused logins and no request errors at all.
#[tokio::test]
async fn client_errors_are_not_logged_as_errors() {
    let Some(db) = TestDb::create(Backend::Sqlite).await else {
        return;
    };
    let log_path = std::env::temp_dir().join(format!("minipay-log-{}.jsonl", uuid::Uuid::new_v4().simple()));
    let log = std::fs::File::create(&log_path).unwrap();
    let env = [
        ("MINIPAY_LISTEN", "127.0.0.1:0"),
        ("MINIPAY_DATABASE_URL", db.url.as_str()),
        ("MINIPAY_ADMIN_TOKEN", crate::helpers::ADMIN_TOKEN),
        ("MINIPAY_LOG", "info"),
    ];
    let (mut child, base) = crate::helpers::spawn_process_logging(&["serve"], &env, log.into()).await;
    let http = reqwest::Client::new();
    let signup = json!({"email": "kim@example.com", "password": "password-123", "name": "Kim"});
    let kim: serde_json::Value = http
        .post(format!("{base}/v1/users"))
        .json(&signup)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let login = json!({"email": "kim@example.com", "password": "password-123"});
    let token: serde_json::Value = http
        .post(format!("{base}/v1/auth/token"))
        .json(&login)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = token["access_token"].as_str().unwrap();
    let unknown = uuid::Uuid::new_v4();
    let main = kim["main_account_id"].as_str().unwrap();
    let requests = [
        (reqwest::Method::GET, format!("/v1/transfers/{unknown}"), None, 404),
        (reqwest::Method::GET, format!("/v1/accounts/{unknown}"), None, 404),
        (reqwest::Method::GET, "/v1/no-such-endpoint".to_owned(), None, 404),
        (
            reqwest::Method::POST,
            "/v1/transfers".to_owned(),
            Some(json!({"amount": 0})),
            400,
        ),
        (
            reqwest::Method::POST,
            format!("/v1/accounts/{main}/charges"),
            Some(json!({"amount": 1000})),
            409,
        ),
        (
            reqwest::Method::POST,
            "/v1/transfers".to_owned(),
            Some(json!({"to_user_id": unknown, "amount": 10})),
            404,
        ),
    ];
    for (method, path, body, status) in requests {
        let mut req = http.request(method, format!("{base}{path}")).bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        assert_eq!(req.send().await.unwrap().status().as_u16(), status, "{path}");
    }
    let wrong = json!({"email": "kim@example.com", "password": "wrong-password"});
    assert_eq!(
        http.post(format!("{base}/v1/auth/token"))
            .json(&wrong)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    let _ = child.kill().await;
    let logged = std::fs::read_to_string(&log_path).unwrap();
    let _ = std::fs::remove_file(&log_path);
    db.remove().await;
    let levels: Vec<String> = logged
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|l| l["level"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(!levels.is_empty(), "the server logged nothing: {logged}");
    assert!(
        levels.iter().all(|l| l != "ERROR" && l != "WARN"),
        "client errors logged as server faults:\n{logged}"
    );
    assert!(
        logged.contains("request refused"),
        "the refused login is logged at INFO:\n{logged}"
    );
}

/// `serve --help` names every key a config file may hold.
#[tokio::test]
async fn serve_help_names_every_config_file_key() {
    let out = tokio::process::Command::new(minipay_bin())
        .args(["serve", "--help"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    let (_, keys) = help.split_once("its keys:").expect("--config lists the file's keys");
    let keys = keys.split("[env:").next().unwrap();
    let keys: Vec<&str> = keys.split(',').map(str::trim).collect();
    assert_eq!(keys, minipay_server::config::SettingsLayer::FILE_KEYS, "{help}");
}

macro_rules! process_tests {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() { super::$name(crate::helpers::Backend::Sqlite).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() { super::$name(crate::helpers::Backend::Postgres).await }
        }
    )+};
}

process_tests!(
    migrate_applies_and_is_repeatable,
    jobs_run_by_hand_from_the_command_line,
    a_server_uses_the_bank_simulator_over_http,
    the_limit_resets_at_seoul_midnight_with_the_process_in_utc,
);
