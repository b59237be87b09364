//! NATS JetStream: the stream, the relay that publishes the outbox in order (message id = the
//! event's id, so a re-publish after a crash is dropped by the duplicate window), and durable
//! pull consumers whose messages are acknowledged once their delivery is settled.

use crate::consumer::{Consumer, Deliveries, Delivery};
use crate::dispatch::event_of;
use crate::engine::{EventsConfig, Shared, idle, observe_lag};
use crate::event::Event;
use anyhow::Context as _;
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::message::{AckKind, Message};
use async_nats::jetstream::{self, Context, stream};
use futures_util::StreamExt;
use minipay_store::Leadership;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The advisory lock key naming the relay's leadership (any fixed number; "mp-relay").
const RELAY_LEADER_KEY: i64 = 0x6d70_2d72_656c_6179;
/// How long JetStream keeps a message id to drop re-publishes of it.
const DUPLICATE_WINDOW_SECS: u64 = 120;
/// How long the stream keeps messages (the read side rebuilds from it).
const STREAM_MAX_AGE_SECS: u64 = 7 * 86_400;
/// How soon a message whose delivery could not be recorded is offered again.
const NAK_DELAY_MS: u64 = 1_000;
const CONNECT_TIMEOUT_SECS: u64 = 10;

/// Connects and makes sure the stream exists.
pub(crate) async fn connect(url: &str, config: &EventsConfig) -> anyhow::Result<Context> {
    let client = tokio::time::timeout(
        Duration::from_secs(CONNECT_TIMEOUT_SECS),
        async_nats::ConnectOptions::new()
            .connection_timeout(Duration::from_secs(CONNECT_TIMEOUT_SECS))
            .connect(url),
    )
    .await
    .with_context(|| format!("connecting to NATS at {url}: timed out"))?
    .with_context(|| format!("connecting to NATS at {url}"))?;
    let js = jetstream::new(client);
    js.get_or_create_stream(stream::Config {
        name: config.stream.clone(),
        subjects: vec![format!("{}.>", config.subject_prefix)],
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(DUPLICATE_WINDOW_SECS),
        max_age: Duration::from_secs(STREAM_MAX_AGE_SECS),
        ..Default::default()
    })
    .await
    .map_err(|e| anyhow::anyhow!("creating the JetStream stream {}: {e}", config.stream))?;
    Ok(js)
}

/// The durable pull consumer of `consumer` (created if missing).
pub(crate) async fn durable_consumer(
    js: &Context,
    config: &EventsConfig,
    consumer: &dyn Consumer,
) -> anyhow::Result<PullConsumer> {
    let stream = js
        .get_stream(&config.stream)
        .await
        .map_err(|e| anyhow::anyhow!("opening the JetStream stream {}: {e}", config.stream))?;
    stream
        .get_or_create_consumer(
            consumer.name(),
            pull::Config {
                durable_name: Some(consumer.name().to_owned()),
                filter_subject: format!("{}.{}", config.subject_prefix, consumer.subject()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: config.ack_wait,
                // Retries and dead letters are ours (on the injected clock); JetStream redelivers
                // only what was never acknowledged.
                max_deliver: -1,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("creating the JetStream consumer {}: {e}", consumer.name()))
}

/// How long the relay lets events gather after it is woken before it reads the outbox: the
/// events of the transactions that commit meanwhile go out in the same round — one read and
/// one mark for all of them, instead of a round per committing transaction.
const RELAY_LINGER: Duration = Duration::from_millis(5);

/// The relay's loop: while this process leads, publish the outbox in order, batch by batch.
pub(crate) async fn relay(shared: Arc<Shared>, js: Context) {
    let mut leadership: Option<Leadership> = None;
    while idle(&shared, &shared.wake_relay).await {
        tokio::time::sleep(RELAY_LINGER).await;
        if let Some(l) = &mut leadership
            && !l.is_held().await
        {
            tracing::warn!("the relay lost its leadership connection");
            leadership = None;
        }
        if leadership.is_none() {
            match shared.store.try_leadership(RELAY_LEADER_KEY).await {
                Ok(l) => leadership = l,
                Err(e) => tracing::warn!(error = ?e, "could not ask for the relay's leadership"),
            }
        }
        if leadership.is_some() {
            loop {
                match publish_batch(&shared, &js).await {
                    Ok(n) if n == shared.config.relay_batch_max as usize => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = ?e, "publishing events failed; trying again");
                        break;
                    }
                }
            }
        }
        observe_lag(&shared).await;
    }
}

