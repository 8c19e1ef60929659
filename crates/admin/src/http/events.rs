//! `/v1/tenants/{tenant}/events` and `/deliveries`: what a tenant's upstreams
//! published, what became of it, and redelivery.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use hookrelay_amqp as amqp;
use hookrelay_model::Invalid;
use hookrelay_model::access::Caller;
use hookrelay_model::envelope::redact_private_fields;
use hookrelay_store::deliveries::{self, Attempt, Delivery, DeliveryFilter, DeliveryStatus};
use hookrelay_store::events::{self, Cursor, EventFilter, StoredEvent};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::error::{BadParameter, Broker, Conflict, Database, NotFound};
use super::extract::{Params, Path, limit, list, page, parse_time, parse_uuid, uuid_cursor};
use super::{AdminState, Result, db};
use crate::{AdminError, redeliver};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct EventsQuery {
    /// Only events of this session.
    session_id: Option<String>,
    /// Only events of this type.
    #[serde(rename = "type")]
    event_type: Option<String>,
    /// Received at or after this RFC 3339 time.
    #[param(format = DateTime)]
    since: Option<String>,
    /// Received before this RFC 3339 time.
    #[param(format = DateTime)]
    until: Option<String>,
    /// The `next_cursor` of the previous page: `<unix nanos>.<event id>`, the position
    /// after which the page starts.
    #[param(pattern = r"^[0-9]{1,19}\.[^\u0000-\u001f\u007f-\u009f]*$")]
    cursor: Option<String>,
    /// Items at most (400 with `field: "limit"` outside 1 to 500).
    #[param(minimum = 1, maximum = 500, default = 50)]
    limit: Option<i64>,
}

page! {
    /// A page of events, newest first (by `received_at`, then id).
    EventPage of StoredEvent;
    /// Pass as `cursor` for the next (older) page (`<unix nanos>.<event id>`). Null when this
    /// page holds fewer than `limit` items.
}

/// List events
///
/// One page of the tenant's recorded events, newest first. The time range is on
/// `received_at`, the order of the list. Events arriving while a client pages land
/// before its first page; a page never repeats or skips an event that was visible
/// when paging began. `received_at` is stamped when the routing transaction starts,
/// so with several routers an event can become visible a moment after events
/// stamped later: when polling with `since`, overlap by a few seconds and drop ids
/// already seen.
#[utoipa::path(get, path = "/events", tag = "events", params(EventsQuery),
    responses(
        (status = 200, description = "A page of events.", body = EventPage),
        BadParameter, Database,
    ))]
pub(super) async fn list_events(
    State(s): State<AdminState>,
    caller: Option<Extension<Caller>>,
    Path(tenant): Path<String>,
    Params(q): Params<EventsQuery>,
) -> Result<Json<EventPage>> {
    let limit = limit(q.limit)?;
    let filter = EventFilter {
        session_id: q.session_id,
        event_type: q.event_type,
        since: parse_time("since", q.since.as_deref())?,
        until: parse_time("until", q.until.as_deref())?,
    };
    let after = q.cursor.as_deref().map(Cursor::decode).transpose()?;
    let mut data = events::list(&db(&s).await?, &tenant, &filter, after.as_ref(), limit).await?;
    for event in &mut data {
        show_to(caller.as_deref(), event);
    }
    Ok(EventPage::new(data, limit, |e| Cursor::of(e).encode()))
}

/// A read-only tenant token (a front end) sees an event as webhooks get it: without
/// its private fields. Without a caller (routes mounted with no authentication) the
/// mount decided that everyone is the operator.
fn show_to(caller: Option<&Caller>, event: &mut StoredEvent) {
    if !caller.is_none_or(Caller::sees_private_fields) {
        redact_private_fields(&mut event.envelope);
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct EventPath {
    #[param(ignore)]
    tenant: String,
    /// The event's id (the envelope's `id`).
    id: String,
}

#[derive(Serialize, ToSchema)]
pub(super) struct EventWithDeliveries {
    event: StoredEvent,
    /// Every delivery of the event, in creation order.
    deliveries: Vec<Delivery>,
}

/// Get an event with its deliveries
#[utoipa::path(get, path = "/events/{id}", tag = "events", params(EventPath),
    responses(
        (status = 200, description = "The event and every delivery of it.",
            body = EventWithDeliveries),
        NotFound, Database,
    ))]
