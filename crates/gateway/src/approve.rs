//! Approving a terminal's request: recorded and routed in one transaction before anything goes
//! upstream; sent, moving on to the next usable upstream only when it could not be sent (a
//! request that was sent is never sent elsewhere); finished in one transaction with its answer,
//! its breaker count and — when it timed out — its network cancel.

use crate::Gateway;
use crate::admin::ActiveTerminal;
use crate::breakers;
use crate::events::{self, record};
use crate::groups::{Finish, Intake, Intaken};
use crate::live::LiveRouting;
use crate::request::{ApprovalAnswer, ApprovalRequest, ApprovalResult, Payer, codes};
use crate::upstream::LinkError;
use jiff::Timestamp;
use minipay_core::gateway::breaker::Outcome;
use minipay_services::ServiceResult;
use minipay_store::{Approval, ApprovalOutcome, NewApproval, Session};
use minipay_wire::{Direction, Message};
use serde_json::json;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// How often a repeated request looks for the first one's answer while it is in flight.
const REPEAT_POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Upstream response codes that mean the upstream failed (they count toward its breaker);
/// every other code but `00` is a decline of the card.
const SYSTEM_ERROR_CODES: [&str; 4] = ["91", "92", "96", "98"];

/// A request on its way: where it goes now and where it may still go.
struct Sending {
    id: Uuid,
    issuer: Option<String>,
    upstream: String,
    upstream_ref: String,
    probe: bool,
    /// The sequence number of its latest event (its `routed`).
    seq: i32,
    /// Upstreams still to try if this one cannot be reached (none for a cancel).
    rest: Vec<String>,
    original: Option<Approval>,
}

enum Start {
    /// The terminal sent these keys before.
    Repeat,
    /// Answered without going upstream.
    Answered(ApprovalAnswer),
    Send(Box<Sending>),
}

/// How an exchange ended, as recorded.
#[derive(Debug, Clone)]
pub(crate) struct Ending {
    result: ApprovalResult,
    response_code: String,
    approval_no: Option<String>,
    approved_at: Option<String>,
    message: String,
    issuer: Option<String>,
    breaker: Option<Outcome>,
    upstream_ms: Option<i32>,
}

impl Ending {
    /// What the terminal is told.
    pub(crate) fn answer(&self, id: Uuid, upstream: Option<&str>) -> ApprovalAnswer {
        ApprovalAnswer {
            transaction_id: id,
            result: self.result,
            response_code: self.response_code.clone(),
            approval_no: self.approval_no.clone(),
            message: self.message.clone(),
            upstream: upstream.map(str::to_owned),
            issuer: self.issuer.clone(),
        }
    }

    /// The approval's final columns (`answer`: [`Self::answer`] as JSON).
    pub(crate) fn outcome<'a>(&'a self, answer: &'a serde_json::Value, now: Timestamp) -> ApprovalOutcome<'a> {
        ApprovalOutcome {
            status: match self.result {
                ApprovalResult::Approved => "approved",
                ApprovalResult::Declined => "declined",
                ApprovalResult::Timeout => "timeout",
                ApprovalResult::Error => "error",
            },
            response_code: &self.response_code,
            approval_no: self.approval_no.as_deref(),
            approved_at: self.approved_at.as_deref(),
            message: &self.message,
            answer,
            upstream_ms: self.upstream_ms,
            answered_at: now,
        }
    }

