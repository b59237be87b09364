//! Webhooks to businesses (API-business.md, "Webhooks"): when a business's remittance, payment
//! or refund reaches a final status, one webhook is recorded (once per status: a unique key)
//! with the exact body to send — by the transaction that makes a payment's or refund's status
//! final, by the consumer of the status's event for a remittance — and tried at once; the
//! `webhook-retry` job tries again with backoff for 24 hours. Each attempt is claimed with a
//! lease (two instances never post one webhook at the same time), signed with the business's
//! webhook secret, posted with no transaction open, and logged.

use crate::consumer::{Consumer, Failure};
use crate::event::Event;
use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use minipay_core::schedule::Schedule;
use minipay_core::{BusinessId, Clock};
use minipay_jobs::{JobOutcome, ScheduledJob};
use minipay_store::{NewWebhook, Session, Store, StoreError, Webhook, WebhookAttempt, WebhookNext};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use uuid::Uuid;

/// The header carrying the signature: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "t.body">`.
pub const SIGNATURE_HEADER: &str = "Minipay-Signature";

/// How webhooks are retried. Every limit is named with its unit.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// No attempt is made this long after the webhook was recorded.
    pub retry_window: SignedDuration,
    /// The wait after the first failed attempt; doubled after each, up to `retry_delay_max`.
    pub retry_delay_first: SignedDuration,
    pub retry_delay_max: SignedDuration,
    /// How long the receiver has to answer.
    pub timeout: Duration,
    /// How long a claim keeps others off one webhook (longer than `timeout`).
    pub lease: SignedDuration,
    /// First attempts running at once for webhooks tried as soon as they are recorded
    /// ([`Webhooks::attempt_soon`]); beyond it a webhook is left, due, to the retry job.
    pub first_attempts_in_flight_max: usize,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            retry_window: SignedDuration::from_hours(24),
            retry_delay_first: SignedDuration::from_mins(1),
            retry_delay_max: SignedDuration::from_hours(1),
            timeout: Duration::from_secs(10),
            lease: SignedDuration::from_secs(60),
            first_attempts_in_flight_max: 256,
        }
    }
}

impl WebhookConfig {
    /// What follows failed attempt number `attempt` (1-based) of a webhook recorded at
    /// `created`, failing at `now`: another attempt after the backoff, unless that falls past
    /// the retry window.
    pub fn after_failure(&self, attempt: i32, created: Timestamp, now: Timestamp) -> WebhookNext {
        let doublings = u32::try_from(attempt.saturating_sub(1)).unwrap_or(0).min(20);
        let delay = self
            .retry_delay_first
            .checked_mul(1 << doublings)
            .unwrap_or(self.retry_delay_max)
            .min(self.retry_delay_max);
        let next = now + delay;
        if next > created + self.retry_window {
            WebhookNext::GiveUp
        } else {
            WebhookNext::RetryAt(next)
        }
    }
}

