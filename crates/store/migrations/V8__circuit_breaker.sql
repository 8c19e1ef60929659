-- A webhook's circuit breaker (crates/sender/src/breaker.rs). Tripped by a sender
-- when the webhook keeps failing or hangs: while `breaker_opened_at` is set its
-- deliveries are held as for a pause (none attempted, none takes a sender slot or a
-- delay-queue round trip). At `breaker_probe_at` one sender sends one held delivery
-- as a probe; its success closes the breaker and releases the rest.
ALTER TABLE webhooks ADD COLUMN breaker_opened_at timestamptz;
ALTER TABLE webhooks ADD COLUMN breaker_reason text;
ALTER TABLE webhooks ADD COLUMN breaker_probe_at timestamptz;
-- `breaker_probe_at` while closed: the release of what it held is not confirmed
-- finished (a sender died midway), so the probe loop releases again at that time.
CREATE INDEX webhooks_breaker_due ON webhooks (breaker_probe_at)
    WHERE breaker_probe_at IS NOT NULL;
