//! Terminal intake: the HTTP form's `Authorization: Terminal <id>:<base64 HMAC-SHA256(body)>`
//! check, and the TCP listener for the POS wire format (4-digit length, 64-byte header,
//! deflate, AES-256-GCM under the terminal's key; several requests in flight per connection,
//! answers carrying the request's `seq_no`). A malformed frame gets an error answer, or the
//! connection is closed when the frame itself cannot be read; the listener keeps serving.

use crate::Gateway;
use crate::admin::ActiveTerminal;
use crate::request::{
    ApprovalAnswer, ApprovalInput, ApprovalRequest, ApprovalResult, CardInput, CashReceiptInput, OriginalInput, TxType,
    codes,
};
use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use minipay_services::{ServiceError, ServiceResult};
use minipay_wire::{
    Dialect, Direction, Flags, Framing, LinkCodec, Message, PosFrame, PosHeader, SealError, TerminalKey,
};
use std::collections::HashMap;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio_util::codec::Framed;

/// Longest POS frame (what a 4-digit length can say).
const POS_FRAME_MAX: usize = 9_999;
/// Longest POS body once inflated.
const POS_BODY_MAX: usize = 8_192;
/// Requests one connection may have in flight; more wait until one is answered.
const IN_FLIGHT_PER_CONNECTION_MAX: usize = 64;
/// Answers queued for one connection's writer.
const ANSWER_QUEUE_MAX: usize = 256;
/// How long a connection trusts a terminal it looked up (a disabled terminal is refused after
/// at most this long on connections that already used it).
const TERMINAL_CACHE_TTL: Duration = Duration::from_secs(5);

/// The POS body layouts (`specs/pos.toml`), parsed once for the intake and the POS client.
pub(crate) static POS: LazyLock<Dialect> =
    LazyLock::new(|| minipay_wire::shipped("pos").expect("the pos dialect is shipped"));

impl Gateway {
    /// The terminal an HTTP request comes from, if its `Authorization` header signs `body`.
    pub async fn authenticate_http(&self, authorization: Option<&str>, body: &[u8]) -> ServiceResult<ActiveTerminal> {
        const REFUSED: ServiceError = ServiceError::Unauthorized("a terminal signature is required");
        let value = authorization.and_then(|v| v.strip_prefix("Terminal ")).ok_or(REFUSED)?;
        let (terminal_id, signature) = value.split_once(':').ok_or(REFUSED)?;
        let signature = STANDARD.decode(signature.trim()).map_err(|_| REFUSED)?;
        let terminal = self.terminal(terminal_id).await?.ok_or(REFUSED)?;
        let key = hmac::Key::new(hmac::HMAC_SHA256, &terminal.key.0);
        hmac::verify(&key, body, &signature).map_err(|_| REFUSED)?;
        Ok(terminal)
    }

