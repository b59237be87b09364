//! The pool's connections when PostgreSQL closes them: one that idled past
//! [`IDLE_BEFORE_PING`] is checked and replaced before it is handed out; one in steady use is
//! not checked first, so one statement fails on it before the pool replaces it. (PostgreSQL
//! only: an embedded SQLite file has no server that could close a connection.)

use minipay_store::testing::{TestDb, postgres_admin_url};
use minipay_store::{BackendKind, IDLE_BEFORE_PING, Store, StoreOptions};
use sqlx::Connection;
use std::time::{Duration, Instant};

/// A one-connection store on a fresh PostgreSQL database (`None`: skipped, said why).
async fn one_connection_store() -> Option<(TestDb, Store)> {
    let db = TestDb::create(BackendKind::Postgres).await?;
    let options = StoreOptions {
        pg_connections_max: 1,
        ..StoreOptions::default()
    };
    let store = Store::connect(&db.url, &options).await.unwrap();
    store.ping().await.unwrap();
    Some((db, store))
}

/// Closes, from the server's side, every connection the store opened to the test database;
/// how many it closed.
async fn close_connections_to(db: &TestDb) -> i64 {
    let name = db.url.rsplit_once('/').unwrap().1;
    let mut admin = sqlx::PgConnection::connect(&postgres_admin_url()).await.unwrap();
    let closed: i64 = sqlx::query_scalar(
        "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity
         WHERE datname = $1 AND application_name = 'minipay'",
    )
    .bind(name)
    .fetch_one(&mut admin)
    .await
    .unwrap();
    closed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_while_it_idled_is_replaced_before_use() {
    let Some((db, store)) = one_connection_store().await else {
        return;
    };
    assert_eq!(close_connections_to(&db).await, 1, "the pool's one connection was open");
    tokio::time::sleep(IDLE_BEFORE_PING + Duration::from_millis(200)).await;

    store
        .ping()
        .await
        .expect("the closed connection is found and replaced before use");
    store.ping().await.unwrap();
    db.remove().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_in_steady_use_costs_one_statement() {
    let Some((db, store)) = one_connection_store().await else {
        return;
    };
    let last_used = Instant::now();
    // Give the connection's return to the pool (sqlx checks it then) time to finish first.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(close_connections_to(&db).await, 1, "the pool's one connection was open");

    let first = store.ping().await;
    let idled = last_used.elapsed();
    store
        .ping()
        .await
        .expect("the pool replaces a connection a statement found closed");
    // Idle for less than IDLE_BEFORE_PING, it was handed out unchecked. (On a machine that
    // paused past the window it was checked and replaced, and the first statement passed.)
    if idled < IDLE_BEFORE_PING {
        assert!(
            first.is_err(),
            "handed out unchecked after {idled:?}: the statement found it closed"
        );
    }
    db.remove().await;
}
