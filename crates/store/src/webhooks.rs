//! The `webhooks` table: operator-managed endpoints (Dromo managed webhooks and
//! OneSchema event webhooks are the same row with different fields used).

use deadpool_postgres::GenericClient;
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::{StoreError, crypto, storable};
use hookrelay_model::retry::RetryPolicy;
use hookrelay_model::webhook::{
    NewWebhook, Secret, Webhook, WebhookUpdate, generate_signing_secret, signing_key, validate_key,
    validate_url,
};

const COLUMNS: &str = "id, tenant, key, url, event_types, secret, signing_secrets, development_mode, \
    import_identifiers, schema_ids, format, retry_on, enabled, disabled_reason, created_at, updated_at";

/// [`COLUMNS`] with the secrets left out (read as none).
fn columns_without_secrets() -> String {
    COLUMNS.replace(
        "secret, signing_secrets",
        "NULL::text AS secret, '{}'::text[] AS signing_secrets",
    )
}

fn from_row(row: &Row) -> Result<Webhook, StoreError> {
    from_row_prefixed(row, "")?.ok_or_else(|| StoreError::Invalid("webhook row without id".into()))
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

/// A webhook from columns named `{prefix}id`, ...; `None` when a LEFT JOIN found none.
pub(super) fn from_row_prefixed(row: &Row, prefix: &str) -> Result<Option<Webhook>, StoreError> {
    let col = |name: &str| format!("{prefix}{name}");
    let Some(id) = row.try_get::<_, Option<Uuid>>(col("id").as_str())? else {
        return Ok(None);
    };
    let retry_on: Vec<String> = row.try_get(col("retry_on").as_str())?;
    let format: String = row.try_get(col("format").as_str())?;
    Ok(Some(Webhook {
        id,
        tenant: row.try_get(col("tenant").as_str())?,
        key: row.try_get(col("key").as_str())?,
        url: row.try_get(col("url").as_str())?,
        event_types: row.try_get(col("event_types").as_str())?,
        secret: row
            .try_get::<_, Option<String>>(col("secret").as_str())?
            .map(|s| crypto::open(&s).map(Secret::new))
            .transpose()?,
        signing_secrets: row
            .try_get::<_, Vec<String>>(col("signing_secrets").as_str())?
            .iter()
            .map(|s| crypto::open(s).map(Secret::new))
            .collect::<Result<_, _>>()?,
        development_mode: row.try_get(col("development_mode").as_str())?,
        import_identifiers: row.try_get(col("import_identifiers").as_str())?,
        schema_ids: row.try_get(col("schema_ids").as_str())?,
        format: format.parse()?,
        retry_on: RetryPolicy::parse(&retry_on)
            .map_err(|e| StoreError::Invalid(format!("stored retry_on: {e}")))?,
        enabled: row.try_get(col("enabled").as_str())?,
        disabled_reason: row.try_get(col("disabled_reason").as_str())?,
        created_at: row.try_get(col("created_at").as_str())?,
        updated_at: row.try_get(col("updated_at").as_str())?,
    }))
}

fn key_conflict(tenant: &str, key: &str) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    let message = format!("a webhook with key `{key}` already exists in tenant `{tenant}`");
    move |e| {
        if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
            StoreError::Conflict(message)
        } else {
            StoreError::Db(e)
        }
    }
}

pub async fn create(db: &impl GenericClient, new: &NewWebhook) -> Result<Webhook, StoreError> {
    new.validate()?;
    let sql = format!(
        "INSERT INTO webhooks (id, tenant, key, url, event_types, secret, development_mode, \
         import_identifiers, schema_ids, format, retry_on, signing_secrets) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING {COLUMNS}"
    );
    let row = db
        .query_one(
            &sql,
            &[
                &Uuid::now_v7(),
                &new.tenant,
                &new.key,
                &new.url,
                &new.event_types,
                &new.secret.as_ref().map(seal).transpose()?,
                &new.development_mode,
                &new.import_identifiers,
                &new.schema_ids,
                &new.format.as_str(),
                &new.retry_on.to_strings(),
                &new.signing_secret
                    .iter()
                    .map(seal)
                    .collect::<Result<Vec<_>, _>>()?,
            ],
        )
        .await
        .map_err(key_conflict(&new.tenant, &new.key))?;
    from_row(&row)
}

/// One page of a tenant's webhooks, ordered by id (time-ordered), after `after`.
pub async fn list(
    db: &impl GenericClient,
    tenant: &str,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Webhook>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM webhooks WHERE tenant = $1 AND ($2::uuid IS NULL OR id > $2) \
         ORDER BY id LIMIT $3"
    );
    let rows = db.query(&sql, &[&tenant, &after, &limit]).await?;
    rows.iter().map(from_row).collect()
}

