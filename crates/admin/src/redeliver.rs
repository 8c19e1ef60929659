//! Manual redelivery: a failed delivery gets a fresh round of attempts (the first
//! attempt and the configured retries), recorded after its earlier ones. The delivery
//! row is reused, so de-duplication still holds: one event, one delivery per webhook.

use deadpool_postgres::Pool;
use hookrelay_amqp as amqp;
use hookrelay_model::Topology;
use hookrelay_model::wire::DeliveryMessage;
use hookrelay_store::deliveries::{self, Delivery, Reopen};
use hookrelay_store::turns;
use lapin::Channel;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::AdminError;

/// What redelivering one delivery did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = RedeliveryOutcome)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Queued for a fresh round of attempts.
    Requeued,
    /// Not failed: still pending (in its round, or queued by an earlier redelivery).
    AlreadyPending,
    AlreadyDelivered,
    /// The delivery no longer exists (retention deleted its event).
    Missing,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Redelivered {
    pub delivery_id: Uuid,
    pub outcome: Outcome,
}

/// Redelivers one delivery of `tenant`; 404 (`NotFound`) for another tenant's.
pub async fn one(
    pool: &Pool,
    channel: &Channel,
    topology: &Topology,
    tenant: &str,
    id: Uuid,
) -> Result<Redelivered, AdminError> {
    let db = pool
        .get()
        .await
        .map_err(hookrelay_store::StoreError::from)?;
    let delivery = deliveries::get(&db, tenant, id).await?;
    drop(db);
    let outcome = reopen_and_publish(pool, channel, topology, &delivery, false).await?;
    Ok(Redelivered {
        delivery_id: id,
        outcome,
    })
}

/// What redelivering a webhook's failed deliveries did.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
#[schema(as = RedeliverySummary)]
pub struct Summary {
    pub requeued: u64,
    /// Deliveries whose outcome was not `requeued`.
    pub skipped: u64,
    pub deliveries: Vec<Redelivered>,
}

