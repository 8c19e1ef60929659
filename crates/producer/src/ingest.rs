//! `POST /v1/events`: one envelope or a JSON array of them; 202 once the broker has
//! confirmed every one.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use hookrelay_model::EnvelopeError;
use hookrelay_model::envelope::parse_one_or_many;
use serde::Serialize;

use crate::Publisher;

#[derive(Clone)]
pub struct IngestState {
    pub publisher: Arc<Publisher>,
    /// Told how many events each accepted request carried (the api's metrics).
    pub on_accepted: Arc<dyn Fn(u64) + Send + Sync>,
    /// Limit on the request body, one event or a batch.
    pub max_body_bytes: usize,
}

/// The ingest routes. Authentication is applied by whoever mounts them.
pub fn router(state: IngestState) -> axum::Router {
    axum::Router::new()
        .route("/v1/events", post(ingest))
        // We read the body ourselves to answer 413 as JSON.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

#[derive(Serialize)]
struct Accepted {
    accepted: Vec<String>,
}

/// The JSON error body of every hookrelay HTTP API.
#[derive(Debug, Serialize)]
pub struct ApiError {
    #[serde(skip)]
    pub status: StatusCode,
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self {
            status,
            error: error.into(),
            field: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(&self)).into_response()
    }
}

impl From<EnvelopeError> for ApiError {
    fn from(e: EnvelopeError) -> Self {
        let status = match e {
            EnvelopeError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            field: e.field_name().map(str::to_owned),
            error: e.to_string(),
        }
    }
}

async fn ingest(State(state): State<IngestState>, body: Body) -> Result<Response, ApiError> {
    let limit = state.max_body_bytes;
    let bytes = to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is over the limit of {limit} bytes"),
        )
    })?;
    let events = parse_one_or_many(&bytes, limit)?;
    state.publisher.publish_batch(&events).await.map_err(|e| {
        tracing::error!(error = %e, "publishing ingested events failed");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("events were not accepted by the broker; retry the request: {e}"),
        )
    })?;
    (state.on_accepted)(events.len() as u64);
    let accepted = events.into_iter().map(|e| e.id).collect();
    Ok((StatusCode::ACCEPTED, Json(Accepted { accepted })).into_response())
}