/// Publishes the oldest unpublished events (sent back to back, acknowledged in order) and
/// marks those JetStream stored; how many were in the batch.
async fn publish_batch(shared: &Shared, js: &Context) -> anyhow::Result<usize> {
    let rows = shared
        .store
        .read()
        .await?
        .unpublished_events(shared.config.relay_batch_max)
        .await?;
    let mut pending = Vec::with_capacity(rows.len());
    let mut failure = None;
    for row in &rows {
        let body = serde_json::to_vec(&event_of(row)?)?;
        let subject = format!("{}.{}", shared.config.subject_prefix, row.subject);
        let publish = PublishMessage::build()
            .payload(body.into())
            .message_id(row.id.to_string());
        match js.send_publish(subject, publish).await {
            Ok(ack) => pending.push((row.seq, ack)),
            Err(e) => {
                failure = Some(anyhow::anyhow!("publishing event {}: {e}", row.id));
                break;
            }
        }
    }
    let mut stored = Vec::with_capacity(pending.len());
    for (seq, ack) in pending {
        match ack.await {
            Ok(_) => stored.push(seq),
            Err(e) => {
                failure.get_or_insert_with(|| anyhow::anyhow!("JetStream did not store event {seq}: {e}"));
                break;
            }
        }
    }
    if !stored.is_empty() {
        let mut mark = shared.store.one_statement().await?;
        mark.mark_events_published(&stored, shared.clock.now()).await?;
        mark.commit().await?;
        shared
            .counters
            .published
            .fetch_add(stored.len() as u64, Ordering::Relaxed);
        metrics::counter!("minipay_events_published_total", "mode" => "jetstream").increment(stored.len() as u64);
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(rows.len()),
    }
}

/// Messages handled (the new ones run, then their deliveries recorded) together at most, and
/// kept asked for ahead: a backlog is worked off in few, large batches (each costs a few
/// transactions whatever its size); with no backlog a batch is what arrives within
/// [`BATCH_LINGER`].
const PULL_BATCH_MAX: usize = 256;

/// A consumer's loop: a continuous pull (the client keeps up to [`PULL_BATCH_MAX`] messages
/// asked for, with heartbeats); a batch's first message waits while the instance's intake is
/// at capacity (never past `yield_max`), then what has arrived, and what arrives within
/// [`BATCH_LINGER`], is taken as one batch, the ones not seen before run and their deliveries
/// recorded, and acknowledged once recorded (messages that arrive meanwhile wait in the
/// client, their ack wait running: a redelivered one finds its delivery recorded). Pull
/// requests are not bounded by a short expiry: a request whose expiry notice went missing
/// would hold the next messages back for seconds. A pull stream that ends or fails is opened
/// again.
pub(crate) async fn consume(shared: Arc<Shared>, consumer: PullConsumer, deliveries: Arc<Deliveries>) {
    let name = deliveries.consumer.name();
    let mut stop = shared.stop.clone();
    while !*stop.borrow() {
        let opened = consumer
            .stream()
            .max_messages_per_batch(PULL_BATCH_MAX)
            .messages()
            .await;
        let mut messages = match opened {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(consumer = name, error = %e, "could not pull messages; trying again");
                tokio::time::sleep(shared.config.poll_interval).await;
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                next = messages.next() => next,
                _ = stop.changed() => return,
            };
            match next {
                Some(Ok(first)) => {
                    // Requests first: while the intake is at capacity the batch waits (and
                    // grows), never past its bound from when its first message was stored —
                    // so a backlog under a busy intake runs at once, batch after batch.
                    // (A message older than this process's monotonic clock can say has waited
                    // past any bound.)
                    if let Some(stored) = tokio::time::Instant::now().checked_sub(stored_age(&first)) {
                        shared.yield_to_intake(name, stored).await;
                    }
                    let batch = with_arrived(first, &mut messages, name).await;
                    handle_messages(&shared, &deliveries, batch).await;
                }
                Some(Err(e)) => {
                    tracing::warn!(consumer = name, error = %e, "pulling messages failed");
                    tokio::time::sleep(shared.config.poll_interval).await;
                }
                None => break,
            }
        }
    }
}

/// How long ago JetStream stored `message`, by its metadata: zero when that cannot be read or
/// is not in the past (the server's clock ahead of ours).
fn stored_age(message: &Message) -> Duration {
    message.info().map_or(Duration::ZERO, |info| {
        age_at(info.published.unix_timestamp_nanos(), std::time::SystemTime::now())
    })
}

/// How long ago `stored_unix_nanos` was, at `now`: zero if it is not in the past, the longest
/// duration a `Duration` of nanoseconds holds if it is further back than that.
fn age_at(stored_unix_nanos: i128, now: std::time::SystemTime) -> Duration {
    let now_nanos = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i128::try_from(d.as_nanos()).unwrap_or(i128::MAX));
    let ago = now_nanos.saturating_sub(stored_unix_nanos);
    if ago <= 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(u64::try_from(ago).unwrap_or(u64::MAX))
}

