-- Ordered delivery: a sequenced delivery whose predecessor in its (webhook, key) is not
-- settled waits in its row (status `waiting`) instead of cycling through a delay
-- queue. The sender that settles the predecessor releases it at once; a sweep
-- releases any whose release was lost (docs/delivery-semantics.md, "Ordered
-- webhooks: the sender's gate"). A waiting row keeps `next_attempt_at` set to when
-- the sweep looks at it next, so it is found by `deliveries_retry_due` without an
-- index on `status`, whose updates stay HOT.
-- NOT VALID, then VALIDATE: the check is validated without blocking writes.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check
    CHECK (status IN ('pending', 'delivered', 'failed', 'held', 'waiting')) NOT VALID;
ALTER TABLE deliveries VALIDATE CONSTRAINT deliveries_status_check;
