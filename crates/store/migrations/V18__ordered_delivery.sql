-- Ordered delivery per ordering key (docs/delivery-semantics.md, "Ordered webhooks").
-- A webhook may be `ordered`: deliveries of events of one tenant with the same
-- ordering key go to it one at a time, in the order the router recorded them.
ALTER TABLE webhooks ADD COLUMN ordered boolean NOT NULL DEFAULT false;
ALTER TABLE webhooks ADD COLUMN on_failure text NOT NULL DEFAULT 'skip'
    CHECK (on_failure IN ('skip', 'block'));

-- One row per (ordered webhook, key): the counter the router takes sequence numbers
-- from. The router upserts it in the batch's transaction, so the row lock serialises
-- every transaction that sequences the key until it commits: sequences of one key are
-- assigned in commit order and never twice (`deliveries::insert`).
CREATE TABLE ordering_keys (
    webhook_id   uuid NOT NULL,
    ordering_key text NOT NULL,
    tenant       text NOT NULL,
    -- The sequence the key's next delivery gets (the first is 1).
    next_seq     bigint NOT NULL DEFAULT 1 CHECK (next_seq >= 1),
    -- For `on_failure = block`: failed deliveries numbered up to this one were
    -- skipped by an operator (`hookrelay deliveries skip-key`) and hold nothing back.
    skipped_through bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (webhook_id, ordering_key)
);

-- A sequenced delivery: its key and its place in it. Both NULL for every delivery of
-- an unordered webhook or of an event without a key; nullable columns without a
-- default cost existing rows nothing, and neither changes after the insert, so the
-- status updates stay HOT.
ALTER TABLE deliveries ADD COLUMN ordering_key text;
ALTER TABLE deliveries ADD COLUMN seq bigint;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_seq_has_key
    CHECK ((seq IS NULL) = (ordering_key IS NULL));
CREATE UNIQUE INDEX deliveries_by_key_seq ON deliveries (webhook_id, ordering_key, seq)
    WHERE seq IS NOT NULL;