/// Redelivers every failed delivery of one webhook created at or after `since`;
/// `progress` gets how many are done of how many.
pub async fn failed_of_webhook(
    pool: &Pool,
    channel: &Channel,
    topology: &Topology,
    (tenant, webhook_id, since): (&str, Uuid, OffsetDateTime),
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<Summary, AdminError> {
    let db = pool
        .get()
        .await
        .map_err(hookrelay_store::StoreError::from)?;
    let failed = deliveries::failed_of_webhook(&db, tenant, webhook_id, since).await?;
    drop(db);
    each(pool, channel, topology, &failed, progress).await
}

/// Resumes an ordered key its webhook blocks: the failed deliveries holding it back
/// get a fresh round of attempts, oldest first; the key's later deliveries wait for
/// them as for any earlier delivery, so they follow in order.
pub async fn resume_key(
    pool: &Pool,
    channel: &Channel,
    topology: &Topology,
    (tenant, webhook_id, key): (&str, Uuid, &str),
) -> Result<Summary, AdminError> {
    let db = pool
        .get()
        .await
        .map_err(hookrelay_store::StoreError::from)?;
    let blocking = deliveries::blocking_of_key(&db, tenant, webhook_id, key).await?;
    drop(db);
    each(pool, channel, topology, &blocking, &|_, _| {}).await
}

/// Skips what blocks an ordered key: its failed deliveries so far hold nothing back
/// (they stay failed, their dead letters stay in the queue), and the delivery
/// waiting behind them is released. Returns the number up to which the key's
/// failures are skipped.
pub async fn skip_key(
    pool: &Pool,
    channel: &Channel,
    topology: &Topology,
    (tenant, webhook_id, key): (&str, Uuid, &str),
) -> Result<i64, AdminError> {
    let mut db = pool
        .get()
        .await
        .map_err(hookrelay_store::StoreError::from)?;
    let through = deliveries::skip_key(&db, tenant, webhook_id, key).await?;
    // Published before the release commits: see `turns::Release`.
    let release =
        turns::release_after(&mut db, webhook_id, key, through, turns::Handing::Publish).await?;
    if let Some(next) = &release.next {
        amqp::publish_reopened(channel, topology, &next.message(), next.trace_id.as_deref())
            .await?;
        tracing::info!(delivery_id = %next.delivery.id, "the key's next delivery released");
    }
    release.commit().await?;
    Ok(through)
}

/// Sends what `webhook` holds, if it holds no more (resumed and enabled): what a
/// resume, an enable, or an update that enables calls once the webhook's row is
/// committed. None when it still holds (paused, or disabled).
pub async fn release_held(
    pool: &Pool,
    channel: &Channel,
    topology: &Topology,
    webhook: &hookrelay_model::webhook::Webhook,
) -> Result<Option<Summary>, AdminError> {
    if hookrelay_model::matching::holds(webhook) {
        return Ok(None);
    }
    held_of_webhook(pool, channel, topology, &webhook.tenant, webhook.id)
        .await
        .map(Some)
}

/// Sends the held deliveries of a (resumed) webhook, oldest first, each as a
/// redelivery does: reopened, published, marked published. Run again after a crash,
/// it sends what is still held and nothing twice.
pub async fn held_of_webhook(
    pool: &Pool,
    channel: &Channel,
    topology: &Topology,
    tenant: &str,
    webhook_id: Uuid,
) -> Result<Summary, AdminError> {
    let db = pool
        .get()
        .await
        .map_err(hookrelay_store::StoreError::from)?;
    let held = deliveries::held_of_webhook(&db, tenant, webhook_id).await?;
    drop(db);
    each(pool, channel, topology, &held, &|_, _| {}).await
}

/// Redelivers each of `list` in turn, counting what each did.
async fn each(
    pool: &Pool,
    channel: &Channel,
    topology: &Topology,
    list: &[Delivery],
    progress: &(dyn Fn(u64, u64) + Send + Sync),
) -> Result<Summary, AdminError> {
    let mut summary = Summary::default();
    let total = u64::try_from(list.len()).unwrap_or(u64::MAX);
    for delivery in list {
        progress(summary.requeued + summary.skipped, total);
        let outcome = reopen_and_publish(pool, channel, topology, delivery, false).await?;
        if outcome == Outcome::Requeued {
            summary.requeued += 1;
        } else {
            summary.skipped += 1;
        }
        summary.deliveries.push(Redelivered {
            delivery_id: delivery.id,
            outcome,
        });
    }
    Ok(summary)
}

/// Reopens the row, publishes the delivery message (confirmed), then marks the row
/// published: if this stops midway, running it again publishes once (see
/// [`deliveries::reopen`], which also says what `unsettled` means).
pub(crate) async fn reopen_and_publish(
    pool: &Pool,
    channel: &Channel,
    topology: &Topology,
    delivery: &Delivery,
    unsettled: bool,
) -> Result<Outcome, AdminError> {
    let db = pool
        .get()
        .await
        .map_err(hookrelay_store::StoreError::from)?;
    let attempts_before = match deliveries::reopen(&db, delivery.id, unsettled).await? {
        None => return Ok(Outcome::Missing),
        Some(Reopen::Delivered) => return Ok(Outcome::AlreadyDelivered),
        Some(Reopen::InFlight) => return Ok(Outcome::AlreadyPending),
        Some(Reopen::Publish { attempts_before }) => attempts_before,
    };
    // No connection is held while waiting for the broker.
    drop(db);
    let message = DeliveryMessage::again(
        delivery.id,
        &delivery.tenant,
        &delivery.event_id,
        delivery.webhook_id,
        attempts_before,
    );
    amqp::publish_reopened(channel, topology, &message, delivery.trace_id.as_deref()).await?;
    let db = pool
        .get()
        .await
        .map_err(hookrelay_store::StoreError::from)?;
    deliveries::mark_published(&db, &[delivery.id]).await?;
    tracing::info!(delivery_id = %delivery.id, attempts_before, "delivery re-queued");
    Ok(Outcome::Requeued)
}
