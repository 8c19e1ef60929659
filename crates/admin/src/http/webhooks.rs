//! `/v1/tenants/{tenant}/webhooks`: a tenant's stored webhooks.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hookrelay_amqp as amqp;
use hookrelay_model::Invalid;
use hookrelay_model::signing::NewKey;
use hookrelay_model::webhook::{NewWebhook, Secret, Webhook, WebhookUpdate};
use hookrelay_store::{deliveries, webhooks};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use utoipa::{IntoParams, ToSchema};

use super::error::{BadParameter, Body as BodyErrors, Broker, Conflict, Database, NotFound};
use super::extract::{Body, Params, Path, limit, page, parse_json, uuid_cursor};
use super::{AdminState, Result, db};
use crate::redeliver;

/// The path of one webhook.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct WebhookPath {
    #[param(ignore)]
    tenant: String,
    /// The webhook's id (UUID) or its key.
    id: String,
}

/// The path of one ordering key of a webhook.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct KeyPath {
    #[param(ignore)]
    tenant: String,
    /// The webhook's id (UUID) or its key.
    id: String,
    /// The events' `ordering_key`.
    key: String,
}

/// One page of a list ordered by id.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct PageQuery {
    /// The `next_cursor` of the previous page (400 with `field: "cursor"` when not a
    /// UUID).
    #[param(format = Uuid)]
    cursor: Option<String>,
    /// Items at most (400 with `field: "limit"` outside 1 to 500).
    #[param(minimum = 1, maximum = 500, default = 50)]
    limit: Option<i64>,
}

page! {
    /// A page of webhooks in creation (id) order.
    WebhookPage of Webhook;
    /// Pass as `cursor` for the next page: the id of the last webhook. Null when this
    /// page holds fewer than `limit` items (a full last page still gets a cursor, whose
    /// next page is empty).
    #[schema(format = Uuid)]
}

/// List webhooks
///
/// One page of the tenant's webhooks, in creation order.
#[utoipa::path(get, path = "/webhooks", tag = "webhooks", params(PageQuery),
    responses(
        (status = 200, description = "A page of webhooks.", body = WebhookPage),
        BadParameter, Database,
    ))]
pub(super) async fn list_webhooks(
    State(s): State<AdminState>,
    Path(tenant): Path<String>,
    Params(q): Params<PageQuery>,
) -> Result<Json<WebhookPage>> {
    let limit = limit(q.limit)?;
    let after = uuid_cursor(q.cursor.as_deref())?;
    let data = webhooks::list(&db(&s).await?, &s.cipher, &tenant, after, limit).await?;
    Ok(WebhookPage::new(data, limit, |w| w.id.to_string()))
}

/// Create a webhook
///
/// The tenant comes from the path; a `tenant` in the body must equal it.
#[utoipa::path(post, path = "/webhooks", tag = "webhooks",
    request_body(content = NewWebhook, description = "The webhook to create."),
    responses(
        (status = 201, description = "The webhook created.", body = Webhook),
        BodyErrors, Conflict, Database,
    ))]
pub(super) async fn create_webhook(
    State(s): State<AdminState>,
    Path(tenant): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<Webhook>)> {
    let mut value: Value = body.parse()?;
    let Some(object) = value.as_object_mut() else {
        return Err(Invalid::new("body", "must be a JSON object").into());
    };
    match object.get("tenant") {
        Some(Value::String(t)) if *t == tenant => {}
        Some(_) => {
            return Err(Invalid::new("tenant", "differs from the tenant of the path").into());
        }
        None => {
            object.insert("tenant".into(), json!(tenant));
        }
    }
    let new: NewWebhook = parse_json(value.to_string().as_bytes())?;
    let webhook = webhooks::create(&db(&s).await?, &s.cipher, &new).await?;
    Ok((StatusCode::CREATED, Json(webhook)))
}

