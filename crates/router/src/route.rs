//! One batch of events: validate, de-duplicate and record (transaction 1), then publish
//! the unpublished deliveries under row locks (transaction 2), then ack.
//!
//! Why two transactions: the sender must find a delivery's row when its message
//! arrives, so rows are committed before publishing. The row locks in transaction 2
//! make two routers holding copies of one event publish each delivery once; a crash
//! anywhere leaves rows `published = false`, which the redelivered event publishes.

use std::collections::{HashMap, HashSet};

use hookrelay_amqp::deadletter::{self, DeadLetter};
use hookrelay_amqp::trace;
use hookrelay_amqp::{self as amqp, AmqpError, Headers};
use hookrelay_metrics::{InFlight, event as outcome};
use hookrelay_model::webhook::Target;
use hookrelay_model::wire::{self, DeliveryMessage};
use hookrelay_model::{Event, matching};
use hookrelay_store::{StoreError, deliveries, events, webhooks};
use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use tracing::Instrument;

use crate::{Fault, ROLE, Router};

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

/// A valid event in the batch, with its message and its `route` span.
struct Routing<'a> {
    event: Event,
    delivery: &'a Delivery,
    span: tracing::Span,
}

fn route_span(delivery: &Delivery, event: Option<&Event>) -> tracing::Span {
    let span = tracing::info_span!(
        "route",
        event_id = event.map(|e| e.id.as_str()),
        tenant = event.map(|e| e.tenant.as_str()),
        event_type = event.map(|e| e.event_type.as_str()),
        trace_id = tracing::field::Empty,
    );
    trace::continue_from(&span, &delivery.properties);
    if let Some(id) = trace::trace_id(&span, Some(&delivery.properties)) {
        span.record("trace_id", id.as_str());
    }
    span
}

