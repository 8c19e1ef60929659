//! Recent deliveries counted by status, per webhook: `hookrelay stats` and
//! `GET /v1/stats`; and attempts per interval (`series`), the charts' numbers. Read through `deliveries_by_webhook` (and `deliveries_one_off`
//! for one-off URLs) over the last day only, never the whole history.

use deadpool_postgres::GenericClient;
use hookrelay_model::series::{Point, Window};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;

/// Deliveries created in a period, by their status now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatusCounts {
    pub delivered: u64,
    pub failed: u64,
    /// Pending, and waiting their turn behind an earlier delivery of their ordering key.
    pub pending: u64,
    pub held: u64,
}

/// One webhook's (or a tenant's one-off URLs') recent deliveries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookCounts {
    pub tenant: String,
    /// `None` for one-off URL deliveries.
    pub webhook_id: Option<Uuid>,
    pub webhook_key: Option<String>,
    pub last_hour: StatusCounts,
    pub last_day: StatusCounts,
    /// The error of the newest delivery of the last day that failed.
    pub last_error: Option<String>,
}

/// Which webhooks to count: every field narrows.
#[derive(Debug, Clone, Default)]
pub struct StatsFilter {
    pub tenant: Option<String>,
    /// Only these webhooks (and then no one-off URLs).
    pub webhook_ids: Option<Vec<Uuid>>,
}

const COUNTS: &str = "\
    count(*) FILTER (WHERE d.status = 'delivered' AND d.created_at >= $1) AS h_delivered, \
    count(*) FILTER (WHERE d.status = 'failed' AND d.created_at >= $1) AS h_failed, \
    count(*) FILTER (WHERE d.status IN ('pending', 'waiting') AND d.created_at >= $1) AS h_pending, \
    count(*) FILTER (WHERE d.status = 'held' AND d.created_at >= $1) AS h_held, \
    count(*) FILTER (WHERE d.status = 'delivered') AS d_delivered, \
    count(*) FILTER (WHERE d.status = 'failed') AS d_failed, \
    count(*) FILTER (WHERE d.status IN ('pending', 'waiting')) AS d_pending, \
    count(*) FILTER (WHERE d.status = 'held') AS d_held, \
    (array_agg(d.last_error ORDER BY d.id DESC) FILTER (WHERE d.status = 'failed'))[1] AS last_error";

fn counts(r: &tokio_postgres::Row, p: &str) -> Result<StatusCounts, StoreError> {
    let n = |c: &str| -> Result<u64, StoreError> {
        Ok(u64::try_from(r.try_get::<_, i64>(format!("{p}_{c}").as_str())?).unwrap_or(0))
    };
    Ok(StatusCounts {
        delivered: n("delivered")?,
        failed: n("failed")?,
        pending: n("pending")?,
        held: n("held")?,
    })
}

