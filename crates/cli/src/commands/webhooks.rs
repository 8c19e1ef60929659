//! `hookrelay webhooks create|list|get|update|delete|pause|resume`.

use anyhow::Context;
use clap::{Args, Subcommand};
use hookrelay_model::config::parse_list;
use hookrelay_model::headers::CustomHeaders;
use hookrelay_model::rate::Rate;
use hookrelay_model::retry::RetryPolicy;
use hookrelay_model::signing::{NewKey, SigningScheme};
use hookrelay_model::webhook::{BodyFormat, NewWebhook, OnFailure, Secret, Webhook, WebhookUpdate};
use hookrelay_store::webhooks::{self};
use hookrelay_store::{self as store, DbPool};

use super::{join, print};
use crate::config::{Common, Output};

#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// Create a webhook.
    Create {
        #[command(flatten)]
        fields: Fields,
        #[command(flatten)]
        output: Output,
    },
    /// List a tenant's webhooks.
    List {
        #[arg(long)]
        tenant: String,
        #[arg(long, default_value_t = 100)]
        limit: i64,
        #[command(flatten)]
        output: Output,
    },
    /// Show one webhook (by id or key).
    Get {
        #[arg(long)]
        tenant: String,
        id_or_key: String,
        #[command(flatten)]
        output: Output,
    },
    /// Change a webhook (by id or key); only the options given change.
    Update {
        #[arg(long)]
        tenant: String,
        id_or_key: String,
        #[command(flatten)]
        change: Change,
        #[command(flatten)]
        output: Output,
    },
    /// Sign with a new Standard Webhooks secret (printed once) or, for an ed25519
    /// webhook, a new key pair (its public key printed); the previous one keeps
    /// signing too unless --drop-previous.
    RotateSigningSecret {
        #[arg(long)]
        tenant: String,
        id_or_key: String,
        /// The new `whsec_...` secret; generated when absent (refused for ed25519).
        #[arg(long, env = "HOOKRELAY_WEBHOOK_SIGNING_SECRET", hide_env_values = true)]
        secret: Option<String>,
        /// Stop signing with the previous secret at once.
        #[arg(long)]
        drop_previous: bool,
        #[command(flatten)]
        output: Output,
    },
    /// Delete a webhook (by id or key).
    Delete {
        #[arg(long)]
        tenant: String,
        id_or_key: String,
        #[command(flatten)]
        output: Output,
    },
    /// Pause a webhook: its deliveries are held (nothing attempted, nothing
    /// dead-lettered) until it is resumed.
    Pause {
        #[arg(long)]
        tenant: String,
        id_or_key: String,
        #[command(flatten)]
        output: Output,
    },
    /// Discard what a webhook holds (paused or disabled): each held delivery becomes
    /// failed, never sent.
    DiscardHeld {
        #[arg(long)]
        tenant: String,
        id_or_key: String,
        /// Count only.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        output: Output,
    },
    /// Resume a paused webhook and send what it held, oldest first.
    Resume {
        #[arg(long)]
        tenant: String,
        id_or_key: String,
        #[command(flatten)]
        output: Output,
    },
}

