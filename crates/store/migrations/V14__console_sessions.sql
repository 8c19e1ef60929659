-- Signed-in sessions of the operator console (`/console`). The browser holds only the
-- session's random id in an HttpOnly cookie; only its SHA-256 is stored here. A
-- tenant token's sessions end with the token (ON DELETE CASCADE); an operator's hold
-- the SHA-256 of the operator token they were opened with, so changing
-- HOOKRELAY_API_TOKEN ends them.
CREATE TABLE console_sessions (
    id_sha256 bytea PRIMARY KEY,
    token_id uuid REFERENCES api_tokens (id) ON DELETE CASCADE,
    operator_token_sha256 bytea,
    -- Every form of the session carries it; a post without it is refused.
    csrf text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    CHECK ((token_id IS NULL) <> (operator_token_sha256 IS NULL))
);

CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);
