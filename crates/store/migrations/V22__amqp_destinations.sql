-- AMQP destinations: a webhook whose URL is `amqp://` or `amqps://` publishes each
-- delivery to `amqp_exchange` ('' is the broker's default exchange) with
-- `amqp_routing_key`. The URL is stored with `********` in place of its credentials;
-- the credentials (`user:password` as written) are sealed like the webhook's secrets
-- (`enc:v1:...` when HOOKRELAY_SECRET_KEY is set) in `url_credentials`.
ALTER TABLE webhooks ADD COLUMN url_credentials text;
ALTER TABLE webhooks ADD COLUMN amqp_exchange text;
ALTER TABLE webhooks ADD COLUMN amqp_routing_key text;
