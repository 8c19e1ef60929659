-- hookrelay schema. Tenancy is a text id on every row; `tenants` holds per-tenant
-- settings only, so an event of a tenant nobody configured is still stored.

CREATE TABLE tenants (
    id             text PRIMARY KEY,
    retention_days integer CHECK (retention_days > 0),
    created_at     timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE environments (
    tenant     text NOT NULL,
    name       text NOT NULL,
    variables  jsonb NOT NULL DEFAULT '{}'::jsonb,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, name)
);

CREATE TABLE webhooks (
    id                 uuid PRIMARY KEY,
    tenant             text NOT NULL,
    key                text NOT NULL,
    url                text NOT NULL,
    event_types        text[] NOT NULL DEFAULT '{}',
    secret             text,
    development_mode   boolean NOT NULL DEFAULT false,
    import_identifiers text[] NOT NULL DEFAULT '{}',
    schema_ids         text[] NOT NULL DEFAULT '{}',
    format             text NOT NULL DEFAULT 'json' CHECK (format IN ('json', 'form')),
    retry_on           text[] NOT NULL DEFAULT '{timeout,408,429}',
    enabled            boolean NOT NULL DEFAULT true,
    disabled_reason    text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, key)
);

CREATE TABLE events (
    tenant      text NOT NULL,
    id          text NOT NULL,
    type        text NOT NULL,
    session_id  text,
    occurred_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    -- json, not jsonb: receivers get the payload's keys in the order sent.
    envelope    json NOT NULL,
    PRIMARY KEY (tenant, id)
);
CREATE INDEX events_by_received ON events (tenant, received_at, id);
CREATE INDEX events_by_session ON events (tenant, session_id, received_at, id)
    WHERE session_id IS NOT NULL;

-- One row per (event, target). webhook_id is NULL for a one-off basic webhook, whose
-- URL is in `url`. No foreign key to webhooks: a deleted webhook keeps its history.
-- Every row is updated twice (published, then status): no index covers `published`
-- or `status`, and pages keep room (fillfactor), so both updates are HOT and write
-- no index entries.
CREATE TABLE deliveries (
    id              uuid PRIMARY KEY,
    tenant          text NOT NULL,
    event_id        text NOT NULL,
    webhook_id      uuid,
    url             text,
    status          text NOT NULL DEFAULT 'pending'
                    CHECK (status IN ('pending', 'delivered', 'failed')),
    published       boolean NOT NULL DEFAULT false,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz,
    last_attempt_at timestamptz,
    last_status     integer,
    last_error      text,
    trace_id        text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant, event_id) REFERENCES events (tenant, id) ON DELETE CASCADE,
    CHECK ((webhook_id IS NULL) <> (url IS NULL))
) WITH (fillfactor = 70);
CREATE UNIQUE INDEX deliveries_one_per_target
    ON deliveries (tenant, event_id, (coalesce(webhook_id, '00000000-0000-0000-0000-000000000000'::uuid)));
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, created_at)
    WHERE webhook_id IS NOT NULL;

CREATE TABLE delivery_attempts (
    id               bigserial PRIMARY KEY,
    delivery_id      uuid NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempt          integer NOT NULL,
    started_at       timestamptz NOT NULL,
    latency_ms       double precision NOT NULL,
    status_code      integer,
    error            text,
    response_snippet text,
    outcome          text NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed'))
);
CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts (delivery_id, id);
