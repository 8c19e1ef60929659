//! The `webhooks` table: operator-managed endpoints (Dromo managed webhooks and
//! OneSchema event webhooks are the same row with different fields used).

use deadpool_postgres::GenericClient;
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::{Cipher, StoreError, storable};
use hookrelay_model::destination::{Credentials, Scheme, scheme_of, split_credentials};
use hookrelay_model::filter::PayloadFilter;
use hookrelay_model::headers::CustomHeaders;
use hookrelay_model::retry::RetryPolicy;
use hookrelay_model::signing::{self, SigningScheme};
use hookrelay_model::webhook::{Breaker, NewWebhook, Secret, Webhook, WebhookUpdate};

const COLUMNS: &str = "id, tenant, key, url, url_credentials, amqp_exchange, amqp_routing_key, event_types, secret, signing_secrets, headers, signing_scheme, development_mode, \
    import_identifiers, schema_ids, format, retry_on, filter, enabled, disabled_reason, paused_at, \
    breaker_opened_at, breaker_reason, breaker_probe_at, rate_limit, rate_burst, max_in_flight, \
    ordered, on_failure, created_at, updated_at";

/// The condition under which a webhook's deliveries are held (alias `w`): the SQL
/// of [`hookrelay_model::matching::holds`].
pub(crate) const HOLDING: &str =
    "(w.paused_at IS NOT NULL OR NOT w.enabled OR w.breaker_opened_at IS NOT NULL)";

/// [`COLUMNS`] with the secrets and the custom headers (whose values are secrets)
/// left out (read as none).
fn columns_without_secrets() -> String {
    COLUMNS
        .replace(
            "secret, signing_secrets, headers",
            "NULL::text AS secret, '{}'::text[] AS signing_secrets, '{}'::jsonb AS headers",
        )
        .replace("url_credentials", "NULL::text AS url_credentials")
}

fn from_row(row: &Row, cipher: &Cipher) -> Result<Webhook, StoreError> {
    from_row_prefixed(row, "", cipher)?
        .ok_or_else(|| StoreError::corrupt("webhook", "a row without id"))
}

/// Rows read with [`columns_without_secrets`] hold no secret to open.
fn from_row_without_secrets(row: &Row) -> Result<Webhook, StoreError> {
    from_row(row, &Cipher::none())
}

