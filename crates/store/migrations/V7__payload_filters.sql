-- A webhook's payload filter (crates/model/src/filter.rs): conditions on the payload
-- its events must meet, beside event types and triggers. NULL: no condition. `json`,
-- not `jsonb`: kept as written, so a filter may compare with any JSON value (jsonb
-- can hold no \u0000, and hands numbers back in full digits).
ALTER TABLE webhooks ADD COLUMN filter json;
