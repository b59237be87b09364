//! `minipay loadtest` against a real server: the mix scenario runs every kind of request,
//! thresholds are judged, the audit runs, and the HTML and JSON reports are written.

use crate::helpers::{ADMIN_TOKEN, TestApp, minipay_bin};
use crate::on_both_backends;
use serde_json::{Value, json};

on_both_backends!(the_load_tool_drives_a_server_and_reports);

async fn loadtest(app: &TestApp, dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    tokio::process::Command::new(minipay_bin())
        .args([
            "loadtest",
            "--target",
            &app.base,
            "--scenario",
            "mix",
            "--users",
            "4",
            "--accounts",
            "6",
        ])
        .args([
            "--ramp-seconds",
            "0",
            "--duration-seconds",
            "2",
            "--admin-token",
            ADMIN_TOKEN,
        ])
        .arg("--report-dir")
        .arg(dir)
        .args(extra)
        .output()
        .await
        .expect("minipay loadtest runs")
}

async fn the_load_tool_drives_a_server_and_reports(app: TestApp) {
    let dir = std::env::temp_dir().join(format!("minipay-loadtest-{}", uuid::Uuid::new_v4().simple()));
    let out = loadtest(&app, &dir, &["--max-error-rate", "0"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["scenario"], json!("mix"));
    assert_eq!(report["audit"]["ok"], json!(true), "{report}");
    let actions = report["actions"].as_array().unwrap();
    let ok = |name: &str| {
        actions
            .iter()
            .find(|a| a["action"] == json!(name))
            .map_or(0, |a| a["ok"].as_u64().unwrap())
    };
    assert!(ok("transfer") > 0, "{report}");
    assert!(ok("history") > 0, "{report}");
    for a in actions {
        assert_eq!(a["errors"], json!(0), "{a}");
    }
    assert!(
        report["thresholds"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["passed"] == json!(true))
    );
    let html = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(
        html.contains("minipay load test: mix") && html.contains("PASS"),
        "{html}"
    );

    // An impossible latency threshold fails the run (exit 1) and says so in the report.
    let out = loadtest(&app, &dir, &["--max-p99-ms", "0.000001"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missed a threshold"), "{stderr}");
    let report: Value = serde_json::from_slice(&std::fs::read(dir.join("report.json")).unwrap()).unwrap();
    assert!(
        report["thresholds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["passed"] == json!(false))
    );
    let _ = std::fs::remove_dir_all(&dir);
}
