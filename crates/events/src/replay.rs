//! Replays the past events of a subject, in order, from zero — from the outbox (every event
//! ever written, published or not) or from the JetStream stream (what it still holds: its
//! messages expire after a week) — for a read side that rebuilds itself.

use crate::dispatch::{event_of, subject_matches};
use crate::engine::EventsConfig;
use crate::event::Event;
use crate::jetstream;
use anyhow::{Context as _, bail};
use async_nats::jetstream::consumer::{DeliverPolicy, pull};
use futures_util::StreamExt;
use minipay_store::Store;

/// Where past events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplaySource {
    Outbox,
    Stream,
}

/// Hands every past event of `subject` (which may end in a `*` token) to `on_batch`, in
/// order, at most `batch_max` at a time; how many events it handed over.
pub async fn replay(
    store: &Store,
    config: &EventsConfig,
    source: ReplaySource,
    subject: &str,
    batch_max: u32,
    on_batch: impl AsyncFnMut(&[Event]) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    assert!(batch_max > 0, "a replay hands over at least one event at a time");
    match source {
        ReplaySource::Outbox => from_outbox(store, subject, batch_max, on_batch).await,
        ReplaySource::Stream => {
            let url = config
                .nats_url
                .as_deref()
                .context("replaying from the stream needs MINIPAY_NATS_URL")?;
            from_stream(url, config, subject, batch_max, on_batch).await
        }
    }
}

async fn from_outbox(
    store: &Store,
    subject: &str,
    batch_max: u32,
    mut on_batch: impl AsyncFnMut(&[Event]) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let prefix = subject.split('*').next().unwrap_or(subject);
    let (mut after, mut handed) = (0_i64, 0_u64);
    loop {
        let rows = store
            .read()
            .await?
            .outbox_events_after(prefix, after, batch_max)
            .await?;
        let Some(last) = rows.last() else {
            return Ok(handed);
        };
        after = last.seq;
        let events = rows
            .iter()
            .filter(|r| subject_matches(subject, &r.subject))
            .map(event_of)
            .collect::<anyhow::Result<Vec<Event>>>()?;
        handed += events.len() as u64;
        on_batch(&events).await?;
    }
}

async fn from_stream(
    url: &str,
    config: &EventsConfig,
    subject: &str,
    batch_max: u32,
    mut on_batch: impl AsyncFnMut(&[Event]) -> anyhow::Result<()>,
) -> anyhow::Result<u64> {
    let js = jetstream::connect(url, config).await?;
    let mut stream = js
        .get_stream(&config.stream)
        .await
        .map_err(|e| anyhow::anyhow!("opening the JetStream stream {}: {e}", config.stream))?;
    let first = stream
        .info()
        .await
        .map_err(|e| anyhow::anyhow!("reading the stream's state: {e}"))?
        .state
        .first_sequence;
    if first > 1 {
        bail!(
            "the stream {} no longer holds its first events (it starts at message {first}; messages expire after \
             a week): a replay from it would lose the older ones — replay from the outbox instead",
            config.stream
        );
    }
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject: format!("{}.{subject}", config.subject_prefix),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .map_err(|e| anyhow::anyhow!("creating a replay consumer: {e}"))?;
    let mut pending = consumer.cached_info().num_pending;
    let mut messages = consumer
        .messages()
        .await
        .map_err(|e| anyhow::anyhow!("replaying the stream: {e}"))?;
    let (mut batch, mut handed) = (Vec::new(), 0_u64);
    while pending > 0 {
        let message = messages
            .next()
            .await
            .context("the stream ended before its last message")?
            .map_err(|e| anyhow::anyhow!("replaying the stream: {e}"))?;
        pending = message
            .info()
            .map_err(|e| anyhow::anyhow!("a message without info: {e}"))?
            .pending;
        batch.push(serde_json::from_slice::<Event>(&message.payload).context("a message that is not an event")?);
        if batch.len() == batch_max as usize || pending == 0 {
            handed += batch.len() as u64;
            on_batch(&batch).await?;
            batch.clear();
        }
    }
    Ok(handed)
}