    /// The subject of the final event.
    pub(crate) fn subject(&self) -> &'static str {
        match self.result {
            ApprovalResult::Approved => events::APPROVED,
            ApprovalResult::Declined => events::DECLINED,
            ApprovalResult::Timeout => events::TIMED_OUT,
            ApprovalResult::Error => events::FAILED,
        }
    }

    /// The final event's detail.
    pub(crate) fn detail(&self) -> serde_json::Value {
        json!({
            "response_code": self.response_code, "approval_no": self.approval_no,
            "approved_at": self.approved_at, "issuer": self.issuer, "upstream_ms": self.upstream_ms,
        })
    }

    /// Whether recording it takes more than its row and final event: a count against the
    /// upstream's breaker.
    fn counts_against_upstream(&self) -> bool {
        self.breaker.is_some_and(|o| o.counts_against_upstream())
    }

    fn refused(result: ApprovalResult, code: &str, message: &str) -> Self {
        Self {
            result,
            response_code: code.to_owned(),
            approval_no: None,
            approved_at: None,
            message: message.to_owned(),
            issuer: None,
            breaker: None,
            upstream_ms: None,
        }
    }
}

impl Gateway {
    /// Processes one request of an authenticated terminal and answers it. A repeated request
    /// (same terminal, `seq_no`, `sent_at`) gets the first answer and goes nowhere.
    #[tracing::instrument(name = "minipay.gateway.approve", skip_all, fields(terminal = %terminal.terminal_id, seq_no = req.seq_no))]
    pub async fn approve(&self, terminal: &ActiveTerminal, req: &ApprovalRequest) -> ServiceResult<ApprovalAnswer> {
        let routing = self.live_routing().await?;
        let mut sending = match self.record_and_route(terminal, req, routing.as_deref()).await? {
            Start::Repeat => return self.first_answer(terminal, req).await,
            Start::Answered(answer) => return Ok(answer),
            Start::Send(s) => *s,
        };
        let routing = routing.expect("a request is only sent under a routing");
        loop {
            let Some(link) = routing.links.get(&sending.upstream).cloned() else {
                return self
                    .finish(&routing, req, &sending, Err(LinkError::NotSent("no link".into())), None)
                    .await;
            };
            let msg = upstream_request(terminal, req, &sending.upstream_ref);
            let started = Instant::now();
            let result = link.exchange(&msg, self.config.upstream_timeout).await;
            let ms = i32::try_from(started.elapsed().as_millis()).unwrap_or(i32::MAX);
            match result {
                Err(LinkError::NotSent(e)) if !sending.rest.is_empty() => {
                    tracing::info!(upstream = %sending.upstream, error = %e, "not sent; trying the next upstream");
                    if !self.reroute(&routing, &mut sending).await? {
                        return self
                            .finish(&routing, req, &sending, Err(LinkError::NotSent(e)), None)
                            .await;
                    }
                }
                result => return self.finish(&routing, req, &sending, result, Some(ms)).await,
            }
        }
    }

    /// Records the request and routes it in one transaction: a group's, when it can. A sale's
    /// upstreams are drawn once, whichever path records it.
    async fn record_and_route(
        &self,
        terminal: &ActiveTerminal,
        req: &ApprovalRequest,
        routing: Option<&LiveRouting>,
    ) -> ServiceResult<Start> {
        let drawn = (!req.tx_type.is_cancel()).then(|| self.candidates(req, routing, None));
        if let Some((issuer, order)) = &drawn
            && let Some(start) = self.record_and_route_in_group(terminal, req, issuer, order).await?
        {
            return Ok(start);
        }
        self.record_and_route_alone(terminal, req, routing, drawn).await
    }

