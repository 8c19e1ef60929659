-- How a webhook's deliveries are signed (Standard Webhooks): `hmac-sha256` (`v1`,
-- the `whsec_` secrets) or `ed25519` (`v1a`). The ed25519 private keys hookrelay
-- generates (`whsk_...`) live in `signing_secrets`, sealed like every secret, newest
-- first, so a rotation overlaps the same way; their public keys are derived from them.
ALTER TABLE webhooks ADD COLUMN signing_scheme text NOT NULL DEFAULT 'hmac-sha256'
    CONSTRAINT webhooks_signing_scheme CHECK (signing_scheme IN ('hmac-sha256', 'ed25519'));
