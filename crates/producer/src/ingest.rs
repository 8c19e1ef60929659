//! `POST /v1/events`: one envelope or a JSON array of them; 202 once the broker has
//! confirmed every one.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum::Json;
use axum::body::{Body, to_bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hookrelay_model::catalog::Violation;
use hookrelay_model::envelope::parse_one_or_many;
use hookrelay_model::error::ErrorBody;
use hookrelay_model::{EnvelopeError, Event};
use serde::Serialize;
use utoipa::openapi::schema::{ArrayBuilder, OneOfBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::{PublishError, Publisher};

#[derive(Clone)]
pub struct IngestState {
    pub publisher: Arc<Publisher>,
    /// Told how many events each accepted request carried (the api's metrics).
    pub on_accepted: Arc<dyn Fn(u64) + Send + Sync>,
    /// Limit on the request body, one event or a batch.
    pub max_body_bytes: usize,
    /// Checks each event's payload against its type's schema before anything is
    /// published (`HOOKRELAY_SCHEMA_VALIDATION=enforce`); none: payloads are not
    /// checked here.
    pub check_payload: Option<Arc<dyn PayloadCheck>>,
}

/// What [`PayloadCheck::check`] answers, in time: `Ok(Err(_))` the payload breaks its
/// type's schema; `Err(_)` the catalog could not be read (why, for the log).
pub type Checked<'a> =
    Pin<Box<dyn Future<Output = Result<Result<(), Violation>, String>> + Send + 'a>>;

/// The event catalog's check of a payload, given by whoever mounts the route (the
/// api role, which has the database): this crate never reads it.
pub trait PayloadCheck: Send + Sync {
    fn check<'a>(&'a self, event: &'a Event) -> Checked<'a>;
}

/// The ingest route with its OpenAPI description. Authentication is applied by
/// whoever mounts it.
pub fn routes() -> OpenApiRouter<IngestState> {
    use utoipa::OpenApi as _;
    #[derive(utoipa::OpenApi)]
    #[openapi(tags((name = "ingest", description = "Publishing events over HTTP.")))]
    struct Ingest;
    OpenApiRouter::with_openapi(Ingest::openapi())
        .routes(routes!(ingest_events))
        // We read the body ourselves to answer 413 as JSON.
        .layer(DefaultBodyLimit::disable())
}

#[derive(Serialize, ToSchema)]
struct Accepted {
    /// The ids of the events, in request order. Duplicates are accepted too:
    /// de-duplication happens later, in the router.
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
    /// An event's payload breaks its type's schema; `element`: its place in a batch.
    #[error("{}{violation}", element.map(|i| format!("[{i}].")).unwrap_or_default())]
    Schema {
        element: Option<usize>,
        violation: Violation,
    },
    #[error("the event catalog cannot be read now; retry the request")]
    CatalogUnavailable(String),
}

impl IntoResponse for IngestError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            Self::BodyTooLarge { .. } | Self::Envelope(EnvelopeError::TooLarge { .. }) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ErrorBody::new(self.to_string()),
            ),
            Self::Envelope(e) => (StatusCode::BAD_REQUEST, ErrorBody::from(e)),
            Self::Schema { element, violation } => {
                let prefix = element.map(|i| format!("[{i}].")).unwrap_or_default();
                let body = ErrorBody {
                    error: self.to_string(),
                    field: Some(format!("{prefix}{}", violation.field())),
                };
                (StatusCode::BAD_REQUEST, body)
            }
            Self::CatalogUnavailable(why) => {
                tracing::warn!(error = %why, "checking ingested payloads failed");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    ErrorBody::new(self.to_string()),
                )
            }
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

/// The body of `POST /v1/events` as the document describes it; `parse_one_or_many`
/// reads it.
struct IngestRequest;