/// The signature header's value for `body` sent at `t` (unix seconds).
pub fn signature(secret: &str, t: i64, body: &str) -> String {
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, format!("{t}.{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

/// The object a final status is about, as its webhook carries it.
#[derive(Debug, Clone)]
pub struct WebhookObject {
    /// Whose webhook it is.
    pub business: BusinessId,
    pub id: Uuid,
    /// The object as the business's API shows it.
    pub data: serde_json::Value,
}

/// The webhook URLs of `businesses` (those that have one), read in one query.
pub async fn webhook_urls(
    s: &mut Session,
    businesses: impl IntoIterator<Item = BusinessId>,
) -> Result<HashMap<BusinessId, String>, StoreError> {
    let mut businesses: Vec<BusinessId> = businesses.into_iter().collect();
    businesses.sort_unstable_by_key(|b| b.as_uuid());
    businesses.dedup();
    s.webhook_urls(&businesses).await
}

/// Reads the object an event's final status is about (each system renders its own).
#[async_trait]
pub trait WebhookSource: Send + Sync + 'static {
    /// `None`: nothing to announce (the object is gone).
    async fn object(&self, event: &Event) -> Result<Option<WebhookObject>, Failure>;
    /// [`Self::object`] for many: one answer per event, in order (a source that can read
    /// many objects in one query may override it).
    async fn objects(&self, events: &[Event]) -> Vec<Result<Option<WebhookObject>, Failure>> {
        let mut objects = Vec::with_capacity(events.len());
        for event in events {
            objects.push(self.object(event).await);
        }
        objects
    }
}

/// Records, sends and retries webhooks.
pub struct Webhooks {
    store: Store,
    clock: Arc<dyn Clock>,
    http: reqwest::Client,
    /// A permit per first attempt in flight from [`Self::attempt_soon`].
    first_attempts: Arc<tokio::sync::Semaphore>,
    config: WebhookConfig,
}

/// Webhooks read and attempted together by the retry job.
const RETRY_BATCH_MAX: u32 = 200;
/// How long one retry-job run goes on attempting full batches (it runs every minute).
const RETRY_RUN_BUDGET: Duration = Duration::from_secs(45);
/// Attempts in flight at once in a retry-job run.
const RETRY_CONCURRENCY_MAX: usize = 16;
/// First attempts in flight at once for a consumer's batch: a batch of receivers that all
/// time out must still end within the stream's ack wait (256 / 64 × 10 s = 40 s < 60 s).
const FIRST_ATTEMPT_CONCURRENCY_MAX: usize = 64;

impl Webhooks {
    pub fn new(store: Store, clock: Arc<dyn Clock>, config: WebhookConfig) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder().timeout(config.timeout).build()?;
        Ok(Self {
            store,
            clock,
            http,
            first_attempts: Arc::new(tokio::sync::Semaphore::new(config.first_attempts_in_flight_max)),
            config,
        })
    }

    /// Records the webhook of `kind` for `object`, to `url`, due now, if this status has none
    /// yet; its id, or `None`.
    async fn record(
        &self,
        tx: &mut Session,
        kind: &str,
        object: &WebhookObject,
        url: &str,
        now: Timestamp,
    ) -> Result<Option<Uuid>, StoreError> {
        let id = Uuid::now_v7();
        let body = serde_json::json!({"id": id, "type": kind, "created_at": now, "data": object.data}).to_string();
        let new = NewWebhook {
            id,
            business_id: object.business,
            kind,
            object_id: object.id,
            url,
            body: &body,
            at: now,
        };
        Ok(tx.insert_webhook(&new).await?.then_some(id))
    }

    /// Records the webhook of each `(kind, object, url)` as [`Self::record`] does; the ids of
    /// those recorded.
    pub async fn record_all(
        &self,
        tx: &mut Session,
        announced: &[(&str, &WebhookObject, &str)],
        now: Timestamp,
    ) -> Result<Vec<Uuid>, StoreError> {
        let mut ids = Vec::with_capacity(announced.len());
        for (kind, object, url) in announced {
            ids.extend(self.record(tx, kind, object, url, now).await?);
        }
        Ok(ids)
    }

    /// The first attempts of webhooks just recorded, a bounded number at once; a failure is
    /// the retry job's from here (the webhook row is the record).
    pub async fn attempt_all(&self, ids: Vec<Uuid>) {
        use futures_util::StreamExt;
        futures_util::stream::iter(ids)
            .for_each_concurrent(FIRST_ATTEMPT_CONCURRENCY_MAX, |id| async move {
                if let Err(e) = self.attempt(id).await {
                    tracing::warn!(webhook = %id, error = ?e, "recording a webhook attempt failed");
                }
            })
            .await;
    }

    /// The first attempts of webhooks just recorded, each in a task of its own, for a caller
    /// that must not wait on the receivers: at most `first_attempts_in_flight_max` at once
    /// (slow receivers cannot pile attempts up); a webhook beyond it, or whose attempt is
    /// lost with the process, is due already, and the retry job takes it.
    pub fn attempt_soon(self: &Arc<Self>, ids: Vec<Uuid>) {
        for id in ids {
            let Ok(permit) = Arc::clone(&self.first_attempts).try_acquire_owned() else {
                metrics::counter!("minipay_webhooks_left_to_retry_total").increment(1);
                tracing::debug!(webhook = %id, "first attempts at their bound; left to the retry job");
                continue;
            };
            let webhooks = Arc::clone(self);
            tokio::spawn(async move {
                if let Err(e) = webhooks.attempt(id).await {
                    tracing::warn!(webhook = %id, error = ?e, "recording a webhook attempt failed");
                }
                drop(permit);
            });
        }
    }

    /// One attempt at webhook `id`, if it is due and nobody else has it: `true` if delivered.
    pub async fn attempt(&self, id: Uuid) -> Result<bool, StoreError> {
        let now = self.clock.now();
        let claimed = {
            let mut tx = self.store.begin().await?;
            let w = tx.claim_webhook(id, now, now + self.config.lease).await?;
            let secret = match &w {
                Some(w) => tx.business(w.business_id).await?.map(|b| b.webhook_secret),
                None => None,
            };
            tx.commit().await?;
            w.zip(secret)
        };
        let Some((w, secret)) = claimed else { return Ok(false) };
        let started = Instant::now();
        let answer = self.post(&w, &secret).await;
        let at = self.clock.now();
        let (status_code, error) = match &answer {
            Ok(status) if (200..300).contains(status) => (Some(*status), None),
            Ok(status) => (Some(*status), Some(format!("the receiver answered {status}"))),
            Err(e) => (None, Some(e.clone())),
        };
        let next = match error {
            None => WebhookNext::Delivered,
            Some(_) => self.config.after_failure(w.attempts + 1, w.created_at, at),
        };
        let attempt = WebhookAttempt {
            status_code,
            error: error.as_deref(),
            duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
            at,
        };
        let mut tx = self.store.begin().await?;
        tx.record_webhook_attempt(&w, &attempt, next).await?;
        tx.commit().await?;
        metrics::counter!("minipay_webhook_attempts_total", "delivered" => (next == WebhookNext::Delivered).to_string())
            .increment(1);
        if next == WebhookNext::GiveUp {
            tracing::warn!(webhook = %w.id, kind = %w.kind, attempts = w.attempts + 1, "webhook given up");
        }
        Ok(next == WebhookNext::Delivered)
    }

    /// Posts the webhook's body, signed now; the receiver's status code.
    async fn post(&self, w: &Webhook, secret: &str) -> Result<u16, String> {
        let t = self.clock.now().as_second();
        let sent = self
            .http
            .post(&w.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature(secret, t, &w.body))
            .header("Minipay-Webhook-Id", w.id.to_string())
            .body(w.body.clone())
            .send()
            .await
            .map_err(|e| format!("posting the webhook: {e}"))?;
        Ok(sent.status().as_u16())
    }

    /// Attempts every webhook due at `at` (the `webhook-retry` job): batch after batch while
    /// full batches are due, for at most [`RETRY_RUN_BUDGET`] (a webhook attempted is not due
    /// at `at` again: delivered, given up, or due after its backoff), so a backlog — first
    /// attempts left over beyond their bound — drains in one run, not 200 a minute.
    pub async fn attempt_due(&self, at: Timestamp) -> anyhow::Result<JobOutcome> {
        use futures_util::StreamExt;
        let started = Instant::now();
        let (mut due_total, mut delivered, mut errors) = (0usize, 0u64, 0usize);
        loop {
            let due = self.store.read().await?.due_webhooks(at, RETRY_BATCH_MAX).await?;
            let results: Vec<Result<bool, StoreError>> = futures_util::stream::iter(due.iter().copied())
                .map(|id| self.attempt(id))
                .buffer_unordered(RETRY_CONCURRENCY_MAX)
                .collect()
                .await;
            due_total += due.len();
            delivered += results.iter().filter(|r| matches!(r, Ok(true))).count() as u64;
            let failed = results.iter().filter(|r| r.is_err()).count();
            errors += failed;
            // An error may leave its webhook due: the next run tries it, this one stops.
            if due.len() < RETRY_BATCH_MAX as usize || failed > 0 || started.elapsed() >= RETRY_RUN_BUDGET {
                break;
            }
        }
        Ok(JobOutcome {
            processed: delivered,
            details: serde_json::json!({"due": due_total, "delivered": delivered, "errors": errors}),
        })
    }
}

