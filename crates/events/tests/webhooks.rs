//! Webhooks tried right after the transaction that recorded them, on SQLite and PostgreSQL:
//! at most `first_attempts_in_flight_max` at once; the rest wait, due, for the retry job, which
//! delivers each of them once.

use jiff::Timestamp;
use minipay_core::business::RegistrationNumber;
use minipay_core::{BusinessId, Clock, ManualClock};
use minipay_events::webhooks::{WebhookConfig, WebhookObject, Webhooks};
use minipay_store::testing::TestDb;
use minipay_store::{BackendKind, NewBusinessRecord, Store, StoreOptions};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// How long a test waits for something to happen before it fails.
const EVENTUALLY_MAX: Duration = Duration::from_secs(30);

/// A receiver that takes each request and answers `200` only once it is let go.
struct HeldReceiver {
    url: String,
    taken: Arc<AtomicUsize>,
    let_go: watch::Sender<bool>,
}

impl HeldReceiver {
    async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks", listener.local_addr().unwrap());
        let taken = Arc::new(AtomicUsize::new(0));
        let (let_go, released) = watch::channel(false);
        let count = taken.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (count, mut released) = (count.clone(), released.clone());
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    // One request per connection: its head, then its body by Content-Length.
                    loop {
                        let n = socket.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buf[..n]);
                        if whole(&request) {
                            break;
                        }
                    }
                    count.fetch_add(1, Ordering::SeqCst);
                    let _ = released.wait_for(|go| *go).await;
                    let _ = socket
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                        .await;
                });
            }
        });
        Self { url, taken, let_go }
    }

    fn taken(&self) -> usize {
        self.taken.load(Ordering::SeqCst)
    }
}

/// Whether `request` holds a whole HTTP request (its head and `Content-Length` bytes of body).
fn whole(request: &[u8]) -> bool {
    let text = String::from_utf8_lossy(request);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    let length = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    body.len() >= length
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let until = tokio::time::Instant::now() + EVENTUALLY_MAX;
    while !done() {
        assert!(tokio::time::Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A business whose webhooks go to `url`.
async fn business(store: &Store, url: &str, at: Timestamp) -> BusinessId {
    let id = BusinessId::new();
    let registration = RegistrationNumber::with_check_digit("123456789").unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.insert_business(&NewBusinessRecord {
        id,
        name: "가나마트",
        registration_number: &registration,
        bank_code: "004",
        account_number_masked: "****1234",
        holder_name: "가나마트",
        fintech_use_num: &format!("FIN{}", id.as_uuid().simple()),
        api_key_hash: id.as_uuid().as_bytes().repeat(2).as_slice(),
        webhook_url: Some(url),
        webhook_secret: "whsec_test",
        at,
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
    id
}

async fn first_attempts_beyond_the_bound_are_left_to_the_retry_job(backend: BackendKind) {
    let Some(db) = TestDb::create(backend).await else {
        return;
    };
    let store = Store::connect(&db.url, &StoreOptions::default()).await.unwrap();
    store.migrate().await.unwrap();
    let clock = Arc::new(ManualClock::new("2026-12-01T00:00:00Z".parse().unwrap()));
    let now = clock.now();
    let receiver = HeldReceiver::start().await;
    let shop = business(&store, &receiver.url, now).await;
    let config = WebhookConfig {
        first_attempts_in_flight_max: 1,
        ..WebhookConfig::default()
    };
    let webhooks = Arc::new(Webhooks::new(store.clone(), clock.clone(), config).unwrap());
    let objects: Vec<WebhookObject> = (0..3)
        .map(|i| WebhookObject {
            business: shop,
            id: uuid::Uuid::now_v7(),
            data: json!({"n": i}),
        })
        .collect();
    let announced: Vec<(&str, &WebhookObject, &str)> = objects
        .iter()
        .map(|o| ("payment.paid", o, receiver.url.as_str()))
        .collect();
    let mut tx = store.begin().await.unwrap();
    let ids = webhooks.record_all(&mut tx, &announced, now).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ids.len(), 3);

    webhooks.attempt_soon(ids.clone());
    eventually("the first attempt at the receiver", || receiver.taken() == 1).await;
    // The one in flight is claimed; the two beyond the bound were not tried, and are due.
    let due = store.read().await.unwrap().due_webhooks(now, 10).await.unwrap();
    assert_eq!(due.len(), 2, "{due:?}");
    assert!(due.iter().all(|id| ids[1..].contains(id)), "{due:?} of {ids:?}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.taken(), 1, "no attempt beyond the bound");

    receiver.let_go.send(true).unwrap();
    let outcome = webhooks.attempt_due(now).await.unwrap();
    assert_eq!(outcome.processed, 2, "{:?}", outcome.details);
    assert_eq!(receiver.taken(), 3, "the two left behind, each once");
    // The first attempt's answer is recorded too: an hour on, nothing is due again.
    let later = now + jiff::SignedDuration::from_hours(1);
    let until = tokio::time::Instant::now() + EVENTUALLY_MAX;
    loop {
        let due = store.read().await.unwrap().due_webhooks(later, 10).await.unwrap();
        if due.is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < until, "still due: {due:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    db.remove().await;
}

mod first_attempts_beyond_the_bound_are_left_to_the_retry_job {
    use minipay_store::BackendKind::{Postgres, Sqlite};
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        super::first_attempts_beyond_the_bound_are_left_to_the_retry_job(Sqlite).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        super::first_attempts_beyond_the_bound_are_left_to_the_retry_job(Postgres).await
    }
}