impl PartialSchema for IngestRequest {
    fn schema() -> RefOr<Schema> {
        let event = || Ref::from_schema_name(Event::name());
        OneOfBuilder::new()
            .item(event())
            .item(ArrayBuilder::new().items(event()).min_items(Some(1)))
            .description(Some(
                "One envelope, or a non-empty JSON array of envelopes (a batch). The whole \
                 body is limited to `HOOKRELAY_MAX_EVENT_BYTES` (1 MiB by default).",
            ))
            .into()
    }
}

impl ToSchema for IngestRequest {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Event::name().into_owned(), Event::schema()));
        Event::schemas(schemas);
    }
}

/// Publish events
///
/// One envelope or a JSON array of envelopes (docs/event-envelope.schema.json,
/// docs/wire-contract.md section 6). Each event is validated, then published to
/// `{prefix}.events` as its own persistent message with a confirm; 202 once the
/// broker confirmed every one. If any event is invalid nothing is published.
/// Operator's token only (a tenant token gets 403).
#[utoipa::path(post, path = "/v1/events", tag = "ingest",
    request_body(content = IngestRequest,
        description = "One envelope or a non-empty array of them. Sent with \
            `Content-Type: application/json`.",
        example = json!({
            "id": "event-34cbc6e7-7f94-4a9a-8f26-e5bfbee90f18",
            "tenant": "acme",
            "type": "embed_initialized",
            "occurred_at": "2024-01-24T16:13:25.512352Z",
            "payload": {"uuid": "event-34cbc6e7", "data": {}}
        })),
    responses(
        (status = 202, description = "Every event was confirmed by the broker.",
            body = Accepted,
            example = json!({"accepted": ["event-34cbc6e7-7f94-4a9a-8f26-e5bfbee90f18"]})),
        (status = 400, description = "Not JSON (no `field`), not an object or array \
            (`field: \"$\"`), an empty array (`\"$\"`), or an invalid event (`field` names \
            the field, prefixed with the element in an array, e.g. `[1].tenant`). With \
            `HOOKRELAY_SCHEMA_VALIDATION=enforce`, also an event whose payload breaks its \
            type's schema in the event catalog: `field` is `payload` and the failing \
            value's JSON pointer (`payload/data/rows`, `[1].payload/data/rows` in a \
            batch) and the error names the schema rule. Nothing was published.",
            body = ErrorBody,
            example = json!({"error": "field `tenant`: is required", "field": "tenant"})),
        (status = 413, description = "The request body (one event or the whole batch) is \
            over `HOOKRELAY_MAX_EVENT_BYTES` (1 MiB by default).",
            body = ErrorBody,
            example = json!({"error": "request body is over the limit of 1048576 bytes"})),
        (status = 503, description = "The broker refused or could not be reached (some \
            events of a batch may have been published; repeating the request is safe), \
            a tenant token could not be checked, or (with schema validation enforced) the \
            event catalog could not be read.",
            body = ErrorBody,
            example = json!({"error": "events were not accepted by the broker; retry the \
                request: ..."})),
    ))]
async fn ingest_events(
    State(state): State<IngestState>,
    body: Body,
) -> Result<(StatusCode, Json<Accepted>), IngestError> {
    let limit = state.max_body_bytes;
    let bytes = to_bytes(body, limit)
        .await
        .map_err(|_| IngestError::BodyTooLarge { limit })?;
    let events = parse_one_or_many(&bytes, limit)?;
    if let Some(check) = &state.check_payload {
        let batch = bytes.trim_ascii_start().first() == Some(&b'[');
        for (i, event) in events.iter().enumerate() {
            if let Err(violation) = check
                .check(event)
                .await
                .map_err(IngestError::CatalogUnavailable)?
            {
                let element = batch.then_some(i);
                return Err(IngestError::Schema { element, violation });
            }
        }
    }
    state.publisher.publish_batch(&events).await?;
    (state.on_accepted)(events.len() as u64);
    let accepted = events.into_iter().map(|e| e.id.into()).collect();
    Ok((StatusCode::ACCEPTED, Json(Accepted { accepted })))
}
