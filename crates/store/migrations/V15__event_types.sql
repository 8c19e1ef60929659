-- The event catalog: the event types upstreams publish, with what each means. Global
-- (every tenant's events share the names), operator-managed. `schema` (JSON Schema
-- 2020-12) and `example` describe the event's payload, the object JSON webhooks
-- receive, not the envelope around it. The router and the ingest API check payloads
-- against `schema` when HOOKRELAY_SCHEMA_VALIDATION says so.
CREATE TABLE event_types (
    name        text PRIMARY KEY,
    description text NOT NULL DEFAULT '',
    schema      jsonb,
    example     jsonb,
    deprecated  boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
