-- Standard Webhooks signing secrets (`whsec_...`), newest first; during a rotation the
-- previous one signs too, so receivers can switch without missing a delivery.
ALTER TABLE webhooks ADD COLUMN signing_secrets text[] NOT NULL DEFAULT '{}';