    /// Serves POS terminals on `listener` until the task is dropped.
    pub async fn serve_pos(self: Arc<Self>, listener: TcpListener) {
        loop {
            match listener.accept().await {
                Ok((stream, peer)) => {
                    let gateway = self.clone();
                    tokio::spawn(async move {
                        tracing::debug!(%peer, "POS terminal connected");
                        gateway.serve_connection(stream).await;
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a POS connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    async fn serve_connection(self: Arc<Self>, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let (mut sink, mut frames) = Framed::new(stream, LinkCodec::new(Framing::Ascii4, POS_FRAME_MAX)).split();
        let (answers, mut outgoing) = mpsc::channel::<Bytes>(ANSWER_QUEUE_MAX);
        let writer = tokio::spawn(async move {
            while let Some(answer) = outgoing.recv().await {
                if sink.send(answer).await.is_err() {
                    break;
                }
            }
        });
        let in_flight = Arc::new(Semaphore::new(IN_FLIGHT_PER_CONNECTION_MAX));
        let terminals = Arc::new(tokio::sync::Mutex::new(TerminalCache::default()));
        while let Some(frame) = frames.next().await {
            let Ok(frame) = frame else {
                tracing::debug!("an unreadable POS frame; closing the connection");
                break;
            };
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                break;
            };
            let (gateway, answers, terminals) = (self.clone(), answers.clone(), terminals.clone());
            tokio::spawn(async move {
                let answer = gateway.answer_frame(&frame, &terminals).await;
                match answer {
                    Some(bytes) => {
                        let _ = answers.send(Bytes::from(bytes)).await;
                    }
                    None => tracing::debug!("a POS frame without a readable header; no answer"),
                }
                drop(permit);
            });
        }
        drop(answers);
        // Answers still being worked out are written before the connection closes.
        let _ = writer.await;
    }

    /// The answer frame to one request frame; `None` when not even its header can be read.
    async fn answer_frame(&self, frame: &[u8], terminals: &tokio::sync::Mutex<TerminalCache>) -> Option<Vec<u8>> {
        let header = PosHeader::decode(frame).ok()?;
        let terminal = match terminals.lock().await.get(self, &header.terminal_id).await {
            Ok(Some(t)) => t,
            Ok(None) => return Some(error_answer(&header, None, codes::TERMINAL, "단말기 인증 실패")),
            Err(e) => {
                tracing::error!(error = ?e, "looking up a terminal");
                return Some(error_answer(&header, None, codes::SYSTEM, "시스템 오류"));
            }
        };
        // Only GCM authenticates a frame: a clear one could come from anybody (or be an
        // encrypted one with its flag stripped), so a terminal must encrypt.
        if !header.flags.encrypted {
            return Some(error_answer(&header, None, codes::TERMINAL, "암호화 필요"));
        }
        let key = terminal.key.clone();
        let opened = minipay_wire::decode_pos_frame(frame, POS_BODY_MAX, |_| Some(key.clone()));
        let body = match opened {
            Ok(f) => f.body,
            Err(SealError::Authentication | SealError::NoKey) => {
                return Some(error_answer(&header, None, codes::TERMINAL, "단말기 인증 실패"));
            }
            Err(e) => {
                tracing::debug!(error = %e, "a POS frame that does not open");
                return Some(error_answer(&header, Some(&key), codes::FORMAT, "전문 형식 오류"));
            }
        };
        let request = match read_request(&header, &body) {
            Ok(r) => r,
            Err(why) => {
                tracing::debug!(why, "a POS request that does not parse");
                return Some(error_answer(&header, Some(&key), codes::FORMAT, "전문 형식 오류"));
            }
        };
        let answer = match self.approve(&terminal, &request).await {
            Ok(a) => a,
            Err(e) => {
                tracing::error!(error = ?e, "approving a POS request");
                return Some(error_answer(&header, Some(&key), codes::SYSTEM, "시스템 오류"));
            }
        };
        Some(answer_bytes(&header, Some(&key), request.tx_type, &answer))
    }
}

/// The terminals one connection has looked up, for `TERMINAL_CACHE_TTL`.
#[derive(Default)]
struct TerminalCache {
    known: HashMap<String, (Option<ActiveTerminal>, Instant)>,
}

impl TerminalCache {
    async fn get(&mut self, gateway: &Gateway, terminal_id: &str) -> ServiceResult<Option<ActiveTerminal>> {
        if let Some((t, at)) = self.known.get(terminal_id)
            && at.elapsed() < TERMINAL_CACHE_TTL
        {
            return Ok(t.clone());
        }
        let t = gateway.terminal(terminal_id).await?;
        self.known.insert(terminal_id.to_owned(), (t.clone(), Instant::now()));
        Ok(t)
    }
}

/// The request a POS body carries (its keys from the header).
fn read_request(header: &PosHeader, body: &[u8]) -> Result<ApprovalRequest, String> {
    let msg = POS.decode_with_code(&header.tx_code, body).map_err(|e| e.to_string())?;
    if msg.direction != Direction::Request {
        return Err("an answer where a request was expected".into());
    }
    let tx_type = TxType::from_name(&msg.tx_type).ok_or_else(|| format!("unknown transaction type {}", msg.tx_type))?;
    let text = |name: &str| msg.get(name).filter(|v| !v.is_empty()).map(str::to_owned);
    let amount = text("amount").and_then(|a| a.parse().ok()).ok_or("amount")?;
    let card = (text("pan").is_some() || text("track2").is_some()).then(|| CardInput {
        track2: text("track2"),
        pan: text("pan"),
        expiry: text("expiry").filter(|_| text("track2").is_none()),
    });
    let input = ApprovalInput {
        tx_type,
        seq_no: header.seq_no,
        sent_at: header.sent_at.clone(),
        amount,
        card,
        installment_months: text("installment_months").and_then(|m| m.parse().ok()),
        original: text("original_approval_no").map(|approval_no| OriginalInput {
            approval_no,
            approved_at: text("original_approved_at").unwrap_or_default(),
        }),
        cash_receipt: text("cash_receipt_id_type").map(|id_type| CashReceiptInput {
            id_type,
            id_number: text("cash_receipt_id_number").unwrap_or_default(),
        }),
    };
    ApprovalRequest::try_from(input).map_err(|e| e.0)
}

/// An answer the gateway gives without processing (the request's own transaction type when it
/// is known, else a card approval's answer layout); encrypted only when the key is trusted.
fn error_answer(header: &PosHeader, key: Option<&TerminalKey>, code: &str, message: &str) -> Vec<u8> {
    let tx_type = tx_type_of_code(&header.tx_code).unwrap_or(TxType::CardApproval);
    let answer = ApprovalAnswer {
        transaction_id: uuid::Uuid::nil(),
        result: ApprovalResult::Error,
        response_code: code.to_owned(),
        approval_no: None,
        message: message.to_owned(),
        upstream: None,
        issuer: None,
    };
    answer_bytes(header, key, tx_type, &answer)
}

fn tx_type_of_code(code: &str) -> Option<TxType> {
    TxType::ALL
        .into_iter()
        .find(|t| POS.code_of(t.name(), Direction::Request) == Some(code))
}

/// The answer frame (without its length prefix): the request's header with the answer's code,
/// a fresh nonce, and the answer layout — sealed like the request when there is a key.
fn answer_bytes(request: &PosHeader, key: Option<&TerminalKey>, tx_type: TxType, answer: &ApprovalAnswer) -> Vec<u8> {
    let msg = Message::new(tx_type.name(), Direction::Answer)
        .with("response_code", &answer.response_code)
        .with("approval_no", answer.approval_no.clone().unwrap_or_default())
        .with("message", &answer.message)
        .with("issuer", answer.issuer.clone().unwrap_or_default())
        .with("upstream", answer.upstream.clone().unwrap_or_default())
        .with("transaction_id", answer.transaction_id.to_string())
        .with("result", answer.result.as_str());
    let body = POS.encode(&msg).unwrap_or_else(|e| {
        tracing::error!(error = %e, "an answer that does not fit the POS layout");
        Vec::new()
    });
    // A GCM nonce must never repeat under one key: 96 random bits from the system's CSPRNG.
    let mut nonce = [0u8; 12];
    if aws_lc_rs::rand::fill(&mut nonce).is_err() {
        tracing::error!("the system random source failed; answering in the clear");
        return Vec::new();
    }
    let encrypted = key.is_some() && request.flags.encrypted;
    let header = PosHeader {
        tx_code: POS
            .code_of(tx_type.name(), Direction::Answer)
            .unwrap_or("0110")
            .to_owned(),
        flags: Flags {
            deflate: request.flags.deflate,
            encrypted,
        },
        nonce,
        ..request.clone()
    };
    let frame = PosFrame { header, body };
    minipay_wire::encode_pos_frame(&frame, key.filter(|_| encrypted)).unwrap_or_default()
}
