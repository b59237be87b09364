-- Businesses (사업자): companies that use the platform machine-to-machine with an API key.
-- Onboarded by an operator; the bank account is registered with the bank (a fin account)
-- before the row is written, like a user's.
CREATE TABLE businesses (
    id                    UUID PRIMARY KEY,
    name                  TEXT NOT NULL,
    -- The ten digits, no dashes (the one stored form, so the uniqueness check sees every way
    -- of writing it); check digit verified by the application.
    registration_number   TEXT NOT NULL CHECK (registration_number ~ '^[0-9]{10}$'),
    bank_code             TEXT NOT NULL,
    account_number_masked TEXT NOT NULL,
    holder_name           TEXT NOT NULL,
    fintech_use_num       TEXT NOT NULL,      -- the bank's id for the account; the number itself is not kept
    -- SHA-256 of the API key; the key is shown once and never stored. A key is 256 random bits,
    -- so a fast unsalted hash is enough and lets a request find its business by the hash.
    api_key_hash          BYTEA NOT NULL CHECK (length(api_key_hash) = 32),
    webhook_url           TEXT,
    -- Kept in clear: the platform signs every webhook with it (HMAC), so it must be able to
    -- read it back. Shown once, at onboarding.
    webhook_secret        TEXT NOT NULL,
    created_at            TIMESTAMPTZ NOT NULL,
    key_rotated_at        TIMESTAMPTZ,        -- NULL until the first rotation
    CONSTRAINT businesses_registration_number_key UNIQUE (registration_number),
    CONSTRAINT businesses_api_key_hash_key UNIQUE (api_key_hash)
);
-- The admin list, newest first (keyset on (created_at, id)).
CREATE INDEX businesses_created_idx ON businesses (created_at, id);
