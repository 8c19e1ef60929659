-- AMQP destinations: a webhook whose URL is `amqp://` or `amqps://` publishes each
-- delivery to `amqp_exchange` ('' is the broker's default exchange) with
-- `amqp_routing_key`. The URL is stored with `********` in place of its credentials;
-- the credentials (`user:password` as written) are sealed like the webhook's secrets
-- (`enc:v1:...` when HOOKRELAY_SECRET_KEY is set) in `url_credentials`.
ALTER TABLE webhooks ADD COLUMN url_credentials text;
ALTER TABLE webhooks ADD COLUMN amqp_exchange text;
ALTER TABLE webhooks ADD COLUMN amqp_routing_key text;
-- The model's rule where only the store sees the whole row (an update may change the
-- URL or the exchange alone): a broker URL names an exchange, an HTTP URL none. A URL
-- whose scheme comes from a placeholder (`{{TARGET}}`) is decided when sent.
ALTER TABLE webhooks ADD CONSTRAINT webhooks_exchange_with_broker_url
    CHECK ((url LIKE 'amqp://%' OR url LIKE 'amqps://%') = (amqp_exchange IS NOT NULL)
           OR url LIKE '{{%');
ALTER TABLE webhooks ADD CONSTRAINT webhooks_routing_key_with_exchange
    CHECK (amqp_routing_key IS NULL OR amqp_exchange IS NOT NULL);
