-- Mini-Pay steps 3-5: pending transfers, savings products, split bills, notifications, and the
-- job runner's tables.

-- Pending transfers: the hold is accounts.pending_out (two-phase, TigerBeetle style); the
-- reminder at 24 hours left is sent once (reminded_at is set by a conditional update).
-- (SQLite cannot add a table constraint to an existing table; the rule that a pending
-- transfer has an expiry is kept by the application and checked by the audit.)
ALTER TABLE transfers ADD COLUMN reminded_at INTEGER;
ALTER TABLE transfers ADD COLUMN kind TEXT NOT NULL DEFAULT 'transfer'
    CHECK (kind IN ('transfer', 'settlement_payment'));
-- The pending jobs' work lists: open pendings by expiry (keyset on (expires_at, id)).
CREATE INDEX transfers_pending_idx ON transfers (expires_at, id) WHERE status = 'pending';

-- Savings: the principal (money deposited, never interest) that interest is computed on, the
-- carried fraction of a won (numerator over 10,000 bp x 365 days), and the last business date
-- interest was paid for (a run for date D pays accounts not yet paid through D: a rerun pays
-- nothing, a missed day is paid by the next run).
ALTER TABLE accounts ADD COLUMN principal INTEGER NOT NULL DEFAULT 0 CHECK (principal >= 0);
ALTER TABLE accounts ADD COLUMN interest_carry INTEGER NOT NULL DEFAULT 0
    CHECK (interest_carry >= 0 AND interest_carry < 3650000);
ALTER TABLE accounts ADD COLUMN interest_paid_through TEXT;
-- The interest run walks savings accounts in id order.
CREATE INDEX accounts_savings_idx ON accounts (id) WHERE kind = 'savings';

-- One row per (fixed savings account, business date) the 08:00 auto-debit handled: the row is
-- the claim (a rerun skips it) and the record of what happened.
CREATE TABLE auto_debits (
    account_id     BLOB NOT NULL,
    business_date  TEXT NOT NULL,
    user_id        BLOB NOT NULL,
    amount         INTEGER NOT NULL CHECK (amount > 0),
    status         TEXT NOT NULL CHECK (status IN ('processing', 'completed', 'failed')),
    charge_id      BLOB,                -- the bank pull that covered a shortfall, if any
    journal_id     BLOB,
    failure_reason TEXT,
    created_at     INTEGER NOT NULL,
    resolved_at    INTEGER,
    PRIMARY KEY (account_id, business_date)
) STRICT;

-- What users are told: pending transfers received / reminded / expired, settlement requests,
-- failed auto-debits. Written in the transaction of the change that causes them.
CREATE TABLE notifications (
    id          BLOB PRIMARY KEY,
    user_id     BLOB NOT NULL,
    kind        TEXT NOT NULL,
    data        TEXT NOT NULL,          -- JSON: ids of the related objects
    created_at  INTEGER NOT NULL
) STRICT;
CREATE INDEX notifications_user_idx ON notifications (user_id, created_at DESC, id DESC);

-- Split bills.
CREATE TABLE settlements (
    id                BLOB PRIMARY KEY,
    requester_user_id BLOB NOT NULL,
    total_amount      INTEGER NOT NULL CHECK (total_amount > 0),
    method            TEXT NOT NULL CHECK (method IN ('equal', 'random')),
    memo              TEXT,
    status            TEXT NOT NULL CHECK (status IN ('open', 'completed')),
    created_at        INTEGER NOT NULL,
    completed_at      INTEGER
) STRICT;
CREATE INDEX settlements_requester_idx ON settlements (requester_user_id, created_at DESC, id DESC);

CREATE TABLE settlement_shares (
    settlement_id BLOB NOT NULL REFERENCES settlements (id),
    user_id       BLOB NOT NULL,
    position      INTEGER NOT NULL,     -- order given by the requester
    amount        INTEGER NOT NULL CHECK (amount >= 1),
    status        TEXT NOT NULL CHECK (status IN ('requested', 'paid')),
    transfer_id   BLOB,                 -- NULL for the requester's own share
    paid_at       INTEGER,
    PRIMARY KEY (settlement_id, user_id)
) STRICT;
CREATE INDEX settlement_shares_user_idx ON settlement_shares (user_id, settlement_id);

-- Run history of scheduled and manual job runs. A scheduled slot is claimed by inserting its
-- row: the partial unique index lets exactly one instance run each (job, slot).
CREATE TABLE job_runs (
    id          BLOB PRIMARY KEY,
    job         TEXT NOT NULL,
    slot        INTEGER NOT NULL,   -- the scheduled instant, or the "as of" time of a manual run
    trigger     TEXT NOT NULL CHECK (trigger IN ('scheduled', 'manual')),
    instance    TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    finished_at INTEGER,
    processed   INTEGER,
    details     TEXT,
    error       TEXT
) STRICT;
CREATE UNIQUE INDEX job_runs_slot_key ON job_runs (job, slot) WHERE trigger = 'scheduled';
CREATE INDEX job_runs_recent_idx ON job_runs (started_at DESC, id DESC);

-- Durable work, enqueued in the transaction of the change that needs it (transactional
-- outbox). Claimed with FOR UPDATE SKIP LOCKED, retried with backoff, dead after the last
-- attempt with the reason.
CREATE TABLE queued_jobs (
    id           BLOB PRIMARY KEY,
    kind         TEXT NOT NULL,
    payload      TEXT NOT NULL,         -- JSON
    run_at       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    attempts_max INTEGER NOT NULL CHECK (attempts_max > 0),
    state        TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'dead')),
    locked_until INTEGER,
    last_error   TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX queued_jobs_due_idx ON queued_jobs (kind, run_at, id) WHERE state IN ('queued', 'running');

-- Charges still open when this migration runs get their recovery job.
INSERT INTO queued_jobs (id, kind, payload, run_at, attempts_max, state, created_at, updated_at)
SELECT id, 'charge.recover',
       '{"charge_id":"' || lower(substr(hex(id), 1, 8) || '-' || substr(hex(id), 9, 4) || '-' || substr(hex(id), 13, 4)
                          || '-' || substr(hex(id), 17, 4) || '-' || substr(hex(id), 21)) || '"}',
       created_at, 20, 'queued', created_at, created_at
FROM charges WHERE status IN ('pending', 'unknown');
