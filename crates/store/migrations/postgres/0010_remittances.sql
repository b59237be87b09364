-- Business remittance (A → platform → B): the remittance, each attempt of each step (the
-- original design's "처리 내역"), and the platform accounts the money passes through.

-- The float holds remittances credited and not yet debited; payout-in-transit holds those
-- debited and not yet paid out (or refunded). Invariant 7 checks both against the statuses.
INSERT INTO accounts (id, kind, system_code, created_at) VALUES
    ('00000000-0000-7000-8000-000000000003', 'system', 'remittance_float', now()),
    ('00000000-0000-7000-8000-000000000004', 'system', 'payout_in_transit', now());

CREATE TABLE remittances (
    id                      UUID PRIMARY KEY,
    from_business_id        UUID NOT NULL,
    from_fintech_use_num    TEXT NOT NULL,      -- A's account at the bank: collected from, refunded to
    to_business_id          UUID,               -- B, when B is a business on the platform
    to_bank_code            TEXT NOT NULL,
    to_account_number_masked TEXT NOT NULL,
    to_holder_name          TEXT NOT NULL,
    to_fintech_use_num      TEXT NOT NULL,      -- B's account at the bank: paid out to
    amount                  BIGINT NOT NULL CHECK (amount > 0),
    memo                    TEXT,
    reference               TEXT,
    status                  TEXT NOT NULL CHECK (status IN ('requested', 'collected', 'credited', 'debited',
                              'completed', 'collect_failed', 'refunding', 'refunded', 'needs_attention')),
    -- needs_attention: the status it stopped in (where the money is, and where a retry resumes).
    held_status             TEXT CHECK (held_status IN ('requested', 'collected', 'credited', 'debited', 'refunding')),
    failure_step            TEXT,
    failure_code            TEXT,
    failure_message         TEXT,
    failure_attempts        INTEGER,
    created_at              TIMESTAMPTZ NOT NULL,
    updated_at              TIMESTAMPTZ NOT NULL,
    completed_at            TIMESTAMPTZ,
    CONSTRAINT remittances_held_only_when_needing_attention
        CHECK ((status = 'needs_attention') = (held_status IS NOT NULL)),
    CONSTRAINT remittances_not_to_oneself CHECK (to_business_id IS NULL OR to_business_id <> from_business_id)
);
-- A business's remittances, sent and received, newest first.
CREATE INDEX remittances_from_idx ON remittances (from_business_id, created_at, id);
CREATE INDEX remittances_to_idx ON remittances (to_business_id, created_at, id) WHERE to_business_id IS NOT NULL;
-- The admin list by status, and the stuck monitor over unfinished ones.
CREATE INDEX remittances_status_idx ON remittances (status, created_at, id);
CREATE INDEX remittances_created_idx ON remittances (created_at, id);

-- Every attempt at every step: when it ran, how it ended, and the bank's id for a transfer.
CREATE TABLE remittance_attempts (
    id            UUID PRIMARY KEY,
    remittance_id UUID NOT NULL REFERENCES remittances (id),
    step          TEXT NOT NULL CHECK (step IN ('collect', 'credit_float', 'debit_float', 'payout', 'refund')),
    -- succeeded; refused (the bank said no: final); failed (nothing happened, tried again);
    -- unknown (no answer and the inquiry could not tell: tried again under the same transfer id)
    outcome       TEXT NOT NULL CHECK (outcome IN ('succeeded', 'refused', 'failed', 'unknown')),
    error         TEXT,
    bank_tran_id  TEXT,
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ NOT NULL
);
CREATE INDEX remittance_attempts_of_idx ON remittance_attempts (remittance_id, started_at, id);
