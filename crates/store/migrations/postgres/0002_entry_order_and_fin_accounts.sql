-- Entries are strictly ordered in time per account whatever the instances' clocks: a new
-- entry is never earlier than the account's latest one (set under the row lock).
ALTER TABLE accounts ADD COLUMN last_entry_at TIMESTAMPTZ;

-- A bank account (fin account) belongs to one user: linking someone else's account is refused.
CREATE UNIQUE INDEX bank_accounts_fin_key ON bank_accounts (fintech_use_num);