/// Get a webhook
///
/// By id or key.
#[utoipa::path(get, path = "/webhooks/{id}", tag = "webhooks", params(WebhookPath),
    responses(
        (status = 200, description = "The webhook.", body = Webhook),
        NotFound, Database,
    ))]
pub(super) async fn get_webhook(
    State(s): State<AdminState>,
    Path(p): Path<WebhookPath>,
) -> Result<Json<Webhook>> {
    let webhook = webhooks::get(&db(&s).await?, &s.cipher, &p.tenant, &p.id).await?;
    Ok(Json(webhook))
}

/// Update a webhook
///
/// Changes the fields given; the others stay. `enabled: true` also sends what the
/// webhook held while disabled (as `enable` does).
#[utoipa::path(patch, path = "/webhooks/{id}", tag = "webhooks", params(WebhookPath),
    request_body(content = WebhookUpdate, description = "The fields to change."),
    responses(
        (status = 200, description = "The webhook after the change.", body = Webhook),
        BodyErrors, NotFound, Conflict, Database, Broker,
    ))]
pub(super) async fn update_webhook(
    State(s): State<AdminState>,
    Path(p): Path<WebhookPath>,
    body: Body,
) -> Result<Json<Webhook>> {
    let change: WebhookUpdate = body.parse()?;
    let webhook = webhooks::update(&db(&s).await?, &s.cipher, &p.tenant, &p.id, &change).await?;
    if change.enabled == Some(true) {
        release(&s, &webhook).await?;
    }
    Ok(Json(webhook))
}

async fn set_enabled(s: &AdminState, p: &WebhookPath, enabled: bool) -> Result<Json<Webhook>> {
    let change = WebhookUpdate {
        enabled: Some(enabled),
        ..WebhookUpdate::default()
    };
    let webhook = webhooks::update(&db(s).await?, &s.cipher, &p.tenant, &p.id, &change).await?;
    release(s, &webhook).await?;
    Ok(Json(webhook))
}

/// A channel with publisher confirms on the api role's broker connection.
async fn confirm_channel(s: &AdminState) -> Result<lapin::Channel> {
    let connection = s.connection().await?;
    Ok(amqp::confirm_channel(&connection)
        .await
        .map_err(crate::AdminError::from)?)
}

/// After a change that may have made the webhook active: sends what it held.
async fn release(s: &AdminState, webhook: &Webhook) -> Result<()> {
    if hookrelay_model::matching::holds(webhook) {
        return Ok(());
    }
    let channel = confirm_channel(s).await?;
    let released = redeliver::release_held(&s.pool, &channel, &s.topology, webhook).await;
    let _ = channel.close(200, "done".into()).await;
    if let Some(summary) = released?
        && summary.requeued > 0
    {
        tracing::info!(webhook_id = %webhook.id, sent = summary.requeued, "held deliveries released");
    }
    Ok(())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"since": "2024-01-01T00:00:00Z", "dry_run": true}))]
pub(super) struct BackfillRequest {
    /// RFC 3339: stored events received at or after this.
    #[serde(with = "time::serde::rfc3339")]
    since: OffsetDateTime,
    /// RFC 3339: and before this (no end when missing).
    #[serde(default, with = "time::serde::rfc3339::option")]
    until: Option<OffsetDateTime>,
    /// Only events of these types; any when missing or empty.
    #[serde(default)]
    #[schema(schema_with = hookrelay_model::webhook::filter_list_schema)]
    event_types: Vec<String>,
    /// Count what would be created; change nothing.
    #[serde(default)]
    dry_run: bool,
}

