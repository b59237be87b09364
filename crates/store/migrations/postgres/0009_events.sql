-- Events (DESIGN.md "Events"): the transactional outbox, idempotent deliveries to consumers on
-- the durable queue, dead letters and alerts.

-- The outbox: an event is written in the same transaction as the change it reports. The relay
-- publishes rows in `seq` order (to JetStream, or — with no event engine configured — as
-- deliveries on the local queue) and marks them published.
CREATE TABLE outbox (
    seq          BIGSERIAL PRIMARY KEY,
    id           UUID NOT NULL UNIQUE,         -- the event's id: JetStream's message id (Nats-Msg-Id)
    subject      TEXT NOT NULL,                -- relative to the configured prefix, e.g. 'remittance.credited'
    payload      TEXT NOT NULL,                -- JSON
    created_at   TIMESTAMPTZ NOT NULL,
    published_at TIMESTAMPTZ
);
-- What the relay has left to do; its oldest row is the outbox lag.
CREATE INDEX outbox_unpublished_idx ON outbox (seq) WHERE published_at IS NULL;

-- A delivery of an event to a consumer is a queued job whose key is the event id: the unique
-- key makes a redelivered event (JetStream is at least once) a no-op, and the queue's lease,
-- retry and dead state give every consumer the same failure handling.
ALTER TABLE queued_jobs ADD COLUMN key TEXT;
CREATE UNIQUE INDEX queued_jobs_key_idx ON queued_jobs (kind, key) WHERE key IS NOT NULL;

-- Work that failed after its last attempt: one table for every failing point (the original
-- design's three failure tables are kinds here), each row saying where the work stopped.
CREATE TABLE dead_letters (
    id              UUID PRIMARY KEY,
    kind            TEXT NOT NULL,             -- the failing point, e.g. 'remittance.payout'
    subject_id      UUID NOT NULL,             -- the object it is about (a remittance...)
    step            TEXT NOT NULL,
    consumer        TEXT,                      -- the consumer whose delivery died, if an event's
    event_id        UUID,
    attempts        INTEGER NOT NULL CHECK (attempts >= 0),   -- every attempt so far, retry rounds included
    rounds          INTEGER NOT NULL DEFAULT 0 CHECK (rounds >= 0),  -- rounds of the retry job
    last_error      TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    next_attempt_at TIMESTAMPTZ,               -- when the retry job tries again; NULL once it gave up
    resolved_at     TIMESTAMPTZ,
    resolution      TEXT                       -- 'recovered' or 'needs_attention'
);
-- At most one open dead letter per failing point of an object.
CREATE UNIQUE INDEX dead_letters_open_idx ON dead_letters (kind, subject_id) WHERE resolved_at IS NULL;
CREATE INDEX dead_letters_due_idx ON dead_letters (next_attempt_at) WHERE resolved_at IS NULL;
CREATE INDEX dead_letters_newest_idx ON dead_letters (created_at, id);

-- Alerts for operators, raised once per cause (`cause` is unique: e.g. 'remittance_stuck:<id>').
CREATE TABLE alerts (
    id              UUID PRIMARY KEY,
    kind            TEXT NOT NULL,
    cause           TEXT NOT NULL UNIQUE,
    subject_id      UUID,
    message         TEXT NOT NULL,
    data            TEXT NOT NULL,             -- JSON
    created_at      TIMESTAMPTZ NOT NULL,
    acknowledged_at TIMESTAMPTZ
);
CREATE INDEX alerts_newest_idx ON alerts (created_at, id);