/// `w.id AS w_id, w.tenant AS w_tenant, ...`: the columns under a prefix, for joins.
pub(super) fn select_prefixed(alias: &str, prefix: &str) -> String {
    COLUMNS
        .split(',')
        .map(str::trim)
        .map(|c| format!("{alias}.{c} AS {prefix}{c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// [`select_prefixed`] with the secrets and custom headers left out (read as none):
/// for readers without the cipher, which could not open them.
pub(super) fn select_prefixed_without_secrets(alias: &str, prefix: &str) -> String {
    COLUMNS
        .split(',')
        .map(str::trim)
        .map(|c| match c {
            "secret" | "url_credentials" => format!("NULL::text AS {prefix}{c}"),
            "signing_secrets" => format!("'{{}}'::text[] AS {prefix}{c}"),
            "headers" => format!("'{{}}'::jsonb AS {prefix}{c}"),
            _ => format!("{alias}.{c} AS {prefix}{c}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A webhook from columns named `{prefix}id`, ...; `None` when a LEFT JOIN found none.
pub(super) fn from_row_prefixed(
    row: &Row,
    prefix: &str,
    cipher: &Cipher,
) -> Result<Option<Webhook>, StoreError> {
    let col = |name: &str| format!("{prefix}{name}");
    let Some(id) = row.try_get::<_, Option<Uuid>>(col("id").as_str())? else {
        return Ok(None);
    };
    let retry_on: Vec<String> = row.try_get(col("retry_on").as_str())?;
    let format: String = row.try_get(col("format").as_str())?;
    let signing_secrets: Vec<Secret> = row
        .try_get::<_, Vec<String>>(col("signing_secrets").as_str())?
        .iter()
        .map(|s| cipher.open(s).map(Secret::new))
        .collect::<Result<_, _>>()?;
    Ok(Some(Webhook {
        id,
        tenant: row.try_get(col("tenant").as_str())?,
        key: row.try_get(col("key").as_str())?,
        url: row.try_get(col("url").as_str())?,
        url_credentials: row
            .try_get::<_, Option<String>>(col("url_credentials").as_str())?
            .map(|s| cipher.open(&s).map(Secret::new))
            .transpose()?,
        amqp_exchange: row.try_get(col("amqp_exchange").as_str())?,
        amqp_routing_key: row.try_get(col("amqp_routing_key").as_str())?,
        event_types: row.try_get(col("event_types").as_str())?,
        secret: row
            .try_get::<_, Option<String>>(col("secret").as_str())?
            .map(|s| cipher.open(&s).map(Secret::new))
            .transpose()?,
        public_keys: signing::public_keys(&signing_secrets),
        signing_secrets,
        signing_scheme: row
            .try_get::<_, String>(col("signing_scheme").as_str())?
            .parse()
            .map_err(|e| StoreError::corrupt("webhook signing_scheme", e))?,
        headers: open_headers(
            cipher,
            &row.try_get::<_, serde_json::Value>(col("headers").as_str())?,
        )?,
        development_mode: row.try_get(col("development_mode").as_str())?,
        import_identifiers: row.try_get(col("import_identifiers").as_str())?,
        schema_ids: row.try_get(col("schema_ids").as_str())?,
        format: format
            .parse()
            .map_err(|e| StoreError::corrupt("webhook format", e))?,
        retry_on: RetryPolicy::parse(&retry_on)
            .map_err(|e| StoreError::corrupt("webhook retry_on", e))?,
        filter: row
            .try_get::<_, Option<serde_json::Value>>(col("filter").as_str())?
            .map(|f| PayloadFilter::parse("filter", &f))
            .transpose()
            .map_err(|e| StoreError::corrupt("webhook filter", e))?,
        enabled: row.try_get(col("enabled").as_str())?,
        disabled_reason: row.try_get(col("disabled_reason").as_str())?,
        paused_at: row.try_get(col("paused_at").as_str())?,
        breaker: breaker_from_row(row, &col)?,
        rate_limit: row
            .try_get::<_, Option<String>>(col("rate_limit").as_str())?
            .map(|r| r.parse())
            .transpose()
            .map_err(|e| StoreError::corrupt("webhook rate_limit", e))?,
        rate_burst: row
            .try_get::<_, Option<i32>>(col("rate_burst").as_str())?
            .map(u32::try_from)
            .transpose()
            .map_err(|e| StoreError::corrupt("webhook rate_burst", e))?,
        max_in_flight: row
            .try_get::<_, Option<i32>>(col("max_in_flight").as_str())?
            .map(u16::try_from)
            .transpose()
            .map_err(|e| StoreError::corrupt("webhook max_in_flight", e))?,
        ordered: row.try_get(col("ordered").as_str())?,
        on_failure: row
            .try_get::<_, String>(col("on_failure").as_str())?
            .parse()
            .map_err(|e| StoreError::corrupt("webhook on_failure", e))?,
        created_at: row.try_get(col("created_at").as_str())?,
        updated_at: row.try_get(col("updated_at").as_str())?,
    }))
}

/// The stored custom headers (name to sealed value), opened.
fn open_headers(cipher: &Cipher, stored: &serde_json::Value) -> Result<CustomHeaders, StoreError> {
    let Some(object) = stored.as_object() else {
        return Err(StoreError::corrupt("webhook headers", "not an object"));
    };
    object
        .iter()
        .map(|(name, sealed)| {
            let sealed = sealed
                .as_str()
                .ok_or_else(|| StoreError::corrupt("webhook headers", "a value not text"))?;
            Ok((name.clone(), Secret::new(cipher.open(sealed)?)))
        })
        .collect::<Result<Vec<_>, StoreError>>()
        .map(CustomHeaders::new)
}

/// What is stored for custom headers: lower-case names to sealed values.
fn seal_headers(cipher: &Cipher, headers: &CustomHeaders) -> Result<serde_json::Value, StoreError> {
    let sealed = headers
        .normalized()
        .iter()
        .map(|(name, value)| {
            Ok((
                name.to_owned(),
                serde_json::Value::from(seal(cipher, value)?),
            ))
        })
        .collect::<Result<serde_json::Map<_, _>, StoreError>>()?;
    Ok(serde_json::Value::Object(sealed))
}

fn breaker_from_row(
    row: &Row,
    col: &impl Fn(&str) -> String,
) -> Result<Option<Breaker>, StoreError> {
    let opened_at: Option<OffsetDateTime> = row.try_get(col("breaker_opened_at").as_str())?;
    let Some(opened_at) = opened_at else {
        return Ok(None);
    };
    let reason: Option<String> = row.try_get(col("breaker_reason").as_str())?;
    let probe_at: Option<OffsetDateTime> = row.try_get(col("breaker_probe_at").as_str())?;
    Ok(Some(Breaker {
        opened_at,
        reason: reason.unwrap_or_default(),
        next_probe_at: probe_at.unwrap_or(opened_at),
    }))
}

fn key_conflict(tenant: &str, key: &str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    let message = format!("a webhook with key `{key}` already exists in tenant `{tenant}`");
    move |e| {
        let constraint = e
            .as_db_error()
            .and_then(|d| d.constraint())
            .map(str::to_owned);
        match e.code() {
            Some(&SqlState::UNIQUE_VIOLATION) => StoreError::Conflict(message),
            // An update that sets a burst on a webhook without a rate limit.
            Some(&SqlState::CHECK_VIOLATION)
                if constraint.as_deref() == Some("webhooks_burst_needs_rate") =>
            {
                StoreError::Invalid(hookrelay_model::Invalid::new(
                    "rate_burst",
                    "needs a rate_limit: the webhook has none",
                ))
            }
            // A custom `authorization` and a Basic-auth secret, one of them already
            // stored: the model's rule, where only the store sees both.
            Some(&SqlState::CHECK_VIOLATION)
                if constraint.as_deref() == Some("webhooks_authorization_beside_basic_auth") =>
            {
                let reason = hookrelay_model::headers::reserved("authorization", true)
                    .unwrap_or("is refused beside a Basic-auth `secret`");
                StoreError::Invalid(hookrelay_model::Invalid::new(
                    "headers.authorization",
                    format!("`authorization` {reason}"),
                ))
            }
            // A broker URL without an exchange, or an exchange beside an HTTP URL,
            // one of them already stored.
            Some(&SqlState::CHECK_VIOLATION)
                if constraint.as_deref() == Some("webhooks_exchange_with_broker_url") =>
            {
                StoreError::Invalid(hookrelay_model::Invalid::new(
                    "amqp_exchange",
                    "an amqp:// or amqps:// URL needs an exchange, and an http(s) URL takes none",
                ))
            }
            Some(&SqlState::CHECK_VIOLATION)
                if constraint.as_deref() == Some("webhooks_routing_key_with_exchange") =>
            {
                StoreError::Invalid(hookrelay_model::Invalid::new(
                    "amqp_routing_key",
                    "is for amqp:// and amqps:// URLs, with an exchange",
                ))
            }
            _ => StoreError::from(e),
        }
    }
}

/// Bounded by validation (at most 100,000), so the conversion never saturates.
fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

pub async fn create(
    db: &impl GenericClient,
    cipher: &Cipher,
    new: &NewWebhook,
) -> Result<Webhook, StoreError> {
    new.validate()?;
    let signing_secret = match &new.signing_secret {
        Some(given) => Some(given.clone()),
        None if new.signing_scheme.generates_on_create() => Some(new.signing_scheme.generate()?),
        None => None,
    };
    // A broker URL is stored with its credentials masked, and they sealed apart.
    let (url, credentials) = split_credentials(&new.url);
    let credentials = match credentials {
        Credentials::Given(c) => Some(seal(cipher, &c)?),
        Credentials::None | Credentials::Kept => None,
    };
    let sql = format!(
        "INSERT INTO webhooks (id, tenant, key, url, event_types, secret, development_mode, \
         import_identifiers, schema_ids, format, retry_on, signing_secrets, filter, \
         rate_limit, rate_burst, max_in_flight, ordered, on_failure, headers, signing_scheme, \
         url_credentials, amqp_exchange, amqp_routing_key) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
           $17, $18, $19, $20, $21, $22, $23) \
         RETURNING {COLUMNS}"
    );
    let row = db
        .query_one(
            &sql,
            &[
                &Uuid::now_v7(),
                &new.tenant,
                &new.key.as_str(),
                &url,
                &new.event_types,
                &new.secret.as_ref().map(|s| seal(cipher, s)).transpose()?,
                &new.development_mode,
                &new.import_identifiers,
                &new.schema_ids,
                &new.format.as_str(),
                &new.retry_on.to_strings(),
                &signing_secret
                    .iter()
                    .map(|s| seal(cipher, s))
                    .collect::<Result<Vec<_>, _>>()?,
                &new.filter,
                &new.rate_limit.map(|r| r.to_string()),
                &new.rate_burst.map(to_i32),
                &new.max_in_flight.map(i32::from),
                &new.ordered,
                &new.on_failure.as_str(),
                &seal_headers(cipher, &new.headers)?,
                &new.signing_scheme.as_str(),
                &credentials,
                &new.amqp_exchange,
                &new.amqp_routing_key,
            ],
        )
        .await
        .map_err(key_conflict(&new.tenant, &new.key))?;
    from_row(&row, cipher)
}

/// One page of a tenant's webhooks, ordered by id (time-ordered), after `after`.
pub async fn list(
    db: &impl GenericClient,
    cipher: &Cipher,
    tenant: &str,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Webhook>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM webhooks WHERE tenant = $1 AND ($2::uuid IS NULL OR id > $2) \
         ORDER BY id LIMIT $3"
    );
    let rows = db.query(&sql, &[&tenant, &after, &limit]).await?;
    rows.iter().map(|r| from_row(r, cipher)).collect()
}

/// Which of these webhooks hold their deliveries (paused or disabled), read `FOR
/// SHARE`: the answer to "hold or send" for a transaction that creates deliveries. A
/// resume or enable waits for that transaction, then releases what it held; one
/// before it is seen here.
pub async fn still_holding(db: &impl GenericClient, ids: &[Uuid]) -> Result<Vec<Uuid>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows = db
        .query(
            &format!("SELECT id FROM webhooks w WHERE id = ANY($1) AND {HOLDING} FOR SHARE"),
            &[&ids],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
}

/// Pauses (`true`) or resumes a webhook by id or key; returns it as it is now. A
/// webhook already in that state is left as it is (`paused_at` keeps its time).
pub async fn set_paused(
    db: &impl GenericClient,
    cipher: &Cipher,
    tenant: &str,
    id_or_key: &str,
    paused: bool,
) -> Result<Webhook, StoreError> {
    let current = get(db, cipher, tenant, id_or_key).await?;
    db.execute(
        "UPDATE webhooks SET paused_at = CASE WHEN $3 THEN coalesce(paused_at, now()) END, \
           updated_at = CASE WHEN (paused_at IS NOT NULL) = $3 THEN updated_at ELSE now() END \
         WHERE id = $1 AND tenant = $2",
        &[&current.id, &tenant, &paused],
    )
    .await?;
    get(db, cipher, tenant, &current.id.to_string()).await
}

/// Every webhook of these tenants, enabled or not: the router's candidates.
pub async fn for_tenants(
    db: &impl GenericClient,
    tenants: &[&str],
) -> Result<Vec<Webhook>, StoreError> {
    // Matching needs no secret: without them a router needs no secret key, and
    // nothing it loads can leak one.
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let columns = columns_without_secrets();
        format!("SELECT {columns} FROM webhooks WHERE tenant = ANY($1)")
    });
    let statement = super::prepared(db, &SQL).await?;
    let rows = db.query(&statement, &[&tenants]).await?;
    rows.iter().map(from_row_without_secrets).collect()
}

/// The row of a webhook by id or by key, within the tenant only: an id wins over a
/// key that happens to look like one. `$1` tenant, `$2` id, `$3` key.
const ONE_BY_ID_OR_KEY: &str = "SELECT id FROM webhooks WHERE tenant = $1 AND (id = $2 OR key = $3) \
     ORDER BY (id = $2) DESC NULLS LAST LIMIT 1";

fn not_found(tenant: &str, id_or_key: &str) -> StoreError {
    StoreError::not_found(format!("webhook `{id_or_key}` in tenant `{tenant}`"))
}

/// The ids of the webhooks with this key: in `tenant`, or in every tenant.
pub async fn ids_with_key(
    db: &impl GenericClient,
    tenant: Option<&str>,
    key: &str,
) -> Result<Vec<Uuid>, StoreError> {
    let rows = db
        .query(
            "SELECT id FROM webhooks WHERE key = $2 AND ($1::text IS NULL OR tenant = $1) \
             ORDER BY id",
            &[&tenant, &key],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get("id")?)).collect()
}

/// Keys of these webhooks (those that still exist), by id.
pub async fn keys_of(
    db: &impl GenericClient,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, String>, StoreError> {
    let rows = db
        .query("SELECT id, key FROM webhooks WHERE id = ANY($1)", &[&ids])
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("id")?, r.try_get("key")?)))
        .collect()
}

