-- Payments and refunds (see the PostgreSQL migration for the why).

-- A business's balance is a ledger account of kind 'business' whose id is the business's id.
-- SQLite cannot change a CHECK constraint, so the accounts table is rebuilt (nothing refers to
-- it by foreign key; the one view over it is dropped and recreated).
DROP VIEW account_openings;
CREATE TABLE accounts_new (
    id              BLOB PRIMARY KEY,
    owner_user_id   BLOB REFERENCES users (id),         -- main and savings accounts only
    kind            TEXT NOT NULL CHECK (kind IN ('main', 'savings', 'system', 'business')),
    product         TEXT CHECK (product IN ('free', 'fixed')),
    daily_amount    INTEGER CHECK (daily_amount BETWEEN 1 AND 1000000000000),
    system_code     TEXT UNIQUE,
    posted          INTEGER NOT NULL DEFAULT 0,
    pending_out     INTEGER NOT NULL DEFAULT 0 CHECK (pending_out >= 0),
    opening_balance INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL,
    last_entry_at   INTEGER,
    principal       INTEGER NOT NULL DEFAULT 0 CHECK (principal >= 0),
    interest_carry  INTEGER NOT NULL DEFAULT 0 CHECK (interest_carry >= 0 AND interest_carry < 3650000),
    interest_paid_through TEXT,
    interest_basis  INTEGER NOT NULL DEFAULT 0 CHECK (interest_basis >= 0),
    owner_business_id BLOB,
    CONSTRAINT accounts_available_nonnegative CHECK (kind = 'system' OR posted - pending_out >= 0),
    CONSTRAINT accounts_owner_shape CHECK (
        (kind IN ('main', 'savings')) = (owner_user_id IS NOT NULL)
        AND (kind = 'system') = (system_code IS NOT NULL)
        AND (kind = 'business') = (owner_business_id IS NOT NULL AND owner_business_id = id)),
    CONSTRAINT accounts_product_shape CHECK (
        (kind = 'savings' AND product IS NOT NULL AND (product = 'fixed') = (daily_amount IS NOT NULL))
        OR (kind <> 'savings' AND product IS NULL AND daily_amount IS NULL))
) STRICT;
INSERT INTO accounts_new (id, owner_user_id, kind, product, daily_amount, system_code, posted, pending_out,
    opening_balance, created_at, last_entry_at, principal, interest_carry, interest_paid_through, interest_basis)
SELECT id, owner_user_id, kind, product, daily_amount, system_code, posted, pending_out,
    opening_balance, created_at, last_entry_at, principal, interest_carry, interest_paid_through, interest_basis
FROM accounts;
DROP TABLE accounts;
ALTER TABLE accounts_new RENAME TO accounts;
CREATE INDEX accounts_owner_idx ON accounts (owner_user_id, created_at);
CREATE UNIQUE INDEX accounts_one_main_per_user ON accounts (owner_user_id) WHERE kind = 'main';
CREATE INDEX accounts_savings_idx ON accounts (id) WHERE kind = 'savings';
CREATE VIEW account_openings AS
SELECT a.id AS account_id,
       COALESCE((SELECT c.balance FROM carried_balances c
                 WHERE c.account_id = a.id AND c.through <= (SELECT r.retired_before FROM ledger_retention r)
                 ORDER BY c.through DESC LIMIT 1),
                a.opening_balance) AS opening_balance
FROM accounts a;

INSERT INTO accounts (id, owner_business_id, kind, created_at)
SELECT id, id, 'business', created_at FROM businesses;
INSERT INTO accounts (id, kind, system_code, created_at) VALUES
    (X'00000000000070008000000000000005', 'system', 'refunds_in_transit', 0);

CREATE TABLE payments (
    id                  BLOB PRIMARY KEY,
    business_id         BLOB NOT NULL,
    user_id             BLOB NOT NULL,
    order_id            TEXT NOT NULL,
    amount              INTEGER NOT NULL CHECK (amount > 0),
    refunded_amount     INTEGER NOT NULL DEFAULT 0,
    description         TEXT,
    bank_account_id     BLOB NOT NULL,
    fintech_use_num     TEXT NOT NULL,
    bank_transaction_id TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('accepted', 'processing', 'paid', 'failed',
                          'partially_refunded', 'refunded')),
    failure_code        TEXT,
    failure_message     TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    paid_at             INTEGER,
    CONSTRAINT payments_order_key UNIQUE (business_id, order_id),
    CONSTRAINT payments_bank_transaction_key UNIQUE (bank_transaction_id),
    CONSTRAINT payments_refunds_within_amount CHECK (refunded_amount BETWEEN 0 AND amount),
    CONSTRAINT payments_failure_only_when_failed CHECK ((status = 'failed') = (failure_code IS NOT NULL)),
    CONSTRAINT payments_refunds_only_when_paid CHECK (refunded_amount = 0 OR status IN ('paid', 'partially_refunded', 'refunded'))
) STRICT;
CREATE INDEX payments_business_idx ON payments (business_id, created_at, id);
CREATE INDEX payments_user_idx ON payments (user_id, created_at, id);
CREATE INDEX payments_unsettled_idx ON payments (updated_at, id) WHERE status IN ('accepted', 'processing');

CREATE TABLE refunds (
    id                  BLOB PRIMARY KEY,
    payment_id          BLOB NOT NULL REFERENCES payments (id),
    business_id         BLOB NOT NULL,
    amount              INTEGER NOT NULL CHECK (amount > 0),
    reason              TEXT,
    bank_transaction_id TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('accepted', 'processing', 'succeeded', 'failed')),
    failure_code        TEXT,
    failure_message     TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    finished_at         INTEGER,
    CONSTRAINT refunds_bank_transaction_key UNIQUE (bank_transaction_id),
    CONSTRAINT refunds_failure_only_when_failed CHECK ((status = 'failed') = (failure_code IS NOT NULL))
) STRICT;
CREATE INDEX refunds_payment_idx ON refunds (payment_id, created_at, id);
CREATE INDEX refunds_unsettled_idx ON refunds (updated_at, id) WHERE status IN ('accepted', 'processing');

CREATE TABLE payment_bank_calls (
    id            BLOB PRIMARY KEY,
    payment_id    BLOB NOT NULL REFERENCES payments (id),
    refund_id     BLOB REFERENCES refunds (id),
    kind          TEXT NOT NULL CHECK (kind IN ('pull', 'push', 'inquiry', 'void')),
    tran_id       TEXT NOT NULL,
    outcome       TEXT NOT NULL CHECK (outcome IN ('sent', 'completed', 'declined', 'unavailable', 'unknown')),
    bank_tran_id  TEXT,
    error         TEXT,
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER
) STRICT;
CREATE INDEX payment_bank_calls_of_idx ON payment_bank_calls (payment_id, started_at, id);
CREATE INDEX payment_bank_calls_tran_idx ON payment_bank_calls (tran_id, started_at);
