//! Reconciliation (대사) of an upstream's business day: its settlement file — fetched from the
//! upstream's `settlement_url`, or uploaded by an operator — matched against what the read side
//! believes it settled (`core::gateway::reconciliation`), stored, and alerted on when anything
//! did not match. The file is fetched before any transaction begins.

use crate::{ReadSide, terms};
use jiff::Timestamp;
use jiff::civil::Date;
use minipay_core::gateway::{Discrepancy, Reconciliation, RecordType, SettledRecord, parse_settlement_file, reconcile};
use minipay_events::alerts;
use minipay_services::{ServiceError, ServiceResult};
use minipay_store::{NewAlert, ReconciliationRecord, SettledRow};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use utoipa::ToSchema;
use uuid::Uuid;

/// How long an upstream has to serve its settlement file.
const FETCH_TIMEOUT_SECS: u64 = 60;
/// The largest settlement file fetched (10 million lines of about 60 bytes, with room).
const SETTLEMENT_FILE_BYTES_MAX: usize = 1 << 30;
/// The alert raised when a day does not reconcile.
pub const RECONCILIATION_MISMATCH: &str = "reconciliation_mismatch";

/// A record that did not match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DiscrepancyView {
    /// `missing_here`, `missing_there` or `amount_mismatch`.
    pub kind: String,
    /// `approval` or `cancel`.
    pub record_type: String,
    pub terminal_id: String,
    pub seq_no: i64,
    pub sent_at: String,
    /// Our amount (none when missing here).
    pub ours: Option<i64>,
    /// The file's amount (none when missing there).
    pub theirs: Option<i64>,
    pub approval_no: Option<String>,
}

/// One reconciliation as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ReconciliationView {
    pub id: Uuid,
    pub upstream: String,
    #[schema(value_type = String, example = "2026-12-04")]
    pub date: Date,
    /// `fetched` (from the upstream's `settlement_url`) or `uploaded`.
    pub source: String,
    pub matched: i64,
    pub missing_here: i64,
    pub missing_there: i64,
    pub amount_mismatch: i64,
    /// Every record that did not match.
    pub items: Vec<DiscrepancyView>,
    #[schema(value_type = String)]
    pub created_at: Timestamp,
}

impl From<&Discrepancy> for DiscrepancyView {
    fn from(d: &Discrepancy) -> Self {
        Self {
            kind: d.finding.name().to_owned(),
            record_type: d.record_type.name().to_owned(),
            terminal_id: d.terminal_id.clone(),
            seq_no: d.seq_no,
            sent_at: d.sent_at.clone(),
            ours: d.ours,
            theirs: d.theirs,
            approval_no: d.approval_no.clone(),
        }
    }
}

impl TryFrom<ReconciliationRecord> for ReconciliationView {
    type Error = ServiceError;
    fn try_from(r: ReconciliationRecord) -> ServiceResult<Self> {
        let items = serde_json::from_str(&r.discrepancies)
            .map_err(|e| ServiceError::Internal(anyhow::anyhow!("reconciliation {}: {e}", r.id)))?;
        Ok(Self {
            id: r.id,
            upstream: r.upstream,
            date: r.business_date,
            source: r.source,
            matched: r.matched,
            missing_here: r.missing_here,
            missing_there: r.missing_there,
            amount_mismatch: r.amount_mismatch,
            items,
            created_at: r.created_at,
        })
    }
}

fn record_of(row: SettledRow) -> SettledRecord {
    SettledRecord {
        record_type: if row.record_type == "cancel" {
            RecordType::Cancel
        } else {
            RecordType::Approval
        },
        terminal_id: row.terminal_id,
        seq_no: row.seq_no,
        sent_at: row.sent_at,
        amount: row.amount,
        approval_no: row.approval_no,
    }
}

