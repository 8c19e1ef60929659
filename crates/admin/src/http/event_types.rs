//! `/v1/event-types`: the event catalog. Any caller may read it (tenant tokens too:
//! their customers pick types from it); only the operator changes it.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hookrelay_model::catalog::{EventTypeFields, EventTypeUpdate};
use hookrelay_store::event_types::{self, EventType};
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{BadParameter, Body as BodyErrors, Conflict, Database, NotFound};
use super::extract::{Body, Path, list};
use super::{AdminState, Result, db};
use crate::catalog;

list! {
    /// Every event type of the catalog, by name; not paged.
    EventTypeList of EventType
}

/// The path of one event type.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct EventTypePath {
    /// The event type's name.
    name: String,
}

/// List event types
///
/// The catalog: every event type with its description, payload schema and example.
/// Any token may read it.
#[utoipa::path(get, path = "/", tag = "event-types",
    responses((status = 200, description = "The catalog.", body = EventTypeList), Database))]
pub(super) async fn list_event_types(State(s): State<AdminState>) -> Result<Json<EventTypeList>> {
    Ok(EventTypeList::of(event_types::list(&db(&s).await?).await?))
}

/// Create an event type
///
/// The schema must compile as JSON Schema 2020-12 and the example satisfy it; a 400
/// names the field. Operator's token only.
#[utoipa::path(post, path = "/", tag = "event-types",
    request_body(content = EventTypeFields, description = "The event type."),
    responses(
        (status = 201, description = "The event type created.", body = EventType),
        BodyErrors, Conflict, Database,
    ))]
pub(super) async fn create_event_type(
    State(s): State<AdminState>,
    body: Body,
) -> Result<(StatusCode, Json<EventType>)> {
    let fields: EventTypeFields = body.parse()?;
    let created = catalog::create(&db(&s).await?, &fields).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// Get an event type
#[utoipa::path(get, path = "/{name}", tag = "event-types", params(EventTypePath),
    responses(
        (status = 200, description = "The event type.", body = EventType),
        BadParameter, NotFound, Database,
    ))]
pub(super) async fn get_event_type(
    State(s): State<AdminState>,
    Path(p): Path<EventTypePath>,
) -> Result<Json<EventType>> {
    Ok(Json(event_types::get(&db(&s).await?, &p.name).await?))
}

/// Change an event type
///
/// Absent fields stay; `schema` or `example` null removes it. The result is checked
/// whole: the example must satisfy the (new) schema. Operator's token only.
#[utoipa::path(patch, path = "/{name}", tag = "event-types", params(EventTypePath),
    request_body(content = EventTypeUpdate, description = "The fields to change."),
    responses(
        (status = 200, description = "The event type after the change.", body = EventType),
        BodyErrors, NotFound, Conflict, Database,
    ))]
pub(super) async fn update_event_type(
    State(s): State<AdminState>,
    Path(p): Path<EventTypePath>,
    body: Body,
) -> Result<Json<EventType>> {
    let change: EventTypeUpdate = body.parse()?;
    Ok(Json(
        catalog::update(&db(&s).await?, &p.name, change).await?,
    ))
}

/// Delete an event type
///
/// Events of the type are still accepted and delivered; their payloads are no longer
/// checked. Operator's token only.
#[utoipa::path(delete, path = "/{name}", tag = "event-types", params(EventTypePath),
    responses((status = 204, description = "Deleted."), BadParameter, NotFound, Database))]
pub(super) async fn delete_event_type(
    State(s): State<AdminState>,
    Path(p): Path<EventTypePath>,
) -> Result<StatusCode> {
    event_types::delete(&db(&s).await?, &p.name).await?;
    Ok(StatusCode::NO_CONTENT)
}