/// Backfill a webhook
///
/// Creates and sends the deliveries the webhook would have had for stored events
/// received in `[since, until)` (events from before it existed, or that it filtered
/// out then), matched as the router matches them now. An event that already has a
/// delivery to the webhook is left alone, so running it twice sends nothing twice. A
/// paused webhook's new deliveries are held; a disabled webhook is refused (409).
#[utoipa::path(post, path = "/webhooks/{id}/backfill", tag = "webhooks", params(WebhookPath),
    request_body(content = BackfillRequest, description = "Which stored events."),
    responses(
        (status = 200, description = "What the backfill did, or would do on a dry run.",
            body = crate::backfill::Summary),
        BodyErrors, NotFound, Conflict, Database, Broker,
    ))]
pub(super) async fn backfill_webhook(
    State(s): State<AdminState>,
    Path(p): Path<WebhookPath>,
    body: Body,
) -> Result<Json<crate::backfill::Summary>> {
    let body: BackfillRequest = body.parse()?;
    hookrelay_model::webhook::validate_filters(Some(&body.event_types), None, None)?;
    let webhook = webhooks::get(&db(&s).await?, &s.cipher, &p.tenant, &p.id).await?;
    let channel = confirm_channel(&s).await?;
    let window = crate::backfill::Window {
        since: body.since,
        until: body.until,
        event_types: body.event_types,
    };
    let summary = crate::backfill::run(
        &s.pool,
        &channel,
        &s.topology,
        &webhook,
        &window,
        body.dry_run,
        &|_| {},
    )
    .await;
    let _ = channel.close(200, "done".into()).await;
    Ok(Json(summary?))
}

/// Pause a webhook
///
/// Holds its deliveries until it is resumed: events that match it still create
/// deliveries, in status `held`, and deliveries already queued are held when the
/// sender takes them. Nothing is attempted and nothing ages into the dead-letter
/// queue. Pausing a paused webhook changes nothing. Any request body is ignored.
#[utoipa::path(post, path = "/webhooks/{id}/pause", tag = "webhooks", params(WebhookPath),
    responses(
        (status = 200, description = "The webhook, paused (`paused_at` set).", body = Webhook),
        NotFound, Database,
    ))]
pub(super) async fn pause_webhook(
    State(s): State<AdminState>,
    Path(p): Path<WebhookPath>,
) -> Result<Json<Webhook>> {
    let webhook = webhooks::set_paused(&db(&s).await?, &s.cipher, &p.tenant, &p.id, true).await?;
    Ok(Json(webhook))
}

/// The webhook after a resume, and what the resume sent.
#[derive(Serialize, ToSchema)]
pub(super) struct Resumed {
    webhook: Webhook,
    /// The held deliveries, sent again oldest first.
    released: redeliver::Summary,
}

/// Resume a webhook
///
/// Clears `paused_at`, then sends every held delivery of the webhook again, oldest
/// first (each as a redelivery: a fresh round of attempts), unless it is disabled
/// (then they stay held until it is enabled). Calling it again (after an
/// interruption) sends what is still held and nothing twice. Any request body is
/// ignored.
#[utoipa::path(post, path = "/webhooks/{id}/resume", tag = "webhooks", params(WebhookPath),
    responses(
        (status = 200, description = "The webhook, resumed, and what was released.",
            body = Resumed),
        NotFound, Database, Broker,
    ))]
pub(super) async fn resume_webhook(
    State(s): State<AdminState>,
    Path(p): Path<WebhookPath>,
) -> Result<Json<Resumed>> {
    // Committed before the release: a router or sender holding at the same moment
    // waits for it (they read the webhook FOR SHARE), and its holds are then found.
    let webhook = webhooks::set_paused(&db(&s).await?, &s.cipher, &p.tenant, &p.id, false).await?;
    let channel = confirm_channel(&s).await?;
    let released = redeliver::release_held(&s.pool, &channel, &s.topology, &webhook).await;
    let _ = channel.close(200, "done".into()).await;
    Ok(Json(Resumed {
        released: released?.unwrap_or_default(),
        webhook,
    }))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DiscardHeldRequest {
    /// Count what would be discarded; change nothing.
    #[serde(default)]
    dry_run: bool,
}

/// What discarding a webhook's held deliveries did.
#[derive(Serialize, ToSchema)]
pub(super) struct DiscardedHeld {
    /// Held deliveries now failed (on a dry run: that would be).
    discarded: u64,
    dry_run: bool,
}

/// Discard a webhook's held deliveries
///
/// Every delivery the webhook holds (paused or disabled) becomes failed with
/// `last_error` `discarded by an operator while held`, and is never sent. An empty
/// body is the same as `{}`.
#[utoipa::path(post, path = "/webhooks/{id}/discard-held", tag = "webhooks",
    params(WebhookPath),
    request_body(content = Option<DiscardHeldRequest>,
        description = "Optional; `dry_run` counts only."),
    responses(
        (status = 200, description = "How many were (or would be) discarded.",
            body = DiscardedHeld),
        BodyErrors, NotFound, Database,
    ))]
