//! The admin API: `/v1/tenants/{tenant}/...`, `/v1/dead-letter`, `/v1/stats` and
//! `/v1/event-types`, JSON
//! in and out.
//! Authentication is applied by whoever mounts it.
//!
//! Each route is declared once, with its OpenAPI description (`#[utoipa::path]` on
//! its handler, mounted with `routes!`): the router and the document cannot list
//! different routes. Every tenant route reads and writes within the tenant of its
//! path only.

mod audit;
mod dead_letter;
mod error;
mod event_types;
mod events;
mod extract;
mod portal;
mod series;
mod stats;
mod tenants;
mod webhooks;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use deadpool_postgres::Pool;
use hookrelay_amqp::{self as amqp, ConnectRetry};
use hookrelay_model::Topology;
use hookrelay_store::{Cipher, StoreError};
use lapin::Connection;
use tokio::sync::Mutex;
use utoipa::openapi::path::{Operation, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{OpenApi, Required};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use audit::{record_change, record_changes};
pub use error::{Answer, ApiError};

use crate::AdminError;

type Result<T> = std::result::Result<T, ApiError>;

#[derive(Clone)]
pub struct AdminState {
    pub pool: Pool,
    pub topology: Topology,
    pub amqp_url: String,
    pub default_retention_days: i32,
    /// Seals and opens webhook secrets (`HOOKRELAY_SECRET_KEY`).
    pub cipher: Cipher,
    /// Where portal links point and how long they last.
    pub portal: crate::portal::Links,
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
            portal: crate::portal::Links::default(),
            connection: Arc::default(),
        }
    }

    /// The same state, its portal links pointing and lasting as `links` says.
    pub fn with_portal(self, links: crate::portal::Links) -> Self {
        Self {
            portal: links,
            ..self
        }
    }

    /// The admin connection to RabbitMQ, opened again if it dropped.
    pub async fn connection(&self) -> std::result::Result<Arc<Connection>, AdminError> {
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

/// Every admin route, each with its OpenAPI description.
pub fn routes() -> OpenApiRouter<AdminState> {
    let mut tenant = OpenApiRouter::new()
        .routes(routes!(tenants::get_tenant, tenants::put_tenant))
        .routes(routes!(webhooks::list_webhooks, webhooks::create_webhook))
        .routes(routes!(
            webhooks::get_webhook,
            webhooks::update_webhook,
            webhooks::delete_webhook
        ))
        .routes(routes!(webhooks::backfill_webhook))
        .routes(routes!(webhooks::pause_webhook))
        .routes(routes!(webhooks::discard_held))
        .routes(routes!(webhooks::resume_webhook))
        .routes(routes!(webhooks::enable_webhook))
        .routes(routes!(webhooks::disable_webhook))
        .routes(routes!(webhooks::redeliver_webhook))
        .routes(routes!(webhooks::rotate_signing_secret))
        .routes(routes!(webhooks::blocked_keys))
        .routes(routes!(webhooks::resume_key))
        .routes(routes!(webhooks::skip_key))
        .routes(routes!(tenants::list_tokens, tenants::create_token))
        .routes(routes!(tenants::revoke_token))
        .routes(routes!(tenants::list_environments))
        .routes(routes!(tenants::get_environment, tenants::put_environment))
        .routes(routes!(tenants::delete_variable))
        .routes(routes!(events::list_events))
        .routes(routes!(events::get_event))
        .routes(routes!(events::list_deliveries))
        .routes(routes!(events::get_delivery))
        .routes(routes!(events::list_attempts))
        .routes(routes!(events::redeliver_delivery))
        .routes(routes!(
            portal::list_portal_sessions,
            portal::create_portal_session
        ))
        .routes(routes!(portal::revoke_portal_session))
        .routes(routes!(portal::get_portal_theme, portal::put_portal_theme))
        .routes(routes!(series::get_series));

    each_operation(tenant.get_openapi_mut(), |_, operation| {
        document_tenant_of_path(operation)
    });
    let tenant = tenant.route_layer(middleware::from_fn(tenant_of_path));
    let dead_letter = OpenApiRouter::new()
        .routes(routes!(dead_letter::list_dead_letters))
        .routes(routes!(dead_letter::summarize_dead_letters))
        .routes(routes!(dead_letter::replay_dead_letters))
        .routes(routes!(dead_letter::purge_dead_letters))
        .routes(routes!(dead_letter::show_dead_letter));
    let stats = OpenApiRouter::new().routes(routes!(stats::get_stats));
    let audit = OpenApiRouter::new().routes(routes!(audit::list_audit));
    let catalog = OpenApiRouter::new()
        .routes(routes!(
            event_types::list_event_types,
            event_types::create_event_type
        ))
        .routes(routes!(
            event_types::get_event_type,
            event_types::update_event_type,
            event_types::delete_event_type
        ));
    let mut all = OpenApiRouter::with_openapi(document())
        .nest("/v1/tenants/{tenant}", tenant)
        .nest("/v1/dead-letter", dead_letter)
        .nest("/v1/stats", stats)
        .nest("/v1/audit", audit)
        .nest("/v1/event-types", catalog);
    each_operation(all.get_openapi_mut(), |_, operation| {
        document_text_rule(operation)
    });
    all
}

/// What `extract::Path` and `extract::Params` check of every path and query value,
/// stated on each string parameter: no control character, at most
/// `MAX_PARAM_CHARS` characters (a parameter with its own pattern or format keeps it).
fn document_text_rule(operation: &mut Operation) {
    use hookrelay_model::text;
    use utoipa::openapi::RefOr;
    use utoipa::openapi::schema::{Schema, SchemaType};
    for parameter in operation.parameters.iter_mut().flatten() {
        let RefOr::T(parameter) = parameter else {
            continue;
        };
        let Some(RefOr::T(Schema::Object(schema))) = parameter.schema.as_mut() else {
            continue;
        };
        let string = match &schema.schema_type {
            SchemaType::Type(t) => *t == Type::String,
            SchemaType::Array(types) => types.contains(&Type::String),
            SchemaType::AnyValue => false,
        };
        if !string || schema.format.is_some() || schema.enum_values.is_some() {
            continue;
        }
        if schema.pattern.is_none() {
            schema.pattern = Some(text::NO_CONTROL_PATTERN.to_owned());
        }
        let max = schema
            .max_length
            .map_or(text::MAX_PARAM_CHARS, |m| m.min(text::MAX_PARAM_CHARS));
        schema.max_length = Some(max);
        if parameter.parameter_in == ParameterIn::Path {
            schema.min_length.get_or_insert(1);
        }
    }
}

/// What the admin routes share in the document: their tags, the error body and the
/// error answers they refer to.
fn document() -> OpenApi {
    use utoipa::OpenApi as _;
    #[derive(utoipa::OpenApi)]
    #[openapi(
        tags(
            (name = "tenants", description = "Per-tenant settings."),
            (name = "webhooks", description = "A tenant's stored webhooks."),
            (name = "tokens", description = "Tenant tokens; operator's token only."),
            (name = "environments",
                description = "Variables for `{{NAME}}` placeholders in webhook URLs."),
            (name = "events", description = "The events API: what a tenant's upstreams published."),
            (name = "deliveries", description = "Deliveries, their attempts, and redelivery."),
            (name = "dead-letter", description = "The dead-letter queue; operator's token only."),
            (name = "event-types",
                description = "The event catalog: types, payload schemas, examples. Any token \
                    reads it; the operator's token changes it."),
            (name = "stats",
                description = "Recent deliveries and dead letters per webhook; operator's token only."),
            (name = "portal", description = "Customer portal links and the tenant's portal theme."),
            (name = "audit",
                description = "Every change made through the API, console and portal; operator's token only."),
        ),
        components(schemas(hookrelay_model::error::ErrorBody))
    )]
    struct Admin;
    let mut doc = Admin::openapi();
    if let Some(components) = doc.components.as_mut() {
        components
            .responses
            .extend(Answer::ALL.into_iter().map(Answer::component));
    }
    doc
}

