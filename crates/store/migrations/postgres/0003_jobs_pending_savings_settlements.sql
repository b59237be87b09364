-- Mini-Pay steps 3-5: pending transfers, savings products, split bills, notifications, and the
-- job runner's tables.

-- Pending transfers: the hold is accounts.pending_out (two-phase, TigerBeetle style); the
-- reminder at 24 hours left is sent once (reminded_at is set by a conditional update).
ALTER TABLE transfers ADD COLUMN reminded_at TIMESTAMPTZ;
ALTER TABLE transfers ADD COLUMN kind TEXT NOT NULL DEFAULT 'transfer'
    CHECK (kind IN ('transfer', 'settlement_payment'));
ALTER TABLE transfers ADD CONSTRAINT transfers_pending_expires
    CHECK ((status = 'pending') <= (expires_at IS NOT NULL));
-- The pending jobs' work lists: open pendings by expiry (keyset on (expires_at, id)).
CREATE INDEX transfers_pending_idx ON transfers (expires_at, id) WHERE status = 'pending';

-- Savings: the principal (money deposited, never interest) that interest is computed on, the
-- carried fraction of a won (numerator over 10,000 bp x 365 days), and the last business date
-- interest was paid for (a run for date D pays accounts not yet paid through D: a rerun pays
-- nothing, a missed day is paid by the next run).
ALTER TABLE accounts ADD COLUMN principal BIGINT NOT NULL DEFAULT 0 CHECK (principal >= 0);
ALTER TABLE accounts ADD COLUMN interest_carry BIGINT NOT NULL DEFAULT 0
    CHECK (interest_carry >= 0 AND interest_carry < 3650000);
ALTER TABLE accounts ADD COLUMN interest_paid_through DATE;
-- The interest run walks savings accounts in id order.
CREATE INDEX accounts_savings_idx ON accounts (id) WHERE kind = 'savings';

-- One row per (fixed savings account, business date) the 08:00 auto-debit handled: the row is
-- the claim (a rerun skips it) and the record of what happened.
CREATE TABLE auto_debits (
    account_id     UUID NOT NULL,
    business_date  DATE NOT NULL,
    user_id        UUID NOT NULL,
    amount         BIGINT NOT NULL CHECK (amount > 0),
    status         TEXT NOT NULL CHECK (status IN ('processing', 'completed', 'failed')),
    charge_id      UUID,                -- the bank pull that covered a shortfall, if any
    journal_id     UUID,
    failure_reason TEXT,
    created_at     TIMESTAMPTZ NOT NULL,
    resolved_at    TIMESTAMPTZ,
    PRIMARY KEY (account_id, business_date)
);

-- What users are told: pending transfers received / reminded / expired, settlement requests,
-- failed auto-debits. Written in the transaction of the change that causes them.
CREATE TABLE notifications (
    id          UUID PRIMARY KEY,
    user_id     UUID NOT NULL,
    kind        TEXT NOT NULL,
    data        TEXT NOT NULL,          -- JSON: ids of the related objects
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX notifications_user_idx ON notifications (user_id, created_at DESC, id DESC);

-- Split bills.
CREATE TABLE settlements (
    id                UUID PRIMARY KEY,
    requester_user_id UUID NOT NULL,
    total_amount      BIGINT NOT NULL CHECK (total_amount > 0),
    method            TEXT NOT NULL CHECK (method IN ('equal', 'random')),
    memo              TEXT,
    status            TEXT NOT NULL CHECK (status IN ('open', 'completed')),
    created_at        TIMESTAMPTZ NOT NULL,
    completed_at      TIMESTAMPTZ
);
CREATE INDEX settlements_requester_idx ON settlements (requester_user_id, created_at DESC, id DESC);

CREATE TABLE settlement_shares (
    settlement_id UUID NOT NULL REFERENCES settlements (id),
    user_id       UUID NOT NULL,
    position      INTEGER NOT NULL,     -- order given by the requester
    amount        BIGINT NOT NULL CHECK (amount >= 1),
    status        TEXT NOT NULL CHECK (status IN ('requested', 'paid')),
    transfer_id   UUID,                 -- NULL for the requester's own share
    paid_at       TIMESTAMPTZ,
    PRIMARY KEY (settlement_id, user_id)
);
CREATE INDEX settlement_shares_user_idx ON settlement_shares (user_id, settlement_id);

-- Run history of scheduled and manual job runs. A scheduled slot is claimed by inserting its
-- row: the partial unique index lets exactly one instance run each (job, slot).
CREATE TABLE job_runs (
    id          UUID PRIMARY KEY,
    job         TEXT NOT NULL,
    slot        TIMESTAMPTZ NOT NULL,   -- the scheduled instant, or the "as of" time of a manual run
    trigger     TEXT NOT NULL CHECK (trigger IN ('scheduled', 'manual')),
    instance    TEXT NOT NULL,
    started_at  TIMESTAMPTZ NOT NULL,
    finished_at TIMESTAMPTZ,
    processed   BIGINT,
    details     TEXT,
    error       TEXT
);
CREATE UNIQUE INDEX job_runs_slot_key ON job_runs (job, slot) WHERE trigger = 'scheduled';
CREATE INDEX job_runs_recent_idx ON job_runs (started_at DESC, id DESC);

-- Durable work, enqueued in the transaction of the change that needs it (transactional
-- outbox). Claimed with FOR UPDATE SKIP LOCKED, retried with backoff, dead after the last
-- attempt with the reason.
CREATE TABLE queued_jobs (
    id           UUID PRIMARY KEY,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,         -- JSON
    run_at       TIMESTAMPTZ NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    attempts_max INTEGER NOT NULL CHECK (attempts_max > 0),
    state        TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'dead')),
    locked_until TIMESTAMPTZ,
    last_error   TEXT,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX queued_jobs_due_idx ON queued_jobs (kind, run_at, id) WHERE state IN ('queued', 'running');

-- Charges still open when this migration runs get their recovery job.
INSERT INTO queued_jobs (id, kind, payload, run_at, attempts_max, state, created_at, updated_at)
SELECT id, 'charge.recover', '{"charge_id":"' || id::text || '"}', created_at, 20, 'queued', now(), now()
FROM charges WHERE status IN ('pending', 'unknown');
