-- One-off URL deliveries (an event's `webhook_url`, webhook_id NULL) by creation
-- time, for what `deliveries_by_webhook` does for stored webhooks: the pending
-- gauges and `hookrelay stats` read recent deliveries through it. Its columns never
-- change after the insert, so the updates of `status` and `published` stay HOT; only
-- one-off deliveries are in it.
CREATE INDEX deliveries_one_off ON deliveries (created_at) WHERE webhook_id IS NULL;
