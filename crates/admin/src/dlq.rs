//! The dead-letter queue, read and changed safely.
//!
//! AMQP has no "peek": every operation takes a snapshot of the messages in the queue
//! when it starts (`basic.get` without ack, as many as the queue held), acks the
//! messages it removed, and closes its channel, which hands every other message back
//! in its original order. Nothing is acked before its replacement is confirmed, so a
//! crash at any point leaves each message either in the queue or replayed.

use std::time::Duration;

use deadpool_postgres::Pool;
use hookrelay_amqp::{self as amqp, Headers};
use hookrelay_model::wire::{self, DeliveryMessage};
use hookrelay_model::{DeadLetterReason, Topology};
use hookrelay_store::deliveries;
use lapin::message::BasicGetMessage;
use lapin::options::{BasicAckOptions, BasicGetOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use serde::Serialize;
use serde_json::{Value, json};

use crate::AdminError;
use crate::redeliver::{self, Outcome};

/// Headers the broker or a dead-lettering adds; a replayed message starts without them.
const DEAD_LETTER_HEADERS: &[&str] = &[
    "x-death",
    "x-delivery-count",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    wire::HEADER_REASON,
    wire::HEADER_ERROR,
    wire::HEADER_LAST_STATUS,
    wire::HEADER_SOURCE_QUEUE,
    wire::HEADER_ROUTING_KEY,
    wire::HEADER_DEAD_LETTERED_AT,
    wire::HEADER_UNSETTLED,
    wire::HEADER_BODY_BYTES,
];

/// How often a message has been replayed from the dead-letter queue.
pub const HEADER_REPLAYS: &str = "x-hookrelay-replays";

/// What was dead-lettered: an event the router could not take, a delivery, or
/// something else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[schema(as = DeadMessageKind)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Event,
    Delivery,
    Unknown,
}

/// One dead-lettered message as operators see it, read from its `x-hookrelay-*`
/// headers (docs/topology.md), the broker's `x-death` headers and its body. Header
/// values are given as text, so `last_status` and `attempts` are strings.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeadMessage {
    /// 1 for the head of the queue at the time of reading.
    #[schema(minimum = 1)]
    pub position: u64,
    pub message_id: Option<String>,
    pub kind: Kind,
    pub tenant: Option<String>,
    pub event_id: Option<String>,
    pub webhook_id: Option<String>,
    pub delivery_id: Option<String>,
    /// `x-hookrelay-reason` (e.g. `retries exhausted`, `not retryable`, `invalid
    /// event`: docs/topology.md lists them), else the broker's
    /// `x-first-death-reason` (e.g. `delivery_limit`).
    #[schema(value_type = Option<String>)]
    pub reason: Option<DeadLetterReason>,
    pub error: Option<String>,
    /// The last HTTP status, as text.
    pub last_status: Option<String>,
    /// Attempts made, as text.
    pub attempts: Option<String>,
    /// RFC 3339 time, as written in the header.
    pub dead_lettered_at: Option<String>,
    pub source_queue: Option<String>,
    pub routing_key: Option<String>,
    /// Every AMQP header of the message, converted to JSON.
    #[schema(value_type = Object)]
    pub headers: serde_json::Map<String, Value>,
    /// The body as JSON when it is JSON, else as (lossy UTF-8) text; cut to its first
    /// 64 KiB as text when it is longer (`body_truncated`).
    pub body: Value,
    /// The size of the body as published, in bytes (the router keeps only the first
    /// 16 KiB of an event over the size limit).
    pub body_bytes: u64,
    /// Whether `body` shows only part of what was published.
    pub body_truncated: bool,
}

/// The most of one body a listing shows.
pub const MAX_SHOWN_BODY_BYTES: usize = 64 * 1024;
/// A listing stops adding messages once their JSON adds up to this, whatever its
/// `limit`: an answer (and the memory behind it) stays bounded however large the
/// messages in the queue are.
pub const MAX_LISTING_BYTES: usize = 16 * 1024 * 1024;

