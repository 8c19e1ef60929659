//! Retention: whole days of history older than the longest retention period are
//! detached and dropped; a tenant with a shorter period (and every tenant in the
//! history converted by V23, until it is dropped) has its older events deleted with
//! their deliveries and attempts, a small batch per transaction so no lock is held
//! long. Each round first creates the days ahead, so inserts always find theirs.

use std::time::Duration;

use deadpool_postgres::Pool;
use hookrelay_store::StoreError;
use hookrelay_store::partitions::{self, Dropped};
use hookrelay_store::tenants::{self, Expired, Horizon};
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

/// What a purge deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purged {
    /// The days dropped whole, oldest first.
    pub days: Vec<Dropped>,
    /// Events deleted row by row, per tenant (only tenants with any).
    pub rows: Vec<(String, u64)>,
}

/// Creates the days ahead of `now`, then deletes what is expired at `now`.
pub async fn purge(
    pool: &Pool,
    now: OffsetDateTime,
    default_days: i32,
) -> Result<Purged, StoreError> {
    let horizon = {
        let db = pool.get().await?;
        partitions::ensure(&db, now).await?;
        Horizon::at(&db, now, default_days).await?
    };
    // A connection of its own, outside any transaction (the detach is concurrent).
    let dropping = pool.get().await?;
    let mut purged = Purged {
        days: partitions::drop_days(&dropping, &horizon.days).await?,
        rows: Vec::new(),
    };
    drop(dropping);
    // The history may have just been dropped: rows are deleted where it still is.
    let history_end = partitions::history_end(&pool.get().await?).await?;
    let horizon = Horizon {
        history_end,
        ..horizon
    };
    for (tenant, days, cutoff) in &horizon.tenants {
        let Some(before) = horizon.rows_before(*days, *cutoff) else {
            continue;
        };
        let mut total = 0;
        loop {
            // A fresh connection per batch: other work interleaves between them.
            let db = pool.get().await?;
            let n = tenants::purge_batch(&db, tenant, before, BATCH).await?;
            total += n;
            if n < BATCH as u64 {
                break;
            }
        }
        if total > 0 {
            tracing::info!(%tenant, events = total, cutoff = %before, "retention deleted expired events");
            purged.rows.push((tenant.clone(), total));
        }
    }
    if !purged.days.is_empty() || !purged.rows.is_empty() {
        for (tenant, _, _) in &horizon.tenants {
            let mut db = pool.get().await?;
            let keys = hookrelay_store::turns::purge_keys(&mut db, tenant).await?;
            if keys > 0 {
                tracing::info!(%tenant, ordering_keys = keys, "retention deleted emptied ordering keys");
            }
        }
    }
    Ok(purged)
}

/// Purges every `every` until `shutdown` resolves (the first round at once, which
/// also creates the days ahead); errors are logged and retried at the next round.
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
