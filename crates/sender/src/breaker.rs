//! The circuit breaker of each webhook.
//!
//! A webhook that keeps failing (`failures` failed attempts in a row, counted by each
//! sender) or hangs (at its cap of requests in flight, the oldest request sent without
//! an answer for `hanging_after`; waiting for a slot is not hanging) is tripped: its breaker opens in its row, shared by every
//! router and sender. While open its deliveries are held as for a pause: the router
//! creates them held, a sender holds the queued ones after one batched load, so none
//! takes a slot for long, cycles through a delay queue, or makes an attempt.
//!
//! After `cooldown` one sender claims the probe (an update of the row, so exactly one
//! does) and sends the webhook's newest held delivery as an ordinary attempt. Its
//! success closes the breaker and releases what it held, oldest first; its failure
//! leaves the breaker open until the next probe. A release cut short by a crash is
//! done again: the row keeps a release time until the release is confirmed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use deadpool_postgres::Pool;
use hookrelay_model::Topology;
use hookrelay_model::retry::Failure;
use hookrelay_model::shutdown::Shutdown;
use hookrelay_model::webhook::Webhook;
use hookrelay_model::wire::DeliveryMessage;
use hookrelay_store::StoreError;
use hookrelay_store::deliveries::{self, Delivery, Reopen};
use hookrelay_store::webhooks::{self, BreakerDue};
use lapin::Channel;
use uuid::Uuid;

use crate::request::Answer;
use crate::shared::{BreakerConfig, LoopError};

/// One per sender: the failures in a row it has seen per webhook.
pub(crate) struct Breakers {
    config: BreakerConfig,
    pool: Pool,
    topology: Topology,
    failures: Mutex<HashMap<Uuid, u32>>,
    /// Breakers this sender saw open, and when: while a webhook hangs, each of its
    /// deliveries asks, and must not cost a database round trip each.
    seen_open: Mutex<HashMap<Uuid, std::time::Instant>>,
}

/// Whether an answer counts toward tripping: the endpoint is down or broken, not
/// merely refusing this one request (`None`: nothing was sent, nothing learnt).
fn counts(answer: &Answer) -> Option<bool> {
    match answer.failure {
        None => Some(false),
        Some(Failure::Timeout | Failure::Connect) => Some(true),
        Some(Failure::Status(s)) => Some(s == 408 || s >= 500),
        Some(Failure::Permanent) => None,
    }
}

fn describe(answer: &Answer) -> String {
    match (answer.status, answer.failure) {
        (Some(status), _) => format!("HTTP {status}"),
        (None, Some(Failure::Timeout)) => "timeout".into(),
        (None, _) => "connection failed".into(),
    }
}

impl Breakers {
    pub(crate) fn new(config: BreakerConfig, pool: Pool, topology: Topology) -> Arc<Self> {
        Arc::new(Self {
            config,
            pool,
            topology,
            failures: Mutex::new(HashMap::new()),
            seen_open: Mutex::new(HashMap::new()),
        })
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, u32>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn seen_open(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, std::time::Instant>> {
        self.seen_open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Seen open by this sender within the cool-down (stale at worst: the delivery is
    /// then loaded, found not held, and deferred as before).
    fn known_open(&self, webhook_id: Uuid) -> bool {
        let mut seen = self.seen_open();
        let cooldown = self.config.cooldown;
        seen.retain(|_, at| at.elapsed() < cooldown);
        seen.contains_key(&webhook_id)
    }

    /// After an attempt to a stored webhook: counts a failure, trips at the limit;
    /// a success while the breaker is open (its probe) closes it and releases what
    /// it held.
    pub(crate) async fn after_attempt(
        &self,
        channel: &Channel,
        webhook: &Webhook,
        answer: &Answer,
    ) {
        let Some(failed) = counts(answer) else { return };
        if !failed {
            self.failures().remove(&webhook.id);
            if webhook.breaker.is_some() {
                self.close_and_release(channel, webhook.id, &webhook.tenant)
                    .await;
            }
            return;
        }
        let Some(limit) = self.config.failures else {
            return;
        };
        let in_a_row = {
            let mut failures = self.failures();
            let n = failures.entry(webhook.id).or_insert(0);
            *n += 1;
            *n
        };
        if in_a_row >= limit && webhook.breaker.is_none() {
            let reason = format!(
                "{in_a_row} failed attempts in a row (last: {})",
                describe(answer)
            );
            self.trip(webhook.id, &reason).await;
        }
    }

    /// Opens the breaker of a webhook whose requests hang (the rule is
    /// `admission::on_wait`); true when it is open now, so the delivery is held. A
    /// breaker this sender saw open costs no database round trip.
    pub(crate) async fn trip_hanging(&self, webhook_id: Uuid, reason: &str) -> bool {
        self.known_open(webhook_id) || self.trip(webhook_id, reason).await
    }

    /// Opens the breaker (if not open already); true unless the database could not
    /// be asked.
    async fn trip(&self, webhook_id: Uuid, reason: &str) -> bool {
        self.failures().remove(&webhook_id);
        let tripped = async {
            let db = self.pool.get().await.map_err(StoreError::from)?;
            webhooks::trip_breaker(&db, webhook_id, reason, self.config.cooldown).await
        }
        .await;
        match tripped {
            Ok(Some((tenant, key))) => {
                self.seen_open()
                    .insert(webhook_id, std::time::Instant::now());
                tracing::warn!(
                    %tenant, webhook = %key, %webhook_id, reason,
                    next_probe_in = ?self.config.cooldown,
                    "circuit breaker opened; the webhook's deliveries are held"
                );
                true
            }
            Ok(None) => {
                self.seen_open()
                    .insert(webhook_id, std::time::Instant::now());
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, %webhook_id, "could not open the circuit breaker");
                false
            }
        }
    }

    async fn close_and_release(&self, channel: &Channel, webhook_id: Uuid, tenant: &str) {
        self.seen_open().remove(&webhook_id);
        let closed = async {
            let db = self.pool.get().await.map_err(StoreError::from)?;
            webhooks::close_breaker(&db, webhook_id, self.config.cooldown).await
        }
        .await;
        match closed {
            Ok(true) => {
                tracing::info!(%tenant, %webhook_id, "probe delivered: circuit breaker closed");
                self.spawn_release(channel, webhook_id, tenant);
            }
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(error = %e, %webhook_id, "could not close the circuit breaker; the next probe will")
            }
        }
    }

    /// Releases in the background: the probe's own delivery is acked meanwhile.
    fn spawn_release(&self, channel: &Channel, webhook_id: Uuid, tenant: &str) {
        let (pool, topology, channel) = (self.pool.clone(), self.topology.clone(), channel.clone());
        let tenant = tenant.to_owned();
        tokio::spawn(async move {
            match release(&pool, &channel, &topology, &tenant, webhook_id).await {
                Ok(n) => {
                    tracing::info!(%tenant, %webhook_id, released = n, "held deliveries released")
                }
                Err(e) => {
                    tracing::warn!(error = %e, %webhook_id, "release of held deliveries cut short; it is tried again")
                }
            }
        });
    }

    /// How often a sender looks for breakers due: often enough that a probe is not
    /// late by much of the cool-down.
    fn period(&self) -> Duration {
        (self.config.cooldown / 4).clamp(Duration::from_millis(100), Duration::from_secs(1))
    }
}

/// Sends each due probe, and redoes each release a crash cut short, until shutdown.
pub(crate) async fn watch(breakers: Arc<Breakers>, channel: Channel, mut shutdown: Shutdown) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(breakers.period()) => {}
            () = shutdown.wait() => return,
        }
        if let Err(e) = due(&breakers, &channel).await {
            tracing::warn!(error = %e, "circuit breaker probes not sent; trying again");
        }
    }
}