/// A webhook's id, by id or by key, within the tenant only (its secrets unread).
pub async fn id_of(
    db: &impl GenericClient,
    tenant: &str,
    id_or_key: &str,
) -> Result<Uuid, StoreError> {
    let id = Uuid::parse_str(id_or_key).ok();
    let row = db
        .query_opt(ONE_BY_ID_OR_KEY, &[&tenant, &id, &id_or_key])
        .await?
        .ok_or_else(|| not_found(tenant, id_or_key))?;
    Ok(row.try_get("id")?)
}

/// A webhook by id or by key, within the tenant only.
pub async fn get(
    db: &impl GenericClient,
    cipher: &Cipher,
    tenant: &str,
    id_or_key: &str,
) -> Result<Webhook, StoreError> {
    let id = Uuid::parse_str(id_or_key).ok();
    let sql = format!("SELECT {COLUMNS} FROM webhooks WHERE id = ({ONE_BY_ID_OR_KEY})");
    db.query_opt(&sql, &[&tenant, &id, &id_or_key])
        .await?
        .map(|r| from_row(&r, cipher))
        .transpose()?
        .ok_or_else(|| not_found(tenant, id_or_key))
}

/// Applies a partial update in one statement: each field is either the new value or
/// what the row holds at that moment. Reading first and writing everything back
/// would undo a change made in between, such as the sender disabling the webhook.
pub async fn update(
    db: &impl GenericClient,
    cipher: &Cipher,
    tenant: &str,
    id_or_key: &str,
    change: &WebhookUpdate,
) -> Result<Webhook, StoreError> {
    change.validate()?;
    let id = Uuid::parse_str(id_or_key).ok();
    let set_secret = change.secret.is_some();
    let secret = change
        .secret
        .as_ref()
        .and_then(Option::as_ref)
        .map(|s| seal(cipher, s))
        .transpose()?;
    let retry_on = change.retry_on.as_ref().map(RetryPolicy::to_strings);
    // A key for a switch to a scheme that makes one at once (the model's
    // `generates_on_switch_from`, applied below where the row's scheme is known).
    let switch_key = match change.signing_scheme {
        Some(to)
            if SigningScheme::ALL
                .iter()
                .any(|&from| to.generates_on_switch_from(from)) =>
        {
            Some(seal(cipher, &to.generate()?)?)
        }
        _ => None,
    };
    let headers = match &change.headers {
        Some(Some(headers)) => seal_headers(cipher, headers)?,
        _ => serde_json::json!({}),
    };
    // A new URL brings its credentials (sealed apart), none, or the mask, which keeps
    // the stored ones; a new http(s) URL drops the exchange and routing key unless
    // given with it (the model refuses an exchange given beside one).
    let split = change.url.as_deref().map(split_credentials);
    let url = split.as_ref().map(|(url, _)| url.as_str());
    let (set_credentials, credentials) = match split.as_ref().map(|(_, c)| c) {
        Some(Credentials::Given(c)) => (true, Some(seal(cipher, c)?)),
        Some(Credentials::None) => (true, None),
        Some(Credentials::Kept) | None => (false, None),
    };
    let to_http = change
        .url
        .as_deref()
        .is_some_and(|u| scheme_of(u) == Some(Scheme::Http));
    let sql = format!(
        "UPDATE webhooks SET key = COALESCE($4, key), url = COALESCE($5, url), \
           event_types = COALESCE($6, event_types), \
           secret = CASE WHEN $7 THEN $8 ELSE secret END, \
           development_mode = COALESCE($9, development_mode), \
           import_identifiers = COALESCE($10, import_identifiers), \
           schema_ids = COALESCE($11, schema_ids), format = COALESCE($12, format), \
           retry_on = COALESCE($13, retry_on), \
           filter = CASE WHEN $15 THEN $16 ELSE filter END, \
           enabled = COALESCE($14, enabled), \
           disabled_reason = CASE WHEN COALESCE($14, enabled) THEN NULL \
             WHEN enabled THEN 'disabled by an operator' ELSE disabled_reason END, \
           announce_disabled = announce_disabled AND NOT COALESCE($14, enabled), \
           rate_limit = CASE WHEN $17 THEN $18 ELSE rate_limit END, \
           rate_burst = CASE WHEN $17 AND $18 IS NULL THEN NULL WHEN $19 THEN $20 \
             ELSE rate_burst END, \
           max_in_flight = CASE WHEN $21 THEN $22 ELSE max_in_flight END, \
           ordered = COALESCE($23, ordered), on_failure = COALESCE($24, on_failure), \
           headers = CASE WHEN $25 THEN $26 ELSE headers END, \
           signing_secrets = CASE WHEN $28::text IS NOT NULL AND signing_scheme <> $27 \
             THEN ARRAY[$28::text] || signing_secrets[1:1] ELSE signing_secrets END, \
           signing_scheme = COALESCE($27, signing_scheme), \
           url_credentials = CASE WHEN $29 THEN $30 ELSE url_credentials END, \
           amqp_exchange = CASE WHEN $31 THEN $32 WHEN $35 THEN NULL ELSE amqp_exchange END, \
           amqp_routing_key = CASE WHEN $33 THEN $34 WHEN $35 THEN NULL \
             ELSE amqp_routing_key END, \
           updated_at = now() \
         WHERE id = ({ONE_BY_ID_OR_KEY}) RETURNING {COLUMNS}"
    );
    let conflict_key = change.key.as_deref().unwrap_or(id_or_key);
    db.query_opt(
        &sql,
        &[
            &tenant,
            &id,
            &id_or_key,
            &change.key.as_deref(),
            &url,
            &change.event_types,
            &set_secret,
            &secret,
            &change.development_mode,
            &change.import_identifiers,
            &change.schema_ids,
            &change.format.map(|f| f.as_str()),
            &retry_on,
            &change.enabled,
            &change.filter.is_some(),
            &change.filter.clone().flatten(),
            &change.rate_limit.is_some(),
            &change.rate_limit.flatten().map(|r| r.to_string()),
            &change.rate_burst.is_some(),
            &change.rate_burst.flatten().map(to_i32),
            &change.max_in_flight.is_some(),
            &change.max_in_flight.flatten().map(i32::from),
            &change.ordered,
            &change.on_failure.map(|f| f.as_str()),
            &change.headers.is_some(),
            &headers,
            &change.signing_scheme.map(SigningScheme::as_str),
            &switch_key,
            &set_credentials,
            &credentials,
            &change.amqp_exchange.is_some(),
            &change.amqp_exchange.clone().flatten(),
            &change.amqp_routing_key.is_some(),
            &change.amqp_routing_key.clone().flatten(),
            &to_http,
        ],
    )
    .await
    .map_err(key_conflict(tenant, conflict_key))?
    .map(|r| from_row(&r, cipher))
    .transpose()?
    .ok_or_else(|| not_found(tenant, id_or_key))
}

