//! Schemathesis against the served OpenAPI document: every operation fuzzed for a bounded time
//! on SQLite, failing on any 5xx, any answer that does not match its schema, any undocumented
//! status or content type, and any schema-violating request the server accepts.

use crate::helpers::{ADMIN_TOKEN, Backend, TestApp, TestBusiness, TestUser, run};
use minipay_store::testing::required;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The version `.ci/run` installs (keep the two in step).
const SCHEMATHESIS_VERSION: &str = "4.32.5";
/// Schemathesis's time budget for the whole run (`--max-time`); `MINIPAY_FUZZ_SECONDS`
/// overrides it for a longer run by hand.
const FUZZ_SECONDS_DEFAULT: u64 = 75;
/// Test cases per operation and phase (`--max-examples`); the time budget usually ends first.
const FUZZ_EXAMPLES_MAX: u32 = 100;
/// One request's timeout: a hang is a failure, not a stalled test.
const REQUEST_TIMEOUT_SECS: u32 = 10;

/// The checks that must pass: all of schemathesis's, less `positive_data_acceptance`, which
/// expects every schema-valid request to succeed. Many cannot: an email the schema cannot tell
/// from a valid one, a cursor this server never issued, a time outside the years the clock
/// allows, a second signup with an email already taken. Those answer a documented 4xx, which
/// `status_code_conformance` still checks.
const CHECKS_EXCLUDED: &str = "positive_data_acceptance";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn schemathesis_finds_no_fault_in_the_openapi_document_on_sqlite() {
    let Some(st) = schemathesis() else {
        assert!(
            !required("MINIPAY_TEST_REQUIRE_SCHEMATHESIS"),
            "schemathesis {SCHEMATHESIS_VERSION} is required (CI or MINIPAY_TEST_REQUIRE_SCHEMATHESIS=1) \
             but not installed: run .ci/run, or set MINIPAY_SCHEMATHESIS to its `st` command"
        );
        eprintln!(
            "SKIPPED (schemathesis): not installed. `.ci/run` installs schemathesis=={SCHEMATHESIS_VERSION} \
             under target/; or set MINIPAY_SCHEMATHESIS to an `st` command."
        );
        return;
    };
    run(Backend::Sqlite, |app| fuzz(app, st)).await;
}

/// The `st` command and its version: `MINIPAY_SCHEMATHESIS`, else the virtualenv `.ci/run`
/// makes under target/, else `st` on the PATH; the first that answers `--version`.
fn schemathesis() -> Option<(PathBuf, String)> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = [
        std::env::var_os("MINIPAY_SCHEMATHESIS").map(PathBuf::from),
        Some(workspace.join("target/schemathesis/bin/st")),
        Some(PathBuf::from("st")),
    ];
    candidates.into_iter().flatten().find_map(|st| {
        let out = std::process::Command::new(&st).arg("--version").output().ok()?;
        let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        out.status.success().then_some((st, version))
    })
}

