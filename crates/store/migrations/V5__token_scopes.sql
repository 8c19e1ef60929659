-- What a tenant token may do: `read` (GET only, events without private fields; for
-- front ends) or `write` (also changes its tenant's webhooks, environments and
-- settings). Tokens made before scopes existed become read-only: widening one is an
-- explicit act (make a new token with `--scope write`).
ALTER TABLE api_tokens
    ADD COLUMN scope text NOT NULL DEFAULT 'read' CHECK (scope IN ('read', 'write'));