pub async fn delete(
    db: &impl GenericClient,
    tenant: &str,
    id_or_key: &str,
) -> Result<(), StoreError> {
    let id = Uuid::parse_str(id_or_key).ok();
    let sql = format!("DELETE FROM webhooks WHERE id = ({ONE_BY_ID_OR_KEY})");
    match db.execute(&sql, &[&tenant, &id, &id_or_key]).await? {
        0 => Err(not_found(tenant, id_or_key)),
        _ => Ok(()),
    }
}

/// What is stored for a secret: encrypted when a key is set.
fn seal(cipher: &Cipher, secret: &Secret) -> Result<String, StoreError> {
    Ok(cipher.seal(secret.expose())?)
}

/// Starts signing with a new key of the webhook's scheme: an HMAC secret (given, or
/// generated) or a generated ed25519 key pair (nothing may be given: the model's
/// rule); with `keep_previous` the current newest key keeps signing too until the
/// next rotation. Returns the webhook and the new key: an HMAC secret, to be shown
/// this once; an ed25519 private key, never to be shown (its public key is the
/// webhook's newest `public_keys`).
pub async fn rotate_signing_secret(
    db: &impl GenericClient,
    cipher: &Cipher,
    tenant: &str,
    id_or_key: &str,
    given: Option<Secret>,
    keep_previous: bool,
) -> Result<(Webhook, signing::NewKey), StoreError> {
    let scheme = get(db, cipher, tenant, id_or_key).await?.signing_scheme;
    scheme.check_given(given.as_ref())?;
    let new = match given {
        Some(secret) => secret,
        None => scheme.generate()?,
    };
    let sealed = seal(cipher, &new)?;
    let id = Uuid::parse_str(id_or_key).ok();
    // The kept secret is the stored newest one, moved as it is (still sealed). The
    // scheme must still be the one the key was made for.
    let sql = format!(
        "UPDATE webhooks SET signing_secrets = \
           CASE WHEN $5 THEN ARRAY[$4::text] || signing_secrets[1:1] ELSE ARRAY[$4::text] END, \
           updated_at = now() \
         WHERE id = ({ONE_BY_ID_OR_KEY}) AND signing_scheme = $6 RETURNING {COLUMNS}"
    );
    let webhook = db
        .query_opt(
            &sql,
            &[
                &tenant,
                &id,
                &id_or_key,
                &sealed,
                &keep_previous,
                &scheme.as_str(),
            ],
        )
        .await?
        .map(|r| from_row(&r, cipher))
        .transpose()?
        .ok_or_else(|| {
            StoreError::Conflict(format!(
                "webhook `{id_or_key}` was deleted or changed its signing scheme meanwhile: \
                 rotate again"
            ))
        })?;
    Ok((webhook, signing::NewKey::of(new)))
}

