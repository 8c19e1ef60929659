-- Custom headers per webhook, sent with every delivery: header name (lower case) to
-- its value, sealed like the webhook's secrets (`enc:v1:...` when
-- HOOKRELAY_SECRET_KEY is set). The names stay readable; the values never are.
ALTER TABLE webhooks ADD COLUMN headers jsonb NOT NULL DEFAULT '{}'
    CONSTRAINT webhooks_headers_object CHECK (jsonb_typeof(headers) = 'object');
-- A custom `authorization` would replace the Basic auth of a webhook's secret: the
-- two never go together, whichever change (the secret's or the headers') comes last.
ALTER TABLE webhooks ADD CONSTRAINT webhooks_authorization_beside_basic_auth
    CHECK (secret IS NULL OR NOT headers ? 'authorization');
