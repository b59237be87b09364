-- History at scale (Mini-Pay step 6), SQLite: no partitions; retention deletes whole months
-- in batches, walking this index. The journal_id index goes, as on PostgreSQL.
DROP INDEX entries_journal_idx;
CREATE INDEX entries_time_idx ON entries (occurred_at);
CREATE INDEX journals_time_idx ON journals (occurred_at);

-- How far retention has reached: history before this instant has been retired (each account's
-- balance at that point moved into accounts.opening_balance). No row: nothing retired yet.
CREATE TABLE ledger_retention (
    singleton      INTEGER PRIMARY KEY DEFAULT 1 CHECK (singleton = 1),
    retired_before INTEGER NOT NULL
) STRICT;
