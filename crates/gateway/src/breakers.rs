//! The upstreams' breakers as every instance shares them: one row per upstream holding the core
//! `Breaker`; admission reads them in the intake's transaction (and locks a row only to claim
//! a probe), errors and probe results change them under the row's lock, and an opening or a
//! closing raises its alert in the same transaction.

use crate::Gateway;
use jiff::Timestamp;
use minipay_core::gateway::breaker::{Admission, Breaker, BreakerPolicy, Outcome, Transition};
use minipay_events::alerts;
use minipay_store::{NewAlert, Session, StoreError};
use std::collections::HashMap;

/// Every stored breaker, by upstream (an upstream without a row is closed).
pub(crate) async fn load_all(tx: &mut Session, policy: BreakerPolicy) -> Result<HashMap<String, Breaker>, StoreError> {
    let rows = tx.breakers().await?;
    Ok(rows
        .into_iter()
        .map(|(id, json)| (id.clone(), parse(&id, &json, policy)))
        .collect())
}

fn parse(upstream: &str, json: &str, policy: BreakerPolicy) -> Breaker {
    let mut breaker = serde_json::from_str::<Breaker>(json).unwrap_or_else(|e| {
        tracing::error!(upstream, error = %e, "an unreadable breaker row; starting it closed");
        Breaker::new(policy)
    });
    breaker.set_policy(policy);
    breaker
}

async fn locked(tx: &mut Session, upstream: &str, policy: BreakerPolicy) -> Result<Breaker, StoreError> {
    Ok(match tx.breaker_for_update(upstream).await? {
        Some(json) => parse(upstream, &json, policy),
        None => Breaker::new(policy),
    })
}

async fn store(tx: &mut Session, upstream: &str, breaker: &Breaker, now: Timestamp) -> Result<(), StoreError> {
    let json = serde_json::to_string(breaker).map_err(|e| StoreError::Corrupt(format!("breaker as JSON: {e}")))?;
    tx.put_breaker(upstream, &json, now).await
}

/// What `upstream`'s breaker as read in `seen` says of a request now, claiming nothing.
pub(crate) fn admission(
    seen: &HashMap<String, Breaker>,
    upstream: &str,
    policy: BreakerPolicy,
    now: Timestamp,
) -> Admission {
    let mut breaker = seen.get(upstream).cloned().unwrap_or_else(|| Breaker::new(policy));
    breaker.admit(now)
}

/// Whether a request may go to `upstream` now: `Some(probe)` if it may (`probe` = it is the one
/// probe of a half-open breaker), `None` if its breaker is open.
pub(crate) async fn admit(
    tx: &mut Session,
    seen: &HashMap<String, Breaker>,
    upstream: &str,
    policy: BreakerPolicy,
    now: Timestamp,
) -> Result<Option<bool>, StoreError> {
    match admission(seen, upstream, policy, now) {
        Admission::Allowed => return Ok(Some(false)),
        Admission::Refused => return Ok(None),
        Admission::Probe => {}
    }
    // Claiming the probe changes the row: under its lock, from what is stored now.
    let mut breaker = locked(tx, upstream, policy).await?;
    let admission = breaker.admit(now);
    if admission == Admission::Probe {
        store(tx, upstream, &breaker, now).await?;
    }
    Ok(match admission {
        Admission::Allowed => Some(false),
        Admission::Probe => Some(true),
        Admission::Refused => None,
    })
}

impl Gateway {
    /// Counts an upstream's outcome in its breaker, when it matters: an error always, a
    /// success only for the probe (a closed breaker is not written on the fast path).
    pub(crate) async fn count_outcome(
        &self,
        tx: &mut Session,
        upstream: &str,
        outcome: Outcome,
        probe: bool,
        now: Timestamp,
    ) -> Result<(), StoreError> {
        let is_error = outcome.counts_against_upstream();
        if !is_error && !probe {
            return Ok(());
        }
        let mut breaker = locked(tx, upstream, self.config.breaker).await?;
        let transition = if is_error {
            breaker.record_error(now)
        } else {
            breaker.record_success(now)
        };
        store(tx, upstream, &breaker, now).await?;
        if let Some(t) = transition {
            raise_transition(tx, upstream, t, &breaker, now).await?;
        }
        Ok(())
    }
}

/// One alert per opening (`upstream_circuit_open`) and per closing (`upstream_circuit_closed`);
/// a failed probe re-opens without a second alert (the breaker never closed).
async fn raise_transition(
    tx: &mut Session,
    upstream: &str,
    transition: Transition,
    breaker: &Breaker,
    now: Timestamp,
) -> Result<(), StoreError> {
    let opened_at = breaker.opened_at().unwrap_or(now);
    let (kind, message) = match transition {
        Transition::Opened => ("upstream_circuit_open", format!("the breaker of {upstream} opened")),
        Transition::Closed => ("upstream_circuit_closed", format!("the breaker of {upstream} closed")),
        Transition::Reopened => {
            tracing::warn!(upstream, "a probe failed; the breaker stays open");
            return Ok(());
        }
    };
    tracing::warn!(upstream, kind, "breaker transition");
    let cause = format!("{kind}:{upstream}:{}", opened_at.as_microsecond());
    let alert = NewAlert {
        kind,
        cause: &cause,
        subject_id: None,
        message: &message,
        data: serde_json::json!({ "upstream": upstream, "opened_at": opened_at, "at": now }),
    };
    alerts::raise(tx, &alert, now).await?;
    Ok(())
}
