//! The pending gauges: sampled from the database (`hookrelay_store::pending`) by the
//! api role, one query per round; the breaker gauge with them, from the webhooks'
//! rows.

use std::collections::HashSet;
use std::time::Duration;

use hookrelay_model::shutdown::Shutdown;
use hookrelay_store::DbPool;
use hookrelay_store::pending::{self, Watermarks};
use hookrelay_store::webhooks;

use crate::webhooks::ONE_OFF;
use crate::{Metrics, Pending};

/// How the pending gauges are sampled.
#[derive(Debug, Clone, Copy)]
pub struct PendingSampler {
    /// Time between samples.
    pub every: Duration,
    /// Only deliveries created this recently are looked at
    /// (`HOOKRELAY_METRICS_PENDING_LOOKBACK`).
    pub lookback: Duration,
}

/// Samples what is pending into `metrics` at once, then every `sampler.every`, until
/// `shutdown`. A round that fails (database away, too slow) is logged and the
/// gauges keep their last values.
pub async fn sample_pending(
    pool: &DbPool,
    metrics: &Metrics,
    sampler: PendingSampler,
    mut shutdown: Shutdown,
) {
    let mut marks = Watermarks::default();
    let mut open = HashSet::new();
    loop {
        if let Err(error) = sample_once(pool, metrics, &mut marks, sampler.lookback).await {
            tracing::warn!(%error, "sampling pending deliveries failed; trying again next round");
        }
        if let Err(error) = sample_breakers(pool, metrics, &mut open).await {
            tracing::warn!(%error, "sampling circuit breakers failed; trying again next round");
        }
        if let Err(error) = sample_blocked_keys(pool, metrics).await {
            tracing::warn!(%error, "sampling blocked ordering keys failed; trying again next round");
        }
        tokio::select! {
            () = tokio::time::sleep(sampler.every) => {}
            () = shutdown.wait() => {}
        }
        if shutdown.is_triggered() {
            break;
        }
    }
}

/// The breaker gauge from the webhooks' rows (whichever sender tripped or closed
/// them): 1 for each open now, 0 for each open last round and closed since.
async fn sample_breakers(
    pool: &DbPool,
    metrics: &Metrics,
    open: &mut HashSet<(String, String)>,
) -> Result<(), hookrelay_store::StoreError> {
    let client = pool.get().await?;
    let now: HashSet<(String, String)> = webhooks::tripped(&client).await?.into_iter().collect();
    for (tenant, key) in open.difference(&now) {
        metrics.set_breaker_open(tenant, key, false);
    }
    for (tenant, key) in now.difference(open) {
        metrics.set_breaker_open(tenant, key, true);
    }
    *open = now;
    Ok(())
}

/// The blocked-keys gauge, from the rows waiting behind a failure that blocks.
async fn sample_blocked_keys(
    pool: &DbPool,
    metrics: &Metrics,
) -> Result<(), hookrelay_store::StoreError> {
    let client = pool.get().await?;
    metrics.set_keys_blocked(hookrelay_store::turns::blocked_keys(&client).await?);
    Ok(())
}

async fn sample_once(
    pool: &DbPool,
    metrics: &Metrics,
    marks: &mut Watermarks,
    lookback: Duration,
) -> Result<(), hookrelay_store::StoreError> {
    let mut client = pool.get().await?;
    let sample = pending::sample(&mut client, marks, lookback).await?;
    let samples: Vec<Pending> = sample
        .rows
        .into_iter()
        .map(|r| Pending {
            oldest_age_seconds: (sample.now - r.oldest).as_seconds_f64().max(0.0),
            tenant: r.tenant,
            webhook: r.webhook_key.unwrap_or_else(|| ONE_OFF.to_owned()),
            count: r.count,
        })
        .collect();
    metrics.set_pending(&samples);
    Ok(())
}
