//! The HTTP server of every `serve` process: `/healthz`, `/readyz` and `/metrics`
//! always; with the api role, the ingest and admin routes under `/v1` (bearer auth)
//! and `/openapi.json`.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use deadpool_postgres::Pool;
use hookrelay_admin::http::{self, AdminState, ApiError};
use hookrelay_metrics::Metrics;
use hookrelay_producer::Publisher;
use hookrelay_producer::ingest::{self, IngestState};
use hookrelay_store::tokens;
use serde_json::json;

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
}

pub fn app(state: ApiState) -> Router {
    let base = Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state.clone());
    let (Some(publisher), Some(admin)) = (state.publisher, state.admin) else {
        return base;
    };
    let v1 = ingest::router(IngestState {
        publisher,
        on_accepted: {
            let metrics = Arc::clone(&state.metrics);
            Arc::new(move |n| metrics.accepted(n))
        },
        max_body_bytes: state.max_event_bytes,
    })
    .merge(http::router(admin))
    .layer(middleware::from_fn_with_state(
        Auth {
            token: state.api_token.map(Arc::<str>::from),
            pool: state.pool.clone(),
        },
        require_token,
    ));
    base.merge(v1)
        .merge(http::openapi_router())
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

/// Who may call `/v1`: the operator's token opens every route; a tenant token
/// (`hookrelay tokens create`) opens its own tenant's routes only.
#[derive(Clone)]
struct Auth {
    token: Option<Arc<str>>,
    pool: Pool,
}

/// 401 unless the request carries `Authorization: Bearer <token>` (when one is set);
/// 403 when a tenant token asks for anything but its tenant's routes.
async fn require_token(State(auth): State<Auth>, request: Request, next: Next) -> Response {
    let Some(expected) = auth.token else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let Some(given) = given else {
        return unauthorized();
    };
    if constant_time_eq(given.as_bytes(), expected.as_bytes()) {
        return next.run(request).await;
    }
    let tenant = match auth.pool.get().await {
        Ok(db) => tokens::tenant_of(&db, &given).await,
        Err(e) => Err(e.into()),
    };
    match tenant {
        Ok(Some(tenant)) if tenant_route(request.uri().path(), &tenant) => next.run(request).await,
        Ok(Some(tenant)) => ApiError::new(
            StatusCode::FORBIDDEN,
            format!("this token opens the routes of tenant `{tenant}` only"),
        )
        .into_response(),
        Ok(None) => unauthorized(),
        Err(e) => {
            tracing::warn!(error = %e, "checking a tenant token failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot check the token now",
            )
            .into_response()
        }
    }
}

/// `/v1/tenants/{tenant}` and below, except the tenant's tokens (operators only).
fn tenant_route(path: &str, tenant: &str) -> bool {
    let mut segments = path.trim_start_matches('/').split('/');
    let head = (segments.next(), segments.next(), segments.next());
    head == (Some("v1"), Some("tenants"), Some(tenant)) && segments.next() != Some("tokens")
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Ready when the api's broker connection is up, every consuming role consumes, and
/// (for those roles, which need it) the database answers; each check within 2 s.
async fn ready(State(state): State<ApiState>) -> Response {
    let database = if state.consumers.is_empty() {
        None
    } else {
        let check = async {
            match state.pool.get().await {
                Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
                Err(_) => false,
            }
        };
        Some(
            tokio::time::timeout(std::time::Duration::from_secs(2), check)
                .await
                .unwrap_or(false),
        )
    };
    let broker = match &state.publisher {
        Some(p) => Some(p.is_connected().await),
        None => None,
    };
    let consumers: serde_json::Map<String, serde_json::Value> = state
        .consumers
        .iter()
        .map(|role| ((*role).to_owned(), json!(state.metrics.is_consuming(role))))
        .collect();
    let ok = database.unwrap_or(true)
        && broker.unwrap_or(true)
        && consumers.values().all(|v| v == &json!(true));
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({"database": database, "api_broker": broker, "consuming": consumers});
    (status, Json(body)).into_response()
}

async fn metrics(State(state): State<ApiState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
