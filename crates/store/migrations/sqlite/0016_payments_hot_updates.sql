-- The recovery job's partial indexes name the unsettled rows by the columns set when they
-- settle (see the PostgreSQL migration for the why; SQLite has no fill factor, and its tables
-- cannot take a constraint after they are made: the store keeps these columns with the status).
DROP INDEX payments_unsettled_idx;
CREATE INDEX payments_unsettled_idx ON payments (created_at, id) WHERE paid_at IS NULL AND failure_code IS NULL;
DROP INDEX refunds_unsettled_idx;
CREATE INDEX refunds_unsettled_idx ON refunds (created_at, id) WHERE finished_at IS NULL;