/// `first` and the messages that arrive behind it within [`BATCH_LINGER`], up to
/// [`PULL_BATCH_MAX`]: a trickle is gathered into fewer, larger batches (each costs a few
/// transactions whatever its size) at the price of a few milliseconds of settlement.
async fn with_arrived(first: Message, messages: &mut pull::Stream, name: &str) -> Vec<Message> {
    let mut batch = vec![first];
    let until = tokio::time::Instant::now() + BATCH_LINGER;
    while batch.len() < PULL_BATCH_MAX {
        match tokio::time::timeout_at(until, messages.next()).await {
            Ok(Some(Ok(m))) => batch.push(m),
            Ok(Some(Err(e))) => {
                tracing::warn!(consumer = name, error = %e, "pulling messages failed");
                break;
            }
            Ok(None) | Err(_) => break,
        }
    }
    batch
}

/// How long a batch waits for more messages after its first.
const BATCH_LINGER: Duration = Duration::from_millis(20);

async fn handle_messages(shared: &Shared, deliveries: &Deliveries, messages: Vec<Message>) {
    let name = deliveries.consumer.name();
    let mut events = Vec::with_capacity(messages.len());
    let mut kept = Vec::with_capacity(messages.len());
    for message in messages {
        match serde_json::from_slice::<Event>(&message.payload) {
            Ok(event) => {
                if message.info().is_ok_and(|i| i.delivered > 1) {
                    shared.counters.redelivered.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("minipay_events_redelivered_total", "consumer" => name).increment(1);
                }
                events.push(event);
                kept.push(message);
            }
            Err(e) => {
                tracing::error!(consumer = name, error = %e, "a message that is not an event; dropped from the stream");
                let _ = message.ack_with(AckKind::Term).await;
            }
        }
    }
    match still_at_work(&kept, shared.config.ack_wait, deliver(shared, deliveries, &events)).await {
        Ok(()) => {
            for message in kept {
                if let Err(e) = message.ack().await {
                    // It will be delivered again and found already recorded.
                    tracing::warn!(consumer = name, error = %e, "acknowledging a message failed");
                }
            }
        }
        Err(e) => {
            tracing::warn!(consumer = name, error = ?e, "recording deliveries failed; JetStream will offer them again");
            for message in kept {
                let _ = message
                    .ack_with(AckKind::Nak(Some(Duration::from_millis(NAK_DELAY_MS))))
                    .await;
            }
        }
    }
}

/// Runs `work`, telling JetStream every half ack wait that `messages` are still being worked
/// on: it offers none of them to another consumer while this one is alive, however long the
/// attempt takes (a delivery's first attempt runs before it has a row: the message is the
/// claim).
async fn still_at_work<T>(messages: &[Message], ack_wait: Duration, work: impl Future<Output = T>) -> T {
    let every = (ack_wait / 2).max(Duration::from_millis(1));
    let mut beat = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tokio::pin!(work);
    loop {
        tokio::select! {
            done = &mut work => return done,
            _ = beat.tick() => {
                for message in messages {
                    let _ = message.ack_with(AckKind::Progress).await;
                }
            }
        }
    }
}

/// Runs the first attempt of the deliveries not seen before, as one batch, and records each
/// in the state the attempt left it (done, due for its retry, or dead) — one row, written
/// once. A delivery seen before (a redelivered message) is left to its own state: done, dead,
/// or due later. A crash before the record: JetStream delivers the message again and the
/// (idempotent) handler runs again.
async fn deliver(shared: &Shared, deliveries: &Deliveries, events: &[Event]) -> anyhow::Result<()> {
    let items: Vec<(String, serde_json::Value)> = events
        .iter()
        .map(|e| (e.id.to_string(), Delivery::payload(e)))
        .collect();
    minipay_jobs::run_first_attempts(
        &shared.store,
        shared.clock.as_ref(),
        deliveries,
        &items,
        deliveries.consumer.retry_policy().attempts_max,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    fn nanos(t: SystemTime) -> i128 {
        i128::try_from(t.duration_since(UNIX_EPOCH).unwrap().as_nanos()).unwrap()
    }

    #[test]
    fn a_message_stored_earlier_is_as_old_as_the_time_since() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let stored = now - Duration::from_millis(7_250);
        assert_eq!(age_at(nanos(stored), now), Duration::from_millis(7_250));
        assert_eq!(age_at(nanos(now), now), Duration::ZERO);
    }

    #[test]
    fn a_message_stored_before_the_range_of_nanoseconds_is_as_old_as_can_be() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert_eq!(age_at(i128::MIN, now), Duration::from_nanos(u64::MAX));
    }

    #[test]
    fn a_message_stamped_after_now_is_taken_as_new() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let ahead = now + Duration::from_millis(40);
        assert_eq!(age_at(nanos(ahead), now), Duration::ZERO);
    }
}