    /// A sale recorded and routed with the other requests of its group; `None` when it must
    /// be recorded on its own (grouping off, nowhere to go, a probe, a group that wrote nothing).
    async fn record_and_route_in_group(
        &self,
        terminal: &ActiveTerminal,
        req: &ApprovalRequest,
        issuer: &Option<String>,
        order: &[String],
    ) -> ServiceResult<Option<Start>> {
        let Some(groups) = self.groups.as_ref().filter(|_| !order.is_empty()) else {
            return Ok(None);
        };
        let id = Uuid::now_v7();
        let card_masked = req.masked();
        let intake = Intake {
            id,
            terminal_id: terminal.terminal_id.clone(),
            merchant_id: terminal.merchant_id,
            seq_no: i64::try_from(req.seq_no).unwrap_or(i64::MAX),
            sent_at: req.sent_at.clone(),
            tx_type: req.tx_type.name(),
            amount: req.amount,
            received: received_detail(terminal, req, &card_masked, None),
            card_masked,
            issuer: issuer.clone(),
            order: order.to_vec(),
        };
        // No answer (the group's task panicked): as unknown as a failed write.
        let routed = match groups.intake.submit(intake).await.unwrap_or(Intaken::Unknown) {
            Intaken::Routed {
                upstream,
                upstream_ref,
                rest,
            } => (upstream, upstream_ref, rest),
            Intaken::Repeat => return Ok(Some(Start::Repeat)),
            Intaken::Alone => return Ok(None),
            Intaken::Unknown => match self.recorded_route(id, order).await? {
                Some(routed) => routed,
                None => return Ok(None),
            },
        };
        let (upstream, upstream_ref, rest) = routed;
        Ok(Some(Start::Send(Box::new(Sending {
            id,
            issuer: issuer.clone(),
            upstream,
            upstream_ref,
            probe: false,
            seq: 2,
            rest,
            original: None,
        }))))
    }

    /// After a group's write failed: the route of request `id` if the write did commit (the row
    /// is this request's, so it is sent from here), `None` if nothing was written — then the
    /// request is recorded on its own, and should the group's write still land, the terminal's
    /// keys make the second write a repeat: it is never sent twice.
    async fn recorded_route(&self, id: Uuid, order: &[String]) -> ServiceResult<Option<(String, String, Vec<String>)>> {
        let Some(row) = self.store.read().await?.approval(id).await? else {
            return Ok(None);
        };
        let (Some(upstream), Some(upstream_ref)) = (row.upstream, row.upstream_ref) else {
            return Err(anyhow::anyhow!("approval {id} was recorded by its group without a route").into());
        };
        let after = order.iter().position(|u| *u == upstream).map_or(order.len(), |i| i + 1);
        tracing::info!(%id, "a group's write failed after it committed; the request goes on");
        Ok(Some((upstream, upstream_ref, order[after..].to_vec())))
    }

    /// Records the request and routes it in a transaction of its own (to the upstreams
    /// `drawn` for a sale; a cancel's are its original's).
    async fn record_and_route_alone(
        &self,
        terminal: &ActiveTerminal,
        req: &ApprovalRequest,
        routing: Option<&LiveRouting>,
        drawn: Option<(Option<String>, Vec<String>)>,
    ) -> ServiceResult<Start> {
        let now = self.clock.now();
        let id = Uuid::now_v7();
        let mut tx = self.store.begin().await?;
        let original = match &req.original {
            Some(o) if req.tx_type.is_cancel() => tx.approved_sale(terminal.merchant_id, &o.approval_no).await?,
            _ => None,
        };
        let masked = req.masked();
        let recorded = tx
            .insert_approval(&NewApproval {
                id,
                terminal_id: &terminal.terminal_id,
                merchant_id: terminal.merchant_id,
                seq_no: i64::try_from(req.seq_no).unwrap_or(i64::MAX),
                sent_at: &req.sent_at,
                tx_type: req.tx_type.name(),
                amount: req.amount,
                card_masked: &masked,
                original_id: original.as_ref().map(|o| o.id),
                received_at: now,
            })
            .await?;
        if !recorded {
            tx.rollback().await?;
            return Ok(Start::Repeat);
        }
        let detail = received_detail(terminal, req, &masked, original.as_ref().map(|o| o.id));
        record(&mut tx, events::RECEIVED, id, 1, None, detail, now).await?;
        let (issuer, order) = drawn.unwrap_or_else(|| self.candidates(req, routing, original.as_ref()));
        let original_known = original.is_some();
        let sending = self.choose(&mut tx, id, issuer, order, original, now).await?;
        let Some(sending) = sending else {
            let ending = if req.tx_type.is_cancel() && !original_known {
                Ending::refused(ApprovalResult::Error, codes::NO_ORIGINAL, "원거래 없음")
            } else {
                Ending::refused(ApprovalResult::Error, codes::NO_UPSTREAM, "승인기관 연결 불가")
            };
            let answer = self
                .record_ending(&mut tx, id, None, &ending, false, now)
                .await?
                .ok_or_else(|| anyhow::anyhow!("approval {id} answered before it was committed"))?;
            tx.commit().await?;
            return Ok(Start::Answered(answer));
        };
        tx.commit().await?;
        Ok(Start::Send(Box::new(sending)))
    }

