-- The card approval gateway: merchants, terminals, routing versions, breakers, approvals and
-- network cancels. (See the PostgreSQL migration for the why.)

CREATE TABLE merchants (
    id                  BLOB PRIMARY KEY,
    name                TEXT NOT NULL,
    registration_number TEXT NOT NULL UNIQUE,
    created_at          INTEGER NOT NULL
) STRICT;
CREATE INDEX merchants_created_idx ON merchants (created_at, id);

CREATE TABLE terminals (
    terminal_id  TEXT PRIMARY KEY CHECK (length(terminal_id) = 8),
    merchant_id  BLOB NOT NULL REFERENCES merchants (id),
    key_sealed   BLOB NOT NULL,
    created_at   INTEGER NOT NULL,
    disabled_at  INTEGER
) STRICT;
CREATE INDEX terminals_merchant_idx ON terminals (merchant_id, created_at);

CREATE TABLE routing_versions (
    version    INTEGER PRIMARY KEY CHECK (version > 0),
    config     TEXT NOT NULL,
    changed_by TEXT NOT NULL,
    changed_at INTEGER NOT NULL
) STRICT;

CREATE TABLE upstream_breakers (
    upstream_id TEXT PRIMARY KEY,
    breaker     TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT;

CREATE TABLE approvals (
    id                 BLOB PRIMARY KEY,
    terminal_id        TEXT NOT NULL,
    merchant_id        BLOB NOT NULL,
    seq_no             INTEGER NOT NULL CHECK (seq_no >= 0),
    sent_at            TEXT NOT NULL,
    tx_type            TEXT NOT NULL,
    amount             INTEGER NOT NULL CHECK (amount >= 0),
    card_masked        TEXT NOT NULL,
    original_id        BLOB,
    issuer             TEXT,
    upstream           TEXT,
    upstream_ref       TEXT,
    status             TEXT NOT NULL CHECK (status IN ('received', 'sent', 'approved', 'declined',
                         'timeout', 'error', 'canceled')),
    response_code      TEXT,
    approval_no        TEXT,
    approved_at        TEXT,
    message            TEXT,
    answer             TEXT,
    upstream_ms        INTEGER,
    event_seq          INTEGER NOT NULL DEFAULT 0,
    late_response_code TEXT,
    late_approval_no   TEXT,
    late_at            INTEGER,
    received_at        INTEGER NOT NULL,
    answered_at        INTEGER,
    CONSTRAINT approvals_terminal_request_key UNIQUE (terminal_id, seq_no, sent_at)
) STRICT;
CREATE INDEX approvals_received_idx ON approvals (received_at, id);
CREATE INDEX approvals_upstream_idx ON approvals (upstream, received_at) WHERE upstream IS NOT NULL;
CREATE INDEX approvals_approval_no_idx ON approvals (upstream, approval_no) WHERE approval_no IS NOT NULL;

CREATE TABLE network_cancels (
    approval_id     BLOB PRIMARY KEY REFERENCES approvals (id),
    upstream        TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'acknowledged', 'failed')),
    sends           INTEGER NOT NULL DEFAULT 0 CHECK (sends >= 0),
    next_send_at    INTEGER,
    last_error      TEXT,
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER
) STRICT;
CREATE INDEX network_cancels_due_idx ON network_cancels (next_send_at) WHERE next_send_at IS NOT NULL;
