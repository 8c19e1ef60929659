//! `/v1/dead-letter`: the dead-letter queue, for the operator's token only.

use axum::Json;
use axum::extract::State;
use hookrelay_model::Invalid;
use serde::Deserialize;
use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::error::{BadParameter, Body as BodyErrors, Broker, Database, NotFound};
use super::extract::{Body, Params, Path, limit, list};
use super::{AdminState, Result};
use crate::dlq::{self, DeadMessage, Dlq, Filter, ReplayOptions, Summary};

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct DeadLetterQuery {
    /// Only this tenant's messages.
    tenant: Option<String>,
    /// Only messages of this webhook: its id, or its key (in `tenant`, or in every
    /// tenant without it; 404 for an unknown key).
    webhook: Option<String>,
    /// Only messages whose reason holds this text (case-insensitive).
    reason: Option<String>,
    /// Items at most (400 with `field: "limit"` outside 1 to 500).
    #[param(minimum = 1, maximum = 500, default = 50)]
    limit: Option<i64>,
}

impl DeadLetterQuery {
    fn filter(&self) -> Filter {
        Filter {
            tenant: self.tenant.clone(),
            webhook: self.webhook.clone(),
            reason: self.reason.clone(),
            ids: Vec::new(),
            webhook_ids: None,
        }
    }
}

list! {
    /// Matching messages from the head of the queue, at most `limit`; not paged.
    DeadMessageList of DeadMessage
}

/// List dead-lettered messages
///
/// Matching messages from the head of the queue, at most `limit`, leaving the queue
/// as it was. Bounded in bytes too: each body is cut to its first 64 KiB
/// (`body_truncated`, `body_bytes`), and the list stops once it holds about 16 MiB of
/// JSON, whatever `limit` says. Unknown query parameters are refused (400). Operator's token only (a
/// tenant token gets 403). Reads the queue through RabbitMQ: 503 when it cannot be
/// reached.
#[utoipa::path(get, path = "/", tag = "dead-letter", params(DeadLetterQuery),
    responses(
        (status = 200, description = "The matching messages.",
            body = DeadMessageList),
        BadParameter, NotFound, Database, Broker,
    ))]
pub(super) async fn list_dead_letters(
    State(s): State<AdminState>,
    Params(q): Params<DeadLetterQuery>,
) -> Result<Json<DeadMessageList>> {
    let limit = usize::try_from(limit(q.limit)?).unwrap_or(usize::MAX);
    let connection = s.connection().await?;
    let dlq = Dlq {
        connection: &connection,
        topology: &s.topology,
        pool: &s.pool,
    };
    Ok(DeadMessageList::of(
        dlq::list(&dlq, &q.filter(), limit).await?,
    ))
}

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct SummaryQuery {
    /// Only this tenant's messages.
    tenant: Option<String>,
    /// Only messages of this webhook: its id, or its key (in `tenant`, or in every
    /// tenant without it; 404 for an unknown key).
    webhook: Option<String>,
    /// Only messages whose reason holds this text (case-insensitive).
    reason: Option<String>,
}

list! {
    /// Groups of dead letters, the largest first; not paged.
    DeadLetterGroups of dlq::Group
}

/// Summarize the dead-letter queue
///
/// Every matching message counted by tenant, webhook (with its key) and reason, with
/// the oldest and newest dead-lettering time of each group; the largest group first.
/// Reads the whole queue, leaving it as it was. Operator's token only (a tenant token
/// gets 403). 503 when RabbitMQ cannot be reached.
#[utoipa::path(get, path = "/summary", tag = "dead-letter", params(SummaryQuery),
    responses(
        (status = 200, description = "The groups.", body = DeadLetterGroups),
        BadParameter, NotFound, Database, Broker,
    ))]
pub(super) async fn summarize_dead_letters(
    State(s): State<AdminState>,
    Params(q): Params<SummaryQuery>,
) -> Result<Json<DeadLetterGroups>> {
    let filter = Filter {
        tenant: q.tenant,
        webhook: q.webhook,
        reason: q.reason,
        ids: Vec::new(),
        webhook_ids: None,
    };
    let connection = s.connection().await?;
    let dlq = Dlq {
        connection: &connection,
        topology: &s.topology,
        pool: &s.pool,
    };
    Ok(DeadLetterGroups::of(dlq::summarize(&dlq, &filter).await?))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct DeadLetterPath {
    /// A message id, delivery id or event id: the first message (from the head) with
    /// it.
    id: String,
}

/// Show a dead-lettered message
///
/// The first message (from the head of the queue) whose message, delivery or event
/// id is `id`. Operator's token only (a tenant token gets 403). Reads the queue
/// through RabbitMQ: 503 when it cannot be reached.
#[utoipa::path(get, path = "/{id}", tag = "dead-letter", params(DeadLetterPath),
    responses(
        (status = 200, description = "The message.", body = DeadMessage),
        BadParameter, NotFound, Broker,
    ))]