pub(super) async fn get_event(
    State(s): State<AdminState>,
    caller: Option<Extension<Caller>>,
    Path(p): Path<EventPath>,
) -> Result<Json<EventWithDeliveries>> {
    let db = db(&s).await?;
    let mut event = events::find(&db, &p.tenant, &p.id).await?;
    show_to(caller.as_deref(), &mut event);
    let deliveries = deliveries::for_event(&db, &p.tenant, &p.id).await?;
    Ok(Json(EventWithDeliveries { event, deliveries }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DeliveriesQuery {
    /// Only deliveries of this event.
    event_id: Option<String>,
    /// Only deliveries to this webhook (an id, not a key; 400 when not a UUID).
    #[param(format = Uuid)]
    webhook_id: Option<String>,
    /// Only deliveries in this status.
    #[param(value_type = Option<DeliveryStatus>)]
    status: Option<String>,
    /// Created at or after this RFC 3339 time.
    #[param(format = DateTime)]
    since: Option<String>,
    /// The `next_cursor` of the previous page (400 with `field: "cursor"` when not a
    /// UUID).
    #[param(format = Uuid)]
    cursor: Option<String>,
    /// Items at most (400 with `field: "limit"` outside 1 to 500).
    #[param(minimum = 1, maximum = 500, default = 50)]
    limit: Option<i64>,
    /// `oldest` first (the default) or `newest` first.
    #[param(pattern = "^(oldest|newest)$")]
    order: Option<String>,
}

fn newest_first(order: Option<&str>) -> std::result::Result<bool, Invalid> {
    match order {
        None | Some("oldest") => Ok(false),
        Some("newest") => Ok(true),
        Some(other) => Err(Invalid::new(
            "order",
            format!("`{other}` is not an order: `oldest` or `newest`"),
        )),
    }
}

page! {
    /// A page of deliveries in creation (id) order, oldest first unless asked for
    /// newest first.
    DeliveryPage of Delivery;
    /// Pass as `cursor` for the next page: the id of the last delivery. Null when this
    /// page holds fewer than `limit` items.
    #[schema(format = Uuid)]
}

/// List deliveries
///
/// One page of the tenant's deliveries in creation order (`order`: oldest or newest
/// first); every filter narrows.
#[utoipa::path(get, path = "/deliveries", tag = "deliveries", params(DeliveriesQuery),
    responses(
        (status = 200, description = "A page of deliveries.", body = DeliveryPage),
        BadParameter, Database,
    ))]
pub(super) async fn list_deliveries(
    State(s): State<AdminState>,
    Path(tenant): Path<String>,
    Params(q): Params<DeliveriesQuery>,
) -> Result<Json<DeliveryPage>> {
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
        newest_first: newest_first(q.order.as_deref())?,
    };
    let after = uuid_cursor(q.cursor.as_deref())?;
    let data = deliveries::list(&db(&s).await?, &tenant, &filter, after, limit).await?;
    Ok(DeliveryPage::new(data, limit, |d| d.id.to_string()))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct DeliveryPath {
    #[param(ignore)]
    tenant: String,
    /// The delivery's id (400 with `field: "id"` when not a UUID).
    #[param(format = Uuid)]
    id: String,
}

impl DeliveryPath {
    fn id(&self) -> std::result::Result<uuid::Uuid, Invalid> {
        parse_uuid("id", &self.id)
    }
}

/// Get a delivery
#[utoipa::path(get, path = "/deliveries/{id}", tag = "deliveries", params(DeliveryPath),
    responses(
        (status = 200, description = "The delivery.", body = Delivery),
        BadParameter, NotFound, Database,
    ))]
pub(super) async fn get_delivery(
    State(s): State<AdminState>,
    Path(p): Path<DeliveryPath>,
) -> Result<Json<Delivery>> {
    let delivery = deliveries::get(&db(&s).await?, &p.tenant, p.id()?).await?;
    Ok(Json(delivery))
}

list! {
    /// Every attempt of the delivery, in the order made; not paged.
    AttemptList of Attempt
}

/// List a delivery's attempts
///
/// Every attempt, in the order made; 404 unless the delivery is the tenant's.
#[utoipa::path(get, path = "/deliveries/{id}/attempts", tag = "deliveries",
    params(DeliveryPath),
    responses(
        (status = 200, description = "Every attempt of the delivery.", body = AttemptList),
        BadParameter, NotFound, Database,
    ))]
pub(super) async fn list_attempts(
    State(s): State<AdminState>,
    Path(p): Path<DeliveryPath>,
) -> Result<Json<AttemptList>> {
    let id = p.id()?;
    let db = db(&s).await?;
    // The delivery must be the tenant's: 404 otherwise, never another's attempts.
    deliveries::get(&db, &p.tenant, id).await?;
    Ok(AttemptList::of(deliveries::attempts(&db, id).await?))
}

/// Redeliver a failed delivery
///
/// Gives a failed delivery a fresh round of attempts (the first attempt and the
/// configured retries), recorded after its earlier ones; the delivery row is reused.
/// A pending delivery whose message was never confirmed (an interrupted earlier
/// redelivery) is published again too. No request body. Needs RabbitMQ: 503 when it
/// cannot be reached (checked after the delivery is looked up, so an unknown one is
/// a 404 even then). 409 when the delivery is not failed (`already_pending`,
/// `already_delivered` or `missing`): nothing to redeliver.
#[utoipa::path(post, path = "/deliveries/{id}/redeliver", tag = "deliveries",
    params(DeliveryPath),
    responses(
        (status = 202, description = "Queued for a fresh round of attempts; `outcome` is \
            `requeued`.", body = redeliver::Redelivered,
            example = json!({"delivery_id": "0190f1c2-7a4b-7cde-8f01-23456789abcd",
                "outcome": "requeued"})),
        BadParameter, NotFound, Conflict, Database, Broker,
    ))]
pub(super) async fn redeliver_delivery(
    State(s): State<AdminState>,
    Path(p): Path<DeliveryPath>,
) -> Result<(StatusCode, Json<redeliver::Redelivered>)> {
    let id = p.id()?;
    // An unknown delivery is a 404 even while the broker is down.
    deliveries::get(&db(&s).await?, &p.tenant, id).await?;
    let connection = s.connection().await?;
    let channel = amqp::confirm_channel(&connection)
        .await
        .map_err(AdminError::from)?;
    let result = redeliver::one(&s.pool, &channel, &s.topology, &p.tenant, id).await;
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
    Ok((StatusCode::ACCEPTED, Json(done)))
}
