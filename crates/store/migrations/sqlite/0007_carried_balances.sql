-- Retiring history without touching the accounts (see the PostgreSQL migration): each account's
-- balance at the end of a retired stretch is carried here, in force once
-- ledger_retention.retired_before reaches it.
CREATE TABLE carried_balances (
    account_id  BLOB NOT NULL,
    through     INTEGER NOT NULL,
    balance     INTEGER NOT NULL,
    PRIMARY KEY (account_id, through)
) STRICT;

-- Invariant: posted = account_openings.opening_balance + sum(entries.amount).
CREATE VIEW account_openings AS
SELECT a.id AS account_id,
       COALESCE((SELECT c.balance FROM carried_balances c
                 WHERE c.account_id = a.id AND c.through <= (SELECT r.retired_before FROM ledger_retention r)
                 ORDER BY c.through DESC LIMIT 1),
                a.opening_balance) AS opening_balance
FROM accounts a;
