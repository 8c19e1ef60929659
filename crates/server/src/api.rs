//! The HTTP server of every `serve` process: `/healthz`, `/readyz` and `/metrics`
//! always; with the api role, the ingest and admin routes under `/v1` (bearer auth),
//! `/openapi.json` and `/event-envelope.schema.json`.
//!
//! Every route is declared once with its OpenAPI description ([`routes`]): `app`
//! serves the routers and `/openapi.json` the document, both from the same value.

mod browser;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router};
use deadpool_postgres::Pool;
use hookrelay_admin::access;
use hookrelay_admin::http::{self, AdminState, Answer, ApiError, document_answer, each_operation};
use hookrelay_metrics::Metrics;
use hookrelay_model::Event;
use hookrelay_model::access::Caller;
use hookrelay_model::catalog::SchemaValidation;
use hookrelay_producer::Publisher;
use hookrelay_producer::ingest::{self, Checked, IngestState, PayloadCheck};
use hookrelay_store::event_types::{SCHEMA_CACHE_TTL, Schemas};
use serde::Serialize;
use serde_json::json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, Ref, RefOr};
use utoipa::{Modify, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

#[derive(Clone)]
pub struct ApiState {
    /// Present when this process runs the api role.
    pub publisher: Option<Arc<Publisher>>,
    /// The admin API; present with the api role.
    pub admin: Option<AdminState>,
    pub pool: Pool,
    pub api_token: Option<String>,
    pub max_event_bytes: usize,
    pub metrics: Arc<Metrics>,
    /// Consuming roles in this process; `/readyz` checks each consumes.
    pub consumers: Vec<&'static str>,
    /// The customer portal's theme and framing (`HOOKRELAY_PORTAL_*`).
    pub portal: hookrelay_portal::Settings,
    /// `enforce`: the ingest route refuses an event whose payload breaks its type's
    /// schema (`HOOKRELAY_SCHEMA_VALIDATION`; `warn` is the router's alone).
    pub schema_validation: SchemaValidation,
}

/// Every route of the HTTP server, by the state each needs, and the OpenAPI document
/// that describes them all.
struct Routes {
    probes: Router<ApiState>,
    documents: Router<Documents>,
    ingest: Router<IngestState>,
    admin: Router<AdminState>,
    doc: OpenApi,
}

fn routes() -> Routes {
    let (ingest, ingest_doc) = ingest::routes().split_for_parts();
    let (admin, admin_doc) = http::routes().split_for_parts();
    let mut v1 = ingest_doc.merge_from(admin_doc);
    each_operation(&mut v1, document_require_token);
    document_catalog_reads(&mut v1);
    document_browser_guard(&mut v1);
    let (probes, mut probes_doc) = OpenApiRouter::with_openapi(probes_document())
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .split_for_parts();
    let (documents, documents_doc) = OpenApiRouter::new()
        .routes(routes!(openapi))
        .routes(routes!(event_envelope_schema))
        .split_for_parts();
    probes_doc.merge(documents_doc);
    // Outside the token's layer: an empty requirement says no token is needed.
    each_operation(&mut probes_doc, |_, operation| {
        operation.security = Some(Vec::new())
    });
    let mut doc = root_document().merge_from(v1).merge_from(probes_doc);
    refer_to_envelope_schema(&mut doc);
    // Handlers are snake_case; clients generated from the document expect camelCase.
    each_operation(&mut doc, |_, operation| {
        operation.operation_id = operation.operation_id.as_deref().map(camel_case)
    });
    Routes {
        probes,
        documents,
        ingest,
        admin,
        doc,
    }
}

pub fn app(state: ApiState) -> Router {
    let Routes {
        probes,
        documents,
        ingest,
        admin,
        doc,
    } = routes();
    let base = probes.with_state(state.clone());
    let (Some(publisher), Some(admin_state)) = (state.publisher, state.admin) else {
        return base;
    };
    let tokenless = browser::Tokenless(state.api_token.is_none());
    // Below authentication: the console calls it in process as its signed-in caller.
    let routes_v1 = ingest
        .with_state(IngestState {
            publisher,
            on_accepted: {
                let metrics = Arc::clone(&state.metrics);
                Arc::new(move |n| metrics.accepted(n))
            },
            max_body_bytes: state.max_event_bytes,
            check_payload: (state.schema_validation == SchemaValidation::Enforce).then(|| {
                Arc::new(CatalogCheck {
                    schemas: Schemas::new(state.pool.clone(), SCHEMA_CACHE_TTL),
                    metrics: Arc::clone(&state.metrics),
                }) as Arc<dyn PayloadCheck>
            }),
        })
        .merge(admin.with_state(admin_state.clone()))
        // Every change, whoever calls: the API, the console or the portal.
        .layer(middleware::from_fn_with_state(
            admin_state.pool.clone(),
            http::record_changes,
        ));
    let portal = hookrelay_portal::routes(
        hookrelay_portal::Portal::new(routes_v1.clone(), admin_state.pool.clone(), &state.portal),
        &state.portal,
    )
    .layer(middleware::from_fn_with_state(
        tokenless,
        browser::guard_forms,
    ));
    let console = hookrelay_console::routes(hookrelay_console::Console::new(
        routes_v1.clone(),
        admin_state,
        state.api_token.as_deref().map(Arc::<str>::from),
    ))
    .layer(middleware::from_fn_with_state(
        tokenless,
        browser::guard_forms,
    ));
    let v1 = routes_v1
        .layer(middleware::from_fn_with_state(
            Auth {
                token: state.api_token.map(Arc::<str>::from),
                pool: state.pool.clone(),
            },
            require_token,
        ))
        // Outermost: a page's forged request is refused before any token is looked up.
        .layer(middleware::from_fn_with_state(tokenless, browser::guard));
    let documents = documents.with_state(Documents {
        openapi: render(&doc).into(),
        envelope: render(&hookrelay_model::envelope::json_schema()).into(),
    });
    base.merge(v1)
        .merge(console)
        .merge(portal)
        .merge(documents)
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "no such route; see /openapi.json")
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed on this route; see /openapi.json",
            )
        })
}

