-- The principal as of the last interest run. A run that makes up missed days pays them on
-- this basis; money deposited since earns only the latest day, so a catch-up never pays
-- interest on money for days before it arrived.
ALTER TABLE accounts ADD COLUMN interest_basis INTEGER NOT NULL DEFAULT 0 CHECK (interest_basis >= 0);
