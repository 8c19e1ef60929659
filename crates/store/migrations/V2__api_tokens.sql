-- Tenant-scoped API tokens: a token reads and manages one tenant's data only (the
-- events API for an embed, a tenant's own webhooks). Only a SHA-256 of each token is
-- kept; the token itself is shown once, when created.
CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY,
    tenant       text NOT NULL,
    name         text NOT NULL,
    token_sha256 bytea NOT NULL UNIQUE,
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, name)
);
