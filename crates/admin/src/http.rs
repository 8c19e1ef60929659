//! The admin API: `/v1/tenants/{tenant}/...` and `/v1/dead-letter`, JSON in and out,
//! described by `/openapi.json`. Authentication is applied by whoever mounts it.
//!
//! Every tenant route reads and writes within the tenant of its path only.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use deadpool_postgres::Pool;
use hookrelay_amqp::{self as amqp, ConnectRetry};
use hookrelay_model::webhook::{NewWebhook, WebhookUpdate};
use hookrelay_model::{Invalid, Topology};
use hookrelay_store::deliveries::{self, DeliveryFilter, DeliveryStatus};
use hookrelay_store::events::{self, Cursor, EventFilter};
use hookrelay_store::webhooks;
use hookrelay_store::{Cipher, StoreError, environments, tenants, tokens};
use lapin::Connection;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::dlq::{self, Dlq, Filter, ReplayOptions};
use crate::{AdminError, redeliver};

mod error;

pub use error::ApiError;

/// The OpenAPI description of every route, served at `/openapi.json`.
pub const OPENAPI: &str = include_str!("../../../docs/openapi.json");
/// The JSON Schema of the event envelope, which the OpenAPI document refers to.
pub const ENVELOPE_SCHEMA: &str = include_str!("../../../docs/event-envelope.schema.json");

const DEFAULT_LIMIT: i64 = 50;
const MAX_LIMIT: i64 = 500;

#[derive(Clone)]
pub struct AdminState {
    pub pool: Pool,
    pub topology: Topology,
    pub amqp_url: String,
    pub default_retention_days: i32,
    /// Seals and opens webhook secrets (`HOOKRELAY_SECRET_KEY`).
    pub cipher: Cipher,
    /// Opened on first use and again after it drops: admin calls are rare.
    connection: Arc<Mutex<Option<Arc<Connection>>>>,
}

impl AdminState {
    pub fn new(
        pool: Pool,
        cipher: Cipher,
        topology: Topology,
        amqp_url: String,
        retention_days: i32,
    ) -> Self {
        Self {
            pool,
            cipher,
            topology,
            amqp_url,
            default_retention_days: retention_days,
            connection: Arc::default(),
        }
    }

    async fn connection(&self) -> Result<Arc<Connection>, AdminError> {
        let mut slot = self.connection.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| c.status().connected()) {
            return Ok(Arc::clone(c));
        }
        let retry = ConnectRetry {
            attempts: 3,
            max_delay: std::time::Duration::from_secs(1),
        };
        let c = Arc::new(amqp::connect(&self.amqp_url, "hookrelay-admin", retry).await?);
        *slot = Some(Arc::clone(&c));
        Ok(c)
    }
}

pub fn router(state: AdminState) -> Router {
    let tenant = Router::new()
        .route("/", get(get_tenant).put(put_tenant))
        .route("/webhooks", get(list_webhooks).post(create_webhook))
        .route(
            "/webhooks/{id}",
            get(get_webhook)
                .patch(update_webhook)
                .delete(delete_webhook),
        )
        .route("/webhooks/{id}/enable", post(enable_webhook))
        .route("/webhooks/{id}/disable", post(disable_webhook))
        .route("/webhooks/{id}/redeliver", post(redeliver_webhook))
        .route(
            "/webhooks/{id}/rotate-signing-secret",
            post(rotate_signing_secret),
        )
        .route("/tokens", get(list_tokens).post(create_token))
        .route("/tokens/{name}", delete(revoke_token))
        .route("/environments", get(list_environments))
        .route(
            "/environments/{name}",
            get(get_environment).put(put_environment),
        )
        .route(
            "/environments/{name}/variables/{variable}",
            delete(delete_variable),
        )
        .route("/events", get(list_events))
        .route("/events/{id}", get(get_event))
        .route("/deliveries", get(list_deliveries))
        .route("/deliveries/{id}", get(get_delivery))
        .route("/deliveries/{id}/attempts", get(list_attempts))
        .route("/deliveries/{id}/redeliver", post(redeliver_delivery))
        .route_layer(middleware::from_fn(tenant_of_path));
    let dead_letter = Router::new()
        .route("/", get(list_dead_letters))
        .route("/replay", post(replay_dead_letters))
        .route("/purge", post(purge_dead_letters))
        .route("/{id}", get(show_dead_letter));
    Router::new()
        .nest("/v1/tenants/{tenant}", tenant)
        .nest("/v1/dead-letter", dead_letter)
        .with_state(state)
}

