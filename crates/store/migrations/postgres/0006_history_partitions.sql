-- History at scale (Mini-Pay step 6). Journals and entries become range-partitioned by the
-- month (Asia/Seoul) of occurred_at, so a month past the 12-month retention is retired by
-- dropping its partitions instead of deleting rows. Partitions are named <table>_pYYYYMM and
-- created ahead by the history-partitions job (and at start); the DEFAULT partition catches
-- anything written before its month's partition exists, and the job moves such rows out.

ALTER TABLE journals RENAME TO journals_before_0006;
ALTER TABLE journals_before_0006 RENAME CONSTRAINT journals_pkey TO journals_before_0006_pkey;
ALTER TABLE entries RENAME TO entries_before_0006;
ALTER TABLE entries_before_0006 RENAME CONSTRAINT entries_pkey TO entries_before_0006_pkey;
ALTER INDEX entries_account_time_idx RENAME TO entries_before_0006_account_time_idx;
ALTER INDEX entries_journal_idx RENAME TO entries_before_0006_journal_idx;

-- A partitioned table's primary key must include the partition key.
CREATE TABLE journals (
    id           UUID NOT NULL,
    kind         TEXT NOT NULL,
    memo         TEXT,
    occurred_at  TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (id, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE TABLE journals_default PARTITION OF journals DEFAULT;

CREATE TABLE entries (
    id                      UUID NOT NULL,
    journal_id              UUID NOT NULL,
    account_id              UUID NOT NULL,
    owner_user_id           UUID,
    kind                    TEXT NOT NULL,
    amount                  BIGINT NOT NULL CHECK (amount <> 0),
    balance_after           BIGINT NOT NULL,
    counterparty_name       TEXT NOT NULL,
    counterparty_user_id    UUID,
    counterparty_account_id UUID,
    memo                    TEXT,
    occurred_at             TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (id, occurred_at)
) PARTITION BY RANGE (occurred_at);
CREATE TABLE entries_default PARTITION OF entries DEFAULT;
-- The one secondary index: an account's history newest first, ties broken by id. It serves
-- the first page, keyset pages at any depth, date ranges and statements. (The former index on
-- journal_id is gone: nothing looks entries up by journal but the full audit.)
CREATE INDEX entries_account_time_idx ON entries (account_id, occurred_at DESC, id DESC);

INSERT INTO journals (id, kind, memo, occurred_at) SELECT id, kind, memo, occurred_at FROM journals_before_0006;
INSERT INTO entries (id, journal_id, account_id, owner_user_id, kind, amount, balance_after, counterparty_name,
                     counterparty_user_id, counterparty_account_id, memo, occurred_at)
SELECT id, journal_id, account_id, owner_user_id, kind, amount, balance_after, counterparty_name,
       counterparty_user_id, counterparty_account_id, memo, occurred_at
FROM entries_before_0006;
DROP TABLE entries_before_0006;
DROP TABLE journals_before_0006;

-- How far retention has reached: history before this instant has been retired (each account's
-- balance at that point moved into accounts.opening_balance). No row: nothing retired yet.
CREATE TABLE ledger_retention (
    singleton      BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (singleton),
    retired_before TIMESTAMPTZ NOT NULL
);