/// Deliveries created in the last hour and the last day before `now`, per webhook
/// (every webhook of the filter, with zeros when it had none) and per tenant's
/// one-off URLs (those with any), ordered by tenant and key.
pub async fn recent(
    db: &impl GenericClient,
    filter: &StatsFilter,
    now: OffsetDateTime,
) -> Result<Vec<WebhookCounts>, StoreError> {
    let hour = now - time::Duration::hours(1);
    let day = now - time::Duration::days(1);
    let sql = format!(
        "SELECT w.id, w.tenant, w.key, s.* FROM webhooks w CROSS JOIN LATERAL ( \
           SELECT {COUNTS} FROM deliveries d \
           WHERE d.webhook_id = w.id AND d.created_at >= $2 AND d.created_at <= $3) s \
         WHERE ($4::text IS NULL OR w.tenant = $4) AND ($5::uuid[] IS NULL OR w.id = ANY($5)) \
         ORDER BY w.tenant, w.key"
    );
    let rows = db
        .query(
            &sql,
            &[&hour, &day, &now, &filter.tenant, &filter.webhook_ids],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(WebhookCounts {
            tenant: r.try_get("tenant")?,
            webhook_id: Some(r.try_get("id")?),
            webhook_key: Some(r.try_get("key")?),
            last_hour: counts(r, "h")?,
            last_day: counts(r, "d")?,
            last_error: r.try_get("last_error")?,
        });
    }
    if filter.webhook_ids.is_some() {
        return Ok(out);
    }
    let sql = format!(
        "SELECT d.tenant, {COUNTS} FROM deliveries d \
         WHERE d.webhook_id IS NULL AND d.created_at >= $2 AND d.created_at <= $3 \
           AND ($4::text IS NULL OR d.tenant = $4) \
         GROUP BY d.tenant ORDER BY d.tenant"
    );
    let rows = db.query(&sql, &[&hour, &day, &now, &filter.tenant]).await?;
    for r in &rows {
        out.push(WebhookCounts {
            tenant: r.try_get("tenant")?,
            webhook_id: None,
            webhook_key: None,
            last_hour: counts(r, "h")?,
            last_day: counts(r, "d")?,
            last_error: r.try_get("last_error")?,
        });
    }
    Ok(out)
}

/// Attempts per interval of `window` by outcome, with their latency's median and 99th
/// percentile: of a tenant's deliveries (every webhook's and its one-off URLs'), or of
/// one webhook's. Only intervals with attempts; `Series::fill` gives the rest.
///
/// Counted: attempts that started in the window, of deliveries created in it. Read
/// through `deliveries_by_webhook` (per webhook of the tenant) and
/// `deliveries_one_off`, then `delivery_attempts_by_delivery`: the window's rows only,
/// however long the history.
pub async fn series(
    db: &impl GenericClient,
    tenant: &str,
    webhook_id: Option<Uuid>,
    window: Window,
) -> Result<Vec<Point>, StoreError> {
    let sql = "\
        WITH d AS ( \
          SELECT d.id FROM webhooks w CROSS JOIN LATERAL ( \
            SELECT id FROM deliveries d \
            WHERE d.webhook_id = w.id AND d.created_at >= $2 AND d.created_at < $3) d \
          WHERE w.tenant = $1 AND ($5::uuid IS NULL OR w.id = $5) \
          UNION ALL \
          SELECT d.id FROM deliveries d \
          WHERE $5::uuid IS NULL AND d.webhook_id IS NULL \
            AND d.created_at >= $2 AND d.created_at < $3 AND d.tenant = $1) \
        SELECT date_bin(make_interval(secs => $4), a.started_at, $2) AS start, \
          count(*) FILTER (WHERE a.outcome = 'delivered') AS delivered, \
          count(*) FILTER (WHERE a.outcome = 'retry') AS retried, \
          count(*) FILTER (WHERE a.outcome = 'failed') AS failed, \
          percentile_cont(0.5) WITHIN GROUP (ORDER BY a.latency_ms) AS p50, \
          percentile_cont(0.99) WITHIN GROUP (ORDER BY a.latency_ms) AS p99 \
        FROM d JOIN delivery_attempts a ON a.delivery_id = d.id \
        WHERE a.started_at >= $2 AND a.started_at < $3 \
        GROUP BY 1 ORDER BY 1";
    let step = window.interval.as_seconds_f64();
    let rows = db
        .query(
            sql,
            &[&tenant, &window.since, &window.until, &step, &webhook_id],
        )
        .await?;
    let n = |r: &tokio_postgres::Row, c: &str| -> Result<u64, StoreError> {
        Ok(u64::try_from(r.try_get::<_, i64>(c)?).unwrap_or(0))
    };
    rows.iter()
        .map(|r| {
            Ok(Point {
                start: r.try_get("start")?,
                delivered: n(r, "delivered")?,
                retried: n(r, "retried")?,
                failed: n(r, "failed")?,
                p50_ms: r.try_get("p50")?,
                p99_ms: r.try_get("p99")?,
            })
        })
        .collect()
}
