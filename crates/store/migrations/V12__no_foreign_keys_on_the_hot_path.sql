-- The two foreign keys of the delivery path cost more than they guard. Each check
-- reads and share-locks the parent row (a lock that writes the parent's tuple and
-- WAL): about half of the router's deliveries insert and a quarter of the sender's
-- attempt record (docs/performance.md). What they guaranteed is kept by the code
-- and checked by tests:
-- - a delivery's event exists: the router inserts the event first in the same
--   transaction, backfill reads the event it creates deliveries for, and retention
--   deletes an event's deliveries in the statement that deletes it
--   (`tenants::purge_batch`);
-- - an attempt's delivery exists: attempts are recorded only for deliveries the
--   sender loaded, and retention deletes them with their delivery.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_tenant_event_id_fkey;
ALTER TABLE delivery_attempts DROP CONSTRAINT delivery_attempts_delivery_id_fkey;
