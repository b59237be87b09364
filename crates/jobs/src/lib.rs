//! The job runner: scheduled jobs that run once per slot however many instances run, runs
//! by hand "as of" a time, the run history, and draining the durable queue.

mod queue;
mod runner;

pub use queue::{
    QueueHandler, QueueReport, Retry, Settled, claim_lease_until, drain_queue, run_batch, run_claimed,
    run_first_attempts,
};
pub use runner::{JobOutcome, JobRunner, RunError, RunReport, ScheduledJob};