async fn fuzz(app: TestApp, (st, version): (PathBuf, String)) {
    let data = seed(&app).await;
    let dir = std::env::temp_dir().join(format!("minipay-schemathesis-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("schemathesis.toml");
    std::fs::write(&config, data.config()).unwrap();
    let junit = dir.join("junit.xml");

    let seconds = std::env::var("MINIPAY_FUZZ_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(FUZZ_SECONDS_DEFAULT);
    let mut cmd = tokio::process::Command::new(&st);
    cmd.current_dir(&dir)
        .kill_on_drop(true)
        .arg("--config-file")
        .arg(&config)
        .args(["run", &format!("{}/openapi.json", app.base)])
        .args(["--checks", "all", "--exclude-checks", CHECKS_EXCLUDED])
        .args(["--max-time", &seconds.to_string()])
        .args(["--max-examples", &FUZZ_EXAMPLES_MAX.to_string()])
        .args(["--request-timeout", &REQUEST_TIMEOUT_SECS.to_string()])
        // One worker: two threads trip a race in CPython 3.11's parser inside hypothesis
        // ("AST constructor recursion depth mismatch"), and the server shares two cores anyway.
        .args(["--workers", "1"])
        // Found examples are not kept between runs (no database file left behind).
        .args(["--generation-database", "none"])
        .args(["--report", "junit", "--report-junit-path"])
        .arg(&junit)
        .arg("--no-color");
    if let Ok(seed) = std::env::var("MINIPAY_SCHEMATHESIS_SEED") {
        cmd.args(["--seed", &seed]);
    }
    let started = Instant::now();
    let budget = Duration::from_secs(seconds + 120);
    let out = tokio::time::timeout(budget, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("schemathesis did not finish within {budget:?}"))
        .expect("schemathesis starts");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tested = std::fs::read_to_string(&junit)
        .unwrap_or_default()
        .matches("<testcase")
        .count();
    let _ = std::fs::remove_dir_all(&dir);

    assert!(
        out.status.success(),
        "schemathesis found faults ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(tested > 0, "schemathesis tested no operation:\n{stdout}\n{stderr}");
    // The counts, the warnings (operations that mostly got 4xx: worth a look, not a fault)
    // and the seed that replays the run (MINIPAY_SCHEMATHESIS_SEED).
    let summary: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("generated") || l.contains("⚠️") || l.starts_with("Seed:"))
        .collect();
    eprintln!(
        "{version}: no fault in {tested} JUnit test cases, {:.0?}\n{}",
        started.elapsed(),
        summary.join("\n")
    );
}

/// What the fuzzer gets to work with: the ids of real objects, offered in place of random
/// ones most of the time so that requests reach the handlers' logic, not just their 404s.
struct Seeded {
    kim: TestUser,
    lee: TestUser,
    business: TestBusiness,
    accounts: Vec<String>,
    transfers: Vec<String>,
    settlements: Vec<String>,
    bank_accounts: Vec<String>,
}

/// Kim (whose token the fuzzer uses) and Lee, both funded and banked; transfers either way
/// (one completed, one pending each way, so accept and cancel can succeed), savings accounts
/// of both products, a split bill requested by each, and a business (whose API key the
/// fuzzer uses).
async fn seed(app: &TestApp) -> Seeded {
    let business = app.onboard_business("가나상사").await;
    let kim = app.funded_user("Kim", 500_000).await;
    let lee = app.funded_user("Lee", 500_000).await;
    let id = |r: crate::helpers::Resp| r.body["id"].as_str().unwrap().to_owned();

    let mut transfers = vec![id(app.transfer(&kim, &lee, 1_000).await)];
    transfers.push(id(app.pending_transfer(&kim, &lee, 2_000).await));
    transfers.push(id(app.pending_transfer(&lee, &kim, 3_000).await));

    let free = app.open_savings(&kim, "free", None).await;
    let deposit = app
        .post(
            &format!("/v1/accounts/{free}/deposits"),
            &kim.token,
            json!({"amount": 5_000}),
        )
        .await;
    deposit.assert_status(201);
    let fixed = app.open_savings(&kim, "fixed", Some(1_000)).await;
    let accounts = vec![kim.main_account_id.clone(), free, fixed, lee.main_account_id.clone()];

    let mut settlements = Vec::new();
    for (requester, total, method) in [(&kim, 20_000, "equal"), (&lee, 30_000, "random")] {
        let body = json!({"total_amount": total, "method": method, "participant_user_ids": [kim.id, lee.id]});
        let created = app.post("/v1/settlements", &requester.token, body).await;
        created.assert_status(201);
        settlements.push(id(created));
    }

    let banks = app.get("/v1/bank-accounts", &kim.token).await;
    let bank_accounts = banks.assert_status(200)["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap().to_owned())
        .collect();
    Seeded {
        kim,
        lee,
        business,
        accounts,
        transfers,
        settlements,
        bank_accounts,
    }
}

impl Seeded {
    /// The schemathesis configuration: who calls, what is left out (and why), and where the
    /// seeded ids go.
    fn config(&self) -> String {
        let list = |items: &[String]| serde_json::to_string(items).unwrap();
        let jobs: Vec<String> = minipay_services::jobs::SCHEDULES
            .iter()
            .map(|(name, _)| (*name).to_owned())
            .collect();
        format!(
            r#"# Each operation is called with the credentials its `security` names.
[auth.openapi.bearer]
bearer = "{kim_token}"
[auth.openapi.admin]
bearer = "{admin}"
[auth.openapi.api_key]
bearer = "{api_key}"

# Moving the manual clock would expire the access token (one hour) and the pending transfers,
# leaving the rest of the run to 401s; the bank simulator's knobs inject up to a minute of
# latency, random 503s and per-account declines into later bank calls. All are covered by
# their own tests.
[[operations]]
include-name = ["PUT /v1/admin/clock", "POST /v1/admin/clock/advance", "PUT /v1/admin/bank-sim",
                "PUT /v1/admin/bank-sim/accounts/{{account_number}}"]
enabled = false

[dictionaries.accounts]
values = {accounts}
[dictionaries.transfers]
values = {transfers}
[dictionaries.settlements]
values = {settlements}
[dictionaries.bank_accounts]
values = {bank_accounts}
[dictionaries.users]
values = ["{lee_id}", "{kim_id}"]
[dictionaries.receiver_accounts]
values = ["{lee_main}"]
[dictionaries.emails]
values = ["{lee_email}"]
[dictionaries.jobs]
values = {jobs}
[dictionaries.businesses]
values = ["{business_id}"]

[[operations]]
include-path-regex = '^/v1/accounts/\{{id\}}'
parameters = {{ "path.id" = {{ dictionary = "accounts", probability = 0.7 }} }}
[[operations]]
include-path-regex = '^/v1/transfers/\{{id\}}'
parameters = {{ "path.id" = {{ dictionary = "transfers", probability = 0.7 }} }}
[[operations]]
include-path-regex = '^/v1/settlements/\{{id\}}'
parameters = {{ "path.id" = {{ dictionary = "settlements", probability = 0.7 }} }}
[[operations]]
include-path-regex = '^/v1/bank-accounts/\{{id\}}'
parameters = {{ "path.id" = {{ dictionary = "bank_accounts", probability = 0.7 }} }}
[[operations]]
include-name = "POST /v1/transfers"
parameters = {{ "body.to_user_id" = {{ dictionary = "users", probability = 0.7 }}, "body.to_account_id" = {{ dictionary = "receiver_accounts", probability = 0.7 }} }}
[[operations]]
include-name = "POST /v1/settlements"
parameters = {{ "body.participant_user_ids[*]" = {{ dictionary = "users", probability = 0.8 }} }}
[[operations]]
include-name = "GET /v1/users/lookup"
parameters = {{ "query.email" = {{ dictionary = "emails", probability = 0.5 }} }}
# Not rotate-key: rotating the seeded business's key would leave `/v1/biz/*` to 401s.
[[operations]]
include-name = "GET /v1/admin/businesses/{{id}}"
parameters = {{ "path.id" = {{ dictionary = "businesses", probability = 0.7 }} }}
[[operations]]
include-name = "POST /v1/admin/jobs/{{name}}/run"
parameters = {{ "path.name" = {{ dictionary = "jobs", probability = 0.8 }} }}
"#,
            kim_token = self.kim.token,
            admin = ADMIN_TOKEN,
            api_key = self.business.api_key,
            business_id = self.business.id,
            accounts = list(&self.accounts),
            transfers = list(&self.transfers),
            settlements = list(&self.settlements),
            bank_accounts = list(&self.bank_accounts),
            lee_id = self.lee.id,
            kim_id = self.kim.id,
            lee_main = self.lee.main_account_id,
            lee_email = self.lee.email,
            jobs = list(&jobs),
        )
    }
}