#[derive(Debug, Args)]
pub struct Fields {
    #[arg(long)]
    tenant: String,
    /// Unique within the tenant; events name it in `webhook_keys`.
    #[arg(long)]
    key: hookrelay_model::WebhookKey,
    /// May hold `{{NAME}}` placeholders, filled from the event's environment. An
    /// `amqp://user:password@host:port/vhost` (or `amqps://`) URL publishes to
    /// --amqp-exchange instead; its credentials are stored sealed.
    #[arg(long)]
    url: String,
    /// With an amqp(s):// URL: the exchange to publish to (`""`: the default exchange).
    #[arg(long)]
    amqp_exchange: Option<String>,
    /// With an amqp(s):// URL: the routing key (default empty).
    #[arg(long)]
    amqp_routing_key: Option<String>,
    /// Comma-separated; none means every type.
    #[arg(long, default_value = "")]
    event_types: String,
    /// Sent as the HTTP Basic auth password (empty username).
    #[arg(long, env = "HOOKRELAY_WEBHOOK_SECRET", hide_env_values = true)]
    secret: Option<String>,
    /// Standard Webhooks signing secret (`whsec_...`): every POST is signed with it.
    #[arg(long, env = "HOOKRELAY_WEBHOOK_SIGNING_SECRET", hide_env_values = true)]
    signing_secret: Option<String>,
    /// `hmac-sha256` (Standard Webhooks `v1`) or `ed25519` (`v1a`: hookrelay makes
    /// the key pair and shows its public key; no --signing-secret then).
    #[arg(long, default_value = "hmac-sha256")]
    signing_scheme: SigningScheme,
    /// A custom header sent with every POST, `NAME: VALUE` (repeat for more); the
    /// value is stored sealed and never shown again.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Fire only for events with `development_mode: true`.
    #[arg(long)]
    development_mode: bool,
    #[arg(long, default_value = "")]
    import_identifiers: String,
    #[arg(long, default_value = "")]
    schema_ids: String,
    #[arg(long, default_value = "json")]
    format: String,
    /// Retry conditions: timeout, connect, 5xx or status codes.
    #[arg(long, default_value = "timeout,408,429")]
    retry_on: String,
    /// A payload filter as JSON: `{"path": "data.status", "eq": "completed"}` (see
    /// docs/operations.md, Payload filters).
    #[arg(long, value_parser = parse_json)]
    filter: Option<serde_json::Value>,
    /// At most this many requests per second, minute or hour (`50/s`, `600/m`),
    /// across all senders; over it, deliveries wait and go oldest first.
    #[arg(long)]
    rate_limit: Option<Rate>,
    /// Requests that may go at once after a quiet spell (default: the rate's count).
    #[arg(long, requires = "rate_limit")]
    rate_burst: Option<u32>,
    /// Requests in flight at once, across all senders (default: each sender's
    /// `--per-webhook-concurrency`).
    #[arg(long)]
    max_in_flight: Option<u16>,
    /// Send the deliveries of events with the same ordering key one at a time, in
    /// the order recorded.
    #[arg(long)]
    ordered: bool,
    /// For an ordered webhook, when a key's head fails for good: `skip` goes on with
    /// the next, `block` holds the key until `deliveries resume-key` or `skip-key`.
    #[arg(long, default_value = "skip")]
    on_failure: OnFailure,
}

#[derive(Debug, Args)]
pub struct Change {
    #[arg(long)]
    key: Option<hookrelay_model::WebhookKey>,
    /// A new URL; for an amqp(s):// one, `********` in place of the credentials
    /// keeps the stored ones.
    #[arg(long)]
    url: Option<String>,
    /// A new exchange for an amqp(s):// URL.
    #[arg(long)]
    amqp_exchange: Option<String>,
    /// A new routing key for an amqp(s):// URL.
    #[arg(long)]
    amqp_routing_key: Option<String>,
    #[arg(long)]
    event_types: Option<String>,
    #[arg(long, hide_env_values = true)]
    secret: Option<String>,
    /// Remove the secret.
    #[arg(long, conflicts_with = "secret")]
    clear_secret: bool,
    /// Replace every custom header with these, `NAME: VALUE` (repeat for more).
    #[arg(
        long = "header",
        value_name = "NAME: VALUE",
        conflicts_with = "clear_headers"
    )]
    headers: Vec<String>,
    /// Remove every custom header.
    #[arg(long)]
    clear_headers: bool,
    /// Switch to `ed25519` (a key pair is made at once; the previous key keeps
    /// signing until the next rotation) or to `hmac-sha256` (from the next
    /// `rotate-signing-secret`).
    #[arg(long)]
    signing_scheme: Option<SigningScheme>,
    #[arg(long)]
    development_mode: Option<bool>,
    #[arg(long)]
    import_identifiers: Option<String>,
    #[arg(long)]
    schema_ids: Option<String>,
    #[arg(long)]
    format: Option<String>,
    #[arg(long)]
    retry_on: Option<String>,
    /// A new payload filter as JSON.
    #[arg(long, value_parser = parse_json, conflicts_with = "clear_filter")]
    filter: Option<serde_json::Value>,
    /// Remove the payload filter.
    #[arg(long)]
    clear_filter: bool,
    #[arg(long)]
    enabled: Option<bool>,
    /// A new rate limit (`50/s`, `600/m`, `1000/h`).
    #[arg(long, conflicts_with = "clear_rate_limit")]
    rate_limit: Option<Rate>,
    /// A new burst (the webhook must have a rate limit).
    #[arg(long, conflicts_with = "clear_rate_limit")]
    rate_burst: Option<u32>,
    /// Remove the rate limit and its burst.
    #[arg(long)]
    clear_rate_limit: bool,
    /// A new cap on requests in flight across all senders.
    #[arg(long, conflicts_with = "clear_max_in_flight")]
    max_in_flight: Option<u16>,
    /// Remove the cap: each sender's `--per-webhook-concurrency` applies.
    #[arg(long)]
    clear_max_in_flight: bool,
    /// Make the webhook ordered (true) or unordered (false).
    #[arg(long)]
    ordered: Option<bool>,
    /// `skip` or `block`: what an ordered key does after its head failed for good.
    #[arg(long)]
    on_failure: Option<OnFailure>,
}

