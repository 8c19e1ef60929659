//! One batch of events: validate, de-duplicate and record in one transaction, then
//! publish the new deliveries' messages (confirmed), then ack.
//!
//! The rows are committed before their messages go out, because the sender must find
//! a delivery's row when its message arrives; no row lock is held while they are out,
//! so a sender recording an attempt never waits for this router. A router that dies
//! after the commit leaves its events unacked: they come back marked redelivered, and
//! the router that takes them sends their deliveries that were never sent
//! (`deliveries::unsent_of_events`). An event that is only a duplicate (another copy
//! of it, published again upstream) sends nothing: the copy that created its
//! deliveries is either acked, so they went out, or will come back itself.

use std::collections::{HashMap, HashSet};

use hookrelay_amqp::deadletter::{self, DeadLetter};
use hookrelay_amqp::trace;
use hookrelay_amqp::{self as amqp, AmqpError, Headers};
use hookrelay_metrics::{InFlight, event as outcome};
use hookrelay_model::catalog::{SchemaValidation, Violation};
use hookrelay_model::webhook::Target;
use hookrelay_model::wire::{self, BatchedDelivery, DeliveryMessage};
use hookrelay_model::{DeadLetterReason, Event, matching, ordering};
use hookrelay_store::deliveries::{DeliveryRef, Sending};
use hookrelay_store::{StoreError, deliveries, events, turns, webhooks};
use lapin::Channel;
use lapin::message::Delivery;
use tracing::Instrument;

use crate::turn::Turn;
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

/// Routes a batch; the caller acks it. `retrying`: the batch was tried before in this process
/// and failed, perhaps after its transaction committed; its events may have been
/// handled, as a redelivered one may.
pub(crate) async fn handle_batch(
    router: &Router,
    channel: &Channel,
    batch: &[Delivery],
    retrying: bool,
    turn: &Turn,
) -> Result<(), BatchError> {
    let config = &router.config;
    let _in_flight: Vec<InFlight> = batch
        .iter()
        .map(|_| router.metrics.track_in_flight(ROLE))
        .collect();
    let mut valid: Vec<Routing<'_>> = Vec::with_capacity(batch.len());
    let mut invalid: Vec<(&Delivery, DeadLetterReason, String)> = Vec::new();
    for delivery in batch {
        match Event::from_slice(&delivery.data, config.max_event_bytes) {
            Ok(event) => {
                let span = route_span(delivery, Some(&event));
                if let Err(violation) = check_schema(router, &event, &span).await? {
                    invalid.push((
                        delivery,
                        DeadLetterReason::SchemaViolation,
                        violation.to_string(),
                    ));
                    continue;
                }
                valid.push(Routing {
                    event,
                    delivery,
                    span,
                });
            }
            Err(e) => invalid.push((delivery, DeadLetterReason::InvalidEvent, e.to_string())),
        }
    }

    if !valid.is_empty() {
        let recorded = record(router, &valid, retrying, turn).await?;
        match config.fault {
            Some(Fault::CrashAfterCommit) => {
                return Err(BatchError::Injected(Fault::CrashAfterCommit));
            }
            Some(Fault::LoseCommitAnswer) if !retrying => {
                let lost = "injected: the commit's answer was lost".to_owned();
                return Err(BatchError::Store(StoreError::Unavailable(lost)));
            }
            _ => {}
        }
        publish(router, channel, &valid, recorded).await?;
    }
    for (delivery, reason, error) in invalid {
        reject(router, channel, delivery, reason, &error).await?;
    }
    Ok(())
}

