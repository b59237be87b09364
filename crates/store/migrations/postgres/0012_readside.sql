-- The approval read side (API-gateway.md "Events and the read side"): every event of every
-- transaction kept once by the transaction's own sequence number, and each transaction's final
-- state folded from that history (core::gateway::projection), whatever order the events came in.

-- Each step of a transaction once, by its sequence number.
CREATE TABLE approval_history (
    transaction_id UUID NOT NULL,
    seq            INTEGER NOT NULL CHECK (seq >= 1),
    step           TEXT NOT NULL,
    upstream       TEXT,
    detail         TEXT NOT NULL,              -- JSON, as the event carried it
    at             TIMESTAMPTZ NOT NULL,       -- when the step happened (the event's time)
    event_id       UUID NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (transaction_id, seq)
);

-- An event that named a sequence number already taken by another step: the first is kept,
-- this one is kept here, so nothing that arrived is lost without a row.
CREATE TABLE approval_conflicts (
    event_id       UUID PRIMARY KEY,
    transaction_id UUID NOT NULL,
    seq            INTEGER NOT NULL,
    step           TEXT NOT NULL,
    detail         TEXT NOT NULL,
    at             TIMESTAMPTZ NOT NULL,
    recorded_at    TIMESTAMPTZ NOT NULL
);

-- One row per transaction: its final state. Columns from the `received` step are NULL until
-- that step has arrived.
CREATE TABLE approval_views (
    transaction_id     UUID PRIMARY KEY,
    merchant_id        UUID,
    terminal_id        TEXT,
    seq_no             BIGINT,
    sent_at            TEXT,                   -- as the terminal sent it, YYYYMMDDhhmmss
    tx_type            TEXT,
    amount             BIGINT,
    card_masked        TEXT,
    original_id        UUID,
    status             TEXT NOT NULL CHECK (status IN ('received', 'sent', 'approved', 'declined',
                         'timeout', 'error')),
    upstream           TEXT,
    response_code      TEXT,
    approval_no        TEXT,
    approved_at        TEXT,                   -- the upstream's time, YYYYMMDDhhmmss Asia/Seoul
    business_date      DATE,                   -- the Asia/Seoul date of approved_at: the day it settles
    cancel_status      TEXT NOT NULL CHECK (cancel_status IN ('none', 'queued', 'sent',
                         'acknowledged', 'failed')),
    cancel_sends       INTEGER NOT NULL,
    cancel_date        DATE,                   -- the Asia/Seoul date its network cancel was acknowledged
    late_response_code TEXT,
    late_approval_no   TEXT,
    last_seq           INTEGER NOT NULL,
    gaps               BOOLEAN NOT NULL,       -- a step below last_seq has not arrived yet
    conflicts          INTEGER NOT NULL,
    received_at        TIMESTAMPTZ,
    updated_at         TIMESTAMPTZ NOT NULL    -- the time of its latest step
);
CREATE INDEX approval_views_received_idx ON approval_views (received_at, transaction_id);
CREATE INDEX approval_views_merchant_idx ON approval_views (merchant_id, received_at);
CREATE INDEX approval_views_business_date_idx ON approval_views (business_date, upstream)
    WHERE business_date IS NOT NULL;
CREATE INDEX approval_views_cancel_date_idx ON approval_views (cancel_date, upstream)
    WHERE cancel_date IS NOT NULL;

-- Each reconciliation (대사) of an upstream's business day against its settlement file: the
-- counts of each finding and every record that did not match (JSON).
CREATE TABLE reconciliations (
    id              UUID PRIMARY KEY,
    upstream        TEXT NOT NULL,
    business_date   DATE NOT NULL,
    source          TEXT NOT NULL CHECK (source IN ('fetched', 'uploaded')),
    matched         BIGINT NOT NULL,
    missing_here    BIGINT NOT NULL,
    missing_there   BIGINT NOT NULL,
    amount_mismatch BIGINT NOT NULL,
    discrepancies   TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL
);
CREATE INDEX reconciliations_day_idx ON reconciliations (business_date, upstream, created_at);
