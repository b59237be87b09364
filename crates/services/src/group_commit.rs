//! Group commit for any kind of request: concurrent requests queue for one transaction; a
//! leader takes the queue when it is full or its oldest request has waited long enough, has it
//! run as one batch (at most `in_flight_max` batches at once), and answers each request. The
//! batch's work — one transaction, every rule checked per request — is the runner's.

use crate::ServiceResult;
use crate::batch::BatchConfig;
use async_trait::async_trait;
use minipay_jobs::IntakeLoad;
use std::sync::{Arc, Mutex};
use tokio::sync::{Notify, Semaphore, oneshot};
use tokio::time::Instant;

/// Runs a batch: one answer per command, in their order.
#[async_trait]
pub trait BatchRunner<C, A>: Send + Sync + 'static {
    async fn run(&self, commands: Vec<C>) -> Vec<A>;
}

/// The queue of one kind of request, and its leader.
pub struct GroupCommit<C, A> {
    inner: Arc<Inner<C, A>>,
}

/// What one queue has done (for operators and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct GroupStats {
    /// Batches run (whatever became of them).
    pub batches: u64,
    /// Commands they carried.
    pub commands: u64,
    /// The most commands one batch carried.
    pub largest: u64,
}

struct Inner<C, A> {
    config: BatchConfig,
    stats: Mutex<GroupStats>,
    runner: Arc<dyn BatchRunner<C, A>>,
    waiting: Mutex<Waiting<C, A>>,
    /// Wakes a waiting leader when its batch is full.
    full: Notify,
    /// A permit is held while a batch runs.
    running: Semaphore,
    /// Told when a batch ready to run finds every slot busy, and how long each batch's oldest
    /// command waited for its answer (the intake at capacity, or falling behind).
    load: Option<IntakeLoad>,
}

struct Waiting<C, A> {
    queue: Vec<(C, oneshot::Sender<A>)>,
    /// Whether a leader task is waiting to take the queue.
    led: bool,
}

impl<C: Send + 'static, A: Send + 'static> GroupCommit<C, A> {
    pub fn new(config: BatchConfig, runner: Arc<dyn BatchRunner<C, A>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                running: Semaphore::new(config.in_flight_max.max(1)),
                config,
                stats: Mutex::default(),
                runner,
                waiting: Mutex::new(Waiting {
                    queue: Vec::new(),
                    led: false,
                }),
                full: Notify::new(),
                load: None,
            }),
        }
    }

    /// Tells `load` whenever a batch ready to run finds every slot busy, and how long each
    /// batch's oldest command waited: when this intake is at capacity or falling behind,
    /// background work steps back for a moment.
    pub fn reporting_to(mut self, load: IntakeLoad) -> Self {
        Arc::get_mut(&mut self.inner)
            .expect("a new group commit is not shared yet")
            .load = Some(load);
        self
    }

    /// Queues `command` for the next batch and waits for its answer; `None` if the batch
    /// ended without answering (its task panicked: whether it committed is unknown, so the
    /// caller must not run it again blindly).
    pub async fn submit(&self, command: C) -> Option<A> {
        let (answer, answered) = oneshot::channel();
        let lead = {
            let mut waiting = self.inner.waiting.lock().expect("group commit lock");
            waiting.queue.push((command, answer));
            if waiting.queue.len() >= self.inner.config.max_commands {
                self.inner.full.notify_waiters();
            }
            !std::mem::replace(&mut waiting.led, true)
        };
        if lead {
            // The batch is run by its own task, so that a caller who goes away (a dropped
            // connection) never abandons the others' batch half-way.
            tokio::spawn(Arc::clone(&self.inner).lead());
        }
        answered.await.ok()
    }

    pub fn stats(&self) -> GroupStats {
        *self.inner.stats.lock().expect("group stats lock")
    }
}

/// A runner's answer to a request it may hand back: `Ok(Some(_))` answered, `Err(_)` refused,
/// `Ok(None)` handed back to run on its own.
pub type OrAlone<T> = ServiceResult<Option<T>>;

impl<C: Send + 'static, T: Send + 'static> GroupCommit<C, OrAlone<T>> {
    /// [`Self::submit`] for a runner that may hand requests back: the group's answer, or
    /// `Ok(None)` to run the request on its own — handed back, or the batch's task died (then
    /// whether it committed is unknown, and the request's idempotency key, read again on its
    /// own, tells).
    pub async fn submit_or_alone(&self, command: C) -> OrAlone<T> {
        self.submit(command).await.transpose().map(Option::flatten)
    }
}

/// Every request of a group handed back to run on its own.
pub fn all_alone<T>(size: usize) -> Vec<OrAlone<T>> {
    (0..size).map(|_| Ok(None)).collect()
}

/// A group's answers, or — when the group failed as a whole (logged, naming `what` it
/// carried) — every request handed back to run on its own.
pub fn answers_or_all_alone<T, E: std::fmt::Debug>(
    answers: Result<Vec<OrAlone<T>>, E>,
    size: usize,
    what: &str,
) -> Vec<OrAlone<T>> {
    answers.unwrap_or_else(|e| {
        tracing::info!(size, error = ?e, "a group of {what} failed; each runs on its own");
        all_alone(size)
    })
}