/// The OpenAPI document and the event envelope's JSON Schema it refers to, open to
/// all: they describe, they reveal no data.
pub fn openapi_router() -> Router {
    let json = |text: &'static str| {
        get(move || async move {
            (
                [(axum::http::header::CONTENT_TYPE, "application/json")],
                text,
            )
        })
    };
    Router::new()
        .route("/openapi.json", json(OPENAPI))
        .route("/event-envelope.schema.json", json(ENVELOPE_SCHEMA))
}

type ApiResult = Result<Response, ApiError>;

fn ok<T: Serialize>(value: T) -> ApiResult {
    Ok(Json(value).into_response())
}

fn created<T: Serialize>(value: T) -> ApiResult {
    Ok((StatusCode::CREATED, Json(value)).into_response())
}

/// Parses a JSON body, naming the field that was wrong.
fn parse_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, ApiError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner().to_string();
        let field = hookrelay_model::envelope::field_of(&path, &inner).map(str::to_owned);
        ApiError::bad_request(format!("invalid request body at `{path}`: {inner}"), field)
    })
}

/// The query string, parsed like axum's `Query` but refused as a JSON error that
/// names the parameter.
struct Params<T>(T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Query::try_from_uri(&parts.uri)
            .map(|Query(q)| Params(q))
            .map_err(|rejection| {
                let text = rejection.body_text();
                let text = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                // `path: message`, or the message alone for the query as a whole.
                let (path, message) = match text.split_once(": ") {
                    Some((path, message)) if !path.contains(' ') => (path, message),
                    _ => (".", text),
                };
                let field = hookrelay_model::envelope::field_of(path, message).map(str::to_owned);
                ApiError::bad_request(format!("query: {text}"), field)
            })
    }
}

/// Every tenant route checks the tenant of its path first: a malformed one is a 400
/// naming `tenant`, whatever the route.
async fn tenant_of_path(
    Path(params): Path<BTreeMap<String, String>>,
    request: Request,
    next: Next,
) -> Response {
    match params.get("tenant").map(|t| check_tenant(t)) {
        Some(Err(e)) => e.into_response(),
        _ => next.run(request).await,
    }
}

fn check_tenant(tenant: &str) -> Result<(), ApiError> {
    Ok(hookrelay_model::envelope::check_tenant(tenant)?)
}

fn limit(given: Option<i64>) -> Result<i64, Invalid> {
    match given {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(Invalid::new("limit", format!("must be 1 to {MAX_LIMIT}"))),
    }
}

fn parse_time(field: &str, value: Option<&str>) -> Result<Option<OffsetDateTime>, Invalid> {
    value
        .map(|v| {
            OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                .map_err(|e| Invalid::new(field, format!("`{v}` is not an RFC 3339 time: {e}")))
        })
        .transpose()
}

fn parse_uuid(field: &str, value: &str) -> Result<Uuid, Invalid> {
    Uuid::parse_str(value).map_err(|_| Invalid::new(field, format!("`{value}` is not a UUID")))
}

/// A page of a list: `next_cursor` is null once a page comes back short.
#[derive(Serialize)]
struct Page<T> {
    data: Vec<T>,
    next_cursor: Option<String>,
}

/// The answer of a list route: a full page names the cursor of its last item.
fn page<T: Serialize>(data: Vec<T>, limit: i64, cursor: impl Fn(&T) -> String) -> ApiResult {
    let next_cursor = (data.len() as i64 == limit)
        .then(|| data.last().map(cursor))
        .flatten();
    ok(Page { data, next_cursor })
}

/// The `cursor` of lists ordered by id.
fn uuid_cursor(cursor: Option<&str>) -> Result<Option<Uuid>, Invalid> {
    cursor.map(|c| parse_uuid("cursor", c)).transpose()
}

async fn db(state: &AdminState) -> Result<deadpool_postgres::Object, ApiError> {
    Ok(state.pool.get().await.map_err(StoreError::from)?)
}

// ---- tenants

