//! The operator console in a real browser: headless Chromium (Debian's `chromium`) driven by
//! playwright-core (`crates/cli/tests/browser/console.mjs`) against a test server with a
//! timed-out approval, an open alert and a remittance needing attention. Screenshots are kept
//! in `target/browser-artifacts/`. Skipped with a message when Chromium or the driver is not
//! installed — unless required (`MINIPAY_TEST_REQUIRE_BROWSER=1`, set by `.ci/run`, which
//! installs both).

use crate::for_both_backends;
use crate::gateway::{NO_ANSWER_CARD, gateway_settings, rig};
use crate::helpers::{ADMIN_TOKEN, Backend, TestApp, run_with};
use crate::remittance_faults::{collect_attempts_exhausted, retry_rounds_exhausted};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Duration;

for_both_backends!(an_operator_works_through_the_console_in_chromium);

/// Where the browser driver is installed (`npm ci` there).
fn driver_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from)
}

/// Whether the browser test can run here; panics when it must and cannot.
fn browser_available() -> bool {
    let missing: Vec<String> = [
        (
            driver_dir().join("node_modules/playwright-core").exists(),
            "playwright-core (npm ci in crates/cli/tests/browser)",
        ),
        (chromium().exists(), "Chromium (apt-get install chromium)"),
        (
            std::process::Command::new("node").arg("--version").output().is_ok(),
            "node",
        ),
    ]
    .into_iter()
    .filter(|(ok, _)| !ok)
    .map(|(_, what)| what.to_owned())
    .collect();
    if missing.is_empty() {
        return true;
    }
    let required = std::env::var("MINIPAY_TEST_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
    assert!(
        !required,
        "the browser test is required but missing: {}",
        missing.join(", ")
    );
    eprintln!("NOTE: browser test SKIPPED, missing: {}", missing.join(", "));
    false
}

/// A remittance stopped at its collect step after every attempt and round: it needs
/// attention. The bank is back afterwards, so a retry completes it. Its id.
async fn remittance_needing_attention(app: &TestApp) -> String {
    let a = app.onboard_business("막힌상사").await;
    let b = app.onboard_business("기다림물산").await;
    app.set_bank_account_faults(&a.account_number, json!({"pull": "unavailable"}))
        .await;
    let sent = app.remit(&a, &b, 12_000, "console-1").await;
    let id = sent.assert_status(202)["id"].as_str().unwrap().to_owned();
    collect_attempts_exhausted(app, &id).await;
    retry_rounds_exhausted(app).await;
    app.remittance_when(&a, &id, &["needs_attention"]).await;
    app.set_bank_account_faults(&a.account_number, json!({"pull": "ok"}))
        .await;
    id
}

async fn an_operator_works_through_the_console_in_chromium(backend: Backend) {
    if !browser_available() {
        return;
    }
    run_with(backend, gateway_settings, |app| async move {
        let r = rig(&app, &[("vana", 1), ("vanb", 1)], false, "auto").await;
        let timed_out = r.tcp_sale(NO_ANSWER_CARD).await.transaction_id.unwrap().to_string();
        r.wait_cancel(&timed_out, "acknowledged").await;
        for _ in 0..400 {
            let v = app.admin_get(&format!("/v1/admin/approvals/{timed_out}")).await;
            if v.body["cancel_status"] == "acknowledged" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let file = format!(
            "{}\napproval,77777777,T9999999,1,20261204120000,5000,20261204120001,\n",
            minipay_core::gateway::reconciliation::SETTLEMENT_FILE_HEADER
        );
        app.admin_post(
            "/v1/admin/reconciliations",
            json!({"upstream": "vana", "date": "2026-11-21", "file": file}),
        )
        .await
        .assert_status(200);
        let alert = app.alerts("reconciliation_mismatch").await.pop().unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let remittance = remittance_needing_attention(&app).await;

        let artifacts = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../target/browser-artifacts")
            .join(format!("{backend:?}").to_lowercase());
        let _ = std::fs::remove_dir_all(&artifacts);
        std::fs::create_dir_all(&artifacts).unwrap();
        let run = tokio::process::Command::new("node")
            .arg(driver_dir().join("console.mjs"))
            .env("BASE", &app.base)
            .env("TOKEN", ADMIN_TOKEN)
            .env("TIMED_OUT", &timed_out)
            .env("ALERT", &alert)
            .env("REMITTANCE", &remittance)
            .env("ARTIFACTS", &artifacts)
            .env("CHROMIUM", chromium())
            .output();
        let out = tokio::time::timeout(Duration::from_secs(180), run)
            .await
            .expect("the browser run finished within 3 minutes")
            .expect("node ran");
        let (stdout, stderr) = (
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
        );
        assert!(
            out.status.success(),
            "the browser run failed:\n{stdout}\n{stderr}\nscreenshots: {}",
            artifacts.display()
        );
        assert!(stdout.contains("console browser test: ok"), "{stdout}");
        for shot in [
            "01-approvals",
            "02-timeline",
            "03-alert-acknowledged",
            "04-remittance-retried",
        ] {
            assert!(artifacts.join(format!("{shot}.png")).exists(), "screenshot {shot}");
        }
        let acked = app.alerts("reconciliation_mismatch").await;
        assert!(
            acked[0]["acknowledged_at"].is_string(),
            "the alert was acknowledged through the page"
        );
    })
    .await
}
