-- A webhook the sender disables is announced with a `hookrelay.webhook_disabled`
-- event. Until that publish is confirmed the row says so (`announce_disabled`), and
-- senders announce such rows at start and then periodically, so an announcement
-- survives a crash between disabling and publishing. `disabled_at` names the
-- announcement: its event id is derived from it, so repeats are de-duplicated.
ALTER TABLE webhooks ADD COLUMN disabled_at timestamptz;
ALTER TABLE webhooks ADD COLUMN announce_disabled boolean NOT NULL DEFAULT false;