impl ReadSide {
    /// Reconciles `upstream`'s day `date` against `file` (uploaded), or the file fetched from
    /// its `settlement_url`; stores the outcome and raises one alert per day and upstream that
    /// did not reconcile.
    pub async fn reconcile(
        &self,
        upstream: &str,
        date: Date,
        file: Option<String>,
    ) -> ServiceResult<ReconciliationView> {
        let all = terms::current(&self.store).await?;
        let terms = all
            .iter()
            .find(|t| t.id == upstream)
            .ok_or(ServiceError::NotFound("upstream"))?;
        let (text, source) = match file {
            Some(text) => (text, "uploaded"),
            None => (self.fetch_settlement_file(terms, date).await?, "fetched"),
        };
        let theirs = parse_settlement_file(&text).map_err(|e| match source {
            "uploaded" => ServiceError::validation(format!("the settlement file: {e}")),
            _ => ServiceError::UpstreamUnavailable(format!("{upstream} served a malformed settlement file: {e}")),
        })?;
        let ours: Vec<SettledRecord> = self
            .store
            .read()
            .await?
            .settled_records(date, Some(upstream), None)
            .await?
            .into_iter()
            .map(record_of)
            .collect();
        let outcome = reconcile(&ours, &theirs);
        self.record_reconciliation(upstream, date, source, &outcome).await
    }

    async fn fetch_settlement_file(&self, terms: &terms::UpstreamTerms, date: Date) -> ServiceResult<String> {
        let url = terms.settlement_url.as_deref().ok_or_else(|| {
            ServiceError::InvalidState(format!(
                "{} has no settlement_url in the routing configuration: upload its file instead",
                terms.id
            ))
        })?;
        let unavailable =
            |why: String| ServiceError::UpstreamUnavailable(format!("{}'s settlement file: {why}", terms.id));
        let mut url = reqwest::Url::parse(url).map_err(|e| unavailable(e.to_string()))?;
        url.query_pairs_mut().append_pair("date", &date.to_string());
        let answer = self
            .http
            .get(url)
            .timeout(Duration::from_secs(FETCH_TIMEOUT_SECS))
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        if !answer.status().is_success() {
            return Err(unavailable(format!("answered {}", answer.status())));
        }
        let mut answer = answer;
        let mut body = Vec::new();
        while let Some(chunk) = answer.chunk().await.map_err(|e| unavailable(e.to_string()))? {
            if body.len() + chunk.len() > SETTLEMENT_FILE_BYTES_MAX {
                return Err(unavailable(format!("larger than {SETTLEMENT_FILE_BYTES_MAX} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        String::from_utf8(body).map_err(|_| unavailable("not UTF-8".into()))
    }

    async fn record_reconciliation(
        &self,
        upstream: &str,
        date: Date,
        source: &str,
        outcome: &Reconciliation,
    ) -> ServiceResult<ReconciliationView> {
        let items: Vec<DiscrepancyView> = outcome.discrepancies.iter().map(DiscrepancyView::from).collect();
        let count = |n: u64| i64::try_from(n).expect("counts fit i64");
        let record = ReconciliationRecord {
            id: Uuid::now_v7(),
            upstream: upstream.to_owned(),
            business_date: date,
            source: source.to_owned(),
            matched: count(outcome.matched),
            missing_here: count(outcome.missing_here),
            missing_there: count(outcome.missing_there),
            amount_mismatch: count(outcome.amount_mismatch),
            discrepancies: serde_json::to_string(&items).map_err(|e| ServiceError::Internal(e.into()))?,
            created_at: self.clock.now(),
        };
        let now = record.created_at;
        let mut tx = self.store.begin().await?;
        tx.insert_reconciliation(&record).await?;
        if !outcome.is_clean() {
            let message = format!(
                "{upstream} on {date}: {} missing here, {} missing there, {} amount mismatches",
                outcome.missing_here, outcome.missing_there, outcome.amount_mismatch
            );
            let data = serde_json::json!({"upstream": upstream, "date": date, "reconciliation_id": record.id,
                "missing_here": outcome.missing_here, "missing_there": outcome.missing_there,
                "amount_mismatch": outcome.amount_mismatch});
            let cause = format!("{RECONCILIATION_MISMATCH}:{upstream}:{date}");
            let alert = NewAlert {
                kind: RECONCILIATION_MISMATCH,
                cause: &cause,
                subject_id: Some(record.id),
                message: &message,
                data,
            };
            alerts::raise(&mut tx, &alert, now).await?;
        }
        tx.commit().await?;
        ReconciliationView::try_from(record)
    }
}
