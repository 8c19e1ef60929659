//! The api role's HTTP app: ingest under `/v1`, bearer auth, health probes.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use deadpool_postgres::Pool;
use hookrelay_producer::Publisher;
use hookrelay_producer::ingest::{self, ApiError, IngestState};
use serde_json::json;

#[derive(Clone)]
pub struct ApiState {
    pub publisher: Arc<Publisher>,
    pub pool: Pool,
    pub api_token: Option<String>,
    pub max_event_bytes: usize,
}

pub fn app(state: ApiState) -> Router {
    let v1 = ingest::router(IngestState {
        publisher: Arc::clone(&state.publisher),
        max_body_bytes: state.max_event_bytes,
    })
    .layer(middleware::from_fn_with_state(
        state.api_token.clone().map(Arc::<str>::from),
        require_token,
    ));
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready))
        .with_state(state)
        .merge(v1)
}

/// 401 unless the request carries `Authorization: Bearer <token>` (when one is set).
async fn require_token(
    State(token): State<Option<Arc<str>>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(expected) = token else {
        return next.run(request).await;
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    if given.is_some_and(|g| constant_time_eq(g.as_bytes(), expected.as_bytes())) {
        return next.run(request).await;
    }
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

/// Ready when the broker connection is up and the database answers.
async fn ready(State(state): State<ApiState>) -> Response {
    let broker = state.publisher.is_connected().await;
    let database = match state.pool.get().await {
        Ok(client) => client.simple_query("SELECT 1").await.is_ok(),
        Err(_) => false,
    };
    let status = if broker && database {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({"broker": broker, "database": database})),
    )
        .into_response()
}
