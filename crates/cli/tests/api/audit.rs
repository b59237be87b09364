//! The ledger audit itself: it must catch a corrupted ledger, on both backends (a checker
//! that cannot fail proves nothing).

use crate::helpers::{Backend, TestApp};
use crate::on_both_backends;
use serde_json::json;

on_both_backends!(the_audit_catches_a_balance_changed_behind_the_ledgers_back);

async fn execute(app: &TestApp, sql: &str, account: &str) {
    let id = uuid::Uuid::parse_str(account).unwrap();
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match app.backend {
        Backend::Postgres => {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(app.db_url()).await.unwrap();
            sqlx::query(sql).bind(id).execute(&mut c).await.unwrap();
        }
        Backend::Sqlite => {
            use sqlx::Connection;
            let mut c = sqlx::SqliteConnection::connect(app.db_url()).await.unwrap();
            sqlx::query(sql).bind(id).execute(&mut c).await.unwrap();
        }
    }
}

async fn the_audit_catches_a_balance_changed_behind_the_ledgers_back(app: TestApp) {
    let kim = app.funded_user("Kim", 10_000).await;
    app.assert_invariants().await;

    execute(
        &app,
        "UPDATE accounts SET posted = posted + 1 WHERE id = $1",
        &kim.main_account_id,
    )
    .await;
    let audit = app.admin_get("/v1/admin/ledger/audit").await;
    let audit = audit.assert_status(200).clone();
    assert_eq!(audit["ok"], json!(false));
    let violations: Vec<String> = audit["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert!(
        violations
            .iter()
            .any(|v| v.starts_with("2 sum of all posted balances is not zero")),
        "{violations:?}"
    );
    let named = format!(
        "3 posted differs from opening balance + entries: {}",
        kim.main_account_id
    );
    assert!(violations.contains(&named), "{violations:?}");

    // Put it back so the scenario's closing audit passes.
    execute(
        &app,
        "UPDATE accounts SET posted = posted - 1 WHERE id = $1",
        &kim.main_account_id,
    )
    .await;
    app.assert_invariants().await;
}