/// The ingest route's check of payloads against the event catalog (`enforce`); each
/// violation is counted, as the router counts those it dead-letters.
struct CatalogCheck {
    schemas: Schemas,
    metrics: Arc<Metrics>,
}

impl PayloadCheck for CatalogCheck {
    fn check<'a>(&'a self, event: &'a Event) -> Checked<'a> {
        Box::pin(async move {
            let verdict = self.schemas.check(event).await.map_err(|e| e.to_string())?;
            if verdict.is_err() {
                let mode = SchemaValidation::Enforce.as_str();
                self.metrics.schema_violation(&event.event_type, mode);
            }
            Ok(verdict)
        })
    }
}

/// The OpenAPI document of every route `app` serves (docs/openapi.json).
pub fn document() -> OpenApi {
    routes().doc
}

/// A document as committed and served: pretty JSON, one newline at the end, and
/// descriptions in paragraphs (doc comments break lines where the source does).
pub fn render(value: &impl Serialize) -> String {
    let mut value = serde_json::to_value(value).unwrap_or_default();
    unwrap_descriptions(&mut value);
    let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
    text.push('\n');
    text
}

fn unwrap_descriptions(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(text) if key == "description" => {
                        let paragraphs: Vec<String> =
                            text.split("\n\n").map(|p| p.replace('\n', " ")).collect();
                        *text = paragraphs.join("\n\n");
                    }
                    other => unwrap_descriptions(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(unwrap_descriptions),
        _ => {}
    }
}

const DESCRIPTION: &str = "Webhook delivery: event ingest, webhook and tenant \
administration, delivery inspection and the dead-letter queue.

Every `hookrelay serve` process answers `/healthz`, `/readyz` and `/metrics`. With the \
api role it also serves the ingest API (`POST /v1/events`), the admin API \
(`/v1/tenants/{tenant}/...` and `/v1/dead-letter`) and this document at `/openapi.json`.

