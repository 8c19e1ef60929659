//! Per-webhook delivery policy across all senders: the rate limit (a GCRA bucket
//! in `webhook_rates`; over it, deliveries are held and a releaser sends them, oldest
//! first, as the rate allows) and the cap on requests in flight (Postgres advisory
//! locks on one session per sender, which the server frees if the sender dies).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use hookrelay_model::Topology;
use hookrelay_model::shutdown::Shutdown;
use hookrelay_model::wire::DeliveryMessage;
use hookrelay_store::rates::{self, Release};
use hookrelay_store::{StoreError, deliveries};
use lapin::Channel;
use tokio::time::Instant;
use uuid::Uuid;

use crate::shared::LoopError;

/// How often a sender looks for held deliveries the rate now allows.
const RELEASE_EVERY: Duration = Duration::from_millis(50);
/// Webhooks one release round takes at most.
const WEBHOOKS_PER_ROUND: i64 = 32;

/// Sends what the rate allows of each webhook's held deliveries, until shutdown.
pub(crate) async fn release_loop(
    pool: Pool,
    channel: Channel,
    topology: Topology,
    mut shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(RELEASE_EVERY) => {}
            () = shutdown.wait() => return,
        }
        if let Err(e) = release_round(&pool, &channel, &topology).await {
            tracing::warn!(error = %e, "rate-limited deliveries not released; trying again");
        }
    }
}

async fn release_round(
    pool: &Pool,
    channel: &Channel,
    topology: &Topology,
) -> Result<(), LoopError> {
    let mut db = pool.get().await?;
    let due = rates::release_due(&mut db, |w| w.policy().bucket, WEBHOOKS_PER_ROUND).await?;
    drop(db);
    for release in due {
        publish(pool, channel, topology, &release).await?;
    }
    Ok(())
}

/// Publishes each released delivery (confirmed), then drops their held rows and
/// marks them published. Stopped midway, another releaser sends the rest later.
async fn publish(
    pool: &Pool,
    channel: &Channel,
    topology: &Topology,
    release: &Release,
) -> Result<(), LoopError> {
    let mut ids = Vec::with_capacity(release.deliveries.len());
    for r in &release.deliveries {
        let message = DeliveryMessage {
            rate_counted: true,
            ..DeliveryMessage::again(
                r.delivery.id,
                &r.delivery.tenant,
                &r.delivery.event_id,
                r.delivery.webhook_id,
                r.attempts,
            )
        };
        hookrelay_amqp::publish_reopened(channel, topology, &message, r.trace_id.as_deref())
            .await?;
        ids.push(r.delivery.id);
    }
    if ids.is_empty() {
        return Ok(());
    }
    let db = pool.get().await?;
    rates::released(&db, &ids).await?;
    deliveries::mark_published(&db, &ids).await?;
    tracing::debug!(webhook_id = %release.webhook_id, released = ids.len(), "rate-limited deliveries released");
    Ok(())
}

/// The slots of capped webhooks this sender holds, on its one locking session.
pub(crate) struct Slots {
    pool: Pool,
    session: tokio::sync::Mutex<Session>,
}

#[derive(Default)]
struct Session {
    client: Option<deadpool_postgres::Object>,
    /// Slot numbers held on this session, per webhook.
    held: HashMap<Uuid, Vec<i32>>,
}

impl Session {
    /// Drops the session: its connection closes, so the server frees its locks.
    fn reset(&mut self) {
        if let Some(client) = self.client.take() {
            // Detached from the pool, so no other user inherits the locks.
            drop(deadpool_postgres::Object::take(client));
        }
        self.held.clear();
    }
}

/// A slot of a capped webhook; freed when dropped.
pub(crate) struct Slot {
    slots: Arc<Slots>,
    webhook_id: Uuid,
    number: i32,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let slots = Arc::clone(&self.slots);
        let (webhook_id, number) = (self.webhook_id, self.number);
        tokio::spawn(async move { slots.give(webhook_id, number).await });
    }
}

impl Slots {
    pub(crate) fn new(pool: Pool) -> Arc<Self> {
        Arc::new(Self {
            pool,
            session: tokio::sync::Mutex::new(Session::default()),
        })
    }

    /// One of the webhook's `cap` slots, waiting up to `patience` for one to free
    /// up; `Err(waited)` when none did.
    pub(crate) async fn take(
        self: &Arc<Self>,
        webhook_id: Uuid,
        cap: u16,
        patience: Duration,
    ) -> Result<Result<Slot, Duration>, StoreError> {
        let start = Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            if let Some(number) = self.try_take(webhook_id, cap).await? {
                return Ok(Ok(Slot {
                    slots: Arc::clone(self),
                    webhook_id,
                    number,
                }));
            }
            let waited = start.elapsed();
            if waited >= patience {
                return Ok(Err(waited));
            }
            tokio::time::sleep(pause.min(patience - waited)).await;
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    async fn try_take(&self, webhook_id: Uuid, cap: u16) -> Result<Option<i32>, StoreError> {
        let mut session = self.session.lock().await;
        if session.client.is_none() {
            session.client = Some(self.pool.get().await?);
        }
        let held = session.held.get(&webhook_id).cloned().unwrap_or_default();
        let Some(client) = session.client.as_ref() else {
            return Ok(None);
        };
        match rates::take_slot(client, webhook_id, cap, &held).await {
            Ok(Some(n)) => {
                session.held.entry(webhook_id).or_default().push(n);
                Ok(Some(n))
            }
            Ok(None) => Ok(None),
            Err(e) => {
                session.reset();
                Err(e)
            }
        }
    }

    async fn give(&self, webhook_id: Uuid, number: i32) {
        let mut session = self.session.lock().await;
        let Some(held) = session.held.get_mut(&webhook_id) else {
            // The session was reset meanwhile: the server freed the slot with it.
            return;
        };
        held.retain(|n| *n != number);
        if held.is_empty() {
            session.held.remove(&webhook_id);
        }
        let Some(client) = session.client.as_ref() else {
            return;
        };
        if let Err(e) = rates::give_slot(client, webhook_id, number).await {
            tracing::warn!(error = %e, "in-flight slot not freed; resetting the session, which frees them all");
            session.reset();
        }
    }
}
