-- Every change made through the admin API (and so through the console and the
-- portal, which call it in process): who, through what, what and when. Written by
-- the admin router's audit layer after the change answered with success.
CREATE TABLE audit_log (
    -- UUIDv7: ordered by time, the page cursor.
    id uuid PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT now(),
    -- The tenant of the route; null for routes of no tenant (dead letters).
    tenant text,
    -- `operator`, `tenant token (write)` or `portal session <id>`.
    actor text NOT NULL,
    -- `api`, `console` or `portal`.
    via text NOT NULL,
    method text NOT NULL,
    path text NOT NULL,
    status smallint NOT NULL
);

CREATE INDEX audit_log_tenant ON audit_log (tenant, id);
