//! The `approval-projection` consumer: each batch of approval events recorded in one
//! transaction — new steps into the history, conflicting ones beside it, and each touched
//! transaction's final state folded again from its whole history under its lock. Embedded, a
//! batch is recorded in the transaction that publishes it; on JetStream, in its own.

use crate::fold::{self, APPROVAL_SUBJECTS};
use async_trait::async_trait;
use minipay_core::Clock;
use minipay_events::{Consumer, Event, Failure, InTransaction};
use minipay_store::{BackendKind, HistoryStep, Session, Store, StoreError};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use uuid::Uuid;

/// Events projected in one transaction (the deliveries claimed at once).
const PROJECTION_BATCH_MAX: u32 = 1_000;
const SQLITE_BATCH_MAX: u32 = 100;

/// Projects events into the read side's tables.
#[derive(Clone)]
pub struct Projection {
    store: Store,
    clock: Arc<dyn Clock>,
}

impl Projection {
    pub fn new(store: Store, clock: Arc<dyn Clock>) -> Self {
        Self { store, clock }
    }

    /// Records `steps` (of any transactions, in any order, redeliveries included) and folds
    /// the final state of every transaction they touch, in one transaction.
    pub async fn record(&self, steps: &[HistoryStep]) -> Result<(), StoreError> {
        if steps.is_empty() {
            return Ok(());
        }
        let mut tx = self.store.begin().await?;
        self.record_in(&mut tx, steps).await?;
        tx.commit().await
    }

    /// [`Projection::record`] in the caller's transaction.
    async fn record_in(&self, tx: &mut Session, steps: &[HistoryStep]) -> Result<(), StoreError> {
        let now = self.clock.now();
        let ids: Vec<Uuid> = steps
            .iter()
            .map(|s| s.transaction_id)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        tx.lock_approval_transactions(&ids).await?;
        tx.insert_history_steps(steps, now).await?;
        let recorded = by_transaction(tx.history_of(&ids).await?);
        let views: Vec<_> = recorded.values().filter_map(|r| fold::view_of(r)).collect();
        tx.save_approval_views(&views).await?;
        let conflicting: Vec<HistoryStep> = by_transaction(steps.to_vec())
            .iter()
            // A transaction a rebuild cleared meanwhile has nothing recorded: the rebuild replays it.
            .filter_map(|(id, arrived)| recorded.get(id).map(|r| (r, arrived)))
            .flat_map(|(recorded, arrived)| {
                fold::conflicts(recorded, arrived)
                    .into_iter()
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect();
        if !conflicting.is_empty() {
            tracing::warn!(
                count = conflicting.len(),
                "approval events conflicting with recorded steps kept apart"
            );
            tx.record_history_conflicts(&conflicting, now).await?;
        }
        metrics::counter!("minipay_readside_steps_total").increment(steps.len() as u64);
        Ok(())
    }

    /// Projects `events`: one answer per event, in order. Events that are not approval steps
    /// fail alone; if the batch's transaction fails, each event is tried alone, so one event
    /// the database refuses never holds back the others.
    pub async fn project(&self, events: &[Event]) -> Vec<Result<(), Failure>> {
        let parsed: Vec<Result<HistoryStep, Failure>> = events
            .iter()
            .map(|e| fold::history_step(e).map_err(Failure::new))
            .collect();
        let steps: Vec<HistoryStep> = parsed.iter().filter_map(|p| p.as_ref().ok().cloned()).collect();
        match self.record(&steps).await {
            Ok(()) => parsed.into_iter().map(|p| p.map(|_| ())).collect(),
            Err(e) if steps.len() > 1 => {
                tracing::info!(error = %e, "projecting a batch failed; projecting its events one by one");
                let mut answers = Vec::with_capacity(parsed.len());
                for p in parsed {
                    answers.push(match p {
                        Ok(step) => self.record(std::slice::from_ref(&step)).await.map_err(Failure::new),
                        Err(f) => Err(f),
                    });
                }
                answers
            }
            Err(e) => parsed
                .into_iter()
                .map(|p| p.and(Err(Failure::new(format!("projecting: {e}")))))
                .collect(),
        }
    }
}

/// Steps grouped by transaction, each group in sequence order.
fn by_transaction(steps: Vec<HistoryStep>) -> BTreeMap<Uuid, Vec<HistoryStep>> {
    let mut groups: BTreeMap<Uuid, Vec<HistoryStep>> = BTreeMap::new();
    for s in steps {
        groups.entry(s.transaction_id).or_default().push(s);
    }
    for g in groups.values_mut() {
        g.sort_by_key(|s| s.seq);
    }
    groups
}

#[async_trait]
impl Consumer for Projection {
    fn name(&self) -> &'static str {
        "approval-projection"
    }

    fn subject(&self) -> &'static str {
        APPROVAL_SUBJECTS
    }

    /// A batch is one transaction whatever its size: large batches keep the read side up with
    /// the gateway (each event of an approval arrives within a few milliseconds of the others).
    fn batch_max(&self) -> u32 {
        match self.store.kind() {
            BackendKind::Postgres => PROJECTION_BATCH_MAX,
            // SQLite's one writer is the gateway's too: shorter transactions, shorter waits.
            BackendKind::Sqlite => SQLITE_BATCH_MAX,
        }
    }

    async fn handle(&self, event: &Event) -> Result<(), Failure> {
        self.project(std::slice::from_ref(event))
            .await
            .pop()
            .unwrap_or_else(|| Err(Failure::new("no answer")))
    }

    async fn handle_batch(&self, events: &[Event]) -> Vec<Result<(), Failure>> {
        self.project(events).await
    }

    /// Embedded: recorded in the dispatcher's transaction (the projection writes nothing but
    /// its own tables, and recording a step twice changes nothing).
    fn in_transaction(&self) -> Option<&dyn InTransaction> {
        Some(self)
    }
}

#[async_trait]
impl InTransaction for Projection {
    /// Any event that is not an approval step fails the batch: it goes the queued way, where
    /// that event alone is dead-lettered.
    async fn apply(&self, tx: &mut Session, events: &[Event]) -> anyhow::Result<()> {
        let steps = events
            .iter()
            .map(fold::history_step)
            .collect::<Result<Vec<HistoryStep>, _>>()
            .map_err(|e| anyhow::anyhow!("not an approval step: {e}"))?;
        if !steps.is_empty() {
            self.record_in(tx, &steps).await?;
        }
        Ok(())
    }
}
