//! The simulator's TCP side: accepting connections, reading framed requests, and writing each
//! answer as its request completes.

use super::SimState;
use super::behaviour::{self, Outcome};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use minipay_wire::{Direction, Framing, LinkCodec, Message};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

/// The largest frame each framing can announce.
const FRAME_LEN_MAX_ASCII4: usize = 9_999;
const FRAME_LEN_MAX_BINARY2: usize = 65_535;

/// Answers waiting for the writer of one connection.
const ANSWER_QUEUE_MAX: usize = 256;

/// Accepts connections until the sim shuts down.
pub(crate) async fn accept_loop(listener: TcpListener, state: Arc<SimState>) {
    let mut shutdown = state.shutdown.subscribe();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => admit(stream, peer, &state),
                Err(e) => tracing::warn!(sim = %state.config.id, error = %e, "accept failed"),
            },
            _ = shutdown.wait_for(|stopped| *stopped) => break,
        }
    }
    tracing::info!(sim = %state.config.id, "simulator stopped");
}

/// Serves a new connection, or closes it at once while the sim is `down`.
fn admit(stream: TcpStream, peer: SocketAddr, state: &Arc<SimState>) {
    if state.faults().down {
        tracing::debug!(sim = %state.config.id, %peer, "down: connection refused");
        drop(stream);
        return;
    }
    let _ = stream.set_nodelay(true);
    tokio::spawn(serve(stream, peer, Arc::clone(state)));
}

fn codec(framing: Framing) -> LinkCodec {
    let max_len = match framing {
        Framing::Ascii4 => FRAME_LEN_MAX_ASCII4,
        Framing::Binary2 => FRAME_LEN_MAX_BINARY2,
    };
    LinkCodec::new(framing, max_len)
}

/// One connection: reads requests, hands each to its own task, writes answers as they come.
/// Ends (closing the socket) on end of stream, a bad frame, a request that asks for it, or
/// when the sim closes every connection.
async fn serve(stream: TcpStream, peer: SocketAddr, state: Arc<SimState>) {
    let mut link = Framed::new(stream, codec(state.config.dialect.framing()));
    let (answers, mut outbox) = mpsc::channel::<Bytes>(ANSWER_QUEUE_MAX);
    let mut kill = state.kill_watch();
    loop {
        tokio::select! {
            frame = link.next() => {
                let Some(frame) = read_frame(frame, peer, &state) else { break };
                if !dispatch(&frame, &answers, &state) {
                    break;
                }
            }
            Some(answer) = outbox.recv() => {
                if let Err(e) = link.send(answer).await {
                    tracing::debug!(sim = %state.config.id, %peer, error = %e, "write failed");
                    break;
                }
            }
            _ = kill.changed() => break,
        }
    }
    tracing::debug!(sim = %state.config.id, %peer, "connection closed");
}

/// The frame's bytes; `None` when the connection is over (end of stream or unreadable frame).
fn read_frame<E: std::fmt::Display>(
    frame: Option<Result<bytes::BytesMut, E>>,
    peer: SocketAddr,
    state: &SimState,
) -> Option<bytes::BytesMut> {
    match frame? {
        Ok(frame) => Some(frame),
        Err(e) => {
            tracing::debug!(sim = %state.config.id, %peer, error = %e, "bad frame: closing");
            None
        }
    }
}

/// Decodes one request and starts answering it; `false` when the connection must close.
fn dispatch(frame: &[u8], answers: &mpsc::Sender<Bytes>, state: &Arc<SimState>) -> bool {
    let request = match state.config.dialect.decode(frame) {
        Ok(msg) if msg.direction == Direction::Request => msg,
        Ok(msg) => {
            tracing::debug!(sim = %state.config.id, tx_type = %msg.tx_type, "an answer sent to the sim: closing");
            return false;
        }
        Err(e) => {
            tracing::debug!(sim = %state.config.id, error = %e, "undecodable request: closing");
            return false;
        }
    };
    state.count_request();
    match behaviour::handle(state, &request) {
        Outcome::Answer { answer, delay } => {
            tokio::spawn(send_later(answer, delay, answers.clone(), Arc::clone(state)));
            true
        }
        Outcome::Silent => true,
        Outcome::Close => false,
    }
}

/// Waits `delay`, then queues the encoded answer for the connection's writer.
async fn send_later(answer: Message, delay: std::time::Duration, answers: mpsc::Sender<Bytes>, state: Arc<SimState>) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match state.config.dialect.encode(&answer) {
        // A closed channel means the connection is gone: the answer is lost, as on a real link.
        Ok(bytes) => drop(answers.send(Bytes::from(bytes)).await),
        Err(e) => {
            tracing::warn!(sim = %state.config.id, tx_type = %answer.tx_type, error = %e, "answer does not encode")
        }
    }
}
