//! The approval read side (API-gateway.md "Events and the read side"): the projection of every
//! `minipay.approval.*` event into each transaction's history and final state, its rebuild from
//! zero, the listing operators search, and settlement (정산) per merchant and business day.

pub mod fold;
mod jobs;
mod projection;
pub mod reconciliation;
pub mod settlement;
pub mod terms;
pub mod views;

pub use jobs::{SCHEDULES, jobs};
pub use projection::Projection;
pub use reconciliation::{DiscrepancyView, ReconciliationView};
pub use settlement::{FeeRates, MerchantSettlement, settlements_csv};
pub use views::{ApprovalDetail, ApprovalSummary, HistoryStepView};

use anyhow::Context as _;
use jiff::Timestamp;
use jiff::civil::Date;
use minipay_core::request::PageLimit;
use minipay_core::{BusinessDate, Clock};
use minipay_events::{EventsConfig, ReplaySource, replay};
use minipay_services::pagination::{decode_cursor, page_of, rows_for};
use minipay_services::views::Page;
use minipay_services::{ServiceError, ServiceResult};
use minipay_store::{ApprovalViewFilter, Store};
use serde::Serialize;
use std::sync::Arc;
use std::time::Instant;
use uuid::Uuid;

/// Events handed to the projection at once by a rebuild.
const REBUILD_BATCH_MAX: u32 = 1_000;

/// The read side of one instance.
#[derive(Clone)]
pub struct ReadSide {
    store: Store,
    clock: Arc<dyn Clock>,
    projection: Projection,
    events: EventsConfig,
    /// For fetching settlement files.
    http: reqwest::Client,
}

/// What a rebuild did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RebuildReport {
    /// `outbox` or `stream`.
    pub source: &'static str,
    pub events: u64,
    pub seconds: f64,
}

impl ReadSide {
    pub fn new(store: Store, clock: Arc<dyn Clock>, events: EventsConfig) -> Self {
        Self {
            projection: Projection::new(store.clone(), clock.clone()),
            store,
            clock,
            events,
            http: reqwest::Client::new(),
        }
    }

    /// The consumer to register with the event engine.
    pub fn projection(&self) -> Projection {
        self.projection.clone()
    }

    /// Forgets the read side and projects every approval event again from zero, from the
    /// outbox (every event ever written) or the JetStream stream (the last week of them).
    /// The live projection may run meanwhile: folds are order-free, so both end the same.
    pub async fn rebuild(&self, source: ReplaySource) -> anyhow::Result<RebuildReport> {
        let started = Instant::now();
        let mut tx = self.store.begin().await?;
        tx.clear_approval_read_side().await?;
        tx.commit().await?;
        let projection = &self.projection;
        let events = replay(
            &self.store,
            &self.events,
            source,
            fold::APPROVAL_SUBJECTS,
            REBUILD_BATCH_MAX,
            async |batch| {
                let steps = batch
                    .iter()
                    .filter_map(|e| match fold::history_step(e) {
                        Ok(step) => Some(step),
                        Err(why) => {
                            tracing::warn!(%why, "an approval event the read side cannot project; skipped");
                            None
                        }
                    })
                    .collect::<Vec<_>>();
                projection.record(&steps).await.context("projecting a replayed batch")
            },
        )
        .await?;
        Ok(RebuildReport {
            source: match source {
                ReplaySource::Outbox => "outbox",
                ReplaySource::Stream => "stream",
            },
            events,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Final states matching `filter`, newest first, a cursor page at a time.
    pub async fn approvals(
        &self,
        filter: &ApprovalViewFilter,
        limit: PageLimit,
        cursor: Option<&str>,
    ) -> ServiceResult<Page<ApprovalSummary>> {
        let after = cursor.map(decode_cursor).transpose()?;
        let rows = self
            .store
            .read()
            .await?
            .approval_views(filter, after, rows_for(limit))
            .await?;
        Ok(page_of(
            rows,
            limit,
            |v| (v.received_at.unwrap_or(Timestamp::UNIX_EPOCH), v.transaction_id),
            ApprovalSummary::from,
        ))
    }

    /// One transaction's final state and its history.
    pub async fn approval(&self, id: Uuid) -> ServiceResult<ApprovalDetail> {
        let mut s = self.store.read().await?;
        let view = s.approval_view(id).await?.ok_or(ServiceError::NotFound("approval"))?;
        let history = s.approval_history(id).await?;
        Ok(ApprovalDetail::new(view, history))
    }

    /// Every merchant's settlement of `date` (or one merchant's), with fees at the rates of
    /// the routing configuration in force at the end of that day.
    pub async fn settlements(&self, date: Date, merchant_id: Option<Uuid>) -> ServiceResult<Vec<MerchantSettlement>> {
        let day_ends = BusinessDate::from_date(date).ends_at();
        let rates = FeeRates::of(&terms::in_force_at(&self.store, day_ends).await?);
        let records = self
            .store
            .read()
            .await?
            .settled_records(date, None, merchant_id)
            .await?;
        settlement::settle_merchants(date, &records, &rates).map_err(|e| ServiceError::InvalidState(e.to_string()))
    }

    /// Past reconciliations, newest first, a cursor page at a time.
    pub async fn reconciliations(
        &self,
        date: Option<Date>,
        upstream: Option<&str>,
        limit: PageLimit,
        cursor: Option<&str>,
    ) -> ServiceResult<Page<ReconciliationView>> {
        let after = cursor.map(decode_cursor).transpose()?;
        let rows = self
            .store
            .read()
            .await?
            .reconciliations(date, upstream, after, rows_for(limit))
            .await?;
        let page = page_of(rows, limit, |r| (r.created_at, r.id), ReconciliationView::try_from);
        Ok(Page {
            items: page.items.into_iter().collect::<ServiceResult<_>>()?,
            next_cursor: page.next_cursor,
        })
    }
}
