//! Transactions run again when they lose on a lock: a job step that meets a payment, a reader
//! or another job on a lock gives way and tries again, instead of failing its run.

use minipay_store::{Session, Store, StoreError};
use std::pin::Pin;
use std::time::Duration;

/// Attempts after the first before a step's lock conflict fails the job.
const LOCK_CONFLICT_RETRIES_MAX: u32 = 8;
/// The wait before the first retry; it doubles with each one, up to the maximum: long enough
/// for the payments queued behind the step to pass, short next to a job's run.
const LOCK_CONFLICT_BACKOFF_MS: u64 = 50;
const LOCK_CONFLICT_BACKOFF_MAX_MS: u64 = 1_000;

/// One step's work in a transaction (boxed: an async closure's future cannot be required to be
/// `Send`, which the jobs' futures must be).
pub(crate) type Step<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Runs `step` in a transaction of its own and commits it; a lock conflict (a deadlock, a lock
/// wait timed out) rolls it back and runs it again, at most `LOCK_CONFLICT_RETRIES_MAX` times
/// more. `step` must therefore be safe to rerun from the start — as every job step is.
pub(crate) async fn transaction_retried<T>(
    store: &Store,
    what: &'static str,
    mut step: impl for<'a> FnMut(&'a mut Session) -> Step<'a, T>,
) -> Result<T, StoreError> {
    let mut retries = 0;
    loop {
        let attempt = async {
            let mut tx = store.begin().await?;
            let out = step(&mut tx).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(out)
        };
        match attempt.await {
            Err(e) if e.is_lock_conflict() && retries < LOCK_CONFLICT_RETRIES_MAX => {
                retries += 1;
                let wait = backoff(retries);
                tracing::info!(what, retries, ?wait, error = ?e, "lost on a lock; trying again");
                metrics::counter!("minipay_lock_conflict_retries_total", "step" => what).increment(1);
                tokio::time::sleep(wait).await;
            }
            done => return done,
        }
    }
}

/// The wait before retry number `retry` (from 1).
fn backoff(retry: u32) -> Duration {
    let ms = LOCK_CONFLICT_BACKOFF_MS.saturating_mul(1 << (retry - 1).min(16));
    Duration::from_millis(ms.min(LOCK_CONFLICT_BACKOFF_MAX_MS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_maximum() {
        let waits: Vec<u64> = (1..=LOCK_CONFLICT_RETRIES_MAX)
            .map(|r| backoff(r).as_millis() as u64)
            .collect();
        assert_eq!(waits, [50, 100, 200, 400, 800, 1_000, 1_000, 1_000]);
    }
}