/// The enabled webhooks of these tenants: the router's candidates.
pub async fn enabled_for_tenants(
    db: &impl GenericClient,
    tenants: &[&str],
) -> Result<Vec<Webhook>, StoreError> {
    // Matching needs no secret: without them a router needs no secret key, and
    // nothing it loads can leak one.
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        let columns = columns_without_secrets();
        format!("SELECT {columns} FROM webhooks WHERE tenant = ANY($1) AND enabled")
    });
    let statement = super::prepared(db, &SQL).await?;
    let rows = db.query(&statement, &[&tenants]).await?;
    rows.iter().map(from_row).collect()
}

/// A webhook by id or by key, within the tenant only.
pub async fn get(
    db: &impl GenericClient,
    tenant: &str,
    id_or_key: &str,
) -> Result<Webhook, StoreError> {
    let id = Uuid::parse_str(id_or_key).ok();
    let sql = format!(
        "SELECT {COLUMNS} FROM webhooks WHERE tenant = $1 AND (id = $2 OR key = $3) \
         ORDER BY (id = $2) DESC NULLS LAST LIMIT 1"
    );
    db.query_opt(&sql, &[&tenant, &id, &id_or_key])
        .await?
        .map(|r| from_row(&r))
        .transpose()?
        .ok_or_else(|| StoreError::NotFound(format!("webhook `{id_or_key}` in tenant `{tenant}`")))
}

pub async fn update(
    db: &impl GenericClient,
    tenant: &str,
    id_or_key: &str,
    change: &WebhookUpdate,
) -> Result<Webhook, StoreError> {
    let current = get(db, tenant, id_or_key).await?;
    if let Some(key) = &change.key {
        validate_key(key)?;
    }
    if let Some(url) = &change.url {
        validate_url(url)?;
    }
    let key = change.key.clone().unwrap_or(current.key.clone());
    let secret = match &change.secret {
        Some(s) => s.clone(),
        None => current.secret.clone(),
    };
    let enabled = change.enabled.unwrap_or(current.enabled);
    let disabled_reason = if enabled {
        None
    } else if current.enabled {
        Some("disabled by an operator".to_owned())
    } else {
        current.disabled_reason.clone()
    };
    let sql = format!(
        "UPDATE webhooks SET key = $2, url = $3, event_types = $4, secret = $5, \
         development_mode = $6, import_identifiers = $7, schema_ids = $8, format = $9, \
         retry_on = $10, enabled = $11, disabled_reason = $12, \
         announce_disabled = announce_disabled AND NOT $11, updated_at = now() \
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    let row = db
        .query_one(
            &sql,
            &[
                &current.id,
                &key,
                change.url.as_ref().unwrap_or(&current.url),
                change.event_types.as_ref().unwrap_or(&current.event_types),
                &secret.as_ref().map(seal).transpose()?,
                &change.development_mode.unwrap_or(current.development_mode),
                change
                    .import_identifiers
                    .as_ref()
                    .unwrap_or(&current.import_identifiers),
                change.schema_ids.as_ref().unwrap_or(&current.schema_ids),
                &change.format.unwrap_or(current.format).as_str(),
                &change
                    .retry_on
                    .as_ref()
                    .unwrap_or(&current.retry_on)
                    .to_strings(),
                &enabled,
                &disabled_reason,
            ],
        )
        .await
        .map_err(key_conflict(tenant, &key))?;
    from_row(&row)
}

pub async fn delete(
    db: &impl GenericClient,
    tenant: &str,
    id_or_key: &str,
) -> Result<(), StoreError> {
    let current = get(db, tenant, id_or_key).await?;
    db.execute("DELETE FROM webhooks WHERE id = $1", &[&current.id])
        .await?;
    Ok(())
}

/// What is stored for a secret: encrypted when a key is set.
fn seal(secret: &Secret) -> Result<String, StoreError> {
    crypto::seal(secret.expose())
}

/// Starts signing with a new secret (given, or generated); with `keep_previous` the
/// current newest secret keeps signing too until the next rotation. Returns the
/// webhook and the new secret, the only time it is shown.
pub async fn rotate_signing_secret(
    db: &impl GenericClient,
    tenant: &str,
    id_or_key: &str,
    new: Option<Secret>,
    keep_previous: bool,
) -> Result<(Webhook, Secret), StoreError> {
    let current = get(db, tenant, id_or_key).await?;
    let new = match new {
        Some(secret) => secret,
        None => generate_signing_secret()?,
    };
    signing_key(&new)?;
    let mut secrets = vec![seal(&new)?];
    if keep_previous && let Some(previous) = current.signing_secrets.first() {
        secrets.push(seal(previous)?);
    }
    let sql = format!(
        "UPDATE webhooks SET signing_secrets = $2, updated_at = now() WHERE id = $1 \
         RETURNING {COLUMNS}"
    );
    let row = db.query_one(&sql, &[&current.id, &secrets]).await?;
    Ok((from_row(&row)?, new))
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
        .map(|r| Ok((from_row(&r)?, r.try_get("disabled_at")?)))
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
        .map(|r| Ok((from_row(r)?, r.try_get("disabled_at")?)))
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
