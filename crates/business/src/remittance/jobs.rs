//! The remittance's scheduled jobs, registered by the business side itself: `remittance-retry`
//! gives dead letters their rounds (then hands the remittance to a person), and
//! `remittance-monitor` raises one alert per remittance unfinished ten minutes after it was
//! requested.

use super::Remittances;
use super::steps::side_of;
use async_trait::async_trait;
use jiff::Timestamp;
use minipay_core::RemittanceId;
use minipay_core::remittance::Step;
use minipay_core::schedule::Schedule;
use minipay_events::alerts;
use minipay_jobs::{JobOutcome, ScheduledJob};
use minipay_store::{DeadLetter, NewAlert};
use serde_json::json;
use std::sync::Arc;

/// Dead letters (or remittances) handled per transaction by a job run.
const JOB_BATCH_MAX: u32 = 100;
/// The jobs run every minute.
const EVERY_MINUTE: Schedule = Schedule::Every { seconds: 60 };

/// The jobs and when they run, for `minipay jobs list`.
pub const SCHEDULES: &[(&str, &str)] = &[
    (
        "remittance-retry",
        "every minute: another round for each due dead letter of a remittance; needs_attention after the last",
    ),
    (
        "remittance-monitor",
        "every minute: one alert per remittance unfinished 10 minutes after it was requested",
    ),
];

/// The remittance's jobs, for the job runner.
pub fn jobs(remittances: &Arc<Remittances>) -> Vec<Arc<dyn ScheduledJob>> {
    vec![
        Arc::new(RetryJob(remittances.clone())),
        Arc::new(MonitorJob(remittances.clone())),
    ]
}

struct RetryJob(Arc<Remittances>);
struct MonitorJob(Arc<Remittances>);

#[async_trait]
impl ScheduledJob for RetryJob {
    fn name(&self) -> &'static str {
        "remittance-retry"
    }
    fn schedule(&self) -> Schedule {
        EVERY_MINUTE
    }
    async fn run(&self, at: Timestamp) -> anyhow::Result<JobOutcome> {
        self.0.retry_dead_letters(at).await
    }
}

#[async_trait]
impl ScheduledJob for MonitorJob {
    fn name(&self) -> &'static str {
        "remittance-monitor"
    }
    fn schedule(&self) -> Schedule {
        EVERY_MINUTE
    }
    async fn run(&self, at: Timestamp) -> anyhow::Result<JobOutcome> {
        self.0.raise_stuck_alerts(at).await
    }
}

/// What a retry round did with one dead letter.
enum Round {
    Recovered,
    FailedAgain,
    GaveUp,
}

impl Remittances {
    /// One round for every dead letter of a remittance due at `at`.
    async fn retry_dead_letters(&self, at: Timestamp) -> anyhow::Result<JobOutcome> {
        let (mut recovered, mut failed, mut gave_up) = (0u64, 0u64, 0u64);
        let mut seen = std::collections::HashSet::new();
        loop {
            let due = {
                let mut tx = self.store.begin().await?;
                let due = tx.due_dead_letters("remittance.", at, JOB_BATCH_MAX).await?;
                tx.commit().await?;
                due
            };
            let fresh: Vec<DeadLetter> = due.into_iter().filter(|d| seen.insert(d.id)).collect();
            if fresh.is_empty() {
                break;
            }
            for d in &fresh {
                match self.retry_round(d).await? {
                    Round::Recovered => recovered += 1,
                    Round::FailedAgain => failed += 1,
                    Round::GaveUp => gave_up += 1,
                }
            }
        }
        Ok(JobOutcome {
            processed: recovered + gave_up,
            details: json!({"recovered": recovered, "failed_again": failed, "needs_attention": gave_up}),
        })
    }

    /// Runs the dead letter's side once more and records how it went.
    async fn retry_round(&self, d: &DeadLetter) -> anyhow::Result<Round> {
        let id = RemittanceId::from_uuid(d.subject_id);
        let step = Step::parse(&d.step).unwrap_or(Step::Collect);
        let result = self.advance(id, side_of(step)).await;
        let now = self.clock.now();
        let mut tx = self.store.begin().await?;
        let Some(r) = tx.remittance(id).await? else {
            tx.resolve_dead_letters(d.subject_id, Some(&d.kind), "gone", now)
                .await?;
            tx.commit().await?;
            return Ok(Round::Recovered);
        };
        let stuck_at = r.status.next_step().filter(|s| side_of(*s) == side_of(step));
        let round = match (result, stuck_at) {
            // Moved on: past its failing point (perhaps failing later, at a step with a dead
            // letter of its own once its delivery gives up).
            (Ok(()), _) => Round::Recovered,
            (Err(_), Some(now_at)) if now_at != step => Round::Recovered,
            (Err(_), None) => Round::Recovered,
            (Err(f), Some(_)) if d.rounds + 1 >= self.config.retry_rounds_max => {
                tx.dead_letter_round_failed(d.id, &f.reason, None).await?;
                if self.give_up(&mut tx, &r, step, &f.reason, d.attempts + 1).await? {
                    tx.resolve_dead_letters(d.subject_id, Some(&d.kind), "needs_attention", now)
                        .await?;
                    Round::GaveUp
                } else {
                    Round::FailedAgain
                }
            }
            (Err(f), Some(_)) => {
                let next = now + self.config.retry_round_delay;
                tx.dead_letter_round_failed(d.id, &f.reason, Some(next)).await?;
                Round::FailedAgain
            }
        };
        if matches!(round, Round::Recovered) {
            tx.resolve_dead_letters(d.subject_id, Some(&d.kind), "recovered", now)
                .await?;
        }
        tx.commit().await?;
        self.events.wake();
        Ok(round)
    }

    /// One alert for each remittance unfinished `stuck_after` after it was requested.
    async fn raise_stuck_alerts(&self, at: Timestamp) -> anyhow::Result<JobOutcome> {
        let before = at - self.config.stuck_after;
        let (mut raised, mut seen) = (0u64, 0u64);
        let mut after = None;
        loop {
            let stuck = self
                .store
                .read()
                .await?
                .unfinished_remittances(before, after, JOB_BATCH_MAX)
                .await?;
            let Some(last) = stuck.last() else { break };
            after = Some((last.created_at, last.id.as_uuid()));
            let now = self.clock.now();
            let mut tx = self.store.begin().await?;
            for r in &stuck {
                seen += 1;
                let cause = format!("remittance_stuck:{}", r.id);
                let message = format!(
                    "remittance {} ({} won) is still {} {} minutes after it was requested",
                    r.id,
                    r.amount,
                    r.status.as_str(),
                    at.duration_since(r.created_at).as_secs() / 60
                );
                let alert = NewAlert {
                    kind: "remittance_stuck",
                    cause: &cause,
                    subject_id: Some(r.id.as_uuid()),
                    message: &message,
                    data: json!({"remittance_id": r.id, "status": r.status, "amount": r.amount,
                                 "money_at": r.status.money_at_from(r.held_status, r.source)}),
                };
                if alerts::raise(&mut tx, &alert, now).await?.is_some() {
                    raised += 1;
                }
            }
            tx.commit().await?;
            self.events.wake();
        }
        Ok(JobOutcome {
            processed: raised,
            details: json!({"unfinished": seen, "alerts_raised": raised}),
        })
    }
}
