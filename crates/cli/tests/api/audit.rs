//! The ledger audit itself: it must catch a corrupted ledger, on both backends (a checker
//! that cannot fail proves nothing).

use crate::helpers::TestApp;
use crate::on_both_backends;
use serde_json::json;

on_both_backends!(the_audit_catches_a_balance_changed_behind_the_ledgers_back);

async fn the_audit_catches_a_balance_changed_behind_the_ledgers_back(app: TestApp) {
    let kim = app.funded_user("Kim", 10_000).await;
    app.assert_invariants().await;

    app.execute_sql(
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
    app.execute_sql(
        "UPDATE accounts SET posted = posted - 1 WHERE id = $1",
        &kim.main_account_id,
    )
    .await;
    app.assert_invariants().await;
}
