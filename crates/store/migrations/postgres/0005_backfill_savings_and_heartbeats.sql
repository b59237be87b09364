-- Savings accounts opened before migration 3 have no interest state. No interest was ever
-- paid on them, so their balance is their principal, and interest counts from today.
UPDATE accounts
   SET principal = posted, interest_paid_through = (now() AT TIME ZONE 'Asia/Seoul')::date
 WHERE kind = 'savings' AND interest_paid_through IS NULL;

-- A scheduled run beats while it works, so a long run is not taken over as if its instance
-- had died; only a run whose heartbeat stopped is.
ALTER TABLE job_runs ADD COLUMN heartbeat_at TIMESTAMPTZ;

-- interest_basis (migration 4) is no longer used: a missed day is paid on that day's
-- principal, read from the ledger. The column stays (SQLite cannot drop a column with a CHECK).
