//! A POS terminal over TCP, for `minipay pos`, the benchmark and tests: builds each request's
//! header and body in the POS format, compresses and encrypts as asked, keeps many requests in
//! flight on one connection and matches answers by `seq_no`.

use crate::intake::POS;
use crate::request::{ApprovalInput, ApprovalResult, Payer, TxType};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use minipay_wire::{Direction, Flags, Framing, LinkCodec, Message, PosFrame, PosHeader, TerminalKey};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::Framed;
use uuid::Uuid;

const FRAME_MAX: usize = 9_999;

/// An answer as a terminal reads it from the answer layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PosAnswer {
    pub seq_no: u64,
    pub tx_code: String,
    pub encrypted: bool,
    pub transaction_id: Option<Uuid>,
    pub result: Option<ApprovalResult>,
    pub response_code: String,
    pub approval_no: Option<String>,
    pub message: String,
    pub upstream: Option<String>,
    pub issuer: Option<String>,
}

/// Why a POS exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum PosError {
    #[error("connecting: {0}")]
    Connect(#[from] std::io::Error),
    #[error("the request does not fit the POS format: {0}")]
    Format(String),
    #[error("the connection closed before the answer")]
    Closed,
    #[error("the answer does not open: {0}")]
    Answer(String),
}

type Waiting = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<PosAnswer, PosError>>>>>;

/// One terminal's connection.
pub struct PosClient {
    terminal_id: String,
    key: TerminalKey,
    flags: Flags,
    frames: mpsc::Sender<Bytes>,
    waiting: Waiting,
    /// The reader holds the socket: stopped when the client goes away, so the connection closes.
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for PosClient {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl PosClient {
    /// Connects as `terminal_id`; every request is sent with `flags` (deflate, encryption).
    pub async fn connect(addr: &str, terminal_id: &str, key: TerminalKey, flags: Flags) -> Result<Self, PosError> {
        let stream = TcpStream::connect(addr).await?;
        let _ = stream.set_nodelay(true);
        let (mut sink, mut stream) = Framed::new(stream, LinkCodec::new(Framing::Ascii4, FRAME_MAX)).split();
        let (frames, mut outgoing) = mpsc::channel::<Bytes>(256);
        tokio::spawn(async move {
            while let Some(f) = outgoing.recv().await {
                if sink.send(f).await.is_err() {
                    break;
                }
            }
        });
        let waiting: Waiting = Arc::default();
        let (reader_waiting, reader_key) = (waiting.clone(), key.clone());
        let reader = tokio::spawn(async move {
            while let Some(Ok(frame)) = stream.next().await {
                let answer = read_answer(&frame, &reader_key);
                let seq = match &answer {
                    Ok(a) => a.seq_no,
                    Err(_) => match PosHeader::decode(&frame) {
                        Ok(h) => h.seq_no,
                        Err(_) => continue,
                    },
                };
                if let Some(w) = reader_waiting.lock().expect("pos client lock").remove(&seq) {
                    let _ = w.send(answer);
                }
            }
            reader_waiting.lock().expect("pos client lock").clear();
        });
        Ok(Self {
            terminal_id: terminal_id.to_owned(),
            key,
            flags,
            frames,
            waiting,
            reader,
        })
    }

    /// Sends a request and waits for its answer.
    pub async fn send(&self, req: &ApprovalInput) -> Result<PosAnswer, PosError> {
        let frame = self.request_frame(req)?;
        self.send_raw(req.seq_no, frame).await
    }

    /// Sends bytes as one frame (for tests of malformed input) and waits for the answer to
    /// `seq_no`.
    pub async fn send_raw(&self, seq_no: u64, frame: Vec<u8>) -> Result<PosAnswer, PosError> {
        let (answer, answered) = oneshot::channel();
        self.waiting.lock().expect("pos client lock").insert(seq_no, answer);
        if self.frames.send(Bytes::from(frame)).await.is_err() {
            return Err(PosError::Closed);
        }
        answered.await.map_err(|_| PosError::Closed)?
    }

    /// The request's frame (header and sealed body, without the length prefix).
    pub fn request_frame(&self, req: &ApprovalInput) -> Result<Vec<u8>, PosError> {
        let body = POS
            .encode(&request_message(req)?)
            .map_err(|e| PosError::Format(e.to_string()))?;
        let mut nonce = [0u8; 12];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| PosError::Format("no random source".into()))?;
        let header = PosHeader {
            version: 1,
            tx_code: POS
                .code_of(req.tx_type.name(), Direction::Request)
                .ok_or_else(|| PosError::Format(format!("no code for {}", req.tx_type.name())))?
                .to_owned(),
            terminal_id: self.terminal_id.clone(),
            seq_no: req.seq_no,
            sent_at: req.sent_at.clone(),
            flags: self.flags,
            nonce,
            reserved: [b' '; 12],
        };
        let frame = PosFrame { header, body };
        minipay_wire::encode_pos_frame(&frame, Some(&self.key)).map_err(|e| PosError::Format(e.to_string()))
    }
}

/// The request in our field names (its keys go in the header).
fn request_message(req: &ApprovalInput) -> Result<Message, PosError> {
    let checked = crate::request::ApprovalRequest::try_from(req.clone()).map_err(|e| PosError::Format(e.0))?;
    let mut m = Message::new(req.tx_type.name(), Direction::Request)
        .with("amount", req.amount.to_string())
        .with("installment_months", checked.installment_months.to_string());
    match &checked.payer {
        Payer::Card { pan, expiry, track2 } => match track2 {
            Some(t) => m.set("track2", t),
            None => {
                m.set("pan", pan);
                if let Some(e) = expiry {
                    m.set("expiry", e);
                }
            }
        },
        Payer::CashReceipt { id_type, id_number } => {
            m.set("cash_receipt_id_type", id_type);
            m.set("cash_receipt_id_number", id_number);
        }
    }
    if let Some(o) = &checked.original {
        m.set("original_approval_no", &o.approval_no);
        m.set("original_approved_at", &o.approved_at);
    }
    if !matches!(req.tx_type, TxType::CardApproval | TxType::CardCancel) {
        m.fields.remove("installment_months");
    }
    Ok(m)
}

fn read_answer(frame: &[u8], key: &TerminalKey) -> Result<PosAnswer, PosError> {
    let opened = minipay_wire::decode_pos_frame(frame, 8_192, |_| Some(key.clone()))
        .map_err(|e| PosError::Answer(e.to_string()))?;
    let msg = POS
        .decode_with_code(&opened.header.tx_code, &opened.body)
        .map_err(|e| PosError::Answer(e.to_string()))?;
    let text = |n: &str| msg.get(n).filter(|v| !v.is_empty()).map(str::to_owned);
    Ok(PosAnswer {
        seq_no: opened.header.seq_no,
        tx_code: opened.header.tx_code.clone(),
        encrypted: opened.header.flags.encrypted,
        transaction_id: text("transaction_id").and_then(|t| Uuid::parse_str(&t).ok()),
        result: text("result").and_then(|r| serde_json::from_value(serde_json::Value::String(r)).ok()),
        response_code: text("response_code").unwrap_or_default(),
        approval_no: text("approval_no"),
        message: text("message").unwrap_or_default(),
        upstream: text("upstream"),
        issuer: text("issuer"),
    })
}
