//! What is pending, per webhook: the `/metrics` gauges sampled by the api role
//! (`hookrelay_metrics::sample_pending`).
//!
//! No index may cover `deliveries.status` (its updates must stay HOT, see
//! V1__initial_schema.sql), so finding pending rows means reading rows. The sample
//! reads each webhook's deliveries through `deliveries_by_webhook` (one-off URL
//! deliveries through `deliveries_one_off`, V9) from a watermark on: the oldest
//! delivery it found pending last time, or, when none was, a minute before the last
//! sample. Its cost is the rows created since each webhook's oldest pending delivery,
//! never the table's history, and at most the rows of the lookback window
//! (docs/observability.md has the plan and its cost).

use std::collections::HashMap;
use std::time::Duration;

use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;

/// How far before the last sample the next one looks again when a webhook had
/// nothing pending: a router transaction that began earlier (its rows carry its
/// start time) and committed since is still seen.
pub const COMMIT_MARGIN: Duration = Duration::from_secs(60);

/// Longest a sample may run; one that takes longer is cancelled and tried at the
/// next round.
pub const STATEMENT_TIMEOUT: &str = "10s";

/// Pending deliveries of one webhook, or of a tenant's one-off URLs.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingRow {
    pub tenant: String,
    /// `None` for one-off URL deliveries.
    pub webhook_id: Option<Uuid>,
    pub webhook_key: Option<String>,
    pub count: u64,
    pub oldest: OffsetDateTime,
}

/// Where each webhook's next sample starts reading; kept by the sampler between
/// rounds (empty at start: the lookback window is read once).
#[derive(Debug, Clone, Default)]
pub struct Watermarks {
    webhooks: HashMap<Uuid, OffsetDateTime>,
    one_off: Option<OffsetDateTime>,
}

/// One sample: the database's clock, and what was pending.
#[derive(Debug, Clone)]
pub struct PendingSample {
    pub now: OffsetDateTime,
    pub rows: Vec<PendingRow>,
}

/// Pending deliveries per webhook (status `pending`: queued, in flight or waiting for
/// a retry; held ones are not), created within `lookback`, from `marks` on. Updates
/// `marks` for the next round.
pub async fn sample(
    db: &mut deadpool_postgres::Client,
    marks: &mut Watermarks,
    lookback: Duration,
) -> Result<PendingSample, StoreError> {
    let tx = db.transaction().await?;
    // The planner cannot know how far back the watermarks are and estimates a third
    // of each webhook's rows, far above `jit_above_cost`: JIT then costs ~200 ms a
    // round for a query that runs in a few (docs/observability.md).
    tx.batch_execute(&format!(
        "SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'; SET LOCAL jit = off"
    ))
    .await?;
    let now: OffsetDateTime = tx.query_one("SELECT now()", &[]).await?.try_get(0)?;
    let floor = now - lookback;
    let (ids, since): (Vec<Uuid>, Vec<OffsetDateTime>) =
        marks.webhooks.iter().map(|(id, at)| (*id, *at)).unzip();
    let rows = tx
        .query(
            "SELECT w.id, w.tenant, w.key, p.n, p.oldest FROM webhooks w \
             LEFT JOIN unnest($1::uuid[], $2::timestamptz[]) AS m(id, since) ON m.id = w.id \
             CROSS JOIN LATERAL ( \
               SELECT count(*) AS n, min(d.created_at) AS oldest FROM deliveries d \
               WHERE d.webhook_id = w.id AND d.created_at >= greatest(m.since, $3) \
                 AND d.status = 'pending') p",
            &[&ids, &since, &floor],
        )
        .await?;
    let recent = now - COMMIT_MARGIN;
    let mut next = Watermarks::default();
    let mut out = Vec::new();
    for r in &rows {
        let id: Uuid = r.try_get("id")?;
        let count = u64::try_from(r.try_get::<_, i64>("n")?).unwrap_or(0);
        let oldest: Option<OffsetDateTime> = r.try_get("oldest")?;
        let Some(oldest) = oldest.filter(|_| count > 0) else {
            next.webhooks.insert(id, recent);
            continue;
        };
        next.webhooks.insert(id, oldest.min(recent));
        out.push(PendingRow {
            webhook_id: Some(id),
            tenant: r.try_get("tenant")?,
            webhook_key: Some(r.try_get("key")?),
            count,
            oldest,
        });
    }
    let one_off_since = marks.one_off.map_or(floor, |at| at.max(floor));
    let rows = tx
        .query(
            "SELECT tenant, count(*) AS n, min(created_at) AS oldest FROM deliveries \
             WHERE webhook_id IS NULL AND created_at >= $1 AND status = 'pending' \
             GROUP BY tenant",
            &[&one_off_since],
        )
        .await?;
    next.one_off = Some(recent);
    for r in &rows {
        let oldest: OffsetDateTime = r.try_get("oldest")?;
        next.one_off = next.one_off.map(|at| at.min(oldest));
        out.push(PendingRow {
            webhook_id: None,
            tenant: r.try_get("tenant")?,
            webhook_key: None,
            count: u64::try_from(r.try_get::<_, i64>("n")?).unwrap_or(0),
            oldest,
        });
    }
    tx.commit().await?;
    // Webhooks deleted since drop out; new ones are read from the lookback on.
    *marks = next;
    Ok(PendingSample { now, rows: out })
}
