-- Events (DESIGN.md "Events"): the transactional outbox, idempotent deliveries to consumers on
-- the durable queue, dead letters and alerts. (See the PostgreSQL migration for the why.)

-- SQLite has one writer, so `seq` (AUTOINCREMENT, never reused) is also commit order.
CREATE TABLE outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    id           BLOB NOT NULL UNIQUE,
    subject      TEXT NOT NULL,
    payload      TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    published_at INTEGER
) STRICT;
CREATE INDEX outbox_unpublished_idx ON outbox (seq) WHERE published_at IS NULL;

ALTER TABLE queued_jobs ADD COLUMN key TEXT;
CREATE UNIQUE INDEX queued_jobs_key_idx ON queued_jobs (kind, key) WHERE key IS NOT NULL;

CREATE TABLE dead_letters (
    id              BLOB PRIMARY KEY,
    kind            TEXT NOT NULL,
    subject_id      BLOB NOT NULL,
    step            TEXT NOT NULL,
    consumer        TEXT,
    event_id        BLOB,
    attempts        INTEGER NOT NULL CHECK (attempts >= 0),
    rounds          INTEGER NOT NULL DEFAULT 0 CHECK (rounds >= 0),
    last_error      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER,
    resolved_at     INTEGER,
    resolution      TEXT
) STRICT;
CREATE UNIQUE INDEX dead_letters_open_idx ON dead_letters (kind, subject_id) WHERE resolved_at IS NULL;
CREATE INDEX dead_letters_due_idx ON dead_letters (next_attempt_at) WHERE resolved_at IS NULL;
CREATE INDEX dead_letters_newest_idx ON dead_letters (created_at, id);

CREATE TABLE alerts (
    id              BLOB PRIMARY KEY,
    kind            TEXT NOT NULL,
    cause           TEXT NOT NULL UNIQUE,
    subject_id      BLOB,
    message         TEXT NOT NULL,
    data            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    acknowledged_at INTEGER
) STRICT;
CREATE INDEX alerts_newest_idx ON alerts (created_at, id);
