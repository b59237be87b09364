//! Network cancel (망취소): a cancel queued with its timed-out approval is sent by this worker —
//! each send recorded before it goes out, resent `interval` apart with the repeat flag until
//! the upstream acknowledges it, `cancel_failed` with an alert after the last send — and late
//! answers are recorded beside the approval they belong to.

use crate::Gateway;
use crate::approve::new_upstream_ref;
use crate::events::{self, record};
use crate::upstream::{LateAnswer, LinkError};
use minipay_core::gateway::cancel::{CancelNext, CancelPolicy};
use minipay_events::alerts;
use minipay_services::ServiceResult;
use minipay_store::{NetworkCancel, NewAlert};
use minipay_wire::{Direction, Message};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Cancels claimed per round.
const CANCELS_PER_ROUND_MAX: u32 = 64;
/// How often the worker looks for due cancels nobody woke it for.
const CANCEL_POLL_INTERVAL: Duration = Duration::from_millis(200);

impl Gateway {
    /// Sends every network cancel due now (one round); how many were sent.
    pub async fn send_due_cancels(&self) -> ServiceResult<usize> {
        let now = self.clock.now();
        let policy = self.config.cancel;
        let next = match policy.after_send(0, now) {
            CancelNext::RetryAt(at) => at,
            CancelNext::GiveUp => now,
        };
        let mut tx = self.store.begin().await?;
        let due = tx.claim_due_network_cancels(now, next, CANCELS_PER_ROUND_MAX).await?;
        let (exhausted, due): (Vec<_>, Vec<_>) = due.into_iter().partition(|c| send_count(c) >= policy.sends_max);
        for c in &exhausted {
            // Claimed again after a crash that followed its last send: never a send more.
            let last = c.last_error.as_deref().unwrap_or("no acknowledgement");
            self.give_up(
                &mut tx,
                &NetworkCancel {
                    sends: c.sends - 1,
                    ..c.clone()
                },
                last,
                now,
            )
            .await?;
        }
        for c in &due {
            let seq = tx.take_event_seq(c.approval_id, 1).await?;
            let detail = json!({ "send": c.sends + 1, "repeat": CancelPolicy::is_repeat(send_count(c)) });
            record(
                &mut tx,
                events::CANCEL_SENT,
                c.approval_id,
                seq,
                Some(&c.upstream),
                detail,
                now,
            )
            .await?;
        }
        tx.commit().await?;
        let sends = due.iter().map(|c| self.send_cancel(c));
        futures_util::future::join_all(sends)
            .await
            .into_iter()
            .collect::<ServiceResult<Vec<()>>>()?;
        Ok(due.len())
    }

