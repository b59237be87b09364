-- Webhooks (API-business.md, "Webhooks"): one row per final status of a business's object,
-- written once (the unique key) by the consumer of that status's event, with the exact body
-- every attempt sends; and one row per delivery attempt (the delivery log).
CREATE TABLE webhooks (
    id              UUID PRIMARY KEY,
    business_id     UUID NOT NULL,
    type            TEXT NOT NULL,      -- payment.paid, remittance.completed, ...
    object_id       UUID NOT NULL,
    url             TEXT NOT NULL,      -- the business's webhook_url when the status was reached
    body            TEXT NOT NULL,      -- sent byte for byte on every attempt
    created_at      TIMESTAMPTZ NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    -- Due for its next attempt (a claim pushes it ahead by a lease); NULL once finished.
    next_attempt_at TIMESTAMPTZ,
    delivered_at    TIMESTAMPTZ,
    gave_up_at      TIMESTAMPTZ,
    CONSTRAINT webhooks_once_per_status UNIQUE (type, object_id),
    CONSTRAINT webhooks_finished_once CHECK (delivered_at IS NULL OR gave_up_at IS NULL),
    CONSTRAINT webhooks_due_until_finished
        CHECK ((next_attempt_at IS NULL) = (delivered_at IS NOT NULL OR gave_up_at IS NOT NULL))
);
CREATE INDEX webhooks_due_idx ON webhooks (next_attempt_at, id) WHERE next_attempt_at IS NOT NULL;

CREATE TABLE webhook_deliveries (
    id           UUID PRIMARY KEY,
    webhook_id   UUID NOT NULL REFERENCES webhooks (id),
    business_id  UUID NOT NULL,
    attempt      INTEGER NOT NULL CHECK (attempt >= 1),
    status_code  INTEGER,               -- the receiver's answer; NULL when none came
    error        TEXT,
    delivered    BOOLEAN NOT NULL,
    duration_ms  BIGINT NOT NULL CHECK (duration_ms >= 0),
    attempted_at TIMESTAMPTZ NOT NULL,
    CONSTRAINT webhook_deliveries_attempt_key UNIQUE (webhook_id, attempt)
);
-- A business's delivery log, newest first.
CREATE INDEX webhook_deliveries_business_idx ON webhook_deliveries (business_id, attempted_at, id);