    /// Where a request may go, in order: a cancel only where its sale went; a sale to its
    /// issuer when contracted directly, then the VAN drawn by weight, then the other VANs.
    fn candidates(
        &self,
        req: &ApprovalRequest,
        routing: Option<&LiveRouting>,
        original: Option<&Approval>,
    ) -> (Option<String>, Vec<String>) {
        if req.tx_type.is_cancel() {
            let Some(o) = original else {
                return (None, Vec::new());
            };
            return (o.issuer.clone(), o.upstream.iter().cloned().collect());
        }
        let Some(routing) = routing else {
            return (None, Vec::new());
        };
        let route = routing.table.route(req.pan().unwrap_or(""), fastrand::u64(..));
        (route.issuer, route.order)
    }

    /// Routes the request to the first upstream in `order` that is usable (linked, breaker not
    /// open) and records its `routed` event; `None` when none is.
    async fn choose(
        &self,
        tx: &mut Session,
        id: Uuid,
        issuer: Option<String>,
        mut order: Vec<String>,
        original: Option<Approval>,
        now: Timestamp,
    ) -> ServiceResult<Option<Sending>> {
        let seen = breakers::load_all(tx, self.config.breaker).await?;
        while !order.is_empty() {
            let upstream = order.remove(0);
            let Some(probe) = breakers::admit(tx, &seen, &upstream, self.config.breaker, now).await? else {
                continue;
            };
            let upstream_ref = new_upstream_ref();
            let seq = tx
                .route_approval(id, issuer.as_deref(), &upstream, &upstream_ref, 1)
                .await?;
            let detail = json!({ "issuer": issuer, "upstream_ref": upstream_ref, "probe": probe });
            record(tx, events::ROUTED, id, seq, Some(&upstream), detail, now).await?;
            let rest = if original.is_some() { Vec::new() } else { order };
            return Ok(Some(Sending {
                id,
                issuer,
                upstream,
                upstream_ref,
                probe,
                seq,
                rest,
                original,
            }));
        }
        Ok(None)
    }