/// Calls `f` with the path and each operation of the document.
pub fn each_operation(doc: &mut OpenApi, mut f: impl FnMut(&str, &mut Operation)) {
    for (path, item) in doc.paths.paths.iter_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.options,
            &mut item.head,
            &mut item.patch,
            &mut item.trace,
            &mut item.query,
        ];
        for operation in operations.into_iter().flatten() {
            f(path, operation);
        }
    }
}

/// Lists `answer` among an operation's responses, unless its status already has one.
pub fn document_answer(operation: &mut Operation, answer: Answer) {
    let (status, reference) = answer.reference();
    operation
        .responses
        .responses
        .entry(status)
        .or_insert(reference);
}

/// Every tenant route checks the tenant of its path first: a malformed one is a 400
/// naming `tenant`, whatever the route.
async fn tenant_of_path(
    axum::extract::Path(params): axum::extract::Path<BTreeMap<String, String>>,
    request: Request,
    next: Next,
) -> Response {
    match params.get("tenant").map(|t| check_tenant(t)) {
        Some(Err(e)) => e.into_response(),
        _ => next.run(request).await,
    }
}

fn check_tenant(tenant: &str) -> Result<()> {
    Ok(hookrelay_model::envelope::check_tenant(tenant)?)
}

/// What `tenant_of_path` adds to each operation: the parameter it checks, and its 400.
fn document_tenant_of_path(operation: &mut Operation) {
    let tenant = ParameterBuilder::new()
        .name("tenant")
        .parameter_in(ParameterIn::Path)
        .required(Required::True)
        .description(Some(
            "The tenant: ASCII letters, digits, `-` and `_`, 1 to 120 bytes. Every route \
             reads and writes within this tenant only.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[A-Za-z0-9_-]{1,120}$")),
        ))
        .build();
    operation
        .parameters
        .get_or_insert_with(Vec::new)
        .insert(0, tenant.into());
    document_answer(operation, Answer::BadRequest);
}

async fn db(state: &AdminState) -> Result<deadpool_postgres::Object> {
    Ok(state.pool.get().await.map_err(StoreError::from)?)
}