pub async fn run(common: &Common, command: WebhooksCommand) -> anyhow::Result<()> {
    let pool = store::pool(&common.database_url, 2, store::Workload::Queries)?;
    match command {
        WebhooksCommand::Create { fields, output } => {
            let new = new_webhook(fields)?;
            let w = webhooks::create(&client(&pool).await?, &common.cipher()?, &new).await?;
            show(output.json, &[w]);
        }
        WebhooksCommand::List {
            tenant,
            limit,
            output,
        } => {
            let db = client(&pool).await?;
            let list = webhooks::list(&db, &common.cipher()?, &tenant, None, limit).await?;
            if list.is_empty() {
                hookrelay_store::tenants::known(&db, &tenant).await?;
            }
            show(output.json, &list);
        }
        WebhooksCommand::Get {
            tenant,
            id_or_key,
            output,
        } => {
            let w = webhooks::get(
                &client(&pool).await?,
                &common.cipher()?,
                &tenant,
                &id_or_key,
            )
            .await?;
            show(output.json, std::slice::from_ref(&w));
            if !output.json {
                for note in [policy_note(&w), breaker_note(&w)].into_iter().flatten() {
                    super::write_out(&note);
                }
            }
        }
        WebhooksCommand::Update {
            tenant,
            id_or_key,
            change,
            output,
        } => {
            let update = webhook_update(change)?;
            let w = webhooks::update(
                &client(&pool).await?,
                &common.cipher()?,
                &tenant,
                &id_or_key,
                &update,
            )
            .await?;
            if update.enabled == Some(true)
                && let Some(released) = release(common, &pool, &w).await?
            {
                tracing::info!(webhook = %w.key, sent = released.requeued, "held deliveries released");
            }
            show(output.json, &[w]);
        }
        WebhooksCommand::RotateSigningSecret {
            tenant,
            id_or_key,
            secret,
            drop_previous,
            output,
        } => {
            let (webhook, new) = webhooks::rotate_signing_secret(
                &client(&pool).await?,
                &common.cipher()?,
                &tenant,
                &id_or_key,
                secret.map(Secret::new),
                !drop_previous,
            )
            .await?;
            // As the API answers: the webhook, and the new secret shown this once or,
            // for ed25519, the new public key (the private key is never shown).
            let (field, value) = match &new {
                NewKey::Secret(secret) => ("signing_secret", secret.expose()),
                NewKey::PublicKey(public) => ("public_key", public.as_str()),
            };
            if output.json {
                let both = serde_json::json!({"webhook": webhook, field: value});
                super::write_out(&serde_json::to_string_pretty(&both)?);
            } else {
                super::write_out(value);
            }
        }
        WebhooksCommand::Pause {
            tenant,
            id_or_key,
            output,
        } => {
            let w = webhooks::set_paused(
                &client(&pool).await?,
                &common.cipher()?,
                &tenant,
                &id_or_key,
                true,
            )
            .await?;
            show(output.json, &[w]);
        }
        WebhooksCommand::DiscardHeld {
            tenant,
            id_or_key,
            dry_run,
            output,
        } => {
            let db = client(&pool).await?;
            let w = webhooks::get(&db, &common.cipher()?, &tenant, &id_or_key).await?;
            let n = hookrelay_store::deliveries::discard_held(&db, &tenant, w.id, dry_run).await?;
            if output.json {
                let result = serde_json::json!({"webhook": w.key, "held": n, "discarded": if dry_run { 0 } else { n }, "dry_run": dry_run});
                super::write_out(&serde_json::to_string_pretty(&result)?);
                return Ok(());
            }
            super::write_out(&if dry_run {
                format!("dry run: `{}` holds {n} deliveries; nothing changed", w.key)
            } else {
                format!("discarded {n} held deliveries of `{}`", w.key)
            });
        }
        WebhooksCommand::Resume {
            tenant,
            id_or_key,
            output,
        } => resume(common, &pool, &tenant, &id_or_key, output.json).await?,
        WebhooksCommand::Delete {
            tenant,
            id_or_key,
            output,
        } => {
            webhooks::delete(&client(&pool).await?, &tenant, &id_or_key).await?;
            tracing::info!(%tenant, webhook = %id_or_key, "webhook deleted");
            if output.json {
                let result = serde_json::json!({"tenant": tenant, "deleted": id_or_key});
                super::write_out(&serde_json::to_string_pretty(&result)?);
            } else {
                super::write_out(&format!(
                    "deleted webhook `{id_or_key}` of tenant `{tenant}`"
                ));
            }
        }
    }
    Ok(())
}

