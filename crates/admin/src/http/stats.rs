//! `/v1/stats`: recent deliveries and dead letters per tenant and webhook, for the
//! operator's token only.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{BadParameter, Broker, Database, NotFound};
use super::extract::{Params, list};
use super::{AdminState, Result};
use crate::dlq::Dlq;
use crate::stats::{self, WebhookStats};

#[derive(Deserialize, Default, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct StatsQuery {
    /// Only this tenant's webhooks.
    tenant: Option<String>,
    /// Only this webhook: its id, or its key (in `tenant`, or in every tenant without
    /// it; 404 for an unknown key).
    webhook: Option<String>,
}

list! {
    /// One entry per webhook (and per tenant's one-off URLs), by tenant and key; not
    /// paged.
    WebhookStatsList of WebhookStats
}

/// Delivery statistics
///
/// Per tenant and webhook: the deliveries created in the last hour and the last 24
/// hours, counted by their status now (delivered, failed, pending, held), and the
/// messages in the dead-letter queue that name the webhook. Every webhook of the
/// filter is listed, with zeros when it had nothing; a tenant's one-off URL
/// deliveries (`webhook_id` null) when it had any and no webhook is named. Reads the
/// last day of deliveries and the whole dead-letter queue, leaving it as it was.
/// Unknown query parameters are refused (400). Operator's token only (a tenant token
/// gets 403). 503 when RabbitMQ cannot be reached.
#[utoipa::path(get, path = "/", tag = "stats", params(StatsQuery),
    responses(
        (status = 200, description = "The statistics.", body = WebhookStatsList),
        BadParameter, NotFound, Database, Broker,
    ))]
pub(super) async fn get_stats(
    State(s): State<AdminState>,
    Params(q): Params<StatsQuery>,
) -> Result<Json<WebhookStatsList>> {
    let connection = s.connection().await?;
    let dlq = Dlq {
        connection: &connection,
        topology: &s.topology,
        pool: &s.pool,
    };
    Ok(WebhookStatsList::of(
        stats::collect(&dlq, q.tenant, q.webhook).await?,
    ))
}