/// Disables an enabled webhook with a reason, to be announced (see
/// [`to_announce`]); `None` if it was disabled already, so only one caller reports
/// the change. Returns the webhook and when it was disabled.
pub async fn disable(
    db: &impl GenericClient,
    id: Uuid,
    reason: &str,
) -> Result<Option<(Webhook, OffsetDateTime)>, StoreError> {
    let sql = format!(
        "UPDATE webhooks SET enabled = false, disabled_reason = $2, disabled_at = now(), \
           announce_disabled = true, updated_at = now() \
         WHERE id = $1 AND enabled RETURNING {}, disabled_at",
        columns_without_secrets()
    );
    db.query_opt(&sql, &[&id, &storable(reason)])
        .await?
        .map(|r| Ok((from_row_without_secrets(&r)?, r.try_get("disabled_at")?)))
        .transpose()
}

/// Webhooks disabled by the sender whose announcement is not confirmed yet, oldest
/// first, with when they were disabled.
pub async fn to_announce(
    db: &impl GenericClient,
    limit: i64,
) -> Result<Vec<(Webhook, OffsetDateTime)>, StoreError> {
    let sql = format!(
        "SELECT {}, disabled_at FROM webhooks WHERE announce_disabled AND NOT enabled \
         ORDER BY disabled_at LIMIT $1",
        columns_without_secrets()
    );
    let rows = db.query(&sql, &[&limit]).await?;
    rows.iter()
        .map(|r| Ok((from_row_without_secrets(r)?, r.try_get("disabled_at")?)))
        .collect()
}