/// Resumes, then sends the held deliveries (the admin API's resume, from here).
async fn resume(
    common: &Common,
    pool: &DbPool,
    tenant: &str,
    id_or_key: &str,
    json: bool,
) -> anyhow::Result<()> {
    let w = webhooks::set_paused(
        &client(pool).await?,
        &common.cipher()?,
        tenant,
        id_or_key,
        false,
    )
    .await?;
    let released = release(common, pool, &w).await?.unwrap_or_default();
    if json {
        let both = serde_json::json!({"webhook": w, "released": released});
        super::write_out(&serde_json::to_string_pretty(&both)?);
    } else if hookrelay_model::matching::holds(&w) {
        super::write_out(&format!(
            "resumed `{}`; it is disabled, so what it holds stays held until it is enabled",
            w.key
        ));
    } else {
        super::write_out(&format!(
            "resumed `{}`: {} held deliveries sent again, {} skipped",
            w.key, released.requeued, released.skipped
        ));
    }
    Ok(())
}

/// Sends what `w` held, if it is active now (resumed and enabled).
async fn release(
    common: &Common,
    pool: &DbPool,
    w: &Webhook,
) -> anyhow::Result<Option<hookrelay_admin::redeliver::Summary>> {
    use hookrelay_amqp::{self as amqp, ConnectRetry};
    if hookrelay_model::matching::holds(w) {
        return Ok(None);
    }
    let retry = ConnectRetry {
        attempts: 3,
        max_delay: std::time::Duration::from_secs(1),
    };
    let connection = amqp::connect(&common.amqp_url, "hookrelay-cli", retry).await?;
    let channel = amqp::confirm_channel(&connection).await?;
    let released =
        hookrelay_admin::redeliver::release_held(pool, &channel, &common.topology(), w).await;
    let _ = connection.close(200, "done".into()).await;
    Ok(released?)
}

async fn client(pool: &DbPool) -> anyhow::Result<deadpool_postgres::Object> {
    pool.get()
        .await
        .context("connecting to Postgres (did you run `hookrelay migrate`?)")
}

fn new_webhook(f: Fields) -> anyhow::Result<NewWebhook> {
    Ok(NewWebhook {
        tenant: f.tenant,
        key: f.key,
        url: f.url,
        amqp_exchange: f.amqp_exchange,
        amqp_routing_key: f.amqp_routing_key,
        event_types: parse_list(&f.event_types),
        secret: f.secret.map(Secret::new),
        signing_secret: f.signing_secret.map(Secret::new),
        signing_scheme: f.signing_scheme,
        headers: custom_headers(f.headers)?,
        development_mode: f.development_mode,
        import_identifiers: parse_list(&f.import_identifiers),
        schema_ids: parse_list(&f.schema_ids),
        format: f.format.parse::<BodyFormat>()?,
        retry_on: RetryPolicy::parse(&parse_list(&f.retry_on))?,
        filter: f.filter,
        rate_limit: f.rate_limit,
        rate_burst: f.rate_burst,
        max_in_flight: f.max_in_flight,
        ordered: f.ordered,
        on_failure: f.on_failure,
    })
}

/// Each `--header NAME: VALUE` (name and value trimmed); the rule of which may be set
/// is the model's, applied when the webhook is stored. A malformed one is named by
/// its place, never shown: its value may be a secret.
fn custom_headers(headers: Vec<String>) -> anyhow::Result<CustomHeaders> {
    let pairs = headers
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let (name, value) = h
                .split_once(':')
                .ok_or_else(|| anyhow::anyhow!("--header number {} is not `NAME: VALUE`", i + 1))?;
            Ok((name.trim().to_owned(), Secret::new(value.trim())))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(CustomHeaders::new(pairs))
}

fn parse_json(s: &str) -> Result<serde_json::Value, String> {
    serde_json::from_str(s).map_err(|e| format!("not JSON: {e}"))
}

