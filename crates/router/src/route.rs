//! One batch of events: validate, de-duplicate and record (transaction 1), then publish
//! the unpublished deliveries under row locks (transaction 2), then ack.
//!
//! Why two transactions: the sender must find a delivery's row when its message
//! arrives, so rows are committed before publishing. The row locks in transaction 2
//! make two routers holding copies of one event publish each delivery once; a crash
//! anywhere leaves rows `published = false`, which the redelivered event publishes.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;

use hookrelay_core::amqp::{self, AmqpError, Headers};
use hookrelay_core::deadletter::{self, DeadLetter};
use hookrelay_core::store::{StoreError, deliveries, events, webhooks};
use hookrelay_core::wire::{self, DeliveryMessage};
use hookrelay_core::{Event, matching};
use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use lapin::{BasicProperties, Channel};

use crate::{Fault, Router};

pub(crate) enum BatchError {
    Store(StoreError),
    Broker(AmqpError),
    Injected(Fault),
}

impl From<StoreError> for BatchError {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<deadpool_postgres::tokio_postgres::Error> for BatchError {
    fn from(e: deadpool_postgres::tokio_postgres::Error) -> Self {
        Self::Store(StoreError::Db(e))
    }
}

impl From<AmqpError> for BatchError {
    fn from(e: AmqpError) -> Self {
        Self::Broker(e)
    }
}

impl From<lapin::Error> for BatchError {
    fn from(e: lapin::Error) -> Self {
        Self::Broker(AmqpError::Broker(e))
    }
}

pub(crate) async fn handle_batch(
    router: &Router,
    channel: &Channel,
    batch: &[Delivery],
) -> Result<(), BatchError> {
    let config = &router.config;
    let mut valid: Vec<(Event, &Delivery)> = Vec::with_capacity(batch.len());
    let mut invalid: Vec<(&Delivery, String)> = Vec::new();
    for delivery in batch {
        match Event::from_slice(&delivery.data, config.max_event_bytes) {
            Ok(event) => valid.push((event, delivery)),
            Err(e) => invalid.push((delivery, e.to_string())),
        }
    }

    if !valid.is_empty() {
        let keys = record(router, &valid).await?;
        if config.fault == Some(Fault::CrashAfterCommit) {
            return Err(BatchError::Injected(Fault::CrashAfterCommit));
        }
        publish_unpublished(router, channel, &valid, &keys).await?;
    }
    for (delivery, reason) in &invalid {
        reject(router, channel, delivery, reason).await?;
    }
    for (_, delivery) in &valid {
        delivery.acker.ack(BasicAckOptions::default()).await?;
    }
    Ok(())
}

/// Transaction 1: store new events and create their deliveries. Returns every
/// distinct (tenant, id) in the batch.
async fn record(
    router: &Router,
    valid: &[(Event, &Delivery)],
) -> Result<Vec<(String, String)>, BatchError> {
    let events: Vec<Event> = valid.iter().map(|(e, _)| e.clone()).collect();
    let mut client = router.pool.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await?;
    let inserted = events::insert_new(&tx, &events).await?;

    let tenants: HashSet<&str> = valid
        .iter()
        .filter(|(e, _)| inserted.contains(&(e.tenant.clone(), e.id.clone())))
        .map(|(e, _)| e.tenant.as_str())
        .collect();
    let tenants: Vec<&str> = tenants.into_iter().collect();
    let candidates = if tenants.is_empty() {
        Vec::new()
    } else {
        webhooks::enabled_for_tenants(&tx, &tenants).await?
    };

    let mut new_deliveries = Vec::new();
    let mut routed: HashSet<(String, String)> = HashSet::new();
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    for (event, delivery) in valid {
        let key = (event.tenant.clone(), event.id.clone());
        if !seen.insert(key.clone()) {
            // A second copy inside this batch.
            router.stats.duplicates.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        keys.push(key.clone());
        if !inserted.contains(&key) {
            router.stats.duplicates.fetch_add(1, Ordering::Relaxed);
            tracing::info!(tenant = %event.tenant, event_id = %event.id, "duplicate event; not fanned out again");
            continue;
        }
        let unknown = matching::unknown_keys(event, &candidates);
        if !unknown.is_empty() {
            tracing::warn!(tenant = %event.tenant, event_id = %event.id, keys = ?unknown, "event names webhook keys this tenant does not have");
        }
        let trace_id = trace_id(&delivery.properties);
        for target in matching::targets(event, &candidates) {
            new_deliveries.push(deliveries::NewDelivery {
                tenant: event.tenant.clone(),
                event_id: event.id.clone(),
                target,
                trace_id: trace_id.clone(),
            });
        }
        routed.insert(key);
    }
    deliveries::insert(&tx, &new_deliveries).await?;
    tx.commit().await?;
    router
        .stats
        .events_routed
        .fetch_add(routed.len() as u64, Ordering::Relaxed);
    tracing::debug!(
        events = routed.len(),
        deliveries = new_deliveries.len(),
        "events recorded"
    );
    Ok(keys)
}

/// Transaction 2: lock the unpublished deliveries, publish them with pipelined
/// confirms, mark them published, commit.
async fn publish_unpublished(
    router: &Router,
    channel: &Channel,
    valid: &[(Event, &Delivery)],
    keys: &[(String, String)],
) -> Result<(), BatchError> {
    let topology = &router.config.topology;
    let mut client = router.pool.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await?;
    let refs: Vec<(&str, &str)> = keys
        .iter()
        .map(|(t, id)| (t.as_str(), id.as_str()))
        .collect();
    let pending_rows = deliveries::lock_unpublished(&tx, &refs).await?;
    if pending_rows.is_empty() {
        return Ok(());
    }
    let properties_of: HashMap<(&str, &str), &BasicProperties> = valid
        .iter()
        .map(|(e, d)| ((e.tenant.as_str(), e.id.as_str()), &d.properties))
        .collect();
    let exchange = topology.deliveries_exchange();
    let mut pending = Vec::with_capacity(pending_rows.len());
    for row in &pending_rows {
        let message = DeliveryMessage {
            delivery_id: row.id,
            tenant: row.tenant.clone(),
            event_id: row.event_id.clone(),
            webhook_id: row.webhook_id,
            attempt: 1,
        };
        let mut headers = Headers::new();
        if let Some(props) = properties_of.get(&(row.tenant.as_str(), row.event_id.as_str())) {
            headers = amqp::carry_trace(props, headers);
        }
        let properties = amqp::persistent(&row.id.to_string(), headers.into_table())?;
        pending.push(
            amqp::start_publish(
                channel,
                &exchange,
                &row.tenant,
                &message.to_json(),
                properties,
            )
            .await?,
        );
    }
    amqp::confirm_all(pending).await?;
    let ids: Vec<uuid::Uuid> = pending_rows.iter().map(|r| r.id).collect();
    deliveries::mark_published(&tx, &ids).await?;
    tx.commit().await?;
    router
        .stats
        .deliveries_published
        .fetch_add(ids.len() as u64, Ordering::Relaxed);
    Ok(())
}

/// An event that can never be routed goes to the dead-letter queue with the reason;
/// the router carries on.
async fn reject(
    router: &Router,
    channel: &Channel,
    delivery: &Delivery,
    reason: &str,
) -> Result<(), BatchError> {
    let topology = &router.config.topology;
    tracing::warn!(routing_key = %delivery.routing_key, error = %reason, "invalid event dead-lettered");
    deadletter::publish(
        channel,
        topology,
        &delivery.data,
        &delivery.properties,
        DeadLetter {
            reason: "invalid event".into(),
            error: Some(reason.to_owned()),
            source_queue: topology.router_queue(),
            routing_key: delivery.routing_key.as_str().to_owned(),
            extra: Headers::new(),
        },
    )
    .await?;
    delivery.acker.ack(BasicAckOptions::default()).await?;
    router.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// The trace id of a W3C `traceparent` header, stored on the delivery rows.
fn trace_id(properties: &BasicProperties) -> Option<String> {
    let traceparent = amqp::header_text(properties, wire::HEADER_TRACEPARENT)?;
    let id = traceparent.split('-').nth(1)?;
    (id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit())).then(|| id.to_owned())
}