/// The announcement of the disabling at `disabled_at` is confirmed.
pub async fn announced(
    db: &impl GenericClient,
    id: Uuid,
    disabled_at: OffsetDateTime,
) -> Result<(), StoreError> {
    db.execute(
        "UPDATE webhooks SET announce_disabled = false WHERE id = $1 AND disabled_at = $2",
        &[&id, &disabled_at],
    )
    .await?;
    Ok(())
}

/// Whether every delivery to the webhook has failed for at least `period`: one failed
/// delivery that old or older, and no delivery succeeded since (by the time of its
/// successful attempt: one created earlier that got through on a retry counts). Read
/// on the failure path only.
pub async fn failing_for(
    db: &impl GenericClient,
    id: Uuid,
    period: std::time::Duration,
) -> Result<bool, StoreError> {
    let since = OffsetDateTime::now_utc() - period;
    let row = db
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM deliveries WHERE webhook_id = $1 \
                 AND created_at <= $2 AND status = 'failed') \
             AND NOT EXISTS (SELECT 1 FROM deliveries WHERE webhook_id = $1 \
                 AND status = 'delivered' AND last_attempt_at > $2) AS failing",
            &[&id, &since],
        )
        .await?;
    Ok(row.try_get("failing")?)
}

/// A webhook whose breaker is due for a probe (`open`) or whose release after
/// closing is not confirmed finished (not `open`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BreakerDue {
    pub id: Uuid,
    pub tenant: String,
    pub key: String,
    pub open: bool,
}

