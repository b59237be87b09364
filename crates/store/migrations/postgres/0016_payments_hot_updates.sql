-- A payment's and a refund's status changes write no index entry until they settle (HOT
-- updates): the recovery job's partial indexes name the unsettled rows by the columns set when
-- they settle (`paid_at`, `failure_code`; `finished_at`), not by `status` and `updated_at`,
-- which every change rewrites; and the tables leave room in each page for the new versions.
-- Measured under `minipay bench payments` (docs/bench/payments.md, run 8).

-- The columns the indexes name agree with the status, by constraint.
ALTER TABLE payments ADD CONSTRAINT payments_paid_at_only_when_paid
    CHECK ((paid_at IS NOT NULL) = (status IN ('paid', 'partially_refunded', 'refunded')));
ALTER TABLE refunds ADD CONSTRAINT refunds_finished_at_only_when_finished
    CHECK ((finished_at IS NULL) = (status IN ('accepted', 'processing')));

DROP INDEX payments_unsettled_idx;
CREATE INDEX payments_unsettled_idx ON payments (created_at, id) WHERE paid_at IS NULL AND failure_code IS NULL;
DROP INDEX refunds_unsettled_idx;
CREATE INDEX refunds_unsettled_idx ON refunds (created_at, id) WHERE finished_at IS NULL;

ALTER TABLE payments SET (fillfactor = 60);
ALTER TABLE refunds SET (fillfactor = 70);
