-- The card approval gateway (API-gateway.md): merchants and their terminals, the versioned
-- routing configuration, each upstream's breaker, every approval transaction (persisted before
-- it is forwarded) and the network cancels (망취소) waiting to be sent.

CREATE TABLE merchants (
    id                  UUID PRIMARY KEY,
    name                TEXT NOT NULL,
    registration_number TEXT NOT NULL UNIQUE,
    created_at          TIMESTAMPTZ NOT NULL
);
CREATE INDEX merchants_created_idx ON merchants (created_at, id);

-- A terminal's key is sealed (AES-256-GCM under the server's terminal-key secret): HMAC and the
-- POS frame's encryption need the key itself, so it cannot be hashed.
CREATE TABLE terminals (
    terminal_id  TEXT PRIMARY KEY CHECK (length(terminal_id) = 8),
    merchant_id  UUID NOT NULL REFERENCES merchants (id),
    key_sealed   BYTEA NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    disabled_at  TIMESTAMPTZ
);
CREATE INDEX terminals_merchant_idx ON terminals (merchant_id, created_at);

-- Every change of the routing configuration is kept; the highest version is in force.
CREATE TABLE routing_versions (
    version    BIGINT PRIMARY KEY CHECK (version > 0),
    config     TEXT NOT NULL,                 -- JSON: card companies, VANs, network_cancel
    changed_by TEXT NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL
);

-- One row per upstream: its N-in-T breaker (core::gateway::breaker) as JSON, read by every
-- instance and changed under the row's lock, so all instances share one breaker.
CREATE TABLE upstream_breakers (
    upstream_id TEXT PRIMARY KEY,
    breaker     TEXT NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- One row per terminal request, written before anything is sent upstream. The terminal's keys
-- (terminal, seq_no, sent_at) are unique: a repeated request finds the first and its answer.
CREATE TABLE approvals (
    id                 UUID PRIMARY KEY,
    terminal_id        TEXT NOT NULL,
    merchant_id        UUID NOT NULL,
    seq_no             BIGINT NOT NULL CHECK (seq_no >= 0),
    sent_at            TEXT NOT NULL,          -- as the terminal sent it, YYYYMMDDhhmmss
    tx_type            TEXT NOT NULL,
    amount             BIGINT NOT NULL CHECK (amount >= 0),
    card_masked        TEXT NOT NULL,          -- first 6 and last 4 digits
    original_id        UUID,                   -- the approval a customer's cancel refers to
    issuer             TEXT,
    upstream           TEXT,
    upstream_ref       TEXT,                   -- our reference of the upstream exchange
    status             TEXT NOT NULL CHECK (status IN ('received', 'sent', 'approved', 'declined',
                         'timeout', 'error', 'canceled')),
    response_code      TEXT,
    approval_no        TEXT,
    approved_at        TEXT,
    message            TEXT,
    answer             TEXT,                   -- JSON: the answer the terminal got (replayed to a repeat)
    upstream_ms        INTEGER,
    event_seq          INTEGER NOT NULL DEFAULT 0,   -- the transaction's last event sequence number
    late_response_code TEXT,
    late_approval_no   TEXT,
    late_at            TIMESTAMPTZ,
    received_at        TIMESTAMPTZ NOT NULL,
    answered_at        TIMESTAMPTZ,
    CONSTRAINT approvals_terminal_request_key UNIQUE (terminal_id, seq_no, sent_at)
);
CREATE INDEX approvals_received_idx ON approvals (received_at, id);
CREATE INDEX approvals_upstream_idx ON approvals (upstream, received_at) WHERE upstream IS NOT NULL;
CREATE INDEX approvals_approval_no_idx ON approvals (upstream, approval_no) WHERE approval_no IS NOT NULL;

-- A network cancel is stored before it is sent and resent until acknowledged or given up.
CREATE TABLE network_cancels (
    approval_id     UUID PRIMARY KEY REFERENCES approvals (id),
    upstream        TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'acknowledged', 'failed')),
    sends           INTEGER NOT NULL DEFAULT 0 CHECK (sends >= 0),
    next_send_at    TIMESTAMPTZ,               -- NULL once acknowledged or failed
    last_error      TEXT,
    created_at      TIMESTAMPTZ NOT NULL,
    finished_at     TIMESTAMPTZ
);
CREATE INDEX network_cancels_due_idx ON network_cancels (next_send_at) WHERE next_send_at IS NOT NULL;