Authentication (`bearerAuth`): when `HOOKRELAY_API_TOKEN` is set every `/v1` route needs \
`Authorization: Bearer <token>`. The operator's token (`HOOKRELAY_API_TOKEN`) opens every \
route. A tenant token (`hrt_...`, made with `POST /v1/tenants/{tenant}/tokens` or \
`hookrelay tokens create`) opens `/v1/tenants/{tenant}` and the routes below it for its \
own tenant only, except `tokens`, and reads the event catalog (`GET /v1/event-types`); \
anything else answers 403. Its scope says what it may \
do there: `read` (the default) only `GET`, and events are shown without their \
`private_fields`; `write` also changes webhooks, environments and settings and \
redelivers, and sees events whole. A read-only token's change answers 403. Without \
`HOOKRELAY_API_TOKEN` no route needs a token (and `serve` binds loopback addresses only); \
tenant tokens then mean nothing. `/healthz`, `/readyz`, `/metrics`, `/openapi.json` and \
`/event-envelope.schema.json` never need a token.

Requests from browsers: a `POST`, `PUT`, `PATCH` or `DELETE` from another site's page \
(`Sec-Fetch-Site: cross-site` or `same-site`, or an `Origin` other than the server's) is \
refused with 403, and a body on one of them must be `Content-Type: application/json` \
(415 otherwise). Without `HOOKRELAY_API_TOKEN` every `/v1` request must name a loopback \
host (`localhost`, `127.0.0.1`, `[::1]`) in `Host` (403 otherwise).

Errors are JSON `{\"error\": \"...\", \"field\": \"...\"}` (`field` only when one field \
was wrong), unknown paths (404) and methods on a known path that it does not list (405) \
included. List routes page with `limit` (default 50, 1 to 500) and `cursor` (the previous \
page's `next_cursor`).

Generated from the code (`cargo xtask docs`): each route and its description are declared \
together.";

/// The document's own parts: title, description, licence and the token's scheme.
fn root_document() -> OpenApi {
    use utoipa::OpenApi as _;
    #[derive(utoipa::OpenApi)]
    #[openapi(
        info(
            title = "hookrelay HTTP API",
            description = DESCRIPTION,
            license(name = "Apache-2.0", identifier = "Apache-2.0"),
        ),
        security(("bearerAuth" = [])),
        modifiers(&BearerAuth),
    )]
    struct Root;
    Root::openapi()
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some(
                "The operator's token (`HOOKRELAY_API_TOKEN`), which opens every `/v1` route, \
                 or a tenant token (`hrt_` + 64 hex digits), which opens its tenant's \
                 `/v1/tenants/{tenant}` routes except `tokens`, and reads `/v1/event-types`. Not \
                 required when \
                 `HOOKRELAY_API_TOKEN` is unset.",
            ))
            .build();
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearerAuth", SecurityScheme::Http(scheme));
    }
}

/// The envelope's schema is its own document (`/event-envelope.schema.json`), derived
/// from the same type; the OpenAPI document refers to it rather than holding a copy,
/// nor the schemas only that copy referred to.
fn refer_to_envelope_schema(doc: &mut OpenApi) {
    use utoipa::ToSchema as _;
    let mut reference = Ref::new("event-envelope.schema.json");
    reference.description = "One event: the JSON Schema in docs/event-envelope.schema.json \
        (served beside this document at /event-envelope.schema.json); docs/wire-contract.md \
        explains every field."
        .into();
    let components = doc.components.get_or_insert_with(Default::default);
    components.schemas.insert(
        hookrelay_model::Event::name().into_owned(),
        RefOr::Ref(reference),
    );
    let mut own = Vec::new();
    hookrelay_model::Event::schemas(&mut own);
    for (name, _) in own {
        let target = format!("\"#/components/schemas/{name}\"");
        if !serde_json::to_string(&*doc).is_ok_and(|text| text.contains(&target))
            && let Some(components) = doc.components.as_mut()
        {
            components.schemas.remove(&name);
        }
    }
}

