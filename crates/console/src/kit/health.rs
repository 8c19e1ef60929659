//! A tenant's webhooks' recent deliveries (last hour, last day, last error), read
//! from the store for callers that may not read `/v1/stats` (the operator's): a
//! tenant's console viewer and a portal session. Shaped as `/v1/stats` answers.

use deadpool_postgres::GenericClient;
use hookrelay_store::{StoreError, stats};
use serde_json::{Value, json};
use time::OffsetDateTime;

pub async fn of_tenant(db: &impl GenericClient, tenant: &str) -> Result<Vec<Value>, StoreError> {
    let filter = stats::StatsFilter {
        tenant: Some(tenant.to_owned()),
        webhook_ids: None,
    };
    let counts = stats::recent(db, &filter, OffsetDateTime::now_utc()).await?;
    let as_json = |c: &stats::StatusCounts| json!({"delivered": c.delivered, "failed": c.failed, "pending": c.pending, "held": c.held});
    Ok(counts
        .iter()
        .map(|c| {
            json!({"tenant": c.tenant, "webhook_key": c.webhook_key,
                   "last_hour": as_json(&c.last_hour), "last_day": as_json(&c.last_day),
                   "last_error": c.last_error, "dead_letters": 0})
        })
        .collect())
}
