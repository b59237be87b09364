-- Webhooks (see the PostgreSQL migration for the why).
CREATE TABLE webhooks (
    id              BLOB PRIMARY KEY,
    business_id     BLOB NOT NULL,
    type            TEXT NOT NULL,
    object_id       BLOB NOT NULL,
    url             TEXT NOT NULL,
    body            TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    delivered_at    INTEGER,
    gave_up_at      INTEGER,
    CONSTRAINT webhooks_once_per_status UNIQUE (type, object_id),
    CONSTRAINT webhooks_finished_once CHECK (delivered_at IS NULL OR gave_up_at IS NULL),
    CONSTRAINT webhooks_due_until_finished
        CHECK ((next_attempt_at IS NULL) = (delivered_at IS NOT NULL OR gave_up_at IS NOT NULL))
) STRICT;
CREATE INDEX webhooks_due_idx ON webhooks (next_attempt_at, id) WHERE next_attempt_at IS NOT NULL;

CREATE TABLE webhook_deliveries (
    id           BLOB PRIMARY KEY,
    webhook_id   BLOB NOT NULL REFERENCES webhooks (id),
    business_id  BLOB NOT NULL,
    attempt      INTEGER NOT NULL CHECK (attempt >= 1),
    status_code  INTEGER,
    error        TEXT,
    delivered    INTEGER NOT NULL CHECK (delivered IN (0, 1)),
    duration_ms  INTEGER NOT NULL CHECK (duration_ms >= 0),
    attempted_at INTEGER NOT NULL,
    CONSTRAINT webhook_deliveries_attempt_key UNIQUE (webhook_id, attempt)
) STRICT;
CREATE INDEX webhook_deliveries_business_idx ON webhook_deliveries (business_id, attempted_at, id);