fn camel_case(snake: &str) -> String {
    let mut words = snake.split('_');
    let mut out = words.next().unwrap_or_default().to_owned();
    for word in words {
        let mut chars = word.chars();
        out.extend(chars.next().map(|c| c.to_ascii_uppercase()));
        out.push_str(chars.as_str());
    }
    out
}

/// What `require_token` can answer, on every operation behind it.
fn document_require_token(path: &str, operation: &mut utoipa::openapi::path::Operation) {
    document_answer(operation, Answer::Unauthorized);
    let forbidden = if access::tenant_route(path, "{tenant}") {
        Answer::ForbiddenOtherTenant
    } else {
        Answer::ForbiddenTenantToken
    };
    document_answer(operation, forbidden);
    document_answer(operation, Answer::ServiceUnavailable);
}

/// Reading the catalog is open to every token (`access::catalog_route`): no 403.
fn document_catalog_reads(doc: &mut OpenApi) {
    for (path, item) in doc.paths.paths.iter_mut() {
        if let Some(get) = item.get.as_mut().filter(|_| access::catalog_route(path)) {
            get.responses.responses.remove("403");
        }
    }
}

/// What `browser::guard` adds: a body on any state-changing request must be JSON.
fn document_browser_guard(doc: &mut OpenApi) {
    for item in doc.paths.paths.values_mut() {
        let changing = [
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ];
        for operation in changing.into_iter().flatten() {
            document_answer(operation, Answer::UnsupportedMediaType);
        }
    }
}

/// Who may call `/v1`: the operator's token opens every route; a tenant token
/// (`hookrelay tokens create`) opens its own tenant's routes only.
#[derive(Clone)]
struct Auth {
    token: Option<Arc<str>>,
    pool: Pool,
}

/// 401 unless the request carries `Authorization: Bearer <token>` (when one is set);
/// 403 when a tenant token asks for anything but its tenant's routes, or a read-only
/// one for a change. The handlers get the [`Caller`] as a request extension.
async fn require_token(State(auth): State<Auth>, mut request: Request, next: Next) -> Response {
    let Some(expected) = auth.token else {
        request.extensions_mut().insert(Caller::Operator);
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token)
        .map(str::to_owned);
    let Some(given) = given else {
        return unauthorized();
    };
    let found = match access::identify(&auth.pool, &expected, &given).await {
        Ok(Some(found)) => found,
        Ok(None) => return unauthorized(),
        Err(e) => {
            tracing::warn!(error = %e, "checking a tenant token failed");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot check the token now",
            )
            .into_response();
        }
    };
    let safe = matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS
    );
    if let Err(refusal) = access::authorize(&found.caller, safe, request.uri().path()) {
        return forbidden(refusal);
    }
    request.extensions_mut().insert(found.caller.clone());
    // Which token: a portal link minted with it ends with it.
    request.extensions_mut().insert(found);
    next.run(request).await
}

fn forbidden(message: String) -> Response {
    ApiError::new(StatusCode::FORBIDDEN, message).into_response()
}

/// The token of an `Authorization: Bearer <token>` value. The scheme's name is
/// case-insensitive (RFC 9110 §11.1): `bearer` and `BEARER` are the same scheme.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim_start();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

fn unauthorized() -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "missing or wrong bearer token").into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        header::HeaderValue::from_static("Bearer"),
    );
    response
}

fn probes_document() -> OpenApi {
    use utoipa::OpenApi as _;
    #[derive(utoipa::OpenApi)]
    #[openapi(tags((name = "probes",
        description = "Health, readiness, metrics and this document; never need a token.")))]
    struct Probes;
    Probes::openapi()
}

#[derive(Serialize, ToSchema)]
struct Health {
    #[schema(pattern = "^ok$")]
    status: &'static str,
}

/// Liveness
///
/// 200 while the process runs. Served by every `serve` process, whatever its roles;
/// no token.
#[utoipa::path(get, path = "/healthz", tag = "probes",
    responses((status = 200, description = "The process runs.", body = Health,
        example = json!({"status": "ok"}))))]
