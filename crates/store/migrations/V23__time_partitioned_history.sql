-- Time-partitioned history (docs/operations.md, "Retention and partitions").
--
-- `events` is partitioned by RANGE (received_at); `deliveries` by RANGE (id) and
-- `delivery_attempts` by RANGE (delivery_id): delivery ids are UUIDv7, whose first
-- 48 bits are the creation time in Unix milliseconds, so a day of deliveries is the
-- range of ids between two days' `hookrelay_uuid_at`, and an attempt lives in the
-- partition of its delivery's day. Partitions are one UTC day each, named
-- `{table}_pYYYYMMDD`; retention detaches and drops whole days older than the longest
-- retention period instead of deleting rows (crates/store/src/partitions.rs). The
-- running service creates the days ahead (`hookrelay_add_partitions`, on every
-- migrate and every retention round of the api role). There is no DEFAULT
-- partition: a row for a day with no partition is refused with "no partition of
-- relation ... found for row" (SQLSTATE 23514), which the store reports as
-- unavailable (transient), so a router or a sender holds its work and tries again
-- instead of dead-lettering anything. A default partition would catch such rows
-- silently, but every day created later would then have to scan it under an ACCESS
-- EXCLUSIVE lock.
--
-- Uniqueness across partitions. Postgres enforces a unique index on a partitioned
-- table only if it holds the partition key, which would make it per-day. Two narrow,
-- unpartitioned key tables keep the two global keys exact:
-- - `event_keys (tenant, id) PRIMARY KEY`, with the event's `received_at`: the router
--   inserts the batch's keys `ON CONFLICT DO NOTHING` and the events whose key it
--   inserted, in one statement (`events::insert_new`); a duplicate is refused by the
--   key whatever day its first copy is in. It also leads a look-up by (tenant, id) to
--   the one partition holding the event (the sender's load joins through it).
-- - `delivery_targets (tenant, event_id, target) PRIMARY KEY`, `target` the webhook
--   id or the nil UUID for a one-off URL, with the delivery's id: what
--   `deliveries_one_per_target` was, taken the same way by `deliveries::insert`.
-- Each costs one heap tuple and one index entry per event (per delivery), in the
-- same statement: no round trip. What it costs per event: docs/operations.md,
-- "De-duplication across days" (`cargo xtask bench --scenario dedup`); the sender's
-- load reads the key too (one more index probe). Retention deletes the keys with their rows
-- (`tenants::purge_batch`) or, for a dropped day, in batches after the detach.
-- `deliveries (id)` stays a primary key (the partition key is the id); the
-- attempts' key becomes `(delivery_id, id)`. `deliveries_by_key_seq` is no longer
-- unique: each sequence number is taken once from its `ordering_keys` counter under
-- the counter's row lock (`deliveries::take_sequences`), which is what assigns them.
--
-- Conversion. The three tables as they were become the partition `{table}_history`
-- holding everything before this migration's start (T0): no row is copied into new
-- tables, but ATTACH scans each history table once to check its bound, and new
-- indexes are built on it (events' key with `received_at`, deliveries by event and by
-- key and sequence, the attempts' key), and the two key tables are filled from it.
-- The whole migration runs in one transaction holding ACCESS EXCLUSIVE locks on the
-- three tables (RENAME): routers, senders and the API wait for it (they do not fail),
-- so it needs a stop of its length: 9 to 12 s per million events (each with a
-- delivery and an attempt) on the test machine (docs/operations.md, "Upgrades"). Routers of
-- an earlier release cannot store events on this schema: stop every role first. The
-- history
-- partition is purged row by row as before until the longest retention has passed T0,
-- then dropped whole.

CREATE FUNCTION hookrelay_uuid_at(t timestamptz) RETURNS uuid
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
    SELECT (lpad(to_hex(floor(extract(epoch FROM t) * 1000)::bigint), 12, '0')
            || repeat('0', 20))::uuid
$$;

-- The history: the tables as they were, renamed with their indexes.
ALTER TABLE events RENAME TO events_history;
ALTER INDEX events_pkey RENAME TO events_history_old_pkey;
ALTER INDEX events_by_received RENAME TO events_history_by_received;
ALTER INDEX events_by_session RENAME TO events_history_by_session;

ALTER TABLE deliveries RENAME TO deliveries_history;
ALTER INDEX deliveries_pkey RENAME TO deliveries_history_pkey;
ALTER INDEX deliveries_one_per_target RENAME TO deliveries_history_one_per_target;
ALTER INDEX deliveries_by_webhook RENAME TO deliveries_history_by_webhook;
ALTER INDEX deliveries_one_off RENAME TO deliveries_history_one_off;
ALTER INDEX deliveries_retry_due RENAME TO deliveries_history_retry_due;
ALTER INDEX deliveries_by_key_seq RENAME TO deliveries_history_by_key_seq;

ALTER TABLE delivery_attempts RENAME TO delivery_attempts_history;
ALTER INDEX delivery_attempts_pkey RENAME TO delivery_attempts_history_old_pkey;
ALTER INDEX delivery_attempts_by_delivery RENAME TO delivery_attempts_history_by_delivery;

-- The partitioned tables: the same columns, defaults and checks.
CREATE TABLE events (LIKE events_history INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (received_at);
ALTER TABLE events ADD PRIMARY KEY (tenant, id, received_at);
CREATE INDEX events_by_received ON events (tenant, received_at, id);
CREATE INDEX events_by_session ON events (tenant, session_id, received_at, id)
    WHERE session_id IS NOT NULL;

-- Partitions of `deliveries` each get fillfactor 70 (see V1): a partitioned table
-- takes no storage parameters itself.
CREATE TABLE deliveries (LIKE deliveries_history INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (id);
ALTER TABLE deliveries ADD PRIMARY KEY (id);
CREATE INDEX deliveries_by_event ON deliveries (tenant, event_id);
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, created_at)
    WHERE webhook_id IS NOT NULL;
CREATE INDEX deliveries_one_off ON deliveries (created_at) WHERE webhook_id IS NULL;
CREATE INDEX deliveries_retry_due ON deliveries (next_attempt_at)
    WHERE next_attempt_at IS NOT NULL;
CREATE INDEX deliveries_by_key_seq ON deliveries (webhook_id, ordering_key, seq)
    WHERE seq IS NOT NULL;

CREATE TABLE delivery_attempts (LIKE delivery_attempts_history INCLUDING DEFAULTS INCLUDING CONSTRAINTS)
    PARTITION BY RANGE (delivery_id);
ALTER TABLE delivery_attempts ADD PRIMARY KEY (delivery_id, id);
-- The id sequence now belongs to the partitioned table, so dropping the history
-- partition keeps it.
ALTER SEQUENCE delivery_attempts_id_seq OWNED BY delivery_attempts.id;

-- The global keys, filled from the history, their indexes built once filled.
CREATE TABLE event_keys (
    tenant      text NOT NULL,
    id          text NOT NULL,
    received_at timestamptz NOT NULL
);
INSERT INTO event_keys (tenant, id, received_at)
    SELECT tenant, id, received_at FROM events_history;
ALTER TABLE event_keys ADD PRIMARY KEY (tenant, id);

CREATE TABLE delivery_targets (
    tenant      text NOT NULL,
    event_id    text NOT NULL,
    target      uuid NOT NULL,
    delivery_id uuid NOT NULL
);
INSERT INTO delivery_targets (tenant, event_id, target, delivery_id)
    SELECT tenant, event_id,
           coalesce(webhook_id, '00000000-0000-0000-0000-000000000000'::uuid), id
    FROM deliveries_history;
ALTER TABLE delivery_targets ADD PRIMARY KEY (tenant, event_id, target);

-- What the key tables now hold, and the old keys the new ones replace.
ALTER TABLE events_history DROP CONSTRAINT events_history_old_pkey;
DROP INDEX deliveries_history_one_per_target;
ALTER TABLE delivery_attempts_history DROP CONSTRAINT delivery_attempts_history_old_pkey;
DROP INDEX delivery_attempts_history_by_delivery;

-- The history becomes the partition of everything before T0 (now(): the
-- transaction's start). Indexes of the same definition are attached, the others built.
DO $$
DECLARE
    t0 timestamptz := now();
BEGIN
    EXECUTE format('ALTER TABLE events ATTACH PARTITION events_history '
                   'FOR VALUES FROM (MINVALUE) TO (%L)', t0);
    EXECUTE format('ALTER TABLE deliveries ATTACH PARTITION deliveries_history '
                   'FOR VALUES FROM (MINVALUE) TO (%L)', hookrelay_uuid_at(t0));
    EXECUTE format('ALTER TABLE delivery_attempts ATTACH PARTITION delivery_attempts_history '
                   'FOR VALUES FROM (MINVALUE) TO (%L)', hookrelay_uuid_at(t0));
END
$$;

-- Creates the day partitions of the three tables from `from_day` through `through`
-- (UTC days), those missing; returns how many days of `events` it created. Each is created as
-- a table of its own and then attached, which locks the parent SHARE UPDATE
-- EXCLUSIVE only (CREATE TABLE ... PARTITION OF would take ACCESS EXCLUSIVE): inserts
-- and queries go on. A day starting before the history's end (T0) starts at T0.
-- Replicas calling it at once take turns on a transaction-level advisory lock.
CREATE FUNCTION hookrelay_add_partitions(from_day timestamptz, through timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    day     date := (from_day AT TIME ZONE 'UTC')::date;
    last    date := (through AT TIME ZONE 'UTC')::date;
    made    integer := 0;
    lo      timestamptz;
    hi      timestamptz;
    history timestamptz;
    suffix  text;
BEGIN
    PERFORM pg_advisory_xact_lock(7261636170617274); -- "partitions"
    SELECT substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \(''([^'']+)''\)')::timestamptz
      INTO history
      FROM pg_class c WHERE c.oid = to_regclass('events_history');
    WHILE day <= last LOOP
        suffix := to_char(day, 'YYYYMMDD');
        lo := day::timestamp AT TIME ZONE 'UTC';
        hi := (day + 1)::timestamp AT TIME ZONE 'UTC';
        IF history IS NOT NULL AND lo < history THEN
            lo := history;
        END IF;
        -- Each table on its own: a day one of whose tables is missing (a failure
        -- half-way) is completed.
        IF lo < hi AND to_regclass('events_p' || suffix) IS NULL THEN
            EXECUTE format('CREATE TABLE %I (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                           'events_p' || suffix);
            EXECUTE format('ALTER TABLE events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                           'events_p' || suffix, lo, hi);
            made := made + 1;
        END IF;
        IF lo < hi AND to_regclass('deliveries_p' || suffix) IS NULL THEN
            EXECUTE format('CREATE TABLE %I (LIKE deliveries INCLUDING DEFAULTS INCLUDING CONSTRAINTS) '
                           'WITH (fillfactor = 70)', 'deliveries_p' || suffix);
            EXECUTE format('ALTER TABLE deliveries ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                           'deliveries_p' || suffix, hookrelay_uuid_at(lo), hookrelay_uuid_at(hi));
        END IF;
        IF lo < hi AND to_regclass('delivery_attempts_p' || suffix) IS NULL THEN
            EXECUTE format('CREATE TABLE %I (LIKE delivery_attempts INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                           'delivery_attempts_p' || suffix);
            EXECUTE format('ALTER TABLE delivery_attempts ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                           'delivery_attempts_p' || suffix, hookrelay_uuid_at(lo), hookrelay_uuid_at(hi));
        END IF;
        day := day + 1;
    END LOOP;
    RETURN made;
END
$$;

-- Today (from T0) and the next seven days; the service keeps creating ahead.
SELECT hookrelay_add_partitions(now(), now() + interval '7 days');
