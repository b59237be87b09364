//! The job runner: scheduled jobs that run once per slot however many instances run, runs
//! by hand "as of" a time, the run history, draining the durable queue, and background work
//! stepping back while the intake is at capacity.

mod intake;
mod queue;
mod runner;

pub use intake::{IntakeLoad, LULL, SLOW_GROUP};

pub use queue::{
    QueueHandler, QueueReport, Retry, Settled, claim_lease_until, drain_queue, run_batch, run_claimed,
    run_first_attempts,
};
pub use runner::{JobOutcome, JobRunner, RunError, RunReport, ScheduledJob};
