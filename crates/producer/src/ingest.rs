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
use hookrelay_model::error::ErrorBody;
use serde::Serialize;

use crate::{PublishError, Publisher};

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

/// Why an ingest request was refused.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("request body is over the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("events were not accepted by the broker; retry the request: {0}")]
    Broker(#[from] PublishError),
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            Self::BodyTooLarge { .. } | Self::Envelope(EnvelopeError::TooLarge { .. }) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorBody::new(self.to_string()),
            ),
            Self::Envelope(e) => (StatusCode::BAD_REQUEST, ErrorBody::from(e)),
            Self::Broker(e) => {
                tracing::error!(error = %e, "publishing ingested events failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorBody::new(self.to_string()),
                )
            }
        };
        (status, Json(body)).into_response()
    }
}

async fn ingest(
    State(state): State<IngestState>,
    body: Body,
) -> Result<(StatusCode, Json<Accepted>), IngestError> {
    let limit = state.max_body_bytes;
    let bytes = to_bytes(body, limit)
        .await
        .map_err(|_| IngestError::BodyTooLarge { limit })?;
    let events = parse_one_or_many(&bytes, limit)?;
    state.publisher.publish_batch(&events).await?;
    (state.on_accepted)(events.len() as u64);
    let accepted = events.into_iter().map(|e| e.id).collect();
    Ok((StatusCode::ACCEPTED, Json(Accepted { accepted })))
}