/// Records the webhook of each final status its subject announces, and tries it at once.
pub struct WebhookConsumer {
    name: &'static str,
    subject: &'static str,
    source: Arc<dyn WebhookSource>,
    webhooks: Arc<Webhooks>,
}

impl WebhookConsumer {
    /// `name` is the durable consumer's name; `subject` the final status's event, which is
    /// also the webhook's `type`.
    pub fn new(
        name: &'static str,
        subject: &'static str,
        source: Arc<dyn WebhookSource>,
        webhooks: Arc<Webhooks>,
    ) -> Self {
        Self {
            name,
            subject,
            source,
            webhooks,
        }
    }
}

#[async_trait]
impl Consumer for WebhookConsumer {
    fn name(&self) -> &'static str {
        self.name
    }
    fn subject(&self) -> &'static str {
        self.subject
    }
    async fn handle(&self, event: &Event) -> Result<(), Failure> {
        crate::consumer::as_batch_of_one(self, event).await
    }

    /// The batch's objects read together; the webhooks of those whose business has a URL
    /// recorded in one transaction (none at all when no business has one), then each tried.
    async fn handle_batch(&self, events: &[Event]) -> Vec<Result<(), Failure>> {
        let objects = self.source.objects(events).await;
        let businesses = objects.iter().flatten().flatten().map(|o| o.business);
        if businesses.clone().next().is_none() {
            return objects.into_iter().map(|o| o.map(drop)).collect();
        }
        let failed = |e: StoreError| Failure::new(format!("recording the webhook: {e}"));
        let urls = match async { webhook_urls(&mut self.webhooks.store.read().await?, businesses).await }.await {
            Ok(urls) => urls,
            Err(e) => {
                let e = failed(e);
                return events.iter().map(|_| Err(e.clone())).collect();
            }
        };
        let announced: Vec<(&WebhookObject, &str)> = objects
            .iter()
            .flatten()
            .flatten()
            .filter_map(|o| Some((o, urls.get(&o.business)?.as_str())))
            .collect();
        if announced.is_empty() {
            return objects.into_iter().map(|o| o.map(drop)).collect();
        }
        let announced: Vec<(&str, &WebhookObject, &str)> = announced
            .into_iter()
            .map(|(object, url)| (self.subject, object, url))
            .collect();
        let recorded = async {
            let now = self.webhooks.clock.now();
            let mut tx = self.webhooks.store.begin().await?;
            let ids = self.webhooks.record_all(&mut tx, &announced, now).await?;
            tx.commit().await?;
            Ok::<_, StoreError>(ids)
        };
        let ids = match recorded.await {
            Ok(ids) => ids,
            Err(e) => {
                let e = failed(e);
                return objects.into_iter().map(|o| o.and(Err(e.clone()))).collect();
            }
        };
        self.webhooks.attempt_all(ids).await;
        objects.into_iter().map(|o| o.map(drop)).collect()
    }
}