/// Which messages an operation touches; every field narrows, none means all.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub tenant: Option<String>,
    pub webhook: Option<String>,
    /// A case-insensitive part of the reason.
    pub reason: Option<String>,
    /// Message, delivery or event ids.
    pub ids: Vec<String>,
    /// The ids `webhook` names once [`Filter::resolved`]: a key can name a webhook in
    /// each of several tenants.
    pub webhook_ids: Option<Vec<String>>,
}

impl Filter {
    pub fn matches(&self, m: &DeadMessage) -> bool {
        let eq = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|w| have.as_ref() == Some(w))
        };
        let reason_ok = self.reason.as_ref().is_none_or(|r| {
            m.reason
                .as_ref()
                .is_some_and(|have| have.as_str().to_lowercase().contains(&r.to_lowercase()))
        });
        let id_ok = self.ids.is_empty()
            || self.ids.iter().any(|id| {
                [&m.message_id, &m.delivery_id, &m.event_id]
                    .iter()
                    .any(|have| have.as_deref() == Some(id.as_str()))
            });
        let webhook_ok = match &self.webhook_ids {
            Some(ids) => m.webhook_id.as_ref().is_some_and(|w| ids.contains(w)),
            None => eq(&self.webhook, &m.webhook_id),
        };
        eq(&self.tenant, &m.tenant) && webhook_ok && reason_ok && id_ok
    }
}

impl Filter {
    /// The filter with its webhook named by id, as messages name it: a key is looked
    /// up in the filter's tenant, or in every tenant without one (a key is unique
    /// within a tenant only, so it may name several webhooks). An unknown key is an
    /// error, not an empty result. An id is kept as it is: dead letters of a deleted
    /// webhook still carry it.
    pub async fn resolved(mut self, pool: &Pool) -> Result<Self, AdminError> {
        let Some(webhook) = self.webhook.as_deref() else {
            return Ok(self);
        };
        if uuid::Uuid::parse_str(webhook).is_ok() {
            return Ok(self);
        }
        let db = pool
            .get()
            .await
            .map_err(hookrelay_store::StoreError::from)?;
        let ids =
            hookrelay_store::webhooks::ids_with_key(&db, self.tenant.as_deref(), webhook).await?;
        if ids.is_empty() {
            let place = self
                .tenant
                .as_deref()
                .map_or_else(|| "any tenant".to_owned(), |t| format!("tenant `{t}`"));
            return Err(AdminError::NotFound {
                what: format!("webhook `{webhook}` in {place}"),
            });
        }
        self.webhook_ids = Some(ids.iter().map(uuid::Uuid::to_string).collect());
        Ok(self)
    }
}

/// Where the dead-letter queue lives and how to reach what replay needs.
pub struct Dlq<'a> {
    pub connection: &'a Connection,
    pub topology: &'a Topology,
    pub pool: &'a Pool,
}

/// Lists matching messages, at most `limit`, leaving the queue as it was.
pub async fn list(
    dlq: &Dlq<'_>,
    filter: &Filter,
    limit: usize,
) -> Result<Vec<DeadMessage>, AdminError> {
    let filter = &filter.clone().resolved(dlq.pool).await?;
    let mut found = Vec::new();
    let mut bytes = 0;
    let mut snapshot = Snapshot::open(dlq).await?;
    while found.len() < limit && bytes < MAX_LISTING_BYTES {
        let Some((_, message)) = snapshot.next().await? else {
            break;
        };
        if filter.matches(&message) {
            bytes += serde_json::to_vec(&message).map_or(0, |json| json.len());
            found.push(message);
        }
    }
    snapshot.close(dlq, 0).await;
    Ok(found)
}

