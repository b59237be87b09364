//! Group commits of the approval path: concurrent requests recorded and routed in one atomic
//! write with their events (the breakers read once per group), and concurrent answers recorded
//! in another — the same rows and events as one by one, in one commit per group (on
//! PostgreSQL one statement each, without `BEGIN`/`COMMIT` round trips). What a group cannot settle (a half-open probe to claim, an error to count,
//! a network cancel to queue, the group failing as a whole) runs on its own.

use crate::approve::Ending;
use crate::breakers;
use crate::events::{self, data};
use crate::request::ApprovalAnswer;
use async_trait::async_trait;
use jiff::Timestamp;
use minipay_core::Clock;
use minipay_core::gateway::breaker::{Admission, Breaker, BreakerPolicy};
use minipay_events::{Events, new_event};
use minipay_services::group_commit::{BatchRunner, GroupCommit, answers_or_all_alone};
use minipay_services::{BatchConfig, ServiceResult};
use minipay_store::{AnsweredApproval, ApprovalStep, NewApproval, RoutedApproval, Store};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use uuid::Uuid;

/// The approval path's two groups.
pub(crate) struct Groups {
    pub intake: GroupCommit<Intake, Intaken>,
    pub finish: GroupCommit<Finish, Finished>,
}

impl Groups {
    /// `None` when grouping is off (`max_commands <= 1`).
    pub fn new(
        store: &Store,
        clock: &Arc<dyn Clock>,
        events: &Events,
        config: BatchConfig,
        breaker: BreakerPolicy,
    ) -> Option<Self> {
        if !config.enabled() {
            return None;
        }
        let intake = IntakeGroups {
            store: store.clone(),
            clock: Arc::clone(clock),
            breaker,
        };
        let finish = FinishGroups {
            store: store.clone(),
            clock: Arc::clone(clock),
            events: events.clone(),
        };
        Some(Self {
            intake: GroupCommit::new(config, Arc::new(intake)),
            finish: GroupCommit::new(config, Arc::new(finish)),
        })
    }
}

/// A sale (not a cancel: that looks up its original on its own) to record and route.
pub(crate) struct Intake {
    pub id: Uuid,
    pub terminal_id: String,
    pub merchant_id: Uuid,
    pub seq_no: i64,
    pub sent_at: String,
    pub tx_type: &'static str,
    pub amount: i64,
    pub card_masked: String,
    pub issuer: Option<String>,
    /// Where it may go, in order (not empty).
    pub order: Vec<String>,
    /// Its `received` event's detail.
    pub received: serde_json::Value,
}

/// Where a group left a request.
pub(crate) enum Intaken {
    /// Recorded and routed to `upstream`; `rest` if it cannot be reached.
    Routed {
        upstream: String,
        upstream_ref: String,
        rest: Vec<String>,
    },
    /// The terminal sent these keys before.
    Repeat,
    /// To record on its own: its first usable upstream is a half-open probe, or none is usable.
    Alone,
    /// The group's write failed: whether it committed is unknown.
    Unknown,
}

/// An exchange's answer to record: approved or declined, not a probe, no breaker count.
pub(crate) struct Finish {
    pub id: Uuid,
    /// Its final event's sequence number: the one after its `routed`.
    pub seq: i32,
    pub upstream: String,
    pub ending: Ending,
}

/// `Ok(None)`: record it on its own (the group failed, or the approval changed meanwhile).
pub(crate) type Finished = ServiceResult<Option<ApprovalAnswer>>;

struct IntakeGroups {
    store: Store,
    clock: Arc<dyn Clock>,
    breaker: BreakerPolicy,
}

#[async_trait]
impl BatchRunner<Intake, Intaken> for IntakeGroups {
    async fn run(&self, group: Vec<Intake>) -> Vec<Intaken> {
        match self.record_group(&group).await {
            Ok(answers) => answers,
            Err(e) => {
                tracing::warn!(size = group.len(), error = ?e, "a group of approvals failed before forwarding; each finds out whether it was recorded");
                group.iter().map(|_| Intaken::Unknown).collect()
            }
        }
    }
}