async fn due(breakers: &Breakers, channel: &Channel) -> Result<(), LoopError> {
    let db = breakers.pool.get().await?;
    let due = webhooks::claim_breakers_due(&db, breakers.config.cooldown).await?;
    drop(db);
    for webhook in due {
        if webhook.open {
            probe(breakers, channel, &webhook).await?;
        } else {
            let n = release(
                &breakers.pool,
                channel,
                &breakers.topology,
                &webhook.tenant,
                webhook.id,
            )
            .await?;
            tracing::info!(tenant = %webhook.tenant, webhook = %webhook.key, released = n, "held deliveries released after an interrupted release");
        }
    }
    Ok(())
}

/// Sends the webhook's newest held delivery as the probe. With nothing held there is
/// nothing to learn from: the breaker closes, and the next failures count anew.
async fn probe(
    breakers: &Breakers,
    channel: &Channel,
    webhook: &BreakerDue,
) -> Result<(), LoopError> {
    let db = breakers.pool.get().await?;
    let Some(held) = deliveries::newest_held(&db, &webhook.tenant, webhook.id).await? else {
        if webhooks::close_breaker(&db, webhook.id, breakers.config.cooldown).await? {
            webhooks::breaker_released(&db, webhook.id).await?;
            tracing::info!(tenant = %webhook.tenant, webhook = %webhook.key, "circuit breaker closed: nothing held to probe with");
        }
        return Ok(());
    };
    drop(db);
    if send_again(&breakers.pool, channel, &breakers.topology, &held, true).await? {
        tracing::info!(tenant = %webhook.tenant, webhook = %webhook.key, delivery_id = %held.id, "circuit breaker probe sent");
    }
    Ok(())
}

/// Sends every delivery the webhook holds again, oldest first, then marks the
/// release finished. Safe to run again: what was sent is no longer held.
async fn release(
    pool: &Pool,
    channel: &Channel,
    topology: &Topology,
    tenant: &str,
    webhook_id: Uuid,
) -> Result<u64, LoopError> {
    let db = pool.get().await?;
    let held = deliveries::held_of_webhook(&db, tenant, webhook_id).await?;
    drop(db);
    let mut sent = 0;
    for delivery in &held {
        sent += u64::from(send_again(pool, channel, topology, delivery, false).await?);
    }
    let db = pool.get().await?;
    webhooks::breaker_released(&db, webhook_id).await?;
    Ok(sent)
}

/// Reopens a held delivery and publishes its message (the redelivery protocol of
/// [`deliveries::reopen`]); false when it was not held any more.
async fn send_again(
    pool: &Pool,
    channel: &Channel,
    topology: &Topology,
    delivery: &Delivery,
    probe: bool,
) -> Result<bool, LoopError> {
    let db = pool.get().await?;
    let Some(Reopen::Publish { attempts_before }) =
        deliveries::reopen(&db, delivery.id, false).await?
    else {
        return Ok(false);
    };
    drop(db);
    let message = DeliveryMessage {
        probe,
        ..DeliveryMessage::again(
            delivery.id,
            &delivery.tenant,
            &delivery.event_id,
            delivery.webhook_id,
            attempts_before,
        )
    };
    hookrelay_amqp::publish_reopened(channel, topology, &message, delivery.trace_id.as_deref())
        .await?;
    let db = pool.get().await?;
    deliveries::mark_published(&db, &[delivery.id]).await?;
    Ok(true)
}