/// Dead letters of one tenant, webhook and reason: how many, and when the oldest and
/// the newest were dead-lettered.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = DeadLetterGroup)]
pub struct Group {
    pub tenant: Option<String>,
    pub webhook_id: Option<String>,
    /// The webhook's key; null when the message names no webhook or it was deleted.
    pub webhook_key: Option<String>,
    #[schema(value_type = Option<String>)]
    pub reason: Option<DeadLetterReason>,
    pub count: u64,
    /// RFC 3339, as written in `x-hookrelay-dead-lettered-at`.
    pub oldest: Option<String>,
    pub newest: Option<String>,
}

/// Every matching message counted by tenant, webhook and reason, most first; the
/// queue is left as it was.
pub async fn summarize(dlq: &Dlq<'_>, filter: &Filter) -> Result<Vec<Group>, AdminError> {
    use std::collections::BTreeMap;
    let filter = &filter.clone().resolved(dlq.pool).await?;
    type Key = (Option<String>, Option<String>, Option<DeadLetterReason>);
    let mut groups: BTreeMap<Key, Group> = BTreeMap::new();
    let mut snapshot = Snapshot::open(dlq).await?;
    let scan = async {
        while let Some((_, m)) = snapshot.next().await? {
            if !filter.matches(&m) {
                continue;
            }
            let key = (m.tenant.clone(), m.webhook_id.clone(), m.reason.clone());
            let group = groups.entry(key).or_insert_with(|| Group {
                tenant: m.tenant.clone(),
                webhook_id: m.webhook_id.clone(),
                webhook_key: None,
                reason: m.reason.clone(),
                count: 0,
                oldest: None,
                newest: None,
            });
            group.count += 1;
            // One writer's RFC 3339 in UTC: text order is time order.
            if let Some(at) = m.dead_lettered_at {
                if group.oldest.as_ref().is_none_or(|o| at < *o) {
                    group.oldest = Some(at.clone());
                }
                if group.newest.as_ref().is_none_or(|n| at > *n) {
                    group.newest = Some(at);
                }
            }
        }
        Ok::<(), AdminError>(())
    }
    .await;
    snapshot.close(dlq, 0).await;
    scan?;
    let mut out: Vec<Group> = groups.into_values().collect();
    let ids: Vec<uuid::Uuid> = out
        .iter()
        .filter_map(|g| {
            g.webhook_id
                .as_deref()
                .and_then(|w| uuid::Uuid::parse_str(w).ok())
        })
        .collect();
    if !ids.is_empty() {
        let db = dlq
            .pool
            .get()
            .await
            .map_err(hookrelay_store::StoreError::from)?;
        let keys = hookrelay_store::webhooks::keys_of(&db, &ids).await?;
        for g in &mut out {
            g.webhook_key = g
                .webhook_id
                .as_deref()
                .and_then(|w| uuid::Uuid::parse_str(w).ok())
                .and_then(|id| keys.get(&id).cloned());
        }
    }
    out.sort_by_key(|g| std::cmp::Reverse(g.count));
    Ok(out)
}

/// The first message whose message, delivery or event id is `id`.
pub async fn show(dlq: &Dlq<'_>, id: &str) -> Result<DeadMessage, AdminError> {
    let filter = Filter {
        ids: vec![id.to_owned()],
        ..Filter::default()
    };
    list(dlq, &filter, 1)
        .await?
        .pop()
        .ok_or_else(|| AdminError::NotFound {
            what: format!("dead-lettered message `{id}`"),
        })
}

/// What a replay or purge did.
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
#[schema(as = DeadLetterSummary)]
pub struct Summary {
    /// Messages looked at (the queue's length when the run began, at most).
    pub scanned: u64,
    pub matched: u64,
    /// Sent back for a fresh round (replay) or removed (purge); 0 on a dry run.
    pub done: u64,
    /// Replay: removed without sending, their delivery was delivered or re-queued
    /// since.
    pub already_settled: u64,
    /// Replay: left in the queue, their delivery no longer exists or the source is
    /// unknown.
    pub left: u64,
    pub dry_run: bool,
}