/// The job trying due webhooks again.
pub struct RetryJob(pub Arc<Webhooks>);

/// The job and when it runs, for `minipay jobs list`.
pub const SCHEDULES: &[(&str, &str)] = &[(
    "webhook-retry",
    "every minute: another attempt for each webhook due, with backoff, for 24 hours",
)];

#[async_trait]
impl ScheduledJob for RetryJob {
    fn name(&self) -> &'static str {
        "webhook-retry"
    }
    fn schedule(&self) -> Schedule {
        Schedule::Every { seconds: 60 }
    }
    async fn run(&self, at: Timestamp) -> anyhow::Result<JobOutcome> {
        self.0.attempt_due(at).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_t_dot_body_in_hex() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let body = "what do ya want for nothing?";
        let header = signature("Jefe", 0, body);
        assert!(header.starts_with("t=0,v1="), "{header}");
        let with_t = signature("Jefe", 1_700_000_000, "{}");
        assert_eq!(with_t.len(), "t=1700000000,v1=".len() + 64);
        // "0." prepended, so it differs from the RFC vector; check against an independent HMAC.
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, b"Jefe");
        let expected = aws_lc_rs::hmac::sign(&key, format!("0.{body}").as_bytes());
        let hex: String = expected.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(header, format!("t=0,v1={hex}"));
    }

    #[test]
    fn retries_back_off_and_stop_after_a_day() {
        let c = WebhookConfig::default();
        let t0 = Timestamp::from_second(1_700_000_000).unwrap();
        let at = |mins: i64| t0 + SignedDuration::from_mins(mins);
        assert_eq!(c.after_failure(1, t0, t0), WebhookNext::RetryAt(at(1)));
        assert_eq!(c.after_failure(2, t0, at(1)), WebhookNext::RetryAt(at(3)));
        assert_eq!(c.after_failure(3, t0, at(3)), WebhookNext::RetryAt(at(7)));
        assert_eq!(
            c.after_failure(30, t0, at(100)),
            WebhookNext::RetryAt(at(160)),
            "capped at an hour"
        );
        assert_eq!(c.after_failure(40, t0, at(24 * 60 - 30)), WebhookNext::GiveUp);
        // Retries over a day: after 1, 2, 4 ... 32 minutes (63 in all), then hourly: 22 more
        // fit in the 1,440 minutes.
        let (mut now, mut attempts) = (t0, 0);
        while let WebhookNext::RetryAt(next) = c.after_failure(attempts + 1, t0, now) {
            attempts += 1;
            now = next;
        }
        assert_eq!(attempts, 6 + 22, "retries after the first attempt within 24 hours");
    }
}