/// Opens a webhook's circuit breaker with the reason; the first probe is due after
/// `cooldown`. `Some((tenant, key))` when this call opened it, `None` when it was
/// already open (or the webhook is gone).
pub async fn trip_breaker(
    db: &impl GenericClient,
    id: Uuid,
    reason: &str,
    cooldown: std::time::Duration,
) -> Result<Option<(String, String)>, StoreError> {
    let row = db
        .query_opt(
            "UPDATE webhooks SET breaker_opened_at = now(), breaker_reason = $2, \
               breaker_probe_at = now() + make_interval(secs => $3) \
             WHERE id = $1 AND breaker_opened_at IS NULL RETURNING tenant, key",
            &[&id, &storable(reason), &cooldown.as_secs_f64()],
        )
        .await?;
    row.map(|r| Ok((r.try_get("tenant")?, r.try_get("key")?)))
        .transpose()
}

/// Claims the webhooks whose probe (or unfinished release) is due, pushing each one's
/// time on by `cooldown`: across senders, each is claimed by one. Paused and disabled
/// webhooks wait: their deliveries are held anyway.
pub async fn claim_breakers_due(
    db: &impl GenericClient,
    cooldown: std::time::Duration,
) -> Result<Vec<BreakerDue>, StoreError> {
    let rows = db
        .query(
            "UPDATE webhooks SET breaker_probe_at = now() + make_interval(secs => $1) \
             WHERE breaker_probe_at <= now() AND paused_at IS NULL AND enabled \
             RETURNING id, tenant, key, breaker_opened_at IS NOT NULL AS open",
            &[&cooldown.as_secs_f64()],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(BreakerDue {
                id: r.try_get("id")?,
                tenant: r.try_get("tenant")?,
                key: r.try_get("key")?,
                open: r.try_get("open")?,
            })
        })
        .collect()
}