/// How replay paces itself and reports progress.
pub struct ReplayOptions<'a> {
    pub dry_run: bool,
    /// Messages per second at most.
    pub rate: Option<f64>,
    /// Called with (messages scanned, queue length at start) after each message.
    pub progress: &'a (dyn Fn(u64, u64) + Send + Sync),
}

/// The pause between replayed messages at `rate` per second. A rate that is not a
/// positive number, or one so small or so large that no pause fits a `Duration`
/// (`5e-324`, `1e300`), is refused naming the field: it must not panic the caller.
/// The slowest replay: one message every 1,000 s.
pub const MIN_RATE: f64 = 0.001;
/// The fastest paced replay: one message a nanosecond (a missing rate is unpaced).
pub const MAX_RATE: f64 = 1e9;

/// A replay rate, in messages per second, is within [`MIN_RATE`] and [`MAX_RATE`].
pub fn check_rate(rate: Option<f64>) -> Result<(), hookrelay_model::Invalid> {
    match rate {
        Some(r) if !(MIN_RATE..=MAX_RATE).contains(&r) => Err(hookrelay_model::Invalid::new(
            "rate",
            format!("must be a number of messages per second from {MIN_RATE} to {MAX_RATE:e}"),
        )),
        _ => Ok(()),
    }
}

fn pace_of(rate: Option<f64>) -> Result<Option<tokio::time::Interval>, AdminError> {
    check_rate(rate)?;
    Ok(rate.map(|r| tokio::time::interval(Duration::from_secs_f64(1.0 / r))))
}

/// Sends matching messages back for a fresh round of attempts: a delivery is
/// reopened and re-queued (see [`redeliver`]), an event goes back to the router.
/// Each dead-letter copy is removed only after its replacement is confirmed.
pub async fn replay(
    dlq: &Dlq<'_>,
    filter: &Filter,
    options: &ReplayOptions<'_>,
) -> Result<Summary, AdminError> {
    let filter = &filter.clone().resolved(dlq.pool).await?;
    let mut pace = pace_of(options.rate)?;
    let publisher = amqp::confirm_channel(dlq.connection).await?;
    let mut snapshot = Snapshot::open(dlq).await?;
    let mut summary = Summary {
        dry_run: options.dry_run,
        ..Summary::default()
    };
    let result = async {
        while let Some((got, message)) = snapshot.next().await? {
            summary.scanned += 1;
            if filter.matches(&message) {
                summary.matched += 1;
            }
            if filter.matches(&message) && !options.dry_run {
                if let Some(pace) = pace.as_mut() {
                    pace.tick().await;
                }
                match replay_one(dlq, &publisher, &got, &message).await? {
                    Replayed::Sent => summary.done += 1,
                    Replayed::Settled => summary.already_settled += 1,
                    Replayed::Left => summary.left += 1,
                }
            }
            (options.progress)(summary.scanned, snapshot.total);
        }
        Ok::<_, AdminError>(())
    }
    .await;
    snapshot
        .close(dlq, summary.done + summary.already_settled)
        .await;
    let _ = publisher.close(200, "replay done".into()).await;
    result.map(|()| summary)
}

/// Removes matching messages; with `dry_run`, only counts them.
pub async fn purge(dlq: &Dlq<'_>, filter: &Filter, dry_run: bool) -> Result<Summary, AdminError> {
    let filter = &filter.clone().resolved(dlq.pool).await?;
    let mut snapshot = Snapshot::open(dlq).await?;
    let mut summary = Summary {
        dry_run,
        ..Summary::default()
    };
    let result = async {
        while let Some((got, message)) = snapshot.next().await? {
            summary.scanned += 1;
            if filter.matches(&message) {
                summary.matched += 1;
                if !dry_run {
                    got.delivery.acker.ack(BasicAckOptions::default()).await?;
                    summary.done += 1;
                }
            }
        }
        Ok::<_, AdminError>(())
    }
    .await;
    snapshot.close(dlq, summary.done).await;
    if summary.done > 0 {
        tracing::warn!(purged = summary.done, "dead-lettered messages purged");
    }
    result.map(|()| summary)
}