pub(super) async fn discard_held(
    State(s): State<AdminState>,
    Path(p): Path<WebhookPath>,
    body: Body,
) -> Result<Json<DiscardedHeld>> {
    let dry_run = body
        .parse_optional::<DiscardHeldRequest>()?
        .unwrap_or_default()
        .dry_run;
    let db = db(&s).await?;
    let webhook = webhooks::get(&db, &s.cipher, &p.tenant, &p.id).await?;
    let discarded = deliveries::discard_held(&db, &p.tenant, webhook.id, dry_run).await?;
    Ok(Json(DiscardedHeld { discarded, dry_run }))
}

/// Enable a webhook
///
/// Clears `disabled_reason`, then (unless it is paused) sends the deliveries it held
/// while disabled, oldest first; 503 if the broker cannot take them now (the webhook
/// is enabled: call it again to send them). Any request body is ignored.
#[utoipa::path(post, path = "/webhooks/{id}/enable", tag = "webhooks", params(WebhookPath),
    responses(
        (status = 200, description = "The webhook, enabled.", body = Webhook),
        NotFound, Database, Broker,
    ))]
pub(super) async fn enable_webhook(
    State(s): State<AdminState>,
    Path(p): Path<WebhookPath>,
) -> Result<Json<Webhook>> {
    set_enabled(&s, &p, true).await
}

/// Disable a webhook
///
/// Sets `disabled_reason` to `disabled by an operator` (a disabled webhook keeps its
/// reason). Any request body is ignored.
#[utoipa::path(post, path = "/webhooks/{id}/disable", tag = "webhooks", params(WebhookPath),
    responses(
        (status = 200, description = "The webhook, disabled.", body = Webhook),
        NotFound, Database,
    ))]
pub(super) async fn disable_webhook(
    State(s): State<AdminState>,
    Path(p): Path<WebhookPath>,
) -> Result<Json<Webhook>> {
    set_enabled(&s, &p, false).await
}

/// Delete a webhook
#[utoipa::path(delete, path = "/webhooks/{id}", tag = "webhooks", params(WebhookPath),
    responses((status = 204, description = "Deleted."), NotFound, Database))]
