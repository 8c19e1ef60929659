//! `/v1/tenants/{tenant}/stats/series`: attempts per interval by outcome and their
//! latency, the numbers every chart of delivery health draws (console, portal).

use axum::Json;
use axum::extract::State;
use hookrelay_model::series::{Series, Window};
use hookrelay_store::{stats, webhooks};
use serde::Deserialize;
use time::OffsetDateTime;
use utoipa::IntoParams;

use super::error::{BadParameter, Database, NotFound};
use super::extract::{Params, Path};
use super::{AdminState, Result, db};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct SeriesQuery {
    /// Only this webhook's deliveries: its key or id. Absent: every webhook of the
    /// tenant and its one-off URLs.
    webhook: Option<String>,
    /// The window, in hours back from now: 1 to 168 (default 24). It is cut into 24
    /// intervals.
    #[param(minimum = 1, maximum = 168)]
    hours: Option<i64>,
}

/// Delivery health over time
///
/// The attempts of the last `hours` (24 by default) in 24 intervals, each with its
/// attempts by outcome (delivered, retried, failed) and their latency's median and
/// 99th percentile. Intervals are whole multiples of their length since the epoch, the
/// last one holding now; every interval has a point (zero without attempts). Counted
/// from the database's records: every replica answers the same.
#[utoipa::path(get, path = "/stats/series", tag = "deliveries", params(SeriesQuery),
    responses(
        (status = 200, description = "One point per interval, oldest first.", body = Series),
        BadParameter, NotFound, Database,
    ))]
pub(super) async fn get_series(
    State(s): State<AdminState>,
    Path(tenant): Path<String>,
    Params(q): Params<SeriesQuery>,
) -> Result<Json<Series>> {
    let window = Window::ending(OffsetDateTime::now_utc(), q.hours)?;
    let db = db(&s).await?;
    let webhook_id = match q.webhook.as_deref() {
        Some(key) => Some(webhooks::id_of(&db, &tenant, key).await?),
        None => None,
    };
    let counted = stats::series(&db, &tenant, webhook_id, window).await?;
    Ok(Json(Series::fill(window, counted)))
}