    /// One send of one cancel (already recorded as sent) and what came of it.
    async fn send_cancel(&self, c: &NetworkCancel) -> ServiceResult<()> {
        let sends_before = send_count(c);
        let result = match self.link_to(&c.upstream).await? {
            Some(link) => link.exchange(&cancel_message(c), self.config.upstream_timeout).await,
            None => Err(LinkError::NotSent(format!("{} is no longer configured", c.upstream))),
        };
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        match result {
            Ok(answer) if answer.get("response_code") == Some("00") => {
                if tx.acknowledge_network_cancel(c.approval_id, now).await? {
                    let seq = tx.take_event_seq(c.approval_id, 1).await?;
                    record(
                        &mut tx,
                        events::CANCEL_ACKNOWLEDGED,
                        c.approval_id,
                        seq,
                        Some(&c.upstream),
                        json!({}),
                        now,
                    )
                    .await?;
                }
            }
            other => {
                let error = match other {
                    Ok(answer) => format!("answered {}", answer.get("response_code").unwrap_or("?")),
                    Err(e) => e.to_string(),
                };
                if let CancelNext::GiveUp = self.config.cancel.after_send(sends_before + 1, now) {
                    self.give_up(&mut tx, c, &error, now).await?;
                } else {
                    tx.note_network_cancel_error(c.approval_id, &error).await?;
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }

    async fn give_up(
        &self,
        tx: &mut minipay_store::Session,
        c: &NetworkCancel,
        error: &str,
        now: jiff::Timestamp,
    ) -> ServiceResult<()> {
        if !tx.fail_network_cancel(c.approval_id, error, now).await? {
            return Ok(());
        }
        let seq = tx.take_event_seq(c.approval_id, 1).await?;
        let detail = json!({ "sends": c.sends + 1, "error": error });
        record(
            tx,
            events::CANCEL_FAILED,
            c.approval_id,
            seq,
            Some(&c.upstream),
            detail,
            now,
        )
        .await?;
        let cause = format!("cancel_failed:{}", c.approval_id);
        let message = format!(
            "the network cancel of transaction {} to {} was not acknowledged after {} sends",
            c.approval_id,
            c.upstream,
            c.sends + 1
        );
        let alert = NewAlert {
            kind: "cancel_failed",
            cause: &cause,
            subject_id: Some(c.approval_id),
            message: &message,
            data: json!({ "upstream": c.upstream, "terminal_id": c.terminal_id, "seq_no": c.seq_no, "error": error }),
        };
        alerts::raise(tx, &alert, now).await?;
        Ok(())
    }

    async fn link_to(&self, upstream: &str) -> ServiceResult<Option<Arc<crate::upstream::Link>>> {
        Ok(self.live_routing().await?.and_then(|r| r.links.get(upstream).cloned()))
    }

    /// Records an answer that came after its request was given up on.
    async fn record_late_answer(&self, late: LateAnswer) -> ServiceResult<()> {
        let Some(reference) = late.answer.get("upstream_ref") else {
            return Ok(());
        };
        let code = late.answer.get("response_code").unwrap_or("");
        let approval_no = late.answer.get("approval_no").filter(|n| !n.is_empty());
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let Some((id, seq)) = tx
            .record_late_answer(&late.upstream, reference, code, approval_no, now)
            .await?
        else {
            tracing::info!(upstream = %late.upstream, reference, "a late answer to no recorded request (a cancel's?)");
            return Ok(());
        };
        let approved_at = late.answer.get("approved_at").filter(|a| !a.is_empty());
        let detail = json!({ "response_code": code, "approval_no": approval_no, "approved_at": approved_at });
        record(&mut tx, events::LATE_ANSWER, id, seq, Some(&late.upstream), detail, now).await?;
        tx.commit().await?;
        tracing::warn!(transaction = %id, upstream = %late.upstream, code, "late answer recorded");
        Ok(())
    }

    /// Starts the network-cancel worker and the late-answer recorder; they run as long as the
    /// gateway exists.
    pub fn start_workers(self: &Arc<Self>, mut late: mpsc::UnboundedReceiver<LateAnswer>) {
        let gateway = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(answer) = late.recv().await {
                let Some(g) = gateway.upgrade() else { break };
                if let Err(e) = g.record_late_answer(answer).await {
                    tracing::error!(error = ?e, "recording a late answer");
                }
            }
        });
        let gateway = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let Some(g) = gateway.upgrade() else { break };
                if let Err(e) = g.send_due_cancels().await {
                    tracing::error!(error = ?e, "sending network cancels");
                }
                let wake = g.cancels_due.clone();
                drop(g);
                let _ = tokio::time::timeout(CANCEL_POLL_INTERVAL, wake.notified()).await;
            }
        });
    }
}

/// Sends made before this one.
fn send_count(c: &NetworkCancel) -> u32 {
    u32::try_from(c.sends).unwrap_or(0)
}

/// The network cancel of the original request, in our field names.
fn cancel_message(c: &NetworkCancel) -> Message {
    let mut m = Message::new("network_cancel", Direction::Request)
        .with("terminal_id", &c.terminal_id)
        .with("seq_no", c.seq_no.to_string())
        .with("sent_at", &c.sent_at)
        .with("amount", c.amount.to_string())
        .with("upstream_ref", new_upstream_ref())
        .with(
            "repeat",
            if CancelPolicy::is_repeat(send_count(c)) {
                "1"
            } else {
                "0"
            },
        )
        .with("installment_months", "0");
    if let Some(no) = &c.approval_no {
        m.set("original_approval_no", no);
    }
    m
}