enum Replayed {
    Sent,
    Settled,
    Left,
}

async fn replay_one(
    dlq: &Dlq<'_>,
    publisher: &Channel,
    got: &BasicGetMessage,
    message: &DeadMessage,
) -> Result<Replayed, AdminError> {
    let ack = || got.delivery.acker.ack(BasicAckOptions::default());
    // A router message of several deliveries, dead-lettered whole by the broker (its
    // delivery limit): back to the deliveries queue as it is; the sender skips the
    // ones settled since and sends the rest.
    if message.kind == Kind::Delivery && wire::read_batch(&got.delivery.data).is_some() {
        let properties = replayed_properties(&got.delivery.properties);
        let queue = dlq.topology.deliveries_queue();
        amqp::publish_confirmed(publisher, "", &queue, &got.delivery.data, properties).await?;
        ack().await?;
        return Ok(Replayed::Sent);
    }
    if message.kind == Kind::Delivery {
        let Ok(body) = DeliveryMessage::from_json(&got.delivery.data) else {
            return Ok(Replayed::Left);
        };
        let db = dlq
            .pool
            .get()
            .await
            .map_err(hookrelay_store::StoreError::from)?;
        let found = deliveries::get(&db, &body.tenant, body.delivery_id).await;
        drop(db);
        let delivery = match found {
            Ok(d) => d,
            Err(hookrelay_store::StoreError::NotFound { .. }) => return Ok(Replayed::Left),
            Err(e) => return Err(e.into()),
        };
        // The sender marks the dead letters of deliveries it could not settle; the
        // broker's own (delivery limit reached) carry no reason of ours at all.
        let unsettled = message
            .reason
            .as_ref()
            .is_none_or(DeadLetterReason::unsettled)
            || amqp::header_text(&got.delivery.properties, wire::HEADER_UNSETTLED).is_some();
        let outcome =
            redeliver::reopen_and_publish(dlq.pool, publisher, dlq.topology, &delivery, unsettled)
                .await?;
        ack().await?;
        return Ok(match outcome {
            Outcome::Requeued => Replayed::Sent,
            Outcome::Missing => Replayed::Left,
            Outcome::AlreadyDelivered | Outcome::AlreadyPending => Replayed::Settled,
        });
    }
    // An event (or anything else) goes back to the queue it was taken from, if that
    // is one of ours: the router de-duplicates by event id, so a second copy is safe.
    let Some(queue) = message
        .source_queue
        .clone()
        .filter(|q| *q == dlq.topology.router_queue())
    else {
        return Ok(Replayed::Left);
    };
    let properties = replayed_properties(&got.delivery.properties);
    amqp::publish_confirmed(publisher, "", &queue, &got.delivery.data, properties).await?;
    ack().await?;
    Ok(Replayed::Sent)
}

/// The original properties without the dead-letter headers, counting the replay.
fn replayed_properties(original: &BasicProperties) -> BasicProperties {
    let mut table = original.headers().clone().unwrap_or_default();
    let replays = amqp::header_text(original, HEADER_REPLAYS)
        .and_then(|r| r.parse::<i64>().ok())
        .unwrap_or(0);
    let mut kept = FieldTable::default();
    for (k, v) in table.inner() {
        if !DEAD_LETTER_HEADERS.contains(&k.as_str()) {
            kept.insert(k.clone(), v.clone());
        }
    }
    table = Headers::from_table(kept)
        .int(HEADER_REPLAYS, replays + 1)
        .into_table();
    original.clone().with_headers(table).with_delivery_mode(2)
}

/// A reading of the queue: the messages it held when opened, taken one by one and
/// handed back (those not acked) on close.
struct Snapshot {
    channel: Channel,
    queue: String,
    total: u64,
    taken: u64,
    topology_router_queue: String,
    topology_deliveries_queue: String,
}

