-- Customer portal sessions (`/portal`). A row is minted as a single-use link (only the
-- SHA-256 of its token is stored); opening it sets `opened_at` and the session's own
-- token (again only its SHA-256) and expiry. The session reaches one tenant, read-only
-- or not, optionally only some webhook keys and event types (empty arrays: no limit).
-- A session minted with a tenant token ends with that token (ON DELETE CASCADE).
CREATE TABLE portal_sessions (
    id uuid PRIMARY KEY,
    tenant text NOT NULL,
    link_sha256 bytea NOT NULL UNIQUE,
    session_sha256 bytea UNIQUE,
    -- Every form of the session carries it; a post without it is refused.
    csrf text NOT NULL,
    read_only boolean NOT NULL,
    webhook_keys text[] NOT NULL DEFAULT '{}',
    event_types text[] NOT NULL DEFAULT '{}',
    session_ttl interval NOT NULL,
    -- Who minted it: `operator`, `token <name>` or `cli`.
    created_by text NOT NULL,
    token_id uuid REFERENCES api_tokens (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    link_expires_at timestamptz NOT NULL,
    opened_at timestamptz,
    expires_at timestamptz,
    revoked_at timestamptz
);

CREATE INDEX portal_sessions_tenant ON portal_sessions (tenant, created_at);

-- A tenant's own portal theme; null: the deployment's (HOOKRELAY_PORTAL_*).
ALTER TABLE tenants
    ADD COLUMN portal_name text,
    ADD COLUMN portal_logo_url text,
    ADD COLUMN portal_accent text;