impl IntakeGroups {
    async fn record_group(&self, group: &[Intake]) -> ServiceResult<Vec<Intaken>> {
        let now = self.clock.now();
        let seen = breakers::load_all(&mut self.store.read().await?, self.breaker).await?;
        let routes: Vec<Option<(String, Vec<String>)>> = group
            .iter()
            .map(|c| first_allowed(&seen, &c.order, self.breaker, now))
            .collect();
        let refs: Vec<String> = group.iter().map(|_| crate::approve::new_upstream_ref()).collect();
        let mut rows = Vec::with_capacity(group.len());
        let mut steps = Vec::with_capacity(group.len() * 2);
        for ((c, route), upstream_ref) in group.iter().zip(&routes).zip(&refs) {
            let Some((upstream, _)) = route else { continue };
            rows.push(RoutedApproval {
                approval: NewApproval {
                    id: c.id,
                    terminal_id: &c.terminal_id,
                    merchant_id: c.merchant_id,
                    seq_no: c.seq_no,
                    sent_at: &c.sent_at,
                    tx_type: c.tx_type,
                    amount: c.amount,
                    card_masked: &c.card_masked,
                    original_id: None,
                    received_at: now,
                },
                issuer: c.issuer.as_deref(),
                upstream,
                upstream_ref,
            });
            let routed = serde_json::json!({ "issuer": c.issuer, "upstream_ref": upstream_ref, "probe": false });
            steps.push(step(c.id, events::RECEIVED, 1, None, c.received.clone(), now));
            steps.push(step(c.id, events::ROUTED, 2, Some(upstream), routed, now));
        }
        let recorded: HashSet<Uuid> = self
            .store
            .record_routed_approvals(&rows, &steps)
            .await?
            .into_iter()
            .collect();
        Ok(group
            .iter()
            .zip(routes)
            .zip(refs)
            .map(|((c, route), upstream_ref)| match route {
                None => Intaken::Alone,
                Some(_) if !recorded.contains(&c.id) => Intaken::Repeat,
                Some((upstream, rest)) => Intaken::Routed {
                    upstream,
                    upstream_ref,
                    rest,
                },
            })
            .collect())
    }
}

/// Event `seq` of approval `id`, written only with the approval's change.
fn step(
    id: Uuid,
    subject: &str,
    seq: i32,
    upstream: Option<&str>,
    detail: serde_json::Value,
    now: Timestamp,
) -> ApprovalStep {
    ApprovalStep {
        approval_id: id,
        event: new_event(subject, data(subject, id, seq, upstream, detail, now), now),
    }
}

/// The first upstream of `order` whose breaker lets a request through without a probe to
/// claim, and the ones after it; `None` when the request must be routed on its own.
fn first_allowed(
    seen: &HashMap<String, Breaker>,
    order: &[String],
    policy: BreakerPolicy,
    now: Timestamp,
) -> Option<(String, Vec<String>)> {
    for (i, upstream) in order.iter().enumerate() {
        match breakers::admission(seen, upstream, policy, now) {
            Admission::Allowed => return Some((upstream.clone(), order[i + 1..].to_vec())),
            Admission::Refused => {}
            Admission::Probe => return None,
        }
    }
    None
}

struct FinishGroups {
    store: Store,
    clock: Arc<dyn Clock>,
    events: Events,
}

#[async_trait]
impl BatchRunner<Finish, Finished> for FinishGroups {
    async fn run(&self, group: Vec<Finish>) -> Vec<Finished> {
        answers_or_all_alone(self.record_group(&group).await, group.len(), "approval answers")
    }
}

impl FinishGroups {
    async fn record_group(&self, group: &[Finish]) -> ServiceResult<Vec<Finished>> {
        let now = self.clock.now();
        let answers: Vec<ApprovalAnswer> = group.iter().map(|f| f.ending.answer(f.id, Some(&f.upstream))).collect();
        let answers_json: Vec<serde_json::Value> = answers
            .iter()
            .map(serde_json::to_value)
            .collect::<Result<_, _>>()
            .map_err(anyhow::Error::from)?;
        let done: Vec<AnsweredApproval<'_>> = group
            .iter()
            .zip(&answers_json)
            .map(|(f, answer)| AnsweredApproval {
                id: f.id,
                outcome: f.ending.outcome(answer, now),
                seq: f.seq,
            })
            .collect();
        let steps: Vec<ApprovalStep> = group
            .iter()
            .map(|f| {
                step(
                    f.id,
                    f.ending.subject(),
                    f.seq,
                    Some(&f.upstream),
                    f.ending.detail(),
                    now,
                )
            })
            .collect();
        let recorded: HashSet<Uuid> = self.store.record_answers(&done, &steps).await?.into_iter().collect();
        self.events.wake();
        // One not recorded changed meanwhile: it is recorded on its own, which finds out how.
        Ok(answers
            .into_iter()
            .map(|answer| Ok(recorded.contains(&answer.transaction_id).then_some(answer)))
            .collect())
    }
}