async fn get_tenant(State(s): State<AdminState>, Path(tenant): Path<String>) -> ApiResult {
    let settings = tenants::get(&db(&s).await?, &tenant).await?;
    ok(json!({
        "tenant": settings.tenant,
        "retention_days": settings.retention_days,
        "effective_retention_days": settings.retention_days.unwrap_or(s.default_retention_days),
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TenantBody {
    retention_days: Option<i32>,
}

async fn put_tenant(
    State(s): State<AdminState>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body: TenantBody = parse_body(&body)?;
    tenants::set_retention(&db(&s).await?, &tenant, body.retention_days).await?;
    get_tenant(State(s), Path(tenant)).await
}

// ---- webhooks

#[derive(Deserialize)]
struct PageQuery {
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn list_webhooks(
    State(s): State<AdminState>,
    Path(tenant): Path<String>,
    Params(q): Params<PageQuery>,
) -> ApiResult {
    let limit = limit(q.limit)?;
    let after = uuid_cursor(q.cursor.as_deref())?;
    let data = webhooks::list(&db(&s).await?, &s.cipher, &tenant, after, limit).await?;
    page(data, limit, |w| w.id.to_string())
}

async fn create_webhook(
    State(s): State<AdminState>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> ApiResult {
    let mut value: Value = parse_body(&body)?;
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
    let new: NewWebhook = parse_body(&Bytes::from(value.to_string()))?;
    let webhook = webhooks::create(&db(&s).await?, &s.cipher, &new).await?;
    created(webhook)
}

async fn get_webhook(
    State(s): State<AdminState>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult {
    let webhook = webhooks::get(&db(&s).await?, &s.cipher, &tenant, &id).await?;
    ok(webhook)
}

async fn update_webhook(
    State(s): State<AdminState>,
    Path((tenant, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let change: WebhookUpdate = parse_body(&body)?;
    let webhook = webhooks::update(&db(&s).await?, &s.cipher, &tenant, &id, &change).await?;
    ok(webhook)
}

async fn set_enabled(s: &AdminState, tenant: &str, id: &str, enabled: bool) -> ApiResult {
    let change = WebhookUpdate {
        enabled: Some(enabled),
        ..WebhookUpdate::default()
    };
    let webhook = webhooks::update(&db(s).await?, &s.cipher, tenant, id, &change).await?;
    ok(webhook)
}

async fn enable_webhook(
    State(s): State<AdminState>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult {
    set_enabled(&s, &tenant, &id, true).await
}

async fn disable_webhook(
    State(s): State<AdminState>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult {
    set_enabled(&s, &tenant, &id, false).await
}

async fn delete_webhook(
    State(s): State<AdminState>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult {
    webhooks::delete(&db(&s).await?, &tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RotateBody {
    signing_secret: Option<hookrelay_model::webhook::Secret>,
    #[serde(default = "yes")]
    keep_previous: bool,
}

fn yes() -> bool {
    true
}

async fn rotate_signing_secret(
    State(s): State<AdminState>,
    Path((tenant, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let body: RotateBody = if body.is_empty() {
        RotateBody {
            signing_secret: None,
            keep_previous: true,
        }
    } else {
        parse_body(&body)?
    };
    let (webhook, secret) = webhooks::rotate_signing_secret(
        &db(&s).await?,
        &s.cipher,
        &tenant,
        &id,
        body.signing_secret,
        body.keep_previous,
    )
    .await?;
    // The only time the new secret is shown.
    ok(json!({ "webhook": webhook, "signing_secret": secret.expose() }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RedeliverBody {
    #[serde(with = "time::serde::rfc3339")]
    since: OffsetDateTime,
}

async fn redeliver_webhook(
    State(s): State<AdminState>,
    Path((tenant, id)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let body: RedeliverBody = parse_body(&body)?;
    let webhook = webhooks::get(&db(&s).await?, &s.cipher, &tenant, &id).await?;
    let connection = s.connection().await?;
    let channel = amqp::confirm_channel(&connection)
        .await
        .map_err(AdminError::from)?;
    let summary = redeliver::failed_of_webhook(
        &s.pool,
        &channel,
        &s.topology,
        &tenant,
        webhook.id,
        body.since,
    )
    .await;
    let _ = channel.close(200, "done".into()).await;
    ok(summary?)
}

// ---- tenant tokens (the operator's token only: see the api's auth)

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenBody {
    name: String,
}

async fn create_token(
    State(s): State<AdminState>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> ApiResult {
    let body: TokenBody = parse_body(&body)?;
    let (token, secret) = tokens::create(&db(&s).await?, &tenant, &body.name).await?;
    // The only time the token is shown.
    created(json!({
        "id": token.id,
        "tenant": token.tenant,
        "name": token.name,
        "created_at": token.created_at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        "token": secret.expose(),
    }))
}

async fn list_tokens(State(s): State<AdminState>, Path(tenant): Path<String>) -> ApiResult {
    let data = tokens::list(&db(&s).await?, &tenant).await?;
    ok(json!({ "data": data }))
}

async fn revoke_token(
    State(s): State<AdminState>,
    Path((tenant, name)): Path<(String, String)>,
) -> ApiResult {
    tokens::revoke(&db(&s).await?, &tenant, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

// ---- environments

async fn list_environments(State(s): State<AdminState>, Path(tenant): Path<String>) -> ApiResult {
    let data = environments::list(&db(&s).await?, &tenant).await?;
    ok(json!({ "data": data }))
}

async fn get_environment(
    State(s): State<AdminState>,
    Path((tenant, name)): Path<(String, String)>,
) -> ApiResult {
    let all = environments::list(&db(&s).await?, &tenant).await?;
    let found = all.into_iter().find(|e| e.name == name).ok_or_else(|| {
        StoreError::not_found(format!("environment `{name}` in tenant `{tenant}`"))
    })?;
    ok(found)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvironmentBody {
    variables: BTreeMap<String, String>,
}

async fn put_environment(
    State(s): State<AdminState>,
    Path((tenant, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    let body: EnvironmentBody = parse_body(&body)?;
    let environment = environments::set(&db(&s).await?, &tenant, &name, &body.variables).await?;
    ok(environment)
}

async fn delete_variable(
    State(s): State<AdminState>,
    Path((tenant, name, variable)): Path<(String, String, String)>,
) -> ApiResult {
    let environment = environments::unset(&db(&s).await?, &tenant, &name, &[variable]).await?;
    ok(environment)
}

// ---- events

#[derive(Deserialize)]
struct EventsQuery {
    session_id: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn list_events(
    State(s): State<AdminState>,
    Path(tenant): Path<String>,
    Params(q): Params<EventsQuery>,
) -> ApiResult {
    let limit = limit(q.limit)?;
    let filter = EventFilter {
        session_id: q.session_id,
        event_type: q.event_type,
        since: parse_time("since", q.since.as_deref())?,
        until: parse_time("until", q.until.as_deref())?,
    };
    let after = q.cursor.as_deref().map(Cursor::decode).transpose()?;
    let data = events::list(&db(&s).await?, &tenant, &filter, after.as_ref(), limit).await?;
    page(data, limit, |e| Cursor::of(e).encode())
}

async fn get_event(
    State(s): State<AdminState>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult {
    let db = db(&s).await?;
    let event = events::find(&db, &tenant, &id).await?;
    let deliveries = deliveries::for_event(&db, &tenant, &id).await?;
    ok(json!({ "event": event, "deliveries": deliveries }))
}

// ---- deliveries

#[derive(Deserialize)]
struct DeliveriesQuery {
    event_id: Option<String>,
    webhook_id: Option<String>,
    status: Option<String>,
    since: Option<String>,
    cursor: Option<String>,
    limit: Option<i64>,
}

async fn list_deliveries(
    State(s): State<AdminState>,
    Path(tenant): Path<String>,
    Params(q): Params<DeliveriesQuery>,
) -> ApiResult {
    let limit = limit(q.limit)?;
    let status = q
        .status
        .as_deref()
        .map(|v| {
            serde_json::from_value::<DeliveryStatus>(json!(v)).map_err(|_| {
                Invalid::new(
                    "status",
                    format!("`{v}` is not pending, delivered or failed"),
                )
            })
        })
        .transpose()?;
    let filter = DeliveryFilter {
        event_id: q.event_id,
        webhook_id: q
            .webhook_id
            .as_deref()
            .map(|w| parse_uuid("webhook_id", w))
            .transpose()?,
        status,
        since: parse_time("since", q.since.as_deref())?,
    };
    let after = uuid_cursor(q.cursor.as_deref())?;
    let data = deliveries::list(&db(&s).await?, &tenant, &filter, after, limit).await?;
    page(data, limit, |d| d.id.to_string())
}

async fn get_delivery(
    State(s): State<AdminState>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult {
    let id = parse_uuid("id", &id)?;
    let delivery = deliveries::get(&db(&s).await?, &tenant, id).await?;
    ok(delivery)
}

async fn list_attempts(
    State(s): State<AdminState>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult {
    let id = parse_uuid("id", &id)?;
    let db = db(&s).await?;
    // The delivery must be the tenant's: 404 otherwise, never another's attempts.
    deliveries::get(&db, &tenant, id).await?;
    let data = deliveries::attempts(&db, id).await?;
    ok(json!({ "data": data }))
}

async fn redeliver_delivery(
    State(s): State<AdminState>,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult {
    let id = parse_uuid("id", &id)?;
    // An unknown delivery is a 404 even while the broker is down.
    deliveries::get(&db(&s).await?, &tenant, id).await?;
    let connection = s.connection().await?;
    let channel = amqp::confirm_channel(&connection)
        .await
        .map_err(AdminError::from)?;
    let result = redeliver::one(&s.pool, &channel, &s.topology, &tenant, id).await;
    let _ = channel.close(200, "done".into()).await;
    let done = result?;
    if done.outcome != redeliver::Outcome::Requeued {
        let outcome = serde_json::to_value(done.outcome)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        return Err(AdminError::Conflict(format!(
            "delivery `{id}` is not failed ({outcome}); nothing to redeliver"
        ))
        .into());
    }
    Ok((StatusCode::ACCEPTED, Json(done)).into_response())
}

// ---- dead-letter queue

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DeadLetterQuery {
    tenant: Option<String>,
    webhook: Option<String>,
    reason: Option<String>,
    limit: Option<i64>,
}

impl DeadLetterQuery {
    fn filter(&self) -> Filter {
        Filter {
            tenant: self.tenant.clone(),
            webhook: self.webhook.clone(),
            reason: self.reason.clone(),
            ids: Vec::new(),
        }
    }
}

async fn list_dead_letters(
    State(s): State<AdminState>,
    Params(q): Params<DeadLetterQuery>,
) -> ApiResult {
    let limit = usize::try_from(limit(q.limit)?).unwrap_or(usize::MAX);
    let connection = s.connection().await?;
    let dlq = Dlq {
        connection: &connection,
        topology: &s.topology,
        pool: &s.pool,
    };
    let data = dlq::list(&dlq, &q.filter(), limit).await?;
    ok(json!({ "data": data }))
}

async fn show_dead_letter(State(s): State<AdminState>, Path(id): Path<String>) -> ApiResult {
    let connection = s.connection().await?;
    let dlq = Dlq {
        connection: &connection,
        topology: &s.topology,
        pool: &s.pool,
    };
    ok(dlq::show(&dlq, &id).await?)
}

/// The body of replay and purge: a filter and how to act.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DeadLetterAction {
    tenant: Option<String>,
    webhook: Option<String>,
    reason: Option<String>,
    /// Message, delivery or event ids.
    #[serde(default)]
    ids: Vec<String>,
    #[serde(default)]
    dry_run: bool,
    /// Replay: messages per second at most.
    rate: Option<f64>,
    /// Purge: must be true (unless `dry_run`).
    #[serde(default)]
    confirm: bool,
}

impl DeadLetterAction {
    fn filter(&self) -> Filter {
        Filter {
            tenant: self.tenant.clone(),
            webhook: self.webhook.clone(),
            reason: self.reason.clone(),
            ids: self.ids.clone(),
        }
    }
}

async fn replay_dead_letters(State(s): State<AdminState>, body: Bytes) -> ApiResult {
    let action: DeadLetterAction = parse_body(&body)?;
    if action
        .rate
        .is_some_and(|r| r.is_nan() || r <= 0.0 || r.is_infinite())
    {
        return Err(Invalid::new("rate", "must be above 0 messages per second").into());
    }
    let connection = s.connection().await?;
    let dlq = Dlq {
        connection: &connection,
        topology: &s.topology,
        pool: &s.pool,
    };
    let options = ReplayOptions {
        dry_run: action.dry_run,
        rate: action.rate,
        progress: &|_, _| {},
    };
    ok(dlq::replay(&dlq, &action.filter(), &options).await?)
}

async fn purge_dead_letters(State(s): State<AdminState>, body: Bytes) -> ApiResult {
    let action: DeadLetterAction = parse_body(&body)?;
    if !action.confirm && !action.dry_run {
        return Err(Invalid::new(
            "confirm",
            "purging deletes messages for good; send \"confirm\": true (or \"dry_run\": true)",
        )
        .into());
    }
    let connection = s.connection().await?;
    let dlq = Dlq {
        connection: &connection,
        topology: &s.topology,
        pool: &s.pool,
    };
    ok(dlq::purge(&dlq, &action.filter(), action.dry_run).await?)
}
