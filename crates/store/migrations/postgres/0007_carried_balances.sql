-- Retiring a month of history without touching the accounts. Each account's balance at the
-- end of a retired stretch of history is carried here instead of into accounts.opening_balance:
-- the rows are written ahead of time, invisible until ledger_retention.retired_before moves
-- past them, so the transaction that retires a month only moves that mark and drops the month's
-- partitions — no account row is locked or rewritten, and money keeps moving meanwhile.
CREATE TABLE carried_balances (
    account_id  UUID NOT NULL,
    through     TIMESTAMPTZ NOT NULL,   -- the account's balance at this instant (history before it is retired)
    balance     BIGINT NOT NULL,
    PRIMARY KEY (account_id, through)
);

-- The balance each account's kept history starts from: its latest carried balance in force,
-- else accounts.opening_balance (what it held before any entry, e.g. migrated in).
-- Invariant: posted = account_openings.opening_balance + sum(entries.amount).
CREATE VIEW account_openings AS
SELECT a.id AS account_id,
       COALESCE((SELECT c.balance FROM carried_balances c
                 WHERE c.account_id = a.id AND c.through <= (SELECT r.retired_before FROM ledger_retention r)
                 ORDER BY c.through DESC LIMIT 1),
                a.opening_balance) AS opening_balance
FROM accounts a;
