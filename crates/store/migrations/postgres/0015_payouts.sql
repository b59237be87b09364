-- Payouts (API-business.md, "Business balance and payouts"): a business's balance paid out to
-- its own bank account is a remittance whose money comes from the balance, not from a pull.
ALTER TABLE remittances ADD COLUMN source TEXT NOT NULL DEFAULT 'bank' CHECK (source IN ('bank', 'balance'));
-- A business's payouts still on their way (`pending_payouts`).
CREATE INDEX remittances_payouts_idx ON remittances (from_business_id, status) WHERE source = 'balance';
