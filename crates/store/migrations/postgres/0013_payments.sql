-- Payments and refunds (API-business.md, "Payments and refunds"): a wallet user pays a business
-- from their registered bank account; the business's balance lives on the ledger; refunds go
-- back to the user's bank through "refunds in transit"; every bank call is a row (the
-- customer-support history).

-- A business's balance is a ledger account of its own kind, whose id is the business's id.
-- Like a user's, it never goes below zero (accounts_available_nonnegative covers it).
ALTER TABLE accounts ADD COLUMN owner_business_id UUID;
ALTER TABLE accounts DROP CONSTRAINT accounts_kind_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_kind_check CHECK (kind IN ('main', 'savings', 'system', 'business'));
ALTER TABLE accounts DROP CONSTRAINT accounts_owner_shape;
ALTER TABLE accounts ADD CONSTRAINT accounts_owner_shape CHECK (
    (kind IN ('main', 'savings')) = (owner_user_id IS NOT NULL)
    AND (kind = 'system') = (system_code IS NOT NULL)
    AND (kind = 'business') = (owner_business_id IS NOT NULL AND owner_business_id = id));
INSERT INTO accounts (id, owner_business_id, kind, created_at)
SELECT id, id, 'business', created_at FROM businesses;

-- Refunds taken from a business's balance and not yet at the user's bank (invariant 8).
INSERT INTO accounts (id, kind, system_code, created_at) VALUES
    ('00000000-0000-7000-8000-000000000005', 'system', 'refunds_in_transit', now());

CREATE TABLE payments (
    id                  UUID PRIMARY KEY,
    business_id         UUID NOT NULL,
    user_id             UUID NOT NULL,
    order_id            TEXT NOT NULL,
    amount              BIGINT NOT NULL CHECK (amount > 0),
    -- Refunds accepted and not failed (succeeded or on their way).
    refunded_amount     BIGINT NOT NULL DEFAULT 0,
    description         TEXT,
    -- The user's bank account, as registered when the payment was asked for: pulled from,
    -- refunded to.
    bank_account_id     UUID NOT NULL,
    fintech_use_num     TEXT NOT NULL,
    -- The pull's transfer id (ours: unique by construction, what the bank deduplicates on).
    bank_transaction_id TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('accepted', 'processing', 'paid', 'failed',
                          'partially_refunded', 'refunded')),
    failure_code        TEXT,
    failure_message     TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    paid_at             TIMESTAMPTZ,
    CONSTRAINT payments_order_key UNIQUE (business_id, order_id),
    CONSTRAINT payments_bank_transaction_key UNIQUE (bank_transaction_id),
    CONSTRAINT payments_refunds_within_amount CHECK (refunded_amount BETWEEN 0 AND amount),
    CONSTRAINT payments_failure_only_when_failed CHECK ((status = 'failed') = (failure_code IS NOT NULL)),
    CONSTRAINT payments_refunds_only_when_paid CHECK (refunded_amount = 0 OR status IN ('paid', 'partially_refunded', 'refunded'))
);
CREATE INDEX payments_business_idx ON payments (business_id, created_at, id);
CREATE INDEX payments_user_idx ON payments (user_id, created_at, id);
-- The recovery job's scan: payments whose pull is not settled.
CREATE INDEX payments_unsettled_idx ON payments (updated_at, id) WHERE status IN ('accepted', 'processing');

CREATE TABLE refunds (
    id                  UUID PRIMARY KEY,
    payment_id          UUID NOT NULL REFERENCES payments (id),
    business_id         UUID NOT NULL,
    amount              BIGINT NOT NULL CHECK (amount > 0),
    reason              TEXT,
    bank_transaction_id TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('accepted', 'processing', 'succeeded', 'failed')),
    failure_code        TEXT,
    failure_message     TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    updated_at          TIMESTAMPTZ NOT NULL,
    finished_at         TIMESTAMPTZ,
    CONSTRAINT refunds_bank_transaction_key UNIQUE (bank_transaction_id),
    CONSTRAINT refunds_failure_only_when_failed CHECK ((status = 'failed') = (failure_code IS NOT NULL))
);
CREATE INDEX refunds_payment_idx ON refunds (payment_id, created_at, id);
CREATE INDEX refunds_unsettled_idx ON refunds (updated_at, id) WHERE status IN ('accepted', 'processing');

-- Every call to the bank for a payment or its refunds. A transfer's row is written (`sent`)
-- before the call is made, so a crash between the call and its recording leaves a row that
-- says "ask the bank", never "send again".
CREATE TABLE payment_bank_calls (
    id            UUID PRIMARY KEY,
    payment_id    UUID NOT NULL REFERENCES payments (id),
    refund_id     UUID REFERENCES refunds (id),
    kind          TEXT NOT NULL CHECK (kind IN ('pull', 'push', 'inquiry', 'void')),
    tran_id       TEXT NOT NULL,
    outcome       TEXT NOT NULL CHECK (outcome IN ('sent', 'completed', 'declined', 'unavailable', 'unknown')),
    bank_tran_id  TEXT,                 -- the bank's own id for an executed transfer
    error         TEXT,
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ
);
CREATE INDEX payment_bank_calls_of_idx ON payment_bank_calls (payment_id, started_at, id);
CREATE INDEX payment_bank_calls_tran_idx ON payment_bank_calls (tran_id, started_at);
