//! Retention: events older than their tenant's period are deleted with their
//! deliveries and attempts, a small batch per transaction so no lock is held long.

use std::time::Duration;

use deadpool_postgres::Pool;
use hookrelay_store::StoreError;
use hookrelay_store::tenants::{self, Expired};
use time::OffsetDateTime;

/// Events deleted per statement: small enough that each delete is brief.
pub const BATCH: i64 = 500;

/// What a purge at `now` would delete, per tenant.
pub async fn plan(
    pool: &Pool,
    now: OffsetDateTime,
    default_days: i32,
) -> Result<Vec<Expired>, StoreError> {
    let db = pool.get().await?;
    tenants::plan(&db, now, default_days).await
}

/// Deletes what is expired at `now`; returns the events deleted per tenant.
pub async fn purge(
    pool: &Pool,
    now: OffsetDateTime,
    default_days: i32,
) -> Result<Vec<(String, u64)>, StoreError> {
    let cutoffs = {
        let db = pool.get().await?;
        tenants::cutoffs(&db, now, default_days).await?
    };
    let mut deleted = Vec::new();
    for (tenant, _, cutoff) in cutoffs {
        let mut total = 0;
        loop {
            // A fresh connection per batch: other work interleaves between them.
            let db = pool.get().await?;
            let n = tenants::purge_batch(&db, &tenant, cutoff, BATCH).await?;
            total += n;
            if n < BATCH as u64 {
                break;
            }
        }
        if total > 0 {
            let mut db = pool.get().await?;
            let keys = hookrelay_store::turns::purge_keys(&mut db, &tenant).await?;
            tracing::info!(%tenant, events = total, ordering_keys = keys, %cutoff, "retention deleted expired events");
            deleted.push((tenant, total));
        }
    }
    Ok(deleted)
}

/// Purges every `every` until `shutdown` resolves; errors are logged and retried at
/// the next round.
pub async fn run(
    pool: Pool,
    default_days: i32,
    every: Duration,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut tick = tokio::time::interval(every);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = tick.tick() => {
                if let Err(e) = purge(&pool, OffsetDateTime::now_utc(), default_days).await {
                    tracing::warn!(error = %e, "retention purge failed; trying again next round");
                }
            }
        }
    }
}