impl Snapshot {
    async fn open(dlq: &Dlq<'_>) -> Result<Self, AdminError> {
        let channel = dlq.connection.create_channel().await?;
        hookrelay_amqp::topology::declare_ingress(dlq.topology, &channel)
            .await
            .map_err(|e| AdminError::Broker(hookrelay_amqp::AmqpError::Topology(e)))?;
        let queue = dlq.topology.dead_letter_queue();
        let declared = amqp::inspect_queue(&channel, &queue).await?;
        Ok(Self {
            channel,
            queue,
            total: u64::from(declared.message_count()),
            taken: 0,
            topology_router_queue: dlq.topology.router_queue(),
            topology_deliveries_queue: dlq.topology.deliveries_queue(),
        })
    }

    /// The next message of the snapshot, or `None` once it is read.
    async fn next(&mut self) -> Result<Option<(BasicGetMessage, DeadMessage)>, AdminError> {
        let position = self.taken + 1;
        if position > self.total {
            return Ok(None);
        }
        let got = self
            .channel
            .basic_get(amqp::short(&self.queue)?, BasicGetOptions { no_ack: false })
            .await?;
        let Some(got) = got else {
            return Ok(None);
        };
        self.taken = position;
        let message = describe(
            position,
            &got.delivery.properties,
            &got.delivery.data,
            &self.topology_router_queue,
            &self.topology_deliveries_queue,
        );
        Ok(Some((got, message)))
    }

    /// Hands back every message not acked, in order, and returns once the broker
    /// shows them again: it requeues them after the channel closes, and an operation
    /// run right after this one must find the queue as this one left it.
    async fn close(self, dlq: &Dlq<'_>, removed: u64) {
        if let Err(e) = self.channel.close(200, "done".into()).await {
            tracing::warn!(error = %e, "closing the dead-letter channel");
        }
        let expected = self.total.saturating_sub(removed);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            match ready_count(dlq.connection, &self.queue).await {
                Ok(n) if n >= expected => return,
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "reading the dead-letter queue's depth");
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tracing::warn!(
            expected,
            "the dead-letter queue has not shown every message back yet"
        );
    }
}

/// Messages ready in `queue`, looked at on a channel of its own.
async fn ready_count(connection: &Connection, queue: &str) -> Result<u64, AdminError> {
    let channel = connection.create_channel().await?;
    let declared = amqp::inspect_queue(&channel, queue).await;
    let _ = channel.close(200, "done".into()).await;
    Ok(u64::from(declared?.message_count()))
}

