//! Transaction history: keyset pages that never skip or repeat, filters, the names rule,
//! monthly statements, the 12-month retention with its archive and `history export`, and the
//! two history jobs running at once.

use crate::helpers::{Backend, TestApp, TestUser, join_all, minipay_bin, run_with};
use crate::on_both_backends;
use jiff::Timestamp;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

on_both_backends!(
    pages_never_skip_or_repeat_entries_written_at_one_instant,
    history_filters_by_time_and_kind_and_refuses_bad_queries,
    the_receiver_sees_the_display_name_and_renames_never_rewrite_the_past,
    statements_agree_with_the_entries_month_by_month,
    partitions_and_retention_run_side_by_side_with_payments,
);

mod retention_keeps_twelve_months_and_archives_what_it_retires {
    use crate::helpers::Backend;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn sqlite() {
        super::retention_scenario(Backend::Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres() {
        super::retention_scenario(Backend::Postgres).await
    }
}

/// PostgreSQL only: the lock cycle it builds is between PostgreSQL's table locks.
mod retention_gives_way_to_a_reader_in_a_lock_cycle_and_retries {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn postgres() {
        use crate::helpers::{Backend, run};
        run(Backend::Postgres, super::retention_gives_way_and_retries).await
    }
}

fn at(e: &Value) -> Timestamp {
    e["occurred_at"].as_str().unwrap().parse().unwrap()
}

fn signed(e: &Value) -> i64 {
    let amount = e["amount"].as_i64().unwrap();
    match e["direction"].as_str().unwrap() {
        "in" => amount,
        "out" => -amount,
        other => panic!("direction {other}"),
    }
}

fn ids(entries: &[Value]) -> Vec<String> {
    entries.iter().map(|e| e["id"].as_str().unwrap().to_owned()).collect()
}

/// Newest first with ties on time broken by id (descending), no entry twice, and every
/// `balance_after` following from the one before it, down to `opening`.
fn assert_well_ordered(entries: &[Value], opening: i64) {
    let unique: HashSet<String> = ids(entries).into_iter().collect();
    assert_eq!(unique.len(), entries.len(), "an entry was repeated");
    for pair in entries.windows(2) {
        let (newer, older) = (&pair[0], &pair[1]);
        let key = |e: &Value| (at(e), uuid::Uuid::parse_str(e["id"].as_str().unwrap()).unwrap());
        assert!(key(newer) > key(older), "out of order: {newer} before {older}");
        assert_eq!(
            newer["balance_after"].as_i64().unwrap() - signed(newer),
            older["balance_after"].as_i64().unwrap(),
            "balance_after does not follow: {older} then {newer}"
        );
    }
    if let Some(oldest) = entries.last() {
        assert_eq!(oldest["balance_after"].as_i64().unwrap() - signed(oldest), opening);
    }
}

async fn pages_never_skip_or_repeat_entries_written_at_one_instant(app: TestApp) {
    let lee = app.user("Lee").await;
    let mut senders = Vec::new();
    for name in ["Kim", "Park", "Choi"] {
        senders.push(app.funded_user(name, 300_000).await);
    }
    // The manual clock stands still: all 60 transfers are made at one instant, 20 from each
    // sender at once.
    let sent = join_all(senders.iter().cloned().map(|s| {
        let (app, lee) = (app.clone(), lee.clone());
        async move {
            for i in 0..20 {
                app.transfer(&s, &lee, 1_000 + i).await.assert_status(201);
            }
        }
    }))
    .await;
    assert_eq!(sent.len(), 3);
    let balance = app.balance(&lee).await;
    assert_eq!(balance, 3 * (20 * 1_000 + 190));

    let entries = app.history(&lee, &lee.main_account_id, "limit=7").await;
    assert_eq!(entries.len(), 60);
    assert_well_ordered(&entries, 0);
    assert_eq!(entries[0]["balance_after"], json!(balance));
    // An account's entries are kept strictly ordered in time, so at one clock instant they are
    // a microsecond apart.
    let t0: Timestamp = crate::helpers::T0.parse().unwrap();
    assert!(
        entries
            .iter()
            .all(|e| at(e) >= t0 && at(e) < t0 + jiff::SignedDuration::from_millis(1))
    );
    let one_page = app.history(&lee, &lee.main_account_id, "limit=200").await;
    assert_eq!(ids(&one_page), ids(&entries), "the page size does not change the order");

    // Now true ties: the same 60 journals moved to one identical instant (as imported or
    // migrated data could be). The cursor's id breaks them.
    let tie = "(SELECT MAX(occurred_at) FROM entries WHERE account_id = $1)";
    let mine = "(SELECT journal_id FROM entries WHERE account_id = $1)";
    assert_eq!(
        app.execute_sql(
            &format!("UPDATE journals SET occurred_at = {tie} WHERE id IN {mine}"),
            &lee.main_account_id
        )
        .await,
        60
    );
    assert_eq!(
        app.execute_sql(
            &format!("UPDATE entries SET occurred_at = {tie} WHERE journal_id IN {mine}"),
            &lee.main_account_id
        )
        .await,
        120
    );
    for limit in [1, 7, 60] {
        let tied = app.history(&lee, &lee.main_account_id, &format!("limit={limit}")).await;
        assert_eq!(tied.len(), 60, "limit {limit}");
        assert!(tied.iter().all(|e| at(e) == at(&tied[0])), "all at one instant");
        assert_well_ordered(&tied, 0);
        let unique: HashSet<String> = ids(&tied).into_iter().collect();
        assert_eq!(unique, ids(&entries).into_iter().collect::<HashSet<_>>());
    }
}

async fn history_filters_by_time_and_kind_and_refuses_bad_queries(app: TestApp) {
    let kim = app.funded_user("Kim", 50_000).await;
    let mut kim = kim;
    let lee = app.user("Lee").await;
    app.advance_clock_for(3_600, &mut [&mut kim]).await;
    app.transfer(&kim, &lee, 10_000).await.assert_status(201);
    app.advance_clock_for(3_600, &mut [&mut kim]).await;
    let savings = app.open_savings(&kim, "free", None).await;
    app.post(
        &format!("/v1/accounts/{savings}/deposits"),
        &kim.token,
        json!({"amount": 5_000}),
    )
    .await
    .assert_status(201);

    let main = kim.main_account_id.clone();
    let all = app.history(&kim, &main, "").await;
    let kinds: Vec<&str> = all.iter().map(|e| e["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["savings_deposit", "transfer", "charge"]);
    assert_well_ordered(&all, 0);
    let (deposit, transfer, charge) = (&all[0], &all[1], &all[2]);
    assert_eq!(
        (
            transfer["direction"].clone(),
            transfer["amount"].clone(),
            transfer["balance_after"].clone()
        ),
        (json!("out"), json!(10_000), json!(40_000))
    );
    assert_eq!(deposit["counterparty"]["account_id"], json!(savings));

    let query = |q: &str| {
        let (app, kim, main) = (app.clone(), kim.clone(), main.clone());
        let q = q.to_owned();
        async move { ids(&app.history(&kim, &main, &q).await) }
    };
    let enc = |t: Timestamp| t.to_string().replace('+', "%2B");
    for (kind, expected) in [("charge", charge), ("transfer", transfer), ("savings_deposit", deposit)] {
        assert_eq!(
            query(&format!("kind={kind}")).await,
            ids(std::slice::from_ref(expected)),
            "{kind}"
        );
    }
    assert!(query("kind=interest").await.is_empty());
    // `from` is inclusive, `to` exclusive.
    assert_eq!(query(&format!("from={}", enc(at(transfer)))).await, ids(&all[..2]));
    assert_eq!(query(&format!("to={}", enc(at(transfer)))).await, ids(&all[2..]));
    assert_eq!(
        query(&format!("from={}&to={}", enc(at(transfer)), enc(at(deposit)))).await,
        ids(&all[1..2])
    );
    assert_eq!(
        query(&format!("from={}&kind=charge", enc(at(transfer)))).await,
        Vec::<String>::new()
    );
    // An offset in the query means the same instant.
    let in_seoul = at(transfer).to_zoned(jiff::tz::TimeZone::get("Asia/Seoul").unwrap());
    let seoul = in_seoul
        .strftime("%Y-%m-%dT%H:%M:%S%.f%:z")
        .to_string()
        .replace('+', "%2B");
    assert_eq!(query(&format!("from={seoul}")).await, ids(&all[..2]));

    // The savings account has its own history.
    let s = app.history(&kim, &savings, "").await;
    assert_eq!(s.len(), 1);
    assert_eq!(
        (s[0]["kind"].clone(), s[0]["direction"].clone(), s[0]["amount"].clone()),
        (json!("savings_deposit"), json!("in"), json!(5_000))
    );
    assert_eq!(s[0]["counterparty"]["account_id"], json!(main));

    let path = |q: &str| format!("/v1/accounts/{main}/history?{q}");
    for bad in [
        "kind=gift",
        "kind=",
        "limit=0",
        "limit=201",
        "limit=ten",
        "cursor=not-a-cursor",
        "from=yesterday",
        "from=1990-01-01T00:00:00Z",
        "from=2026-11-21T05:00:00Z&to=2026-11-21T05:00:00Z",
        "from=2026-11-22T00:00:00Z&to=2026-11-21T00:00:00Z",
        "page=2",
    ] {
        let r = app.get(&path(bad), &kim.token).await;
        r.assert_error(400, "validation_failed");
        assert!(!r.text.contains("panicked"), "{bad}: {}", r.text);
    }
    // Someone else's account, an unknown one, a malformed id: not found, alike.
    app.get(&format!("/v1/accounts/{}/history", lee.main_account_id), &kim.token)
        .await
        .assert_error(404, "not_found");
    app.get(&format!("/v1/accounts/{}/history", uuid::Uuid::now_v7()), &kim.token)
        .await
        .assert_error(404, "not_found");
    app.get("/v1/accounts/nope/history", &kim.token)
        .await
        .assert_error(404, "not_found");
    let anonymous = app
        .request(Method::GET, &format!("/v1/accounts/{main}/history"), None, None, None)
        .await;
    anonymous.assert_error(401, "unauthorized");
}

async fn rename(app: &TestApp, user: &TestUser, name: &str) {
    app.request(
        Method::PATCH,
        "/v1/users/me",
        Some(&user.token),
        None,
        Some(json!({"name": name})),
    )
    .await
    .assert_status(200);
}

async fn the_receiver_sees_the_display_name_and_renames_never_rewrite_the_past(app: TestApp) {
    let kim = app.funded_user("Kim Minsu", 100_000).await;
    let lee = app.user("Lee Jiwoo").await;
    let body = json!({"to_user_id": lee.id, "amount": 7_000, "display_name": "Secret Santa", "memo": "for you"});
    app.post("/v1/transfers", &kim.token, body).await.assert_status(201);
    app.transfer(&kim, &lee, 3_000).await.assert_status(201);

    let received = app.history(&lee, &lee.main_account_id, "").await;
    let shown: Vec<(Value, Value)> = received
        .iter()
        .map(|e| (e["counterparty"]["name"].clone(), e["amount"].clone()))
        .collect();
    assert_eq!(
        shown,
        [
            (json!("Kim Minsu"), json!(3_000)),
            (json!("Secret Santa"), json!(7_000))
        ],
        "the receiver sees the display name, or the sender's name when none was given"
    );
    assert_eq!(received[1]["memo"], json!("for you"));
    assert!(received.iter().all(|e| e["direction"] == json!("in")
        && e["counterparty"]["user_id"] == json!(kim.id)
        && e["counterparty"]["account_id"] == json!(kim.main_account_id)));

    let sent = app.history(&kim, &kim.main_account_id, "kind=transfer").await;
    assert!(
        sent.iter().all(|e| e["direction"] == json!("out")
            && e["counterparty"]["name"] == json!("Lee Jiwoo")
            && e["counterparty"]["user_id"] == json!(lee.id)),
        "the sender's own entries keep the receiver's real name: {sent:?}"
    );
    assert_eq!(
        received[1]["journal_id"], sent[1]["journal_id"],
        "both sides of one transfer are one journal"
    );

    rename(&app, &kim, "Kim Minsu (new)").await;
    rename(&app, &lee, "Lee Jiwoo (new)").await;
    assert_eq!(app.history(&lee, &lee.main_account_id, "").await, received);
    assert_eq!(app.history(&kim, &kim.main_account_id, "kind=transfer").await, sent);

    app.transfer(&kim, &lee, 1_000).await.assert_status(201);
    let newest = &app.history(&lee, &lee.main_account_id, "limit=1").await[0];
    assert_eq!(newest["counterparty"]["name"], json!("Kim Minsu (new)"));
    let newest = &app.history(&kim, &kim.main_account_id, "limit=1").await[0];
    assert_eq!(newest["counterparty"]["name"], json!("Lee Jiwoo (new)"));
}

async fn statement(app: &TestApp, user: &TestUser, account: &str, month: &str) -> Value {
    let r = app
        .get(&format!("/v1/accounts/{account}/statements/{month}"), &user.token)
        .await;
    r.assert_status(200).clone()
}

/// The statement's numbers recomputed from the month's history entries.
async fn statement_from_entries(app: &TestApp, user: &TestUser, account: &str, from: &str, to: &str) -> Value {
    let enc = |s: &str| s.replace('+', "%2B");
    let entries = app
        .history(user, account, &format!("from={}&to={}", enc(from), enc(to)))
        .await;
    let total_in: i64 = entries.iter().map(signed).filter(|a| *a > 0).sum();
    let total_out: i64 = -entries.iter().map(signed).filter(|a| *a < 0).sum::<i64>();
    json!({"total_in": total_in, "total_out": total_out, "count": entries.len(),
           "closing_balance": entries.first().map(|e| e["balance_after"].clone())})
}

async fn statements_agree_with_the_entries_month_by_month(app: TestApp) {
    app.set_clock("2026-08-20T03:00:00Z").await;
    let mut kim = app.funded_user("Kim", 100_000).await;
    let mut lee = app.user("Lee").await;
    app.transfer(&kim, &lee, 30_000).await.assert_status(201);
    // 00:30 on 1 September in Seoul (still 31 August in UTC): September's.
    app.set_clock("2026-08-31T15:30:00Z").await;
    app.log_in_again(&mut kim).await;
    app.charge(&kim, 50_000).await.assert_status(201);
    app.set_clock("2026-09-10T03:00:00Z").await;
    app.log_in_again(&mut kim).await;
    app.log_in_again(&mut lee).await;
    app.transfer(&lee, &kim, 10_000).await.assert_status(201);
    app.transfer(&kim, &lee, 5_000).await.assert_status(201);
    // Nothing in October.
    app.set_clock("2026-11-02T03:00:00Z").await;
    app.log_in_again(&mut kim).await;
    app.log_in_again(&mut lee).await;
    app.transfer(&kim, &lee, 1_000).await.assert_status(201);

    let main = kim.main_account_id.clone();
    let expected = [
        ("2026-07", 0, 0, 0, 0, 0),
        ("2026-08", 0, 100_000, 30_000, 70_000, 2),
        ("2026-09", 70_000, 60_000, 5_000, 125_000, 3),
        ("2026-10", 125_000, 0, 0, 125_000, 0),
        ("2026-11", 125_000, 0, 1_000, 124_000, 1),
    ];
    for (month, opening, total_in, total_out, closing, count) in expected {
        let s = statement(&app, &kim, &main, month).await;
        assert_eq!(
            s,
            json!({"month": month, "opening_balance": opening, "closing_balance": closing,
                   "total_in": total_in, "total_out": total_out, "count": count}),
            "{month}"
        );
    }
    assert_eq!(app.balance(&kim).await, 124_000);
    // Each statement agrees with the month's entries (Seoul month bounds).
    for (month, from, to) in [
        ("2026-08", "2026-08-01T00:00:00+09:00", "2026-09-01T00:00:00+09:00"),
        ("2026-09", "2026-09-01T00:00:00+09:00", "2026-10-01T00:00:00+09:00"),
        ("2026-11", "2026-11-01T00:00:00+09:00", "2026-12-01T00:00:00+09:00"),
    ] {
        for (user, account) in [(&kim, &main), (&lee, &lee.main_account_id)] {
            let s = statement(&app, user, account, month).await;
            let e = statement_from_entries(&app, user, account, from, to).await;
            assert_eq!(
                (&s["total_in"], &s["total_out"], &s["count"], &s["closing_balance"]),
                (&e["total_in"], &e["total_out"], &e["count"], &e["closing_balance"]),
                "{month}"
            );
        }
    }

    let path = |m: &str| format!("/v1/accounts/{main}/statements/{m}");
    for bad in [
        "2026-13",
        "2026-00",
        "2026-1",
        "202608",
        "26-08",
        "2026-08-01",
        "1999-12",
        "2026-12",
    ] {
        app.get(&path(bad), &kim.token)
            .await
            .assert_error(400, "validation_failed");
    }
    app.get(
        &format!("/v1/accounts/{}/statements/2026-09", lee.main_account_id),
        &kim.token,
    )
    .await
    .assert_error(404, "not_found");
}

/// A directory of its own under the system temp directory.
fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("minipay-{name}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The lines of a gzip-compressed CSV file.
fn gunzip_lines(path: &Path) -> Vec<String> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text.lines().map(str::to_owned).collect()
}

/// Whether PostgreSQL has a table of this name (a month's partition).
async fn pg_table_exists(app: &TestApp, name: &str) -> bool {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(app.db_url()).await.unwrap();
    sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
        .bind(name)
        .fetch_one(&mut c)
        .await
        .unwrap()
}

/// `minipay history export` against the test's database.
fn export(app: &TestApp, month: &str, out: &Path) -> std::process::Output {
    std::process::Command::new(minipay_bin())
        .args(["history", "export", "--month", month, "--out"])
        .arg(out)
        .args(["--database-url", app.db_url()])
        .env("MINIPAY_LOG", "error")
        .output()
        .unwrap()
}

async fn retention_scenario(backend: Backend) {
    let archive = scratch_dir("archive");
    let dir = archive.clone();
    let configure = move |s: &mut minipay_server::Settings| {
        s.history_archive_dir = Some(dir);
        // SQLite retires a month in several transactions of at most 3 entries.
        s.history_retire_slice_max = 3;
    };
    run_with(backend, configure, |app| retention(app, archive)).await
}

async fn retention(app: TestApp, archive: PathBuf) {
    // October 2025: a charge, a transfer, a savings deposit.
    app.set_clock("2025-10-15T03:00:00Z").await;
    let mut kim = app.funded_user("Kim", 100_000).await;
    let mut lee = app.funded_user("Lee", 10_000).await;
    app.transfer(&kim, &lee, 20_000).await.assert_status(201);
    let savings = app.open_savings(&lee, "free", None).await;
    app.post(
        &format!("/v1/accounts/{savings}/deposits"),
        &lee.token,
        json!({"amount": 5_000}),
    )
    .await
    .assert_status(201);
    let partitions = app.run_job("history-partitions").await;
    assert_eq!(partitions["processed"], json!(4), "this month and 3 ahead");
    if app.backend == Backend::Postgres {
        assert!(pg_table_exists(&app, "entries_p202510").await);
        assert!(pg_table_exists(&app, "entries_p202601").await);
    }

    // November 2025: transfers both ways and a night of interest.
    app.set_clock("2025-11-20T03:00:00Z").await;
    app.log_in_again(&mut kim).await;
    app.log_in_again(&mut lee).await;
    app.transfer(&lee, &kim, 3_000).await.assert_status(201);
    app.transfer(&kim, &lee, 7_000).await.assert_status(201);
    app.set_clock("2025-11-20T19:00:00Z").await;
    assert_eq!(app.run_job("savings-interest").await["processed"], json!(1));

    // December 2025: kept.
    app.set_clock("2025-12-10T03:00:00Z").await;
    app.log_in_again(&mut kim).await;
    app.log_in_again(&mut lee).await;
    app.transfer(&kim, &lee, 1_000).await.assert_status(201);

    let accounts = |kim: &TestUser, lee: &TestUser| {
        [
            (kim.clone(), kim.main_account_id.clone()),
            (lee.clone(), lee.main_account_id.clone()),
            (lee.clone(), savings.clone()),
        ]
    };
    let mut before = Vec::new();
    for (user, account) in &accounts(&kim, &lee) {
        before.push((
            app.account(user, account).await["balance"].clone(),
            app.history(user, account, "").await,
            statement(&app, user, account, "2025-12").await,
        ));
    }
    let kept_from: Timestamp = "2025-12-01T00:00:00+09:00".parse().unwrap();

    // 13 months later: October and November 2025 are past the 12 months kept.
    app.set_clock("2026-12-01T03:00:00Z").await;
    app.log_in_again(&mut kim).await;
    app.log_in_again(&mut lee).await;
    // Retiring takes no account lock: on PostgreSQL it completes while another transaction
    // holds Kim's account row.
    let holder = match app.backend {
        Backend::Postgres => Some(lock_account_row(&app, &kim.main_account_id).await),
        Backend::Sqlite => None,
    };
    let ran = app.run_job("history-retention").await;
    drop(holder);
    assert_eq!(ran["details"]["months"], json!(["2025-10", "2025-11"]), "{ran}");
    app.assert_invariants().await;

    let mut retired_ids = HashSet::new();
    for ((user, account), (balance, history, december)) in accounts(&kim, &lee).iter().zip(&before) {
        assert_eq!(
            &app.account(user, account).await["balance"],
            balance,
            "balances unchanged"
        );
        let (kept, gone): (Vec<Value>, Vec<Value>) = history.iter().cloned().partition(|e| at(e) >= kept_from);
        assert!(!gone.is_empty());
        retired_ids.extend(ids(&gone));
        assert_eq!(
            &app.history(user, account, "").await,
            &kept,
            "only the kept months remain"
        );
        assert_eq!(&statement(&app, user, account, "2025-12").await, december);
        for month in ["2025-10", "2025-11"] {
            app.get(&format!("/v1/accounts/{account}/statements/{month}"), &user.token)
                .await
                .assert_error(404, "not_found");
        }
    }

    // The archive holds every retired entry, the system accounts' sides included.
    let mut archived = Vec::new();
    for month in ["2025-10", "2025-11"] {
        let lines = gunzip_lines(&archive.join(format!("entries-{month}.csv.gz")));
        assert_eq!(lines[0], minipay_services::history::EXPORT_COLUMNS);
        archived.extend(lines[1..].iter().cloned());
    }
    assert_eq!(ran["processed"], json!(archived.len()), "{ran}");
    let archived_ids: HashSet<String> = archived
        .iter()
        .map(|l| l.split(',').next().unwrap().to_owned())
        .collect();
    assert!(retired_ids.is_subset(&archived_ids), "retired but not archived");
    let kim_transfer_out = before[0].1.iter().find(|e| e["amount"] == json!(20_000)).unwrap();
    let line = archived
        .iter()
        .find(|l| l.starts_with(kim_transfer_out["id"].as_str().unwrap()))
        .unwrap();
    let fields: Vec<&str> = line.split(',').collect();
    assert_eq!(
        (fields[3], fields[5], fields[6], fields[7], fields[8]),
        (kim.main_account_id.as_str(), "transfer", "-20000", "80000", "Lee")
    );
    if app.backend == Backend::Postgres {
        assert!(!pg_table_exists(&app, "entries_p202510").await, "dropped whole");
        assert!(!pg_table_exists(&app, "journals_p202511").await, "dropped whole");
        assert!(pg_table_exists(&app, "entries_p202512").await);
    }

    // Nothing more to retire; a retired month cannot be exported; a kept one can.
    let again = app.run_job("history-retention").await;
    assert_eq!(
        (again["processed"].clone(), again["details"]["months"].clone()),
        (json!(0), json!([]))
    );
    let out = archive.join("december.csv.gz");
    let refused = export(&app, "2025-10", &out);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("retired"),
        "{refused:?}"
    );
    let exported = export(&app, "2025-12", &out);
    assert!(exported.status.success(), "{exported:?}");
    assert!(String::from_utf8_lossy(&exported.stdout).contains("exported 2 entries of 2025-12"));
    let lines = gunzip_lines(&out);
    let december_ids: HashSet<String> = lines[1..]
        .iter()
        .map(|l| l.split(',').next().unwrap().to_owned())
        .collect();
    let kept_ids: HashSet<String> = before[..2]
        .iter()
        .flat_map(|(_, h, _)| h.iter().filter(|e| at(e) >= kept_from).cloned().collect::<Vec<_>>())
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(december_ids, kept_ids);

    // Money keeps moving on top of the carried balances.
    app.transfer(&kim, &lee, 500).await.assert_status(201);
    let kim_history = app.history(&kim, &kim.main_account_id, "").await;
    let opening = statement(&app, &kim, &kim.main_account_id, "2025-12").await["opening_balance"]
        .as_i64()
        .unwrap();
    assert_well_ordered(&kim_history, opening);

    // A month later December 2025 goes too, carried on top of the balances carried before.
    let balances = [app.balance(&kim).await, app.balance(&lee).await];
    app.set_clock("2027-01-01T03:00:00Z").await;
    app.log_in_again(&mut kim).await;
    app.log_in_again(&mut lee).await;
    let ran = app.run_job("history-retention").await;
    assert_eq!(ran["details"]["months"], json!(["2025-12"]), "{ran}");
    app.assert_invariants().await;
    assert_eq!([app.balance(&kim).await, app.balance(&lee).await], balances);
    app.get(
        &format!("/v1/accounts/{}/statements/2025-12", kim.main_account_id),
        &kim.token,
    )
    .await
    .assert_error(404, "not_found");
    let kept = app.history(&kim, &kim.main_account_id, "").await;
    assert_eq!(
        ids(&kept),
        ids(&kim_history[..1]),
        "only the 500 of December 2026 is left"
    );
    let december = statement(&app, &kim, &kim.main_account_id, "2026-12").await;
    assert_eq!(
        (
            december["opening_balance"].as_i64().unwrap() - 500,
            december["count"].clone()
        ),
        (balances[0], json!(1))
    );
    std::fs::remove_dir_all(&archive).unwrap();
}

/// Holds a row lock on the account until the returned connection is dropped (PostgreSQL).
async fn lock_account_row(app: &TestApp, account: &str) -> sqlx::PgConnection {
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(app.db_url()).await.unwrap();
    sqlx::query("BEGIN").execute(&mut c).await.unwrap();
    sqlx::query("SELECT id FROM accounts WHERE id = $1 FOR UPDATE")
        .bind(uuid::Uuid::parse_str(account).unwrap())
        .fetch_one(&mut c)
        .await
        .unwrap();
    c
}

/// Rounds of the two history jobs run at once.
const SIDE_BY_SIDE_ROUNDS: usize = 20;
/// How far the clock moves between rounds: past the partitions made ahead (this month and 3
/// more), so that every round both makes partitions (moving rows out of DEFAULT) and retires
/// months, each of which takes the partitioned tables' locks.
const SIDE_BY_SIDE_ROUND_MONTHS: i64 = 5;

/// A new user with 10,000 won who sends 1,000 to another new user, at the clock's now (new
/// users every month: a token lasts an hour of the clock, and logins are throttled).
async fn pay_this_month(app: &TestApp) -> (TestUser, TestUser) {
    let kim = app.funded_user("Kim", 10_000).await;
    let lee = app.user("Lee").await;
    app.transfer(&kim, &lee, 1_000).await.assert_status(201);
    (kim, lee)
}

/// `history-partitions` catching up after the clock jumped while `history-retention` runs by
/// hand, with a payment in flight: neither job fails on the other's locks (issue #11), the
/// payment goes through, and every month is retired once with its balances carried.
async fn partitions_and_retention_run_side_by_side_with_payments(app: TestApp) {
    let months = |n: i64| jiff::Span::new().months(n);
    let seoul_noon = |d: jiff::civil::Date| format!("{d}T03:00:00Z");
    let mut day = jiff::civil::date(2025, 1, 15);
    app.set_clock(&seoul_noon(day)).await;
    app.run_job("history-partitions").await;
    for _ in 0..3 {
        app.set_clock(&seoul_noon(day)).await;
        pay_this_month(&app).await;
        day = day.checked_add(months(1)).unwrap();
    }
    // First a jump past the 12 months kept, then SIDE_BY_SIDE_ROUND_MONTHS a round.
    day = day.checked_add(months(13)).unwrap();
    let mut retired: Vec<String> = Vec::new();
    let mut senders = Vec::new();
    for round in 0..SIDE_BY_SIDE_ROUNDS {
        app.set_clock(&seoul_noon(day)).await;
        // Lands in DEFAULT: this month has no partition yet.
        let (kim, lee) = pay_this_month(&app).await;
        let (partitions, retention, paid) = tokio::join!(
            app.run_job("history-partitions"),
            app.run_job("history-retention"),
            app.transfer(&lee, &kim, 500),
        );
        paid.assert_status(201);
        assert_eq!(partitions["error"], Value::Null, "round {round}: {partitions}");
        assert_eq!(retention["error"], Value::Null, "round {round}: {retention}");
        let retired_now = retention["details"]["months"].as_array().unwrap();
        retired.extend(retired_now.iter().map(|m| m.as_str().unwrap().to_owned()));
        senders.push(kim);
        day = day.checked_add(months(SIDE_BY_SIDE_ROUND_MONTHS)).unwrap();
    }

    assert_eq!(retired[..4], ["2025-01", "2025-02", "2025-03", "2025-04"]);
    assert!(
        retired.windows(2).all(|w| w[0] < w[1]),
        "each month retired once, oldest first: {retired:?}"
    );
    // The last 12 months (3 rounds) of history are kept; every balance is, retired or not.
    for (round, kim) in senders.iter_mut().enumerate() {
        app.log_in_again(kim).await;
        let kept = app.history(kim, &kim.main_account_id, "").await;
        let expected = if round + 3 >= SIDE_BY_SIDE_ROUNDS { 3 } else { 0 };
        assert_eq!(kept.len(), expected, "round {round}: {kept:?}");
        assert_eq!(app.balance(kim).await, 10_000 - 1_000 + 500, "round {round}");
    }
}

/// Retention's retiring transaction meets a transaction that took the tables the other way
/// round (entries, then journals — as the interest run does when it reads entries before
/// posting): the job gives way before PostgreSQL's deadlock check could pick the other
/// transaction, and its retry then retires the month.
async fn retention_gives_way_and_retries(app: TestApp) {
    use sqlx::Connection;
    app.set_clock("2025-10-15T03:00:00Z").await;
    app.run_job("history-partitions").await;
    pay_this_month(&app).await;
    app.set_clock("2026-12-01T03:00:00Z").await;

    let mut other = sqlx::PgConnection::connect(app.db_url()).await.unwrap();
    sqlx::raw_sql("BEGIN; SELECT COUNT(*) FROM entries;")
        .execute(&mut other)
        .await
        .unwrap();
    let retention = tokio::spawn({
        let app = app.clone();
        async move { app.run_job("history-retention").await }
    });
    // Once the job holds `journals` and waits for `entries`, close the cycle.
    let mut watcher = sqlx::PgConnection::connect(app.db_url()).await.unwrap();
    let waiting = "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted AND relation = 'entries'::regclass)";
    while !sqlx::query_scalar::<_, bool>(waiting)
        .fetch_one(&mut watcher)
        .await
        .unwrap()
    {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    sqlx::raw_sql("SELECT COUNT(*) FROM journals; COMMIT;")
        .execute(&mut other)
        .await
        .expect("the other transaction is not the one that gives way");
    let ran = retention.await.unwrap();
    assert_eq!(ran["details"]["months"], json!(["2025-10", "2025-11"]), "{ran}");
    // Its first attempt waited out its lock wait (500 ms) before giving way.
    assert!(ran["details"]["retire_seconds"].as_f64().unwrap() >= 0.5, "{ran}");
    assert!(!pg_table_exists(&app, "entries_p202510").await, "dropped on the retry");
}