fn webhook_update(c: Change) -> anyhow::Result<WebhookUpdate> {
    let secret = if c.clear_secret {
        Some(None)
    } else {
        c.secret.map(|s| Some(Secret::new(s)))
    };
    Ok(WebhookUpdate {
        key: c.key,
        url: c.url,
        amqp_exchange: c.amqp_exchange.map(Some),
        amqp_routing_key: c.amqp_routing_key.map(Some),
        event_types: c.event_types.as_deref().map(parse_list),
        secret,
        headers: if c.clear_headers {
            Some(None)
        } else {
            (!c.headers.is_empty())
                .then(|| custom_headers(c.headers).map(Some))
                .transpose()?
        },
        signing_scheme: c.signing_scheme,
        development_mode: c.development_mode,
        import_identifiers: c.import_identifiers.as_deref().map(parse_list),
        schema_ids: c.schema_ids.as_deref().map(parse_list),
        format: c.format.as_deref().map(str::parse).transpose()?,
        retry_on: c
            .retry_on
            .as_deref()
            .map(|r| RetryPolicy::parse(&parse_list(r)))
            .transpose()?,
        filter: if c.clear_filter {
            Some(None)
        } else {
            c.filter.map(Some)
        },
        enabled: c.enabled,
        rate_limit: clearable(c.clear_rate_limit, c.rate_limit),
        rate_burst: c.rate_burst.map(Some),
        max_in_flight: clearable(c.clear_max_in_flight, c.max_in_flight),
        ordered: c.ordered,
        on_failure: c.on_failure,
    })
}

/// An update's `Some(None)` (remove) when cleared, else the new value if given.
fn clearable<T>(clear: bool, value: Option<T>) -> Option<Option<T>> {
    if clear { Some(None) } else { value.map(Some) }
}

/// `disabled`, `paused`, `tripped` (its circuit breaker is open; deliveries held in
/// all three) or `active`.
fn state(w: &Webhook) -> &'static str {
    match (w.enabled, w.paused_at.is_some(), w.breaker.is_some()) {
        (false, _, _) => "disabled",
        (true, true, _) => "paused",
        (true, false, true) => "tripped",
        (true, false, false) => "active",
    }
}

/// Under a table of one webhook: its own delivery policy, when it has one.
fn policy_note(w: &Webhook) -> Option<String> {
    let policy = w.policy();
    let rate = policy
        .bucket
        .map(|b| format!("at most {} (burst {})", b.rate, b.burst));
    let cap = w.max_in_flight.map(|n| format!("{n} in flight at most"));
    let ordered = w.ordered.then(|| {
        format!(
            "ordered per ordering key, {} after a key's head fails",
            w.on_failure.as_str()
        )
    });
    let parts: Vec<String> = [rate, cap, ordered].into_iter().flatten().collect();
    (!parts.is_empty())
        .then(|| format!("delivery policy, across all senders: {}", parts.join(", ")))
}

/// Under a table of one webhook: why its breaker is open and when it is probed.
fn breaker_note(w: &Webhook) -> Option<String> {
    let b = w.breaker.as_ref()?;
    Some(format!(
        "circuit breaker open since {}: {}; next probe at {}",
        super::short_time(b.opened_at),
        super::table::cell(&b.reason),
        super::short_time(b.next_probe_at)
    ))
}

/// The custom headers' names, each with its value masked: `x-api-key: ********`.
fn header_names(w: &Webhook) -> String {
    if w.headers.is_empty() {
        return "-".to_owned();
    }
    w.headers
        .names()
        .map(|n| format!("{n}: ********"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The scheme, and the public keys receivers verify `v1a` with while ed25519 keys
/// sign (newest first; after a switch back to HMAC, until the next rotation).
fn signing(w: &Webhook) -> String {
    std::iter::once(w.signing_scheme.to_string())
        .chain(w.public_keys.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// An AMQP webhook's exchange and routing key, `exchange -> key`; `-` for HTTP.
fn amqp_target(w: &Webhook) -> String {
    match &w.amqp_exchange {
        Some(exchange) => format!(
            "{exchange} -> {}",
            w.amqp_routing_key.as_deref().unwrap_or_default()
        ),
        None => "-".into(),
    }
}

fn show(json: bool, list: &[Webhook]) {
    let rows = list
        .iter()
        .map(|w| {
            vec![
                w.id.to_string(),
                w.key.clone(),
                w.url.clone(),
                join(&w.event_types),
                w.format.as_str().to_owned(),
                if w.development_mode { "dev" } else { "prod" }.to_owned(),
                state(w).to_owned(),
                if w.secret.is_some() { "set" } else { "-" }.to_owned(),
                header_names(w),
                signing(w),
                amqp_target(w),
            ]
        })
        .collect();
    let headers = [
        "ID",
        "KEY",
        "URL",
        "EVENT TYPES",
        "FORMAT",
        "MODE",
        "STATE",
        "SECRET",
        "HEADERS",
        "SIGNING",
        "AMQP",
    ];
    if json && list.len() == 1 {
        print(true, &list[0], &headers, rows);
    } else {
        print(json, &list, &headers, rows);
    }
}