pub(super) async fn delete_webhook(
    State(s): State<AdminState>,
    Path(p): Path<WebhookPath>,
) -> Result<StatusCode> {
    webhooks::delete(&db(&s).await?, &p.tenant, &p.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Optional body (an empty body means `{}`). Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RotateSigningSecretRequest {
    /// The new signing secret (`whsec_` + base64 of 24 to 64 bytes); generated (32
    /// random bytes) when missing or null.
    #[schema(value_type = Option<String>, pattern = r"^whsec_(?:(?:[A-Za-z0-9+/]{4}){8,20}(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)?|(?:[A-Za-z0-9+/]{4}){21}[A-Za-z0-9+/]{2}==)$")]
    signing_secret: Option<Secret>,
    /// Whether the current newest secret keeps signing alongside the new one until
    /// the next rotation.
    #[serde(default = "yes")]
    #[schema(default = true)]
    keep_previous: bool,
}

fn yes() -> bool {
    true
}

/// The webhook and its new signing key: an HMAC secret or an ed25519 public key.
#[derive(Serialize, ToSchema)]
pub(super) struct RotatedSigningSecret {
    webhook: Webhook,
    /// `hmac-sha256`: the new secret in clear, the only time it is shown. Absent
    /// for `ed25519`, whose private key is never shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(
        pattern = r"^whsec_(?:(?:[A-Za-z0-9+/]{4}){8,20}(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)?|(?:[A-Za-z0-9+/]{4}){21}[A-Za-z0-9+/]{2}==)$"
    )]
    signing_secret: Option<String>,
    /// `ed25519`: the new key pair's public key (`whpk_<base64>`), also the first
    /// of the webhook's `public_keys`. Absent for `hmac-sha256`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(pattern = r"^whpk_[A-Za-z0-9+/]{43}=$")]
    public_key: Option<String>,
}

/// Rotate a webhook's signing secret
///
/// Starts signing with a new key of the webhook's scheme: an HMAC secret (given or
/// generated) or, for `ed25519`, a generated key pair (a given `signing_secret` is
/// refused, 400); with `keep_previous` (the default) the current newest key keeps
/// signing too until the next rotation.
#[utoipa::path(post, path = "/webhooks/{id}/rotate-signing-secret", tag = "webhooks",
    params(WebhookPath),
    request_body(content = Option<RotateSigningSecretRequest>,
        description = "Optional; an empty body or `null` is the same as `{}`."),
    responses(
        (status = 200, description = "The webhook and the new secret (shown this once) \
            or public key.",
            body = RotatedSigningSecret),
        BodyErrors, NotFound, Conflict, Database,
    ))]
pub(super) async fn rotate_signing_secret(
    State(s): State<AdminState>,
    Path(p): Path<WebhookPath>,
    body: Body,
) -> Result<Json<RotatedSigningSecret>> {
    let body = body
        .parse_optional()?
        .unwrap_or(RotateSigningSecretRequest {
            signing_secret: None,
            keep_previous: true,
        });
    let (webhook, new) = webhooks::rotate_signing_secret(
        &db(&s).await?,
        &s.cipher,
        &p.tenant,
        &p.id,
        body.signing_secret,
        body.keep_previous,
    )
    .await?;
    let (signing_secret, public_key) = match new {
        NewKey::Secret(secret) => (Some(secret.expose().to_owned()), None),
        NewKey::PublicKey(public) => (None, Some(public)),
    };
    Ok(Json(RotatedSigningSecret {
        webhook,
        signing_secret,
        public_key,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"since": "2024-01-01T00:00:00Z"}))]
pub(super) struct RedeliverWebhookRequest {
    /// RFC 3339: failed deliveries of the webhook created at or after this are
    /// redelivered.
    #[serde(with = "time::serde::rfc3339")]
    since: OffsetDateTime,
}

/// Redeliver a webhook's failed deliveries
///
/// Gives every failed delivery of the webhook created at or after `since` a fresh
/// round of attempts. Answers 200 with the summary even when nothing was requeued.
#[utoipa::path(post, path = "/webhooks/{id}/redeliver", tag = "webhooks", params(WebhookPath),
    request_body(content = RedeliverWebhookRequest, description = "Which failed deliveries."),
    responses(
        (status = 200, description = "What was redelivered.", body = redeliver::Summary),
        BodyErrors, NotFound, Database, Broker,
    ))]
pub(super) async fn redeliver_webhook(
    State(s): State<AdminState>,
    Path(p): Path<WebhookPath>,
    body: Body,
) -> Result<Json<redeliver::Summary>> {
    let body: RedeliverWebhookRequest = body.parse()?;
    let webhook = webhooks::get(&db(&s).await?, &s.cipher, &p.tenant, &p.id).await?;
    let channel = confirm_channel(&s).await?;
    let summary = redeliver::failed_of_webhook(
        &s.pool,
        &channel,
        &s.topology,
        (&p.tenant, webhook.id, body.since),
        &|_, _| {},
    )
    .await;
    let _ = channel.close(200, "done".into()).await;
    Ok(Json(summary?))
}