/// Checks the payload against its type's schema when validation is on. `Err` inside
/// `Ok`: enforced, the event is dead-lettered; with `warn` a violation is only logged
/// (never with payload values) and counted, and the event routed.
async fn check_schema(
    router: &Router,
    event: &Event,
    span: &tracing::Span,
) -> Result<Result<(), Violation>, BatchError> {
    let Some(schemas) = &router.schemas else {
        return Ok(Ok(()));
    };
    let Err(violation) = schemas.check(event).await? else {
        return Ok(Ok(()));
    };
    let mode = router.config.schema_validation;
    router
        .metrics
        .schema_violation(&event.event_type, mode.as_str());
    span.in_scope(|| {
        tracing::warn!(path = %violation.path, rule = %violation.rule, %violation, %mode, "payload breaks its type's schema");
    });
    Ok(match mode {
        SchemaValidation::Enforce => Err(violation),
        SchemaValidation::Warn | SchemaValidation::Off => Ok(()),
    })
}

/// What [`record`] committed: the deliveries to send now.
struct Recorded {
    /// New events, fanned out.
    routed: u64,
    /// Created pending by this batch.
    created: Vec<DeliveryRef>,
    /// Duplicates whose event may have been handled before without its deliveries
    /// being sent: look for unsent ones after the commit.
    suspect: Vec<(String, String)>,
}

