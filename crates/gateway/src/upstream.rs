//! Links to upstreams (VANs, card companies): a few TCP connections per upstream in the
//! upstream's dialect and framing, several requests in flight on each, answers matched by our
//! `upstream_ref`. An answer nobody waits for any more is handed on as a late answer.

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use minipay_wire::{Dialect, LinkCodec, Message};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::Framed;

/// Longest frame on an upstream link.
const LINK_FRAME_MAX: usize = 8_192;
/// Frames queued for one connection's writer.
const WRITE_QUEUE_MAX: usize = 1_024;
/// How long connecting to an upstream may take before it counts as not reachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Why an exchange did not bring an answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Nothing was sent (no connection): the request may go to another upstream.
    #[error("not sent: {0}")]
    NotSent(String),
    /// Sent, and no answer in time: never re-sent elsewhere (network cancel).
    #[error("no answer in time")]
    NoAnswer,
    /// Sent, and the connection closed before the answer (network cancel).
    #[error("the connection closed before the answer")]
    Closed,
    /// Our message does not fit the upstream's dialect.
    #[error("the request does not fit the dialect: {0}")]
    Format(String),
}

/// An answer that came after its request was given up on.
#[derive(Debug, Clone)]
pub struct LateAnswer {
    pub upstream: String,
    pub answer: Message,
}

type Waiting = Arc<Mutex<HashMap<String, oneshot::Sender<Message>>>>;

/// One upstream's connections.
pub struct Link {
    id: String,
    endpoint: String,
    dialect: Arc<Dialect>,
    slots: Vec<tokio::sync::Mutex<Option<Connection>>>,
    next: AtomicUsize,
    late: mpsc::UnboundedSender<LateAnswer>,
}

#[derive(Clone)]
struct Connection {
    frames: mpsc::Sender<Bytes>,
    waiting: Waiting,
    /// Set by the reader when the connection ends, before it drops the waiting requests.
    closed: Arc<AtomicBool>,
}

impl Connection {
    fn is_open(&self) -> bool {
        !self.closed.load(Ordering::Acquire) && !self.frames.is_closed()
    }
}

impl Link {
    pub fn new(
        id: &str,
        endpoint: &str,
        dialect: Arc<Dialect>,
        connections: usize,
        late: mpsc::UnboundedSender<LateAnswer>,
    ) -> Self {
        Self {
            id: id.to_owned(),
            endpoint: endpoint.to_owned(),
            dialect,
            slots: (0..connections.max(1)).map(|_| tokio::sync::Mutex::new(None)).collect(),
            next: AtomicUsize::new(0),
            late,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Sends `msg` (which carries `upstream_ref`) and waits up to `timeout` for its answer.
    pub async fn exchange(&self, msg: &Message, timeout: Duration) -> Result<Message, LinkError> {
        let reference = msg
            .get("upstream_ref")
            .ok_or_else(|| LinkError::Format("no upstream_ref".into()))?
            .to_owned();
        let bytes = self.dialect.encode(msg).map_err(|e| LinkError::Format(e.to_string()))?;
        let conn = self.connection().await?;
        let (answer, answered) = oneshot::channel();
        conn.waiting
            .lock()
            .expect("link waiting lock")
            .insert(reference.clone(), answer);
        // Checked after registering: a reader that ends from here on drops our waiter.
        if !conn.is_open() || conn.frames.send(Bytes::from(bytes)).await.is_err() {
            conn.waiting.lock().expect("link waiting lock").remove(&reference);
            return Err(LinkError::NotSent("the connection closed".into()));
        }
        match tokio::time::timeout(timeout, answered).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(LinkError::Closed),
            Err(_) => {
                conn.waiting.lock().expect("link waiting lock").remove(&reference);
                Err(LinkError::NoAnswer)
            }
        }
    }

    /// An open connection of the next slot, connecting it if needed.
    async fn connection(&self) -> Result<Connection, LinkError> {
        let slot = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut held = self.slots[slot].lock().await;
        if let Some(conn) = held.as_ref().filter(|c| c.is_open()) {
            return Ok(conn.clone());
        }
        let conn = self.connect().await?;
        *held = Some(conn.clone());
        Ok(conn)
    }

    async fn connect(&self) -> Result<Connection, LinkError> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&self.endpoint))
            .await
            .map_err(|_| LinkError::NotSent(format!("connecting to {} timed out", self.endpoint)))?
            .map_err(|e| LinkError::NotSent(format!("connecting to {}: {e}", self.endpoint)))?;
        let _ = stream.set_nodelay(true);
        let framed = Framed::new(stream, LinkCodec::new(self.dialect.framing(), LINK_FRAME_MAX));
        let (mut sink, mut stream) = framed.split();
        let (frames, mut outgoing) = mpsc::channel::<Bytes>(WRITE_QUEUE_MAX);
        let waiting: Waiting = Arc::default();
        let closed = Arc::new(AtomicBool::new(false));
        tokio::spawn(async move {
            while let Some(frame) = outgoing.recv().await {
                if sink.send(frame).await.is_err() {
                    break;
                }
            }
        });
        let reader = Reader {
            upstream: self.id.clone(),
            dialect: self.dialect.clone(),
            waiting: waiting.clone(),
            late: self.late.clone(),
            closed: closed.clone(),
        };
        tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                reader.deliver(&frame);
            }
            reader.close();
        });
        Ok(Connection {
            frames,
            waiting,
            closed,
        })
    }
}

/// The reading half of a connection: hands each answer to whoever waits for it.
struct Reader {
    upstream: String,
    dialect: Arc<Dialect>,
    waiting: Waiting,
    late: mpsc::UnboundedSender<LateAnswer>,
    closed: Arc<AtomicBool>,
}

impl Reader {
    fn deliver(&self, frame: &[u8]) {
        let answer = match self.dialect.decode(frame) {
            Ok(answer) => answer,
            Err(e) => {
                tracing::warn!(upstream = %self.upstream, error = %e, "an upstream frame that does not decode");
                return;
            }
        };
        let Some(reference) = answer.get("upstream_ref").map(str::to_owned) else {
            tracing::warn!(upstream = %self.upstream, "an upstream answer without upstream_ref");
            return;
        };
        let waiter = self.waiting.lock().expect("link waiting lock").remove(&reference);
        match waiter {
            Some(w) => {
                if let Err(answer) = w.send(answer) {
                    self.late(answer);
                }
            }
            None => self.late(answer),
        }
    }

    fn late(&self, answer: Message) {
        let _ = self.late.send(LateAnswer {
            upstream: self.upstream.clone(),
            answer,
        });
    }

    /// The connection is gone: every request still waiting learns it (dropped senders).
    fn close(self) {
        self.closed.store(true, Ordering::Release);
        self.waiting.lock().expect("link waiting lock").clear();
    }
}
