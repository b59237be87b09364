-- Businesses (사업자): companies that use the platform machine-to-machine with an API key (see
-- the PostgreSQL migration for the reasons behind each column).
CREATE TABLE businesses (
    id                    BLOB PRIMARY KEY,
    name                  TEXT NOT NULL,
    -- The ten digits, no dashes; check digit verified by the application.
    registration_number   TEXT NOT NULL CHECK (length(registration_number) = 10
                                               AND registration_number NOT GLOB '*[^0-9]*'),
    bank_code             TEXT NOT NULL,
    account_number_masked TEXT NOT NULL,
    holder_name           TEXT NOT NULL,
    fintech_use_num       TEXT NOT NULL,      -- the bank's id for the account; the number itself is not kept
    api_key_hash          BLOB NOT NULL CHECK (length(api_key_hash) = 32),   -- SHA-256 of the API key
    webhook_url           TEXT,
    webhook_secret        TEXT NOT NULL,      -- kept in clear: webhooks are signed with it
    created_at            INTEGER NOT NULL,
    key_rotated_at        INTEGER,            -- NULL until the first rotation
    CONSTRAINT businesses_registration_number_key UNIQUE (registration_number),
    CONSTRAINT businesses_api_key_hash_key UNIQUE (api_key_hash)
) STRICT;
-- The admin list, newest first (keyset on (created_at, id)).
CREATE INDEX businesses_created_idx ON businesses (created_at, id);
