//! Per tenant and webhook: deliveries of the last hour and the last day by status,
//! and the dead letters waiting now. `hookrelay stats` and `GET /v1/stats` call
//! [`collect`].

use std::collections::HashMap;

use hookrelay_store::StoreError;
use hookrelay_store::stats::{self, StatsFilter, StatusCounts};
use serde::Serialize;
use uuid::Uuid;

use crate::AdminError;
use crate::dlq::{self, Dlq, Filter};

/// One webhook's recent deliveries (or a tenant's one-off URL deliveries:
/// `webhook_id` and `webhook_key` null), and its dead letters.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = WebhookStats)]
pub struct WebhookStats {
    pub tenant: String,
    pub webhook_id: Option<Uuid>,
    pub webhook_key: Option<String>,
    /// Deliveries created in the last hour, by their status now.
    pub last_hour: StatusCounts,
    /// Deliveries created in the last 24 hours, by their status now.
    pub last_day: StatusCounts,
    /// The error of the newest of those that failed; null when none did.
    pub last_error: Option<String>,
    /// Messages in the dead-letter queue now that name this webhook (for the
    /// one-off row: that name the tenant and no webhook).
    #[schema(minimum = 0)]
    pub dead_letters: u64,
}

/// Every webhook of `tenant` (or of every tenant), or the one `webhook` names (its
/// id, or its key in `tenant` or in every tenant), with what its tenant sent to
/// one-off URLs when no webhook is named. Reads the deliveries of the last day and
/// the whole dead-letter queue.
pub async fn collect(
    dlq: &Dlq<'_>,
    tenant: Option<String>,
    webhook: Option<String>,
) -> Result<Vec<WebhookStats>, AdminError> {
    let filter = Filter {
        tenant: tenant.clone(),
        webhook: webhook.clone(),
        reason: None,
        ids: Vec::new(),
        webhook_ids: None,
    }
    .resolved(dlq.pool)
    .await?;
    let webhook_ids = match (&webhook, &filter.webhook_ids) {
        (None, _) => None,
        (Some(_), Some(ids)) => Some(ids.iter().filter_map(|i| i.parse().ok()).collect()),
        (Some(w), None) => Some(Uuid::parse_str(w).into_iter().collect::<Vec<Uuid>>()),
    };
    let rows = {
        let db = dlq.pool.get().await.map_err(StoreError::from)?;
        let filter = StatsFilter {
            tenant,
            webhook_ids,
        };
        stats::recent(&db, &filter, time::OffsetDateTime::now_utc()).await?
    };
    let mut dead: HashMap<(Option<String>, Option<String>), u64> = HashMap::new();
    for group in dlq::summarize(dlq, &filter).await? {
        *dead
            .entry((group.tenant.clone(), group.webhook_id.clone()))
            .or_default() += group.count;
    }
    Ok(rows
        .into_iter()
        .map(|r| {
            let key = (
                Some(r.tenant.clone()),
                r.webhook_id.map(|id| id.to_string()),
            );
            WebhookStats {
                dead_letters: dead.get(&key).copied().unwrap_or(0),
                tenant: r.tenant,
                webhook_id: r.webhook_id,
                webhook_key: r.webhook_key,
                last_hour: r.last_hour,
                last_day: r.last_day,
                last_error: r.last_error,
            }
        })
        .collect())
}
