-- Pausing a webhook: while `paused_at` is set, its deliveries are held (status
-- `held`): created held by the router, or held by the sender when already queued.
-- Nothing is attempted and nothing ages into the dead-letter queue; resuming
-- publishes them again, oldest first.
ALTER TABLE webhooks ADD COLUMN paused_at timestamptz;

ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'delivered', 'failed', 'held'));