pub(crate) async fn handle_batch(
    router: &Router,
    channel: &Channel,
    batch: &[Delivery],
) -> Result<(), BatchError> {
    let config = &router.config;
    let _in_flight: Vec<InFlight> = batch
        .iter()
        .map(|_| router.metrics.track_in_flight(ROLE))
        .collect();
    let mut valid: Vec<Routing<'_>> = Vec::with_capacity(batch.len());
    let mut invalid: Vec<(&Delivery, String)> = Vec::new();
    for delivery in batch {
        match Event::from_slice(&delivery.data, config.max_event_bytes) {
            Ok(event) => {
                let span = route_span(delivery, Some(&event));
                valid.push(Routing {
                    event,
                    delivery,
                    span,
                });
            }
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
    for (delivery, error) in &invalid {
        reject(router, channel, delivery, "invalid event", error).await?;
    }
    // Batches are handled one after another on this channel, so one `multiple` ack
    // of the last message settles exactly this batch: one frame instead of many.
    if let Some(last) = batch.last() {
        last.acker.ack(BasicAckOptions { multiple: true }).await?;
    }
    Ok(())
}

/// Transaction 1: store new events and create their deliveries. Returns every
/// distinct (tenant, id) in the batch.
async fn record(
    router: &Router,
    valid: &[Routing<'_>],
) -> Result<Vec<(String, String)>, BatchError> {
    let events: Vec<Event> = valid.iter().map(|r| r.event.clone()).collect();
    let mut client = router.pool.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await?;
    let inserted = events::insert_new(&tx, &events).await?;

    let tenants: HashSet<&str> = valid
        .iter()
        .filter(|r| inserted.contains(&(r.event.tenant.clone(), r.event.id.clone())))
        .map(|r| r.event.tenant.as_str())
        .collect();
    let tenants: Vec<&str> = tenants.into_iter().collect();
    let candidates = if tenants.is_empty() {
        Vec::new()
    } else {
        webhooks::for_tenants(&tx, &tenants).await?
    };

    // Paused and disabled candidates are rare: only then is a webhook row locked (FOR
    // SHARE), so a resume or enable cannot miss what this transaction holds.
    let holding_ids: Vec<uuid::Uuid> = candidates
        .iter()
        .filter(|w| matching::holds(w))
        .map(|w| w.id)
        .collect();
    let holding: HashSet<uuid::Uuid> = webhooks::still_holding(&tx, &holding_ids)
        .await?
        .into_iter()
        .collect();
    let mut new_deliveries = Vec::new();
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let mut routed = 0;
    for Routing {
        event,
        delivery,
        span,
    } in valid
    {
        let _entered = span.enter();
        let key = (event.tenant.clone(), event.id.clone());
        // A second copy inside this batch, or an event seen before.
        if !seen.insert(key.clone()) || !inserted.contains(&key) {
            router.metrics.event(outcome::DUPLICATE, 1);
            tracing::info!("duplicate event; not fanned out again");
            if !keys.contains(&key) {
                keys.push(key);
            }
            continue;
        }
        keys.push(key);
        let unknown = matching::unknown_keys(event, &candidates);
        if !unknown.is_empty() {
            tracing::warn!(keys = ?unknown, "event names webhook keys this tenant does not have");
        }
        let trace_id = trace::trace_id(span, Some(&delivery.properties));
        let targets = matching::targets(event, &candidates);
        tracing::debug!(deliveries = targets.len(), "event matched");
        for target in targets {
            let held = matches!(target, Target::Webhook(id) if holding.contains(&id));
            new_deliveries.push(deliveries::NewDelivery {
                tenant: event.tenant.clone(),
                event_id: event.id.clone(),
                target,
                trace_id: trace_id.clone(),
                held,
            });
        }
        routed += 1;
    }
    deliveries::insert(&tx, &new_deliveries).await?;
    tx.commit().await?;
    router.metrics.event(outcome::ROUTED, routed);
    Ok(keys)
}

/// Transaction 2: claim the unpublished deliveries (locked and marked published in
/// one statement), publish them with pipelined confirms, commit. Any failure before
/// the commit rolls the claim back.
async fn publish_unpublished(
    router: &Router,
    channel: &Channel,
    valid: &[Routing<'_>],
    keys: &[(String, String)],
) -> Result<(), BatchError> {
    let topology = &router.config.topology;
    let mut client = router.pool.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await?;
    let refs: Vec<(&str, &str)> = keys
        .iter()
        .map(|(t, id)| (t.as_str(), id.as_str()))
        .collect();
    let rows = deliveries::claim_unpublished(&tx, &refs).await?;
    if rows.is_empty() {
        return Ok(());
    }
    let routing_of: HashMap<(&str, &str), &Routing<'_>> = valid
        .iter()
        .map(|r| ((r.event.tenant.as_str(), r.event.id.as_str()), r))
        .collect();
    let exchange = topology.deliveries_exchange();
    let mut pending = Vec::with_capacity(rows.len());
    for row in &rows {
        let message = DeliveryMessage {
            delivery_id: row.id,
            tenant: row.tenant.clone(),
            event_id: row.event_id.clone(),
            webhook_id: row.webhook_id,
            attempt: 1,
            attempts_before: 0,
            probe: false,
            rate_counted: false,
        };
        let headers = match routing_of.get(&(row.tenant.as_str(), row.event_id.as_str())) {
            Some(r) => trace::inject(&r.span, Some(&r.delivery.properties), Headers::new()),
            None => Headers::new(),
        };
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
    tx.commit().await?;
    router.metrics.published(rows.len() as u64);
    Ok(())
}

/// An event that can never be routed goes to the dead-letter queue with the reason
/// (confirmed); the caller acks it.
pub(crate) async fn reject(
    router: &Router,
    channel: &Channel,
    delivery: &Delivery,
    reason: &str,
    error: &str,
) -> Result<(), AmqpError> {
    let topology = &router.config.topology;
    let span = route_span(delivery, None);
    span.in_scope(|| {
        tracing::warn!(routing_key = %delivery.routing_key, %reason, %error, "event dead-lettered");
    });
    // An oversized event is kept as a sample: copying it whole would double what a
    // hostile publisher costs in memory and fills the queue's disk.
    let (body, extra) = if delivery.data.len() > router.config.max_event_bytes {
        let sample = &delivery.data[..wire::DEAD_LETTER_SAMPLE_BYTES.min(delivery.data.len())];
        let size = i64::try_from(delivery.data.len()).unwrap_or(i64::MAX);
        (sample, Headers::new().int(wire::HEADER_BODY_BYTES, size))
    } else {
        (delivery.data.as_slice(), Headers::new())
    };
    // The publisher's own `x-hookrelay-*` headers must not pass for ours.
    deadletter::publish(
        channel,
        topology,
        body,
        &deadletter::without_hookrelay_headers(&delivery.properties),
        DeadLetter {
            reason: reason.to_owned(),
            error: Some(error.to_owned()),
            source_queue: topology.router_queue(),
            routing_key: delivery.routing_key.as_str().to_owned(),
            extra,
        },
    )
    .instrument(span)
    .await?;
    router.metrics.event(outcome::INVALID, 1);
    router.metrics.dead_letter(ROLE, reason);
    Ok(())
}
