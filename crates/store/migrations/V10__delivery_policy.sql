-- A webhook's delivery policy (hookrelay_model::rate), enforced across all senders:
-- a rate limit with its burst, and a cap on requests in flight.
ALTER TABLE webhooks ADD COLUMN rate_limit text;
ALTER TABLE webhooks ADD COLUMN rate_burst integer CHECK (rate_burst BETWEEN 1 AND 100000);
ALTER TABLE webhooks ADD COLUMN max_in_flight integer CHECK (max_in_flight BETWEEN 1 AND 1000);
ALTER TABLE webhooks ADD CONSTRAINT webhooks_burst_needs_rate
    CHECK (rate_burst IS NULL OR rate_limit IS NOT NULL);

-- The rate limit's shared state: one GCRA bucket per rate-limited webhook. `tat` is
-- the bucket's theoretical arrival time; `backlog` says deliveries are held for the
-- rate, so new ones queue behind them instead of taking the tokens first.
CREATE TABLE webhook_rates (
    webhook_id uuid PRIMARY KEY REFERENCES webhooks (id) ON DELETE CASCADE,
    tat        timestamptz,
    backlog    boolean NOT NULL DEFAULT false
);

-- Deliveries held because their webhook was over its rate, oldest first (ids are
-- time-ordered). A sender's releaser sends them as the rate allows, marks the row
-- `released_at` in the same transaction, and deletes it once the message is
-- confirmed; a row released long ago and still here is a releaser that died midway,
-- and is released again.
CREATE TABLE rate_held (
    webhook_id  uuid NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    delivery_id uuid NOT NULL,
    released_at timestamptz,
    PRIMARY KEY (webhook_id, delivery_id)
);