    /// The upstream could not be reached: counts it against its breaker and routes the request
    /// to the next usable one. `false` when there is none.
    async fn reroute(&self, routing: &LiveRouting, sending: &mut Sending) -> ServiceResult<bool> {
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        self.count_outcome(
            &mut tx,
            &sending.upstream,
            Outcome::ConnectionFailed,
            sending.probe,
            now,
        )
        .await?;
        let rest: Vec<String> = std::mem::take(&mut sending.rest)
            .into_iter()
            .filter(|u| routing.links.contains_key(u))
            .collect();
        let next = self
            .choose(&mut tx, sending.id, sending.issuer.clone(), rest, None, now)
            .await?;
        tx.commit().await?;
        match next {
            Some(next) => {
                *sending = next;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Records how the exchange ended and answers the terminal.
    async fn finish(
        &self,
        routing: &LiveRouting,
        req: &ApprovalRequest,
        sending: &Sending,
        result: Result<Message, LinkError>,
        upstream_ms: Option<i32>,
    ) -> ServiceResult<ApprovalAnswer> {
        let mut ending = ending_of(result);
        ending.upstream_ms = upstream_ms;
        ending.issuer = ending.issuer.take().or_else(|| sending.issuer.clone());
        let cancel = ending.result == ApprovalResult::Timeout && routing.network_cancel();
        let alone = cancel || sending.probe || sending.original.is_some() || ending.counts_against_upstream();
        if !alone && let Some(groups) = &self.groups {
            let finish = Finish {
                id: sending.id,
                seq: sending.seq + 1,
                upstream: sending.upstream.clone(),
                ending: ending.clone(),
            };
            if let Some(answered) = groups.finish.submit_or_alone(finish).await? {
                return Ok(answered);
            }
        }
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let Some(answer) = self
            .record_ending(&mut tx, sending.id, Some(&sending.upstream), &ending, cancel, now)
            .await?
        else {
            // Answered already: by this request's group, whose write failed after it committed.
            tx.rollback().await?;
            return self.stored_answer(sending.id).await;
        };
        if let Some(outcome) = ending.breaker {
            self.count_outcome(&mut tx, &sending.upstream, outcome, sending.probe, now)
                .await?;
        }
        if let Some(original) = &sending.original
            && ending.result == ApprovalResult::Approved
            && req.tx_type.is_cancel()
        {
            tx.mark_sale_canceled(original.id).await?;
        }
        tx.commit().await?;
        self.events.wake();
        if cancel {
            self.cancels_due.notify_one();
        }
        Ok(answer)
    }

    /// The answer stored for approval `id`.
    async fn stored_answer(&self, id: Uuid) -> ServiceResult<ApprovalAnswer> {
        let row = self.store.read().await?.approval(id).await?;
        let answer = row
            .and_then(|r| r.answer)
            .ok_or_else(|| anyhow::anyhow!("approval {id} has no stored answer"))?;
        Ok(serde_json::from_value(answer).map_err(anyhow::Error::from)?)
    }

    /// Stores the answer with its final event (and the network cancel, when `cancel`); `None`
    /// if the approval was answered before (nothing is written).
    async fn record_ending(
        &self,
        tx: &mut Session,
        id: Uuid,
        upstream: Option<&str>,
        ending: &Ending,
        cancel: bool,
        now: Timestamp,
    ) -> ServiceResult<Option<ApprovalAnswer>> {
        let answer = ending.answer(id, upstream);
        let answer_json = serde_json::to_value(&answer).map_err(anyhow::Error::from)?;
        let events_taken = if cancel { 2 } else { 1 };
        let Some(seq) = tx
            .finish_approval(id, &ending.outcome(&answer_json, now), events_taken, None)
            .await?
        else {
            return Ok(None);
        };
        record(tx, ending.subject(), id, seq, upstream, ending.detail(), now).await?;
        if cancel && let Some(upstream) = upstream {
            tx.queue_network_cancel(id, upstream, now).await?;
            record(tx, events::CANCEL_QUEUED, id, seq + 1, Some(upstream), json!({}), now).await?;
        }
        Ok(Some(answer))
    }

    /// The first answer to a repeated request, waiting for it while the first is in flight.
    async fn first_answer(&self, terminal: &ActiveTerminal, req: &ApprovalRequest) -> ServiceResult<ApprovalAnswer> {
        let seq_no = i64::try_from(req.seq_no).unwrap_or(i64::MAX);
        let deadline = Instant::now() + self.config.upstream_timeout * 2;
        loop {
            let first = self
                .store
                .read()
                .await?
                .approval_by_request(&terminal.terminal_id, seq_no, &req.sent_at)
                .await?
                .ok_or_else(|| anyhow::anyhow!("a repeated request whose first is gone"))?;
            if let Some(answer) = first.answer {
                return Ok(serde_json::from_value(answer).map_err(anyhow::Error::from)?);
            }
            if Instant::now() >= deadline {
                return Ok(ApprovalAnswer {
                    transaction_id: first.id,
                    result: ApprovalResult::Error,
                    response_code: codes::IN_PROGRESS.into(),
                    approval_no: None,
                    message: "처리 중".into(),
                    upstream: first.upstream,
                    issuer: first.issuer,
                });
            }
            tokio::time::sleep(REPEAT_POLL_INTERVAL).await;
        }
    }
}

/// The detail of a request's `received` event.
fn received_detail(
    terminal: &ActiveTerminal,
    req: &ApprovalRequest,
    masked: &str,
    original_id: Option<Uuid>,
) -> serde_json::Value {
    json!({
        "terminal_id": terminal.terminal_id, "merchant_id": terminal.merchant_id, "seq_no": req.seq_no,
        "sent_at": req.sent_at, "tx_type": req.tx_type.name(), "amount": req.amount, "card": masked,
        "original_id": original_id,
    })
}

/// A fresh reference for one upstream exchange (12 digits; answers are matched by it).
pub(crate) fn new_upstream_ref() -> String {
    format!("{:012}", fastrand::u64(..1_000_000_000_000))
}

/// The request in our field names, for the upstream's dialect.
fn upstream_request(terminal: &ActiveTerminal, req: &ApprovalRequest, upstream_ref: &str) -> Message {
    let mut m = Message::new(req.tx_type.name(), Direction::Request)
        .with("terminal_id", &terminal.terminal_id)
        .with("seq_no", req.seq_no.to_string())
        .with("sent_at", &req.sent_at)
        .with("amount", req.amount.to_string())
        .with("upstream_ref", upstream_ref)
        .with("installment_months", req.installment_months.to_string());
    match &req.payer {
        Payer::Card { pan, expiry, track2 } => {
            m.set("pan", pan);
            if let Some(e) = expiry {
                m.set("expiry", e);
            }
            if let Some(t) = track2 {
                m.set("track2", t);
            }
        }
        Payer::CashReceipt { id_type, id_number } => {
            m.set("cash_receipt_id_type", id_type);
            m.set("cash_receipt_id_number", id_number);
        }
    }
    if let Some(o) = &req.original {
        m.set("original_approval_no", &o.approval_no);
        m.set("original_approved_at", &o.approved_at);
    }
    m
}

/// What an exchange's result means for the terminal and for the upstream's breaker.
fn ending_of(result: Result<Message, LinkError>) -> Ending {
    match result {
        Ok(answer) => {
            let code = answer.get("response_code").unwrap_or("").to_owned();
            let (result, breaker) = if code == codes::APPROVED {
                (ApprovalResult::Approved, Outcome::Approved)
            } else if SYSTEM_ERROR_CODES.contains(&code.as_str()) {
                (ApprovalResult::Error, Outcome::SystemError)
            } else {
                (ApprovalResult::Declined, Outcome::Declined)
            };
            Ending {
                result,
                approval_no: answer.get("approval_no").filter(|n| !n.is_empty()).map(str::to_owned),
                approved_at: answer.get("approved_at").filter(|n| !n.is_empty()).map(str::to_owned),
                message: answer.get("message").unwrap_or("").to_owned(),
                issuer: answer.get("issuer").filter(|n| !n.is_empty()).map(str::to_owned),
                response_code: code,
                breaker: Some(breaker),
                upstream_ms: None,
            }
        }
        Err(LinkError::NoAnswer | LinkError::Closed) => Ending {
            breaker: Some(Outcome::Timeout),
            ..Ending::refused(ApprovalResult::Timeout, codes::TIMEOUT, "응답시간 초과")
        },
        Err(LinkError::NotSent(_)) => Ending {
            breaker: Some(Outcome::ConnectionFailed),
            ..Ending::refused(ApprovalResult::Error, codes::NO_UPSTREAM, "승인기관 연결 불가")
        },
        Err(LinkError::Format(e)) => {
            tracing::warn!(error = %e, "a request that does not fit the upstream's dialect");
            Ending::refused(ApprovalResult::Error, codes::FORMAT, "전문 형식 오류")
        }
    }
}
