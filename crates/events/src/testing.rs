//! Test support (feature `testing`): the NATS server tests use (skipped with a visible message
//! when unreachable, unless required: CI, or `MINIPAY_TEST_REQUIRE_NATS=1`), a stream and
//! subjects of their own per test, and a `nats-server` process a test can stop and start.

use crate::EventsConfig;
use std::path::PathBuf;
use std::time::Duration;

/// How long a test waits for NATS to accept a connection.
const CONNECT_TIMEOUT_MS: u64 = 2_000;

/// The shared NATS server's URL (`MINIPAY_TEST_NATS_URL`, default `nats://127.0.0.1:4222`),
/// or `None` when it is unreachable and not required (the JetStream half is then skipped).
pub async fn nats_url() -> Option<String> {
    let url = std::env::var("MINIPAY_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let addr = url.trim_start_matches("nats://").to_owned();
    let reachable = tokio::time::timeout(
        Duration::from_millis(CONNECT_TIMEOUT_MS),
        tokio::net::TcpStream::connect(&addr),
    )
    .await
    .is_ok_and(|c| c.is_ok());
    if reachable {
        return Some(url);
    }
    assert!(
        !nats_required(),
        "NATS with JetStream is required but unreachable at {url}"
    );
    eprintln!(
        "SKIPPED (JetStream half): no NATS at {url}. Set MINIPAY_TEST_NATS_URL, or MINIPAY_TEST_REQUIRE_NATS=1 to make this a failure."
    );
    None
}

fn nats_required() -> bool {
    minipay_store::testing::required("MINIPAY_TEST_REQUIRE_NATS")
}

/// JetStream's ack wait in tests: the work of a killed server is offered again this soon (in
/// real time; an embedded delivery's lease runs on the test's clock instead).
pub const TEST_ACK_WAIT_MS: u64 = 5_000;

/// An events configuration with a stream and a subject prefix no other test uses (streams
/// may not share subjects, and tests run in parallel against one server).
pub fn isolated_config(nats_url: Option<String>) -> EventsConfig {
    let tag = uuid::Uuid::now_v7().simple().to_string();
    EventsConfig {
        nats_url,
        stream: format!("T{tag}"),
        subject_prefix: format!("t{tag}"),
        poll_interval: Duration::from_millis(20),
        ack_wait: Duration::from_millis(TEST_ACK_WAIT_MS),
        ..EventsConfig::default()
    }
}

/// Deletes a test's stream (and its consumers).
pub async fn delete_stream(config: &EventsConfig) {
    let Some(url) = &config.nats_url else { return };
    if let Ok(client) = async_nats::connect(url).await {
        let _ = async_nats::jetstream::new(client).delete_stream(&config.stream).await;
    }
}

/// A `nats-server` of the test's own (JetStream on, its own storage directory), which the
/// test can stop and start again on the same port and storage.
pub struct OwnNats {
    pub url: String,
    port: u16,
    dir: PathBuf,
    child: Option<tokio::process::Child>,
}

impl OwnNats {
    /// Starts one on a free port; `None` (with a message) when `nats-server` is not installed
    /// and not required.
    pub async fn start() -> Option<Self> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("minipay-nats-{}", uuid::Uuid::now_v7().simple()));
        let mut nats = Self {
            url: format!("nats://127.0.0.1:{port}"),
            port,
            dir,
            child: None,
        };
        nats.resume().await.then_some(nats)
    }

    /// Starts the server again (same port, same storage); whether it runs.
    pub async fn resume(&mut self) -> bool {
        let spawned = tokio::process::Command::new(nats_server_bin())
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(&self.dir)
            .kill_on_drop(true)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        match spawned {
            Ok(child) => self.child = Some(child),
            Err(e) => {
                assert!(
                    !nats_required(),
                    "nats-server is required but could not be started: {e}"
                );
                eprintln!("SKIPPED: nats-server could not be started ({e})");
                return false;
            }
        }
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_ok() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("nats-server did not start listening on port {}", self.port);
    }

    /// Stops the server (SIGKILL: nothing is flushed that JetStream had not stored).
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

impl Drop for OwnNats {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `nats-server` from `PATH`, or Debian's place for it.
fn nats_server_bin() -> String {
    std::env::var("MINIPAY_TEST_NATS_SERVER").unwrap_or_else(|_| {
        if std::path::Path::new("/usr/sbin/nats-server").exists() {
            "/usr/sbin/nats-server".into()
        } else {
            "nats-server".into()
        }
    })
}