/// One transaction: store new events and create their deliveries. A batch with
/// keyed events takes its sequence numbers in its turn (`turn`): it starts after
/// every batch taken before it committed, and lets the next go at its commit.
async fn record(
    router: &Router,
    valid: &[Routing<'_>],
    retrying: bool,
    turn: &Turn,
) -> Result<Recorded, BatchError> {
    let keyed = valid.iter().any(|r| r.event.ordering_key.is_some());
    if keyed {
        turn.wait_for_earlier().await;
    }
    let events: Vec<Event> = valid.iter().map(|r| r.event.clone()).collect();
    let mut client = router.pool.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await?;
    let inserted = events::insert_new(&tx, &events).await?;

    let tenants: HashSet<&str> = valid
        .iter()
        .filter(|r| inserted.contains(&(r.event.tenant.clone(), r.event.id.to_string())))
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
    let mut suspect: Vec<(String, String)> = Vec::new();
    let mut seen: HashSet<(String, String)> = HashSet::new();
    let mut routed: u64 = 0;
    for Routing {
        event,
        delivery,
        span,
    } in valid
    {
        let _entered = span.enter();
        let key = (event.tenant.clone(), event.id.to_string());
        // A second copy inside this batch, or an event seen before.
        if !seen.insert(key.clone()) || !inserted.contains(&key) {
            router.metrics.event(outcome::DUPLICATE, 1);
            tracing::info!("duplicate event; not fanned out again");
            if (retrying || delivery.redelivered) && !suspect.contains(&key) {
                suspect.push(key);
            }
            continue;
        }
        let unknown = matching::unknown_keys(event, &candidates);
        if !unknown.is_empty() {
            tracing::warn!(keys = ?unknown, "event names webhook keys this tenant does not have");
        }
        let trace_id = trace::trace_id(span, Some(&delivery.properties));
        let targets = matching::targets(event, &candidates);
        tracing::debug!(deliveries = targets.len(), "event matched");
        for target in targets {
            let held = matches!(target, Target::Webhook(id) if holding.contains(&id));
            let ordering_key = match (&target, &event.ordering_key) {
                (Target::Webhook(id), Some(_)) => candidates
                    .iter()
                    .find(|w| w.id == *id)
                    .and_then(|w| ordering::sequenced_under(w, event))
                    .map(str::to_owned),
                _ => None,
            };
            new_deliveries.push(deliveries::NewDelivery {
                tenant: event.tenant.clone(),
                event_id: event.id.to_string(),
                target,
                trace_id: trace_id.clone(),
                held,
                ordering_key,
            });
        }
        routed += 1;
    }
    let created = deliveries::insert(&tx, &new_deliveries, Sending::ByCreator).await?;
    let waiting = park_behind_their_keys(&tx, &new_deliveries, &created).await?;
    tx.commit().await?;
    if keyed {
        turn.taken();
    }
    if !waiting.is_empty() {
        tracing::debug!(
            deliveries = waiting.len(),
            "created waiting for an earlier delivery of their ordering key"
        );
    }
    Ok(Recorded {
        routed,
        created: created
            .into_iter()
            .filter(|c| !c.held && !waiting.contains(&c.delivery.id))
            .map(|c| c.delivery)
            .collect(),
        suspect,
    })
}

/// The sequenced deliveries just created whose turn has not come wait in their rows
/// from the start (`turns::park_new`), last in the batch's transaction: no message
/// for a sender to load and park, and the sender that settles the one before sends
/// them. Returns their ids.
async fn park_behind_their_keys(
    tx: &deadpool_postgres::Transaction<'_>,
    new: &[deliveries::NewDelivery],
    created: &[deliveries::Created],
) -> Result<HashSet<uuid::Uuid>, StoreError> {
    let ids: Vec<uuid::Uuid> = created
        .iter()
        .filter(|c| c.sequenced && !c.held)
        .map(|c| c.delivery.id)
        .collect();
    let keys: HashSet<(uuid::Uuid, &str)> = new.iter().filter_map(|d| d.key()).collect();
    let keys: Vec<(uuid::Uuid, &str)> = keys.into_iter().collect();
    let parked = turns::park_new(tx, &ids, &keys, turns::LOOK_AGAIN).await?;
    Ok(parked.into_iter().collect())
}

/// Publishes the batch's new deliveries, and the unsent ones of its suspect
/// duplicates, with pipelined confirms. Those found unsent are marked published once
/// confirmed (a row from before this protocol, or from a backfill, may not be).
async fn publish(
    router: &Router,
    channel: &Channel,
    valid: &[Routing<'_>],
    recorded: Recorded,
) -> Result<(), BatchError> {
    let Recorded {
        routed,
        created: mut rows,
        suspect,
    } = recorded;
    let mut again = Vec::new();
    if !suspect.is_empty() {
        let refs: Vec<(&str, &str)> = suspect
            .iter()
            .map(|(t, id)| (t.as_str(), id.as_str()))
            .collect();
        let client = router.pool.get().await.map_err(StoreError::from)?;
        let unsent = deliveries::unsent_of_events(&client, &refs).await?;
        // A copy of an event created in this batch finds the rows just created.
        let created: HashSet<uuid::Uuid> = rows.iter().map(|d| d.id).collect();
        let unsent: Vec<DeliveryRef> = unsent
            .into_iter()
            .filter(|d| !created.contains(&d.id))
            .collect();
        if !unsent.is_empty() {
            tracing::info!(
                deliveries = unsent.len(),
                "an event handled before has deliveries never attempted; sending them again"
            );
        }
        again = unsent.iter().map(|d| d.id).collect();
        rows.extend(unsent);
    }
    // Routed once its deliveries are out.
    if rows.is_empty() {
        router.metrics.event(outcome::ROUTED, routed);
        return Ok(());
    }
    let topology = &router.config.topology;
    let routing_of: HashMap<(&str, &str), &Routing<'_>> = valid
        .iter()
        .map(|r| ((r.event.tenant.as_str(), r.event.id.as_str()), r))
        .collect();
    let exchange = topology.deliveries_exchange();
    let mut pending = Vec::with_capacity(rows.len());
    for group in messages(&rows, router.config.deliveries_per_message) {
        let routing = |row: &DeliveryRef| {
            routing_of
                .get(&(row.tenant.as_str(), row.event_id.as_str()))
                .copied()
        };
        let (body, properties) = match group.as_slice() {
            [row] => {
                let headers = match routing(row) {
                    Some(r) => trace::inject(&r.span, Some(&r.delivery.properties), Headers::new()),
                    None => Headers::new(),
                };
                let properties = amqp::persistent(&row.id.to_string(), headers.into_table())?;
                (first_message(row).to_json(), properties)
            }
            rows => {
                let parts: Vec<BatchedDelivery> = rows
                    .iter()
                    .map(|row| {
                        let context = routing(row)
                            .map(|r| trace::context_headers(&r.span, Some(&r.delivery.properties)))
                            .unwrap_or_default();
                        let header = |key: &str| {
                            context
                                .iter()
                                .find(|(k, _)| *k == key)
                                .map(|(_, v)| v.clone())
                        };
                        BatchedDelivery {
                            message: first_message(row),
                            traceparent: header(wire::HEADER_TRACEPARENT),
                            tracestate: header(wire::HEADER_TRACESTATE),
                        }
                    })
                    .collect();
                let id = rows.first().map(|r| r.id.to_string()).unwrap_or_default();
                let properties = amqp::persistent(&id, Headers::new().into_table())?;
                (wire::batch_to_json(&parts), properties)
            }
        };
        let tenant = group.first().map(|r| r.tenant.as_str()).unwrap_or_default();
        pending.push(amqp::start_publish(channel, &exchange, tenant, &body, properties).await?);
    }
    amqp::confirm_all(pending).await?;
    if !again.is_empty() {
        let client = router.pool.get().await.map_err(StoreError::from)?;
        deliveries::mark_published(&client, &again).await?;
    }
    router.metrics.published(rows.len() as u64);
    router.metrics.event(outcome::ROUTED, routed);
    Ok(())
}

/// A delivery's first message.
fn first_message(row: &DeliveryRef) -> DeliveryMessage {
    DeliveryMessage {
        delivery_id: row.id,
        tenant: row.tenant.clone(),
        event_id: row.event_id.clone(),
        webhook_id: row.webhook_id,
        attempt: 1,
        attempts_before: 0,
        probe: false,
        rate_counted: false,
    }
}

/// The broker messages that carry `rows`: a tenant's deliveries (the routing key)
/// together, in the order they came, at most `per_message` to one.
fn messages(rows: &[DeliveryRef], per_message: usize) -> Vec<Vec<&DeliveryRef>> {
    let mut by_tenant: Vec<(&str, Vec<&DeliveryRef>)> = Vec::new();
    for row in rows {
        match by_tenant.iter_mut().find(|(t, _)| *t == row.tenant) {
            Some((_, group)) => group.push(row),
            None => by_tenant.push((row.tenant.as_str(), vec![row])),
        }
    }
    by_tenant
        .into_iter()
        .flat_map(|(_, group)| {
            group
                .chunks(per_message.max(1))
                .map(<[&DeliveryRef]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// An event that can never be routed goes to the dead-letter queue with the reason
/// (confirmed); the caller acks it.
pub(crate) async fn reject(
    router: &Router,
    channel: &Channel,
    delivery: &Delivery,
    reason: DeadLetterReason,
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
            reason: reason.clone(),
            error: Some(error.to_owned()),
            source_queue: topology.router_queue(),
            routing_key: delivery.routing_key.as_str().to_owned(),
            extra,
        },
    )
    .instrument(span)
    .await?;
    router.metrics.event(outcome::INVALID, 1);
    router.metrics.dead_letter(ROLE, &reason);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(n: u128, tenant: &str) -> DeliveryRef {
        DeliveryRef {
            id: uuid::Uuid::from_u128(n),
            tenant: tenant.to_owned(),
            event_id: format!("evt_{n}"),
            webhook_id: None,
        }
    }

    #[test]
    fn a_tenants_deliveries_share_messages_in_order_up_to_the_limit() {
        let rows = [
            row(1, "a"),
            row(2, "b"),
            row(3, "a"),
            row(4, "a"),
            row(5, "b"),
        ];
        let cases: [(usize, &[&[u128]]); 4] = [
            (50, &[&[1, 3, 4], &[2, 5]]),
            (2, &[&[1, 3], &[4], &[2, 5]]),
            (1, &[&[1], &[3], &[4], &[2], &[5]]),
            (0, &[&[1], &[3], &[4], &[2], &[5]]),
        ];
        for (per_message, expected) in cases {
            let got: Vec<Vec<u128>> = messages(&rows, per_message)
                .iter()
                .map(|m| m.iter().map(|r| r.id.as_u128()).collect())
                .collect();
            assert_eq!(got, expected, "{per_message} per message");
        }
    }
}