/// Reads what hookrelay (or the broker, for `x-death`) wrote on a dead letter.
fn describe(
    position: u64,
    properties: &BasicProperties,
    data: &[u8],
    router_queue: &str,
    deliveries_queue: &str,
) -> DeadMessage {
    let header = |key: &str| amqp::header_text(properties, key);
    let body_truncated =
        data.len() > MAX_SHOWN_BODY_BYTES || header(wire::HEADER_BODY_BYTES).is_some();
    // Ids are read from the whole body; only what is shown of it is cut.
    let parsed: Option<Value> = serde_json::from_slice(data).ok();
    let body: Value = match &parsed {
        Some(json) if data.len() <= MAX_SHOWN_BODY_BYTES => json.clone(),
        _ => {
            let shown = &data[..data.len().min(MAX_SHOWN_BODY_BYTES)];
            Value::String(String::from_utf8_lossy(shown).into_owned())
        }
    };
    let body_bytes = header(wire::HEADER_BODY_BYTES)
        .and_then(|n| n.parse().ok())
        .unwrap_or(data.len() as u64);
    let source_queue = header(wire::HEADER_SOURCE_QUEUE).or_else(|| header("x-first-death-queue"));
    let delivery = DeliveryMessage::from_json(data).ok();
    // The queue it died in decides, not the body: an event from upstream may look
    // like a delivery message (the router marks its dead letters as from its queue).
    let batch = wire::read_batch(data).is_some_and(|parts| parts.is_ok());
    let kind = match (&delivery, source_queue.as_deref()) {
        (_, Some(q)) if q == router_queue => Kind::Event,
        (_, Some(q)) if q == deliveries_queue => Kind::Delivery,
        (Some(_), _) => Kind::Delivery,
        (None, _) if batch => Kind::Delivery,
        _ => Kind::Unknown,
    };
    let delivery = delivery.filter(|_| kind == Kind::Delivery);
    let body_text = |key: &str| {
        parsed
            .as_ref()
            .and_then(|b| b.get(key))
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let event_id = header(wire::HEADER_EVENT_ID)
        .or_else(|| delivery.as_ref().map(|d| d.event_id.clone()))
        .or_else(|| (kind == Kind::Event).then(|| body_text("id")).flatten());
    DeadMessage {
        position,
        message_id: properties.message_id().as_ref().map(|m| m.to_string()),
        kind,
        tenant: header(wire::HEADER_TENANT)
            .or_else(|| delivery.as_ref().map(|d| d.tenant.clone()))
            .or_else(|| body_text("tenant")),
        event_id,
        webhook_id: header(wire::HEADER_WEBHOOK_ID).or_else(|| {
            delivery
                .as_ref()
                .and_then(|d| d.webhook_id.map(|w| w.to_string()))
        }),
        delivery_id: header(wire::HEADER_DELIVERY_ID)
            .filter(|_| kind == Kind::Delivery)
            .or_else(|| delivery.as_ref().map(|d| d.delivery_id.to_string())),
        reason: header(wire::HEADER_REASON)
            .or_else(|| header("x-first-death-reason"))
            .map(|r| DeadLetterReason::parse(&r)),
        error: header(wire::HEADER_ERROR),
        last_status: header(wire::HEADER_LAST_STATUS),
        attempts: header(wire::HEADER_ATTEMPTS)
            .or_else(|| delivery.as_ref().map(|d| d.attempt.to_string())),
        dead_lettered_at: header(wire::HEADER_DEAD_LETTERED_AT),
        source_queue,
        routing_key: header(wire::HEADER_ROUTING_KEY),
        headers: headers_json(properties),
        body,
        body_bytes,
        body_truncated,
    }
}

fn headers_json(properties: &BasicProperties) -> serde_json::Map<String, Value> {
    properties
        .headers()
        .as_ref()
        .map(|h| {
            h.inner()
                .iter()
                .map(|(k, v)| (k.to_string(), amqp_json(v)))
                .collect()
        })
        .unwrap_or_default()
}

fn amqp_json(value: &AMQPValue) -> Value {
    match value {
        AMQPValue::Boolean(b) => json!(b),
        AMQPValue::ShortShortInt(i) => json!(i),
        AMQPValue::ShortShortUInt(i) => json!(i),
        AMQPValue::ShortInt(i) => json!(i),
        AMQPValue::ShortUInt(i) => json!(i),
        AMQPValue::LongInt(i) => json!(i),
        AMQPValue::LongUInt(i) => json!(i),
        AMQPValue::LongLongInt(i) => json!(i),
        AMQPValue::Float(f) => json!(f),
        AMQPValue::Double(f) => json!(f),
        AMQPValue::ShortString(s) => json!(s.as_str()),
        AMQPValue::LongString(s) => json!(String::from_utf8_lossy(s.as_bytes())),
        AMQPValue::Timestamp(t) => json!(t),
        AMQPValue::FieldArray(a) => Value::Array(a.as_slice().iter().map(amqp_json).collect()),
        AMQPValue::FieldTable(t) => Value::Object(
            t.inner()
                .iter()
                .map(|(k, v)| (k.to_string(), amqp_json(v)))
                .collect(),
        ),
        other => json!(format!("{other:?}")),
    }
}