/// List the blocked ordering keys of a webhook
///
/// For an ordered webhook with `on_failure: block`: each key whose next delivery waits
/// behind one that failed for good, oldest failure first. Resume or skip one with
/// `/keys/{key}/resume` or `/keys/{key}/skip`.
#[utoipa::path(get, path = "/webhooks/{id}/blocked-keys", tag = "webhooks", params(WebhookPath),
    responses(
        (status = 200, description = "The blocked keys.", body = Vec<hookrelay_store::turns::BlockedKey>),
        NotFound, Database,
    ))]
pub(super) async fn blocked_keys(
    State(s): State<AdminState>,
    Path(p): Path<WebhookPath>,
) -> Result<Json<Vec<hookrelay_store::turns::BlockedKey>>> {
    let db = db(&s).await?;
    let webhook = webhooks::get(&db, &s.cipher, &p.tenant, &p.id).await?;
    let keys = hookrelay_store::turns::blocked_of_webhook(&db, &p.tenant, webhook.id).await?;
    Ok(Json(keys))
}

/// Resume a blocked ordering key
///
/// For an ordered webhook with `on_failure: block`: the failed deliveries holding
/// the key back get a fresh round of attempts, oldest first; the key's later
/// deliveries follow them in order. 200 with the summary, even when nothing was
/// requeued; 404 when the webhook has no such key.
#[utoipa::path(post, path = "/webhooks/{id}/keys/{key}/resume", tag = "webhooks", params(KeyPath),
    responses(
        (status = 200, description = "What was redelivered.", body = redeliver::Summary),
        NotFound, Database, Broker,
    ))]
pub(super) async fn resume_key(
    State(s): State<AdminState>,
    Path(p): Path<KeyPath>,
) -> Result<Json<redeliver::Summary>> {
    let webhook = webhooks::get(&db(&s).await?, &s.cipher, &p.tenant, &p.id).await?;
    let channel = confirm_channel(&s).await?;
    let summary = redeliver::resume_key(
        &s.pool,
        &channel,
        &s.topology,
        (&p.tenant, webhook.id, &p.key),
    )
    .await;
    let _ = channel.close(200, "done".into()).await;
    Ok(Json(summary?))
}

/// How far a key's failures are skipped.
#[derive(Serialize, ToSchema)]
pub(super) struct SkippedKey {
    /// The key's failed deliveries numbered up to this (`seq`) hold nothing back.
    skipped_through: i64,
}

/// Skip what blocks an ordering key
///
/// For an ordered webhook with `on_failure: block`: the key's failed deliveries so
/// far stay failed (their dead letters stay in the queue) and hold nothing back; its
/// next delivery is sent. 404 when the webhook has no such key.
#[utoipa::path(post, path = "/webhooks/{id}/keys/{key}/skip", tag = "webhooks", params(KeyPath),
    responses(
        (status = 200, description = "How far the key's failures are skipped.", body = SkippedKey),
        NotFound, Database, Broker,
    ))]
pub(super) async fn skip_key(
    State(s): State<AdminState>,
    Path(p): Path<KeyPath>,
) -> Result<Json<SkippedKey>> {
    let webhook = webhooks::get(&db(&s).await?, &s.cipher, &p.tenant, &p.id).await?;
    let channel = confirm_channel(&s).await?;
    let skipped = redeliver::skip_key(
        &s.pool,
        &channel,
        &s.topology,
        (&p.tenant, webhook.id, &p.key),
    )
    .await;
    let _ = channel.close(200, "done".into()).await;
    Ok(Json(SkippedKey {
        skipped_through: skipped?,
    }))
}
