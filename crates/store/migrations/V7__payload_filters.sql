-- A webhook's payload filter (crates/model/src/filter.rs): conditions on the payload
-- its events must meet, beside event types and triggers. NULL: no condition.
ALTER TABLE webhooks ADD COLUMN filter jsonb;