impl<C: Send + 'static, A: Send + 'static> Inner<C, A> {
    /// Waits until the batch is full or its oldest request has waited `max_wait`, then — once
    /// a slot is free — runs what is queued, in batches of at most `max_commands`.
    async fn lead(self: Arc<Self>) {
        // The leader is the first command of its batch: this is when the oldest came.
        let began = Instant::now();
        let deadline = began + self.config.max_wait;
        // No wait at all (not even a timer's millisecond tick) when none is asked for.
        while !self.config.max_wait.is_zero() {
            let full = self.full.notified();
            tokio::pin!(full);
            full.as_mut().enable();
            if self.waiting.lock().expect("group commit lock").queue.len() >= self.config.max_commands {
                break;
            }
            tokio::select! {
                _ = full => {}
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        // What arrives while the slots are busy waits for the next batch, so batches grow with
        // the load instead of competing for the same rows.
        if self.running.available_permits() == 0
            && let Some(load) = &self.load
        {
            load.at_capacity();
        }
        let _running = self.running.acquire().await.expect("the semaphore is never closed");
        let mut queued = {
            let mut waiting = self.waiting.lock().expect("group commit lock");
            waiting.led = false;
            std::mem::take(&mut waiting.queue)
        };
        while !queued.is_empty() {
            let rest = queued.split_off(queued.len().min(self.config.max_commands.max(1)));
            let (commands, answers): (Vec<C>, Vec<oneshot::Sender<A>>) = queued.into_iter().unzip();
            {
                let mut stats = self.stats.lock().expect("group stats lock");
                stats.batches += 1;
                stats.commands += commands.len() as u64;
                stats.largest = stats.largest.max(commands.len() as u64);
            }
            // Said before the commit as well as after: the commit wakes its events' consumers,
            // and they must already see a slow group (tests/api/payments.rs, "a full intake").
            if let Some(load) = &self.load {
                load.oldest_request_waited(began.elapsed());
            }
            let results = self.runner.run(commands).await;
            assert_eq!(results.len(), answers.len(), "one answer per command");
            for (answer, result) in answers.into_iter().zip(results) {
                // The caller may have gone away; what its command did stands either way.
                let _ = answer.send(result);
            }
            if let Some(load) = &self.load {
                load.oldest_request_waited(began.elapsed());
            }
            queued = rest;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_group_hands_every_request_back_and_a_committed_one_keeps_its_answers() {
        let failed: Vec<OrAlone<u8>> = answers_or_all_alone(Err::<Vec<OrAlone<u8>>, _>("down"), 3, "tests");
        assert_eq!(failed.len(), 3);
        assert!(failed.iter().all(|a| matches!(a, Ok(None))));
        let committed = answers_or_all_alone::<u8, &str>(Ok(vec![Ok(Some(7)), Ok(None)]), 2, "tests");
        assert!(matches!(committed.as_slice(), [Ok(Some(7)), Ok(None)]));
    }

    /// Answers each command with itself, after holding its slot for the most milliseconds
    /// any of them names.
    struct Sleepy;

    #[async_trait]
    impl BatchRunner<u8, u8> for Sleepy {
        async fn run(&self, commands: Vec<u8>) -> Vec<u8> {
            let ms = commands.iter().copied().max().unwrap_or(0);
            tokio::time::sleep(std::time::Duration::from_millis(u64::from(ms))).await;
            commands
        }
    }

    fn one_slot(load: &IntakeLoad) -> Arc<GroupCommit<u8, u8>> {
        let config = BatchConfig {
            max_commands: 8,
            max_wait: std::time::Duration::ZERO,
            in_flight_max: 1,
        };
        Arc::new(GroupCommit::new(config, Arc::new(Sleepy)).reporting_to(load.clone()))
    }

    #[tokio::test]
    async fn a_batch_answered_slowly_reports_the_intake_at_capacity() {
        let load = IntakeLoad::new();
        assert_eq!(one_slot(&load).submit(100).await, Some(100));
        assert!(load.calm_for().is_some(), "its command waited 100 ms for its answer");
    }

    #[tokio::test]
    async fn a_batch_answered_at_once_with_a_slot_free_leaves_the_intake_calm() {
        let load = IntakeLoad::new();
        let groups = one_slot(&load);
        assert_eq!(groups.submit(0).await, Some(0));
        assert_eq!(groups.submit(0).await, Some(0));
        assert_eq!(load.calm_for(), None, "no batch waited for a slot or for its answer");
    }

    /// Answers whether, while it ran, the intake it reports to was already at capacity.
    struct Peeking(IntakeLoad);

    #[async_trait]
    impl BatchRunner<u8, bool> for Peeking {
        async fn run(&self, commands: Vec<u8>) -> Vec<bool> {
            let at_capacity = self.0.calm_for().is_some();
            commands.iter().map(|_| at_capacity).collect()
        }
    }

    /// A group whose oldest request waited past the slow mark before it ran says so before
    /// its commit: what the commit wakes (its events' consumers) already sees it.
    #[tokio::test]
    async fn a_group_that_waited_long_reports_the_intake_at_capacity_before_its_commit() {
        let load = IntakeLoad::new();
        let config = BatchConfig {
            max_commands: 8,
            max_wait: minipay_jobs::SLOW_GROUP + std::time::Duration::from_millis(5),
            in_flight_max: 1,
        };
        let groups = GroupCommit::new(config, Arc::new(Peeking(load.clone()))).reporting_to(load.clone());
        assert_eq!(groups.submit(0).await, Some(true));
    }

    #[tokio::test]
    async fn a_batch_that_finds_every_slot_busy_reports_the_intake_at_capacity() {
        let load = IntakeLoad::new();
        let groups = one_slot(&load);
        let first = tokio::spawn({
            let groups = groups.clone();
            async move { groups.submit(200).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        // At capacity as soon as it queues behind the first, before either is answered.
        let second = tokio::spawn({
            let groups = groups.clone();
            async move { groups.submit(0).await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(
            load.calm_for().is_some(),
            "the second batch is waiting for the first's slot"
        );
        assert_eq!(first.await.expect("the first batch"), Some(200));
        assert_eq!(second.await.expect("the second batch"), Some(0));
    }
}
