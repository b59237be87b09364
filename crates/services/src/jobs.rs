//! Maintenance jobs that can be run by hand "as of" a time (`POST /v1/admin/jobs/{name}/run`).

use crate::Wallet;
use crate::error::{ServiceError, ServiceResult};
use jiff::Timestamp;
use minipay_core::time::plausible_instant;
use serde::Serialize;
use utoipa::ToSchema;

/// Expired idempotency records deleted per statement.
const IDEMPOTENCY_PURGE_BATCH_MAX: u32 = 1_000;

/// The jobs this build knows, by name.
pub const JOB_NAMES: &[&str] = &["charge-recovery", "idempotency-cleanup"];

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobRunReport {
    pub job: String,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// How many items the run changed.
    pub processed: u64,
    pub details: serde_json::Value,
}

impl Wallet {
    /// Runs job `name` as of `at`.
    #[tracing::instrument(name = "minipay.jobs.run", skip(self), err)]
    ///
    /// `at` may not be in the future: a job run ahead of time would cut short the windows
    /// that protect work still in progress (a pull's grace period, a key's retention).
    pub async fn run_job(&self, name: &str, at: Timestamp) -> ServiceResult<JobRunReport> {
        let at = plausible_instant(at).map_err(ServiceError::validation)?;
        if at > self.clock.now() {
            return Err(ServiceError::validation("at must not be in the future"));
        }
        let processed = match name {
            "charge-recovery" => self.recover_charges(at).await?,
            "idempotency-cleanup" => self.purge_idempotency_keys(at).await?,
            _ => return Err(ServiceError::NotFound("job")),
        };
        Ok(JobRunReport {
            job: name.to_owned(),
            at,
            processed,
            details: serde_json::json!({}),
        })
    }

    /// Deletes idempotency records past their retention, in bounded batches.
    async fn purge_idempotency_keys(&self, at: Timestamp) -> ServiceResult<u64> {
        let mut total = 0;
        loop {
            let mut tx = self.store.begin().await?;
            let n = tx.purge_idempotency_keys(at, IDEMPOTENCY_PURGE_BATCH_MAX).await?;
            tx.commit().await?;
            total += n;
            if n < u64::from(IDEMPOTENCY_PURGE_BATCH_MAX) {
                return Ok(total);
            }
        }
    }
}
