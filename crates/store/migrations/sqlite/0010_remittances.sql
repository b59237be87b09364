-- Business remittance (A → platform → B): the remittance, each attempt of each step, and the
-- platform accounts the money passes through. (See the PostgreSQL migration for the why.)

INSERT INTO accounts (id, kind, system_code, created_at) VALUES
    (X'00000000000070008000000000000003', 'system', 'remittance_float', 0),
    (X'00000000000070008000000000000004', 'system', 'payout_in_transit', 0);

CREATE TABLE remittances (
    id                      BLOB PRIMARY KEY,
    from_business_id        BLOB NOT NULL,
    from_fintech_use_num    TEXT NOT NULL,
    to_business_id          BLOB,
    to_bank_code            TEXT NOT NULL,
    to_account_number_masked TEXT NOT NULL,
    to_holder_name          TEXT NOT NULL,
    to_fintech_use_num      TEXT NOT NULL,
    amount                  INTEGER NOT NULL CHECK (amount > 0),
    memo                    TEXT,
    reference               TEXT,
    status                  TEXT NOT NULL CHECK (status IN ('requested', 'collected', 'credited', 'debited',
                              'completed', 'collect_failed', 'refunding', 'refunded', 'needs_attention')),
    held_status             TEXT CHECK (held_status IN ('requested', 'collected', 'credited', 'debited', 'refunding')),
    failure_step            TEXT,
    failure_code            TEXT,
    failure_message         TEXT,
    failure_attempts        INTEGER,
    created_at              INTEGER NOT NULL,
    updated_at              INTEGER NOT NULL,
    completed_at            INTEGER,
    CONSTRAINT remittances_held_only_when_needing_attention
        CHECK ((status = 'needs_attention') = (held_status IS NOT NULL)),
    CONSTRAINT remittances_not_to_oneself CHECK (to_business_id IS NULL OR to_business_id <> from_business_id)
) STRICT;
CREATE INDEX remittances_from_idx ON remittances (from_business_id, created_at, id);
CREATE INDEX remittances_to_idx ON remittances (to_business_id, created_at, id) WHERE to_business_id IS NOT NULL;
CREATE INDEX remittances_status_idx ON remittances (status, created_at, id);
CREATE INDEX remittances_created_idx ON remittances (created_at, id);

CREATE TABLE remittance_attempts (
    id            BLOB PRIMARY KEY,
    remittance_id BLOB NOT NULL REFERENCES remittances (id),
    step          TEXT NOT NULL CHECK (step IN ('collect', 'credit_float', 'debit_float', 'payout', 'refund')),
    outcome       TEXT NOT NULL CHECK (outcome IN ('succeeded', 'refused', 'failed', 'unknown')),
    error         TEXT,
    bank_tran_id  TEXT,
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX remittance_attempts_of_idx ON remittance_attempts (remittance_id, started_at, id);