/// Closes an open breaker; true if this call closed it. `breaker_probe_at` stays set
/// (`retry_release_after` on) until [`breaker_released`] confirms that what it held
/// was sent again, so a release cut short by a crash is done again.
pub async fn close_breaker(
    db: &impl GenericClient,
    id: Uuid,
    retry_release_after: std::time::Duration,
) -> Result<bool, StoreError> {
    let n = db
        .execute(
            "UPDATE webhooks SET breaker_opened_at = NULL, breaker_reason = NULL, \
               breaker_probe_at = now() + make_interval(secs => $2) \
             WHERE id = $1 AND breaker_opened_at IS NOT NULL",
            &[&id, &retry_release_after.as_secs_f64()],
        )
        .await?;
    Ok(n == 1)
}

/// The release after closing is finished: nothing more is due for this webhook.
pub async fn breaker_released(db: &impl GenericClient, id: Uuid) -> Result<(), StoreError> {
    db.execute(
        "UPDATE webhooks SET breaker_probe_at = NULL WHERE id = $1 AND breaker_opened_at IS NULL",
        &[&id],
    )
    .await?;
    Ok(())
}

/// Tenant and key of every webhook whose breaker is open (for the breaker gauge).
pub async fn tripped(db: &impl GenericClient) -> Result<Vec<(String, String)>, StoreError> {
    let rows = db
        .query(
            "SELECT tenant, key FROM webhooks WHERE breaker_opened_at IS NOT NULL",
            &[],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("tenant")?, r.try_get("key")?)))
        .collect()
}