pub(super) async fn show_dead_letter(
    State(s): State<AdminState>,
    Path(p): Path<DeadLetterPath>,
) -> Result<Json<DeadMessage>> {
    let connection = s.connection().await?;
    let dlq = Dlq {
        connection: &connection,
        topology: &s.topology,
        pool: &s.pool,
    };
    Ok(Json(dlq::show(&dlq, &p.id).await?))
}

/// The body of replay and purge (one type for both; unknown fields are refused): a
/// filter (every field narrows; none means every message in the queue) and how to
/// act. `rate` matters to replay only, `confirm` to purge only; each is checked by
/// both routes and ignored by the other.
#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct DeadLetterAction {
    tenant: Option<String>,
    /// A webhook's id, or its key (in `tenant`, or in every tenant without it).
    webhook: Option<String>,
    /// A case-insensitive part of the reason.
    reason: Option<String>,
    /// Message, delivery or event ids; empty means any.
    #[serde(default)]
    ids: Vec<String>,
    /// Only count what would be done.
    #[serde(default)]
    dry_run: bool,
    /// Replay: messages per second at most, from 0.001 to 1e9; unpaced when missing.
    #[schema(minimum = 0.001, maximum = 1e9)]
    rate: Option<f64>,
    /// Purge: must be true unless `dry_run` is (400 with `field: "confirm"`
    /// otherwise).
    #[serde(default)]
    confirm: bool,
}

impl DeadLetterAction {
    fn parse(body: &Body) -> Result<Self> {
        let action: Self = body.parse()?;
        dlq::check_rate(action.rate)?;
        Ok(action)
    }

    fn filter(&self) -> Filter {
        Filter {
            tenant: self.tenant.clone(),
            webhook: self.webhook.clone(),
            reason: self.reason.clone(),
            ids: self.ids.clone(),
            webhook_ids: None,
        }
    }
}

/// Replay dead-lettered messages
///
/// Sends matching messages back for a fresh round: a delivery is reopened and
/// re-queued, an event goes back to the router queue. Each dead-letter copy is
/// removed only after its replacement is confirmed. A body is required (`{}` replays
/// every message). Operator's token only (a tenant token gets 403). Reads the queue
/// through RabbitMQ: 503 when it cannot be reached.
#[utoipa::path(post, path = "/replay", tag = "dead-letter",
    request_body(content = DeadLetterAction, description = "Which messages, and how fast.",
        example = json!({"tenant": "acme", "rate": 50})),
    responses(
        (status = 200, description = "What the replay did.", body = Summary),
        BodyErrors, NotFound, Database, Broker,
    ))]
pub(super) async fn replay_dead_letters(
    State(s): State<AdminState>,
    body: Body,
) -> Result<Json<Summary>> {
    let action = DeadLetterAction::parse(&body)?;
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
    Ok(Json(dlq::replay(&dlq, &action.filter(), &options).await?))
}

/// The purge body as documented: a [`DeadLetterAction`] with `confirm: true` or
/// `dry_run: true`.
pub(super) struct PurgeAction;

impl utoipa::PartialSchema for PurgeAction {
    fn schema() -> RefOr<Schema> {
        let set = |field: &str| {
            ObjectBuilder::new()
                .property(
                    field,
                    ObjectBuilder::new()
                        .schema_type(Type::Boolean)
                        .enum_values(Some([true])),
                )
                .required(field)
        };
        AllOfBuilder::new()
            .item(Ref::from_schema_name(DeadLetterAction::name()))
            .item(
                AnyOfBuilder::new()
                    .item(set("confirm"))
                    .item(set("dry_run")),
            )
            .description(Some(
                "Which messages; `confirm: true` (or `dry_run: true`, to count only) is required.",
            ))
            .into()
    }
}

impl ToSchema for PurgeAction {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((
            DeadLetterAction::name().into_owned(),
            DeadLetterAction::schema(),
        ));
        DeadLetterAction::schemas(schemas);
    }
}

/// Purge dead-lettered messages
///
/// Deletes matching messages for good; needs `confirm: true` unless `dry_run: true`.
/// Operator's token only (a tenant token gets 403). Reads the queue through
/// RabbitMQ: 503 when it cannot be reached.
#[utoipa::path(post, path = "/purge", tag = "dead-letter",
    request_body(content = PurgeAction, description = "Which messages.",
        example = json!({"reason": "webhook deleted", "confirm": true})),
    responses(
        (status = 200, description = "What the purge did.", body = Summary),
        BodyErrors, NotFound, Database, Broker,
    ))]
pub(super) async fn purge_dead_letters(
    State(s): State<AdminState>,
    body: Body,
) -> Result<Json<Summary>> {
    let action = DeadLetterAction::parse(&body)?;
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
    Ok(Json(
        dlq::purge(&dlq, &action.filter(), action.dry_run).await?,
    ))
}