async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Which part of the process is ready. Each check has 2 s.
#[derive(Serialize, ToSchema)]
struct Readiness {
    /// Whether Postgres answered `SELECT 1`; null (not checked) when the process runs
    /// no consuming role.
    database: Option<bool>,
    /// Whether the api role's broker connection is up; null without the api role.
    api_broker: Option<bool>,
    /// Each consuming role of the process (e.g. `router`, `sender`) and whether it
    /// consumes.
    #[schema(value_type = std::collections::BTreeMap<String, bool>)]
    consuming: serde_json::Map<String, serde_json::Value>,
}

/// Readiness
///
/// 200 when the api role's broker connection is up (with the api role), every
/// consuming role of the process consumes and, for processes with a consuming role,
/// Postgres answers; 503 otherwise. Served by every `serve` process; no token.
#[utoipa::path(get, path = "/readyz", tag = "probes",
    responses(
        (status = 200, description = "Ready.", body = Readiness,
            example = json!({"database": true, "api_broker": true,
                "consuming": {"router": true, "sender": true}})),
        (status = 503, description = "Not ready; the body says which part.", body = Readiness,
            example = json!({"database": true, "api_broker": false, "consuming": {}})),
    ))]
async fn readyz(State(state): State<ApiState>) -> (StatusCode, Json<Readiness>) {
    let database = if state.consumers.is_empty() {
        None
    } else {
        let check = hookrelay_store::answers(&state.pool);
        Some(
            tokio::time::timeout(std::time::Duration::from_secs(2), check)
                .await
                .unwrap_or(false),
        )
    };
    let api_broker = match &state.publisher {
        Some(p) => Some(p.is_connected().await),
        None => None,
    };
    let consuming: serde_json::Map<String, serde_json::Value> = state
        .consumers
        .iter()
        .map(|role| ((*role).to_owned(), json!(state.metrics.is_consuming(role))))
        .collect();
    let ok = database.unwrap_or(true)
        && api_broker.unwrap_or(true)
        && consuming.values().all(|v| v == &json!(true));
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        database,
        api_broker,
        consuming,
    };
    (status, Json(body))
}

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Prometheus metrics
///
/// The process's metrics in the OpenMetrics text format (docs/observability.md).
/// Served by every `serve` process; no token.
#[utoipa::path(get, path = "/metrics", tag = "probes",
    responses((status = 200, description = "The metrics.", body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8")))]
async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [(header::CONTENT_TYPE, OPENMETRICS)],
        state.metrics.render(),
    )
        .into_response()
}

/// The documents the api serves, rendered once.
#[derive(Clone)]
struct Documents {
    openapi: Arc<str>,
    envelope: Arc<str>,
}

fn json_text(text: &Arc<str>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        text.to_string(),
    )
        .into_response()
}

/// This OpenAPI document
///
/// Describes the API and holds no data; no token. Served with the api role only.
#[utoipa::path(get, path = "/openapi.json", tag = "probes",
    responses((status = 200, description = "This document.", body = Object)))]
async fn openapi(State(documents): State<Documents>) -> Response {
    json_text(&documents.openapi)
}

/// The event envelope's JSON Schema
///
/// docs/event-envelope.schema.json, which `EventEnvelope` in this document refers
/// to; no token. Served with the api role only.
#[utoipa::path(get, path = "/event-envelope.schema.json", tag = "probes",
    responses((status = 200,
        description = "The JSON Schema (draft 2020-12) of one event envelope.", body = Object)))]
async fn event_envelope_schema(State(documents): State<Documents>) -> Response {
    json_text(&documents.envelope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_case_insensitive() {
        for value in ["Bearer t0k", "bearer t0k", "BEARER  t0k", " Bearer t0k"] {
            assert_eq!(bearer_token(value), Some("t0k"), "{value:?}");
        }
        for value in ["Basic t0k", "Bearer", "Bearer ", "t0k", "Bearert0k"] {
            assert_eq!(bearer_token(value), None, "{value:?}");
        }
    }
}
