-- Payouts (see the PostgreSQL migration for the why).
ALTER TABLE remittances ADD COLUMN source TEXT NOT NULL DEFAULT 'bank' CHECK (source IN ('bank', 'balance'));
CREATE INDEX remittances_payouts_idx ON remittances (from_business_id, status) WHERE source = 'balance';
