-- Retries by when they are due, for the sweep that re-publishes a retry whose
-- delay-queue message is overdue (crates/sender/src/sweep.rs). Partial on
-- `next_attempt_at IS NOT NULL`: only deliveries waiting for a retry have an entry,
-- and the hot path's updates, which leave it NULL, stay HOT.
CREATE INDEX deliveries_retry_due ON deliveries (next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
