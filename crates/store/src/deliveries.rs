//! The `deliveries` and `delivery_attempts` tables: one row per (event, target), and
//! one row per HTTP attempt. The router creates and publishes deliveries; the sender
//! records attempts and outcomes.

use deadpool_postgres::GenericClient;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};

use super::{StoreError, storable};
use hookrelay_model::envelope::Event;
use hookrelay_model::ordering;
use hookrelay_model::webhook::{Target, Webhook};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
    /// Its webhook is paused: not attempted, not queued; resuming sends it.
    Held,
    /// Sequenced under an ordering key, behind an earlier delivery of the key that
    /// is not settled (or failed and blocks the key): not queued; sent when that one
    /// settles (or the key is resumed or skipped).
    Waiting,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Held => "held",
            Self::Waiting => "waiting",
        }
    }

    fn parse(s: &str) -> Result<Self, StoreError> {
        match s {
            "pending" => Ok(Self::Pending),
            "delivered" => Ok(Self::Delivered),
            "failed" => Ok(Self::Failed),
            "held" => Ok(Self::Held),
            "waiting" => Ok(Self::Waiting),
            other => Err(StoreError::corrupt(
                "delivery status",
                format!("`{other}` is no status"),
            )),
        }
    }
}

/// A delivery to be created by the router.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub tenant: String,
    pub event_id: String,
    pub target: Target,
    pub trace_id: Option<String>,
    /// Created held: its webhook is paused.
    pub held: bool,
    /// Sequenced under this key (its webhook is ordered and its event has the key:
    /// `hookrelay_model::ordering::sequenced_under`); numbered in slice order.
    pub ordering_key: Option<String>,
}

impl NewDelivery {
    /// The (webhook, key) it is numbered in, if sequenced.
    pub fn key(&self) -> Option<ordering::KeyOf<'_>> {
        match (&self.target, &self.ordering_key) {
            (Target::Webhook(id), Some(key)) => Some((*id, key.as_str())),
            _ => None,
        }
    }
}

/// Enough about a delivery to publish its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRef {
    pub id: Uuid,
    pub tenant: String,
    pub event_id: String,
    pub webhook_id: Option<Uuid>,
}

/// Who sends the first message of a delivery created pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sending {
    /// The router that creates it, right after its transaction commits and before it
    /// acks the event. Created `published`: no statement marks it later, and no row
    /// lock is held while its message is out (the sender records the attempt on this
    /// row). If that router dies first, its event comes back redelivered and the
    /// router that takes it sends whatever is still unsent ([`unsent_of_events`]).
    ByCreator,
    /// A reopen-and-publish after the commit (a backfill): created unpublished and
    /// marked published once its message is confirmed ([`mark_published`]).
    Reopened,
}

/// A delivery [`insert`] created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub delivery: DeliveryRef,
    /// Created held (its webhook paused, disabled or tripped): no message is sent now.
    pub held: bool,
    /// Numbered in an ordering key (`seq`): its turn decides when it is sent.
    pub sequenced: bool,
}

/// Creates deliveries; one that exists for its (event, target) is left as it is, so
/// calling this twice for one event creates nothing new. Returns the ones created.
pub async fn insert(
    db: &impl GenericClient,
    new: &[NewDelivery],
    sending: Sending,
) -> Result<Vec<Created>, StoreError> {
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = new.iter().map(|_| Uuid::now_v7()).collect();
    let tenants: Vec<&str> = new.iter().map(|d| d.tenant.as_str()).collect();
    let events: Vec<&str> = new.iter().map(|d| d.event_id.as_str()).collect();
    let webhooks: Vec<Option<Uuid>> = new
        .iter()
        .map(|d| match d.target {
            Target::Webhook(id) => Some(id),
            Target::Url(_) => None,
        })
        .collect();
    let urls: Vec<Option<&str>> = new
        .iter()
        .map(|d| match &d.target {
            Target::Url(url) => Some(url.as_str()),
            Target::Webhook(_) => None,
        })
        .collect();
    let traces: Vec<Option<&str>> = new.iter().map(|d| d.trace_id.as_deref()).collect();
    let statuses: Vec<&str> = new
        .iter()
        .map(|d| {
            if d.held {
                DeliveryStatus::Held.as_str()
            } else {
                DeliveryStatus::Pending.as_str()
            }
        })
        .collect();
    let published: Vec<bool> = new
        .iter()
        .map(|d| sending == Sending::ByCreator && !d.held)
        .collect();
    let keys: Vec<Option<ordering::KeyOf<'_>>> = new.iter().map(NewDelivery::key).collect();
    // Only a batch with sequenced deliveries pays for the counters' statement.
    let seqs = if keys.iter().any(Option::is_some) {
        let first = take_sequences(db, new, &keys).await?;
        ordering::assign(&keys, &first)
    } else {
        vec![None; new.len()]
    };
    let ordering_keys: Vec<Option<&str>> = keys.iter().map(|k| k.map(|(_, key)| key)).collect();
    let statement = super::prepared(
        db,
        // One delivery per (event, target) is decided by `delivery_targets`' primary
        // key (V23: `deliveries` is partitioned by id and can hold no unique key on
        // the event and target across days): only the deliveries whose target key
        // was inserted are; a target repeated in the batch goes once, its first.
        "WITH u AS ( \
           SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::text[], \
             $6::text[], $7::text[], $8::bool[], $9::text[], $10::int8[]) WITH ORDINALITY \
           AS u(id, tenant, event_id, webhook_id, url, trace_id, status, published, ordering_key, seq, i)), \
         k AS ( \
           INSERT INTO delivery_targets (tenant, event_id, target, delivery_id) \
           SELECT tenant, event_id, coalesce(webhook_id, '00000000-0000-0000-0000-000000000000'::uuid), id \
           FROM u ORDER BY i ON CONFLICT DO NOTHING RETURNING delivery_id) \
         INSERT INTO deliveries (id, tenant, event_id, webhook_id, url, trace_id, status, published, \
           ordering_key, seq) \
         SELECT u.id, u.tenant, u.event_id, u.webhook_id, u.url, u.trace_id, u.status, u.published, \
           u.ordering_key, u.seq FROM u JOIN k ON k.delivery_id = u.id \
         ON CONFLICT DO NOTHING RETURNING id, tenant, event_id, webhook_id, status, seq",
    )
    .await?;
    let rows = db
        .query(
            &statement,
            &[
                &ids,
                &tenants,
                &events,
                &webhooks,
                &urls,
                &traces,
                &statuses,
                &published,
                &ordering_keys,
                &seqs,
            ],
        )
        .await?;
    let mut created = rows
        .iter()
        .map(|r| {
            Ok(Created {
                delivery: delivery_ref(r)?,
                held: DeliveryStatus::parse(r.try_get("status")?)? == DeliveryStatus::Held,
                sequenced: r.try_get::<_, Option<i64>>("seq")?.is_some(),
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    // In creation order (ids are time-ordered): RETURNING has no order.
    created.sort_by_key(|c| c.delivery.id);
    Ok(created)
}

/// Takes the sequence numbers a batch needs from each (webhook, key) counter, creating
/// the counter at 1; returns the first number of each. The upsert locks each counter
/// row until the caller's transaction ends, so another transaction sequencing the
/// same key waits for this one's commit and numbers after it; counters are locked in
/// one order (`ordering::demand`), so two never wait for each other in a circle.
async fn take_sequences<'a>(
    db: &impl GenericClient,
    new: &[NewDelivery],
    keys: &[Option<ordering::KeyOf<'a>>],
) -> Result<BTreeMap<ordering::KeyOf<'a>, i64>, StoreError> {
    let demand = ordering::demand(keys);
    let tenant_of: HashMap<Uuid, &str> = new
        .iter()
        .filter_map(|d| match d.target {
            Target::Webhook(id) => Some((id, d.tenant.as_str())),
            Target::Url(_) => None,
        })
        .collect();
    let webhook_ids: Vec<Uuid> = demand.iter().map(|((id, _), _)| *id).collect();
    let key_texts: Vec<&str> = demand.iter().map(|((_, key), _)| *key).collect();
    let tenants: Vec<&str> = webhook_ids
        .iter()
        .map(|id| tenant_of.get(id).copied().unwrap_or_default())
        .collect();
    let counts: Vec<i64> = demand.iter().map(|(_, n)| *n).collect();
    let statement = super::prepared(
        db,
        "INSERT INTO ordering_keys AS k (webhook_id, ordering_key, tenant, next_seq) \
         SELECT w, key, t, 1 + n FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int8[]) \
           WITH ORDINALITY AS u(w, key, t, n, i) ORDER BY i \
         ON CONFLICT (webhook_id, ordering_key) \
           DO UPDATE SET next_seq = k.next_seq + EXCLUDED.next_seq - 1 \
         RETURNING webhook_id, ordering_key, next_seq",
    )
    .await?;
    let rows = db
        .query(&statement, &[&webhook_ids, &key_texts, &tenants, &counts])
        .await?;
    let mut first = BTreeMap::new();
    for row in rows {
        let id: Uuid = row.try_get("webhook_id")?;
        let key: String = row.try_get("ordering_key")?;
        let next: i64 = row.try_get("next_seq")?;
        // The returned key is one of ours: find it to borrow it for the batch.
        if let Some(((_, ours), n)) = demand.iter().find(|((w, k), _)| *w == id && *k == key) {
            first.insert((id, *ours), next - n);
        }
    }
    Ok(first)
}

/// The deliveries of these events that were never sent: pending and never
/// attempted. What a router sends again when it takes an event that may have been
/// handled before (its message redelivered after a router died, or a batch tried
/// again after an error), since the router that created them may have died before
/// sending them. A message sent twice this way is acked without a request by the
/// sender once the first is delivered.
pub async fn unsent_of_events(
    db: &impl GenericClient,
    events: &[(&str, &str)],
) -> Result<Vec<DeliveryRef>, StoreError> {
    if events.is_empty() {
        return Ok(Vec::new());
    }
    let tenants: Vec<&str> = events.iter().map(|(t, _)| *t).collect();
    let ids: Vec<&str> = events.iter().map(|(_, id)| *id).collect();
    let rows = db
        .query(
            "SELECT d.id, d.tenant, d.event_id, d.webhook_id FROM deliveries d \
             JOIN unnest($1::text[], $2::text[]) AS e(tenant, id) \
               ON d.tenant = e.tenant AND d.event_id = e.id \
             WHERE d.status = 'pending' AND d.attempts = 0 ORDER BY d.id",
            &[&tenants, &ids],
        )
        .await?;
    rows.iter().map(delivery_ref).collect()
}

fn delivery_ref(r: &tokio_postgres::Row) -> Result<DeliveryRef, StoreError> {
    Ok(DeliveryRef {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        event_id: r.try_get("event_id")?,
        webhook_id: r.try_get("webhook_id")?,
    })
}

/// Which of these events of `tenant` have no delivery to `webhook_id`: what a
/// backfill would create.
pub async fn without_delivery_to(
    db: &impl GenericClient,
    tenant: &str,
    event_ids: &[&str],
    webhook_id: Uuid,
) -> Result<Vec<String>, StoreError> {
    let rows = db
        .query(
            "SELECT e FROM unnest($2::text[]) AS e WHERE NOT EXISTS ( \
               SELECT 1 FROM deliveries d \
               WHERE d.tenant = $1 AND d.event_id = e AND d.webhook_id = $3)",
            &[&tenant, &event_ids, &webhook_id],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

pub async fn mark_published(db: &impl GenericClient, ids: &[Uuid]) -> Result<(), StoreError> {
    if !ids.is_empty() {
        let statement = super::prepared(
            db,
            // A join on the ids, not `id = ANY($1)`: Postgres prunes the partitions
            // by a join's values in a generic plan (one probe per id), not by an
            // array parameter's (a probe per id in every day).
            "UPDATE deliveries d SET published = true, updated_at = now() \
             FROM unnest($1::uuid[]) AS x(id) WHERE d.id = x.id",
        )
        .await?;
        db.execute(&statement, &[&ids]).await?;
    }
    Ok(())
}

/// What the sender needs to make an attempt.
#[derive(Debug, Clone)]
pub struct SendJob {
    pub id: Uuid,
    pub tenant: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub webhook_id: Option<Uuid>,
    /// The stored webhook, if the delivery has one and it still exists.
    pub webhook: Option<Webhook>,
    pub url: Option<String>,
    pub event: Event,
    /// When the router recorded the event (`events.received_at`).
    pub received_at: OffsetDateTime,
    /// For a sequenced delivery: its key and number.
    pub place: Option<super::turns::Place>,
    /// Whether the delivery before it in its key lets it go.
    pub turn: super::turns::Turn,
}

/// Deliveries with their events and webhooks, many in one round trip; ids not found
/// are missing from the map.
///
/// One probe per id in each table (V23's partitions): the ids are joined from an
/// array (Postgres prunes partitions by a join's values in a generic plan, not by
/// an `= ANY` array's), and the event is reached through its key, whose
/// `received_at` names its day. The `OFFSET 0` keeps the event's look-up a
/// sub-query of the key's columns: flattened, the planner may probe `events` by the
/// delivery's (tenant, event id) in every day instead.
pub async fn send_jobs(
    db: &impl GenericClient,
    cipher: &super::Cipher,
    ids: &[Uuid],
) -> Result<std::collections::HashMap<Uuid, SendJob>, StoreError> {
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT d.id, d.tenant, d.status, d.attempts, d.webhook_id, d.url, d.ordering_key, d.seq, \
               e.envelope, e.received_at, {}, ({}) AS turn \
             FROM unnest($1::uuid[]) AS x(id) JOIN deliveries d ON d.id = x.id \
             JOIN event_keys k ON k.tenant = d.tenant AND k.id = d.event_id \
             CROSS JOIN LATERAL (SELECT e.envelope, e.received_at FROM events e \
               WHERE e.tenant = k.tenant AND e.id = k.id AND e.received_at = k.received_at \
               OFFSET 0) e \
             LEFT JOIN webhooks w ON w.id = d.webhook_id",
            super::webhooks::select_prefixed("w", "w_"),
            super::turns::TURN_OF_D
        )
    });
    let statement = super::prepared(db, &SQL).await?;
    let rows = db.query(&statement, &[&ids]).await?;
    let mut jobs = std::collections::HashMap::with_capacity(rows.len());
    for r in rows {
        let id: Uuid = r.try_get("id")?;
        let envelope: serde_json::Value = r.try_get("envelope")?;
        let event: Event = serde_json::from_value(envelope)
            .map_err(|e| StoreError::corrupt(format!("envelope of delivery {id}"), e))?;
        let job = SendJob {
            id,
            tenant: r.try_get("tenant")?,
            status: DeliveryStatus::parse(r.try_get("status")?)?,
            attempts: r.try_get("attempts")?,
            webhook_id: r.try_get("webhook_id")?,
            webhook: super::webhooks::from_row_prefixed(&r, "w_", cipher)?,
            url: r.try_get("url")?,
            event,
            received_at: r.try_get("received_at")?,
            place: place(&r)?,
            turn: super::turns::Turn::parse(r.try_get("turn")?)?,
        };
        jobs.insert(id, job);
    }
    Ok(jobs)
}

/// A sequenced delivery's key and number, from `d.webhook_id, d.ordering_key, d.seq`.
fn place(r: &tokio_postgres::Row) -> Result<Option<super::turns::Place>, StoreError> {
    let webhook_id: Option<Uuid> = r.try_get("webhook_id")?;
    let key: Option<String> = r.try_get("ordering_key")?;
    let seq: Option<i64> = r.try_get("seq")?;
    Ok(match (webhook_id, key, seq) {
        (Some(webhook_id), Some(key), Some(seq)) => Some(super::turns::Place {
            webhook_id,
            key,
            seq,
        }),
        _ => None,
    })
}

/// One finished HTTP attempt (or a permanent failure found before sending).
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_id: Uuid,
    pub attempt: i32,
    pub started_at: OffsetDateTime,
    pub latency_ms: f64,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub response_snippet: Option<String>,
    /// The delivery's status after this attempt.
    pub status: DeliveryStatus,
    /// Set when another attempt is scheduled.
    pub next_attempt_at: Option<OffsetDateTime>,
    /// When this attempt failed the delivery: the retry rule that made it the last.
    pub why_failed: Option<String>,
}

impl AttemptRecord {
    fn outcome(&self) -> &'static str {
        match (self.status, self.next_attempt_at) {
            (DeliveryStatus::Delivered, _) => "delivered",
            (DeliveryStatus::Pending, Some(_)) => "retry",
            _ => "failed",
        }
    }
}

/// Records attempts and their deliveries' new states, many in one statement (and one
/// commit): the sender's hot path.
pub async fn record_attempts(
    db: &impl GenericClient,
    records: &[AttemptRecord],
) -> Result<(), StoreError> {
    if records.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = records.iter().map(|a| a.delivery_id).collect();
    let attempts: Vec<i32> = records.iter().map(|a| a.attempt).collect();
    let started: Vec<OffsetDateTime> = records.iter().map(|a| a.started_at).collect();
    let latency: Vec<f64> = records.iter().map(|a| a.latency_ms).collect();
    let codes: Vec<Option<i32>> = records.iter().map(|a| a.status_code).collect();
    let errors: Vec<Option<Cow<'_, str>>> = records
        .iter()
        .map(|a| a.error.as_deref().map(storable))
        .collect();
    let snippets: Vec<Option<Cow<'_, str>>> = records
        .iter()
        .map(|a| a.response_snippet.as_deref().map(storable))
        .collect();
    let outcomes: Vec<&str> = records.iter().map(AttemptRecord::outcome).collect();
    let statuses: Vec<&str> = records.iter().map(|a| a.status.as_str()).collect();
    let next: Vec<Option<OffsetDateTime>> = records.iter().map(|a| a.next_attempt_at).collect();
    let why: Vec<Option<&str>> = records.iter().map(|a| a.why_failed.as_deref()).collect();
    let statement = super::prepared(
        db,
        "WITH input AS ( \
           SELECT * FROM unnest($1::uuid[], $2::int[], $3::timestamptz[], $4::float8[], $5::int[], \
             $6::text[], $7::text[], $8::text[], $9::text[], $10::timestamptz[], $11::text[]) \
           AS t(delivery_id, attempt, started_at, latency_ms, status_code, error, snippet, outcome, status, next_at, why)), \
         attempt AS ( \
           INSERT INTO delivery_attempts (delivery_id, attempt, started_at, latency_ms, \
             status_code, error, response_snippet, outcome) \
           SELECT delivery_id, attempt, started_at, latency_ms, status_code, error, snippet, outcome FROM input) \
         UPDATE deliveries d SET status = i.status, attempts = GREATEST(d.attempts, i.attempt), \
           last_attempt_at = i.started_at, last_status = i.status_code, last_error = i.error, \
           next_attempt_at = i.next_at, why_failed = i.why, updated_at = now() \
         FROM input i WHERE d.id = i.delivery_id AND d.status <> 'delivered'",
    )
    .await?;
    db.execute(
        &statement,
        &[
            &ids, &attempts, &started, &latency, &codes, &errors, &snippets, &outcomes, &statuses,
            &next, &why,
        ],
    )
    .await?;
    Ok(())
}

/// A delivery to publish again (an overdue retry, a release of held ones): what its
/// message and trace need. Read from `id, tenant, event_id, webhook_id, attempts,
/// trace_id`.
#[derive(Debug, Clone)]
pub struct Resend {
    pub delivery: DeliveryRef,
    pub attempts: u32,
    pub trace_id: Option<String>,
}

impl Resend {
    /// Its message as a release sends it: a new round of attempts from the ones the
    /// row counts.
    pub fn message(&self) -> hookrelay_model::wire::DeliveryMessage {
        let d = &self.delivery;
        hookrelay_model::wire::DeliveryMessage::again(
            d.id,
            &d.tenant,
            &d.event_id,
            d.webhook_id,
            self.attempts,
        )
    }

    pub(crate) fn from_row(r: &tokio_postgres::Row) -> Result<Self, StoreError> {
        Ok(Self {
            delivery: delivery_ref(r)?,
            attempts: u32::try_from(r.try_get::<_, i32>("attempts")?).unwrap_or(0),
            trace_id: r.try_get("trace_id")?,
        })
    }
}

/// Pending deliveries whose retry was due more than `grace` ago: their delay-queue
/// message is late or gone (a broker that lost it; RabbitMQ 3.10's dead-letter worker
/// stuck after a leader change). Claimed by pushing `next_attempt_at` a `grace` ahead,
/// so that one sweeper takes each and the next round leaves it to the message it is
/// about to get; rows another sweeper holds are skipped.
pub async fn claim_overdue_retries(
    db: &impl GenericClient,
    grace: std::time::Duration,
    limit: i64,
) -> Result<Vec<Resend>, StoreError> {
    let rows = db
        .query(
            "UPDATE deliveries d SET next_attempt_at = now() + make_interval(secs => $1), \
               updated_at = now() \
             WHERE d.id IN ( \
               SELECT id FROM deliveries \
               WHERE next_attempt_at < now() - make_interval(secs => $1) \
                 AND status = 'pending' AND published \
               ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED) \
             RETURNING d.id, d.tenant, d.event_id, d.webhook_id, d.attempts, d.trace_id",
            &[&grace.as_secs_f64(), &limit],
        )
        .await?;
    rows.iter().map(Resend::from_row).collect()
}

/// Marks a delivery failed without an attempt (its webhook was deleted or disabled).
pub async fn mark_failed(
    db: &impl GenericClient,
    id: Uuid,
    reason: &str,
) -> Result<(), StoreError> {
    db.execute(
        "UPDATE deliveries SET status = 'failed', last_error = $2, why_failed = $2, \
         next_attempt_at = NULL, updated_at = now() WHERE id = $1 AND status <> 'delivered'",
        &[&id, &storable(reason)],
    )
    .await?;
    Ok(())
}

/// One (event, target) delivery as operators and tests see it. Exactly one of
/// `webhook_id` (a stored webhook) and `url` (a one-off basic webhook) is set.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Delivery {
    /// A time-ordered (v7) UUID.
    pub id: Uuid,
    pub tenant: String,
    pub event_id: String,
    pub webhook_id: Option<Uuid>,
    /// The one-off `webhook_url` of the event.
    pub url: Option<String>,
    pub status: DeliveryStatus,
    /// Whether its delivery message is out: confirmed by the broker, or being sent by
    /// the router that created it (which sends it before acking its event, and whose
    /// event, should it die first, makes another router send it).
    pub published: bool,
    /// HTTP attempts made, over every round.
    #[cfg_attr(feature = "openapi", schema(minimum = 0))]
    pub attempts: i32,
    /// HTTP status of the last answer.
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_attempt_at: Option<OffsetDateTime>,
    /// Set while a retry is scheduled.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The W3C trace id of the event's trace, when the event came with one or
    /// hookrelay exports traces: every hop of this delivery (redeliveries and replays
    /// included) is in that trace.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[0-9a-f]{32}$"))]
    pub trace_id: Option<String>,
    /// For a failed delivery: why it was not tried again, e.g. `not retryable: HTTP
    /// 500 is not in the webhook's retry_on [timeout, 408, 429]`.
    pub why_failed: Option<String>,
    /// To an ordered webhook, of an event with an ordering key: the key, and the
    /// delivery's place in it (from 1, in the order the router recorded the events).
    pub ordering_key: Option<String>,
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub seq: Option<i64>,
}

const DELIVERY_COLUMNS: &str = "id, tenant, event_id, webhook_id, url, status, published, \
    attempts, last_status, last_error, last_attempt_at, next_attempt_at, created_at, trace_id, \
    why_failed, ordering_key, seq";

fn delivery_from_row(r: &tokio_postgres::Row) -> Result<Delivery, StoreError> {
    Ok(Delivery {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        event_id: r.try_get("event_id")?,
        webhook_id: r.try_get("webhook_id")?,
        url: r.try_get("url")?,
        status: DeliveryStatus::parse(r.try_get("status")?)?,
        published: r.try_get("published")?,
        attempts: r.try_get("attempts")?,
        last_status: r.try_get("last_status")?,
        last_error: r.try_get("last_error")?,
        last_attempt_at: r.try_get("last_attempt_at")?,
        next_attempt_at: r.try_get("next_attempt_at")?,
        created_at: r.try_get("created_at")?,
        trace_id: r.try_get("trace_id")?,
        why_failed: r.try_get("why_failed")?,
        ordering_key: r.try_get("ordering_key")?,
        seq: r.try_get("seq")?,
    })
}

/// Every delivery of one event.
pub async fn for_event(
    db: &impl GenericClient,
    tenant: &str,
    event_id: &str,
) -> Result<Vec<Delivery>, StoreError> {
    let filter = DeliveryFilter {
        event_id: Some(event_id.to_owned()),
        ..DeliveryFilter::default()
    };
    list(db, tenant, &filter, None, i64::MAX).await
}

/// Which deliveries of a tenant to list; every field narrows.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DeliveryFilter {
    pub event_id: Option<String>,
    pub webhook_id: Option<Uuid>,
    pub status: Option<DeliveryStatus>,
    /// Created at or after.
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub since: Option<OffsetDateTime>,
    /// Newest first (and pages continue before the cursor); else oldest first.
    #[serde(default)]
    pub newest_first: bool,
}

/// One page of a tenant's deliveries in creation order (ids are time-ordered UUIDs),
/// after the delivery `after` (before it, newest first).
pub async fn list(
    db: &impl GenericClient,
    tenant: &str,
    filter: &DeliveryFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Delivery>, StoreError> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE tenant = $1 \
         AND ($2::text IS NULL OR event_id = $2) AND ($3::uuid IS NULL OR webhook_id = $3) \
         AND ($4::text IS NULL OR status = $4) AND ($5::timestamptz IS NULL OR created_at >= $5) \
         AND ($6::uuid IS NULL OR id {beyond} $6) ORDER BY id {order} LIMIT $7",
        beyond = if filter.newest_first { "<" } else { ">" },
        order = if filter.newest_first { "DESC" } else { "ASC" },
    );
    let rows = db
        .query(
            &sql,
            &[
                &tenant,
                &filter.event_id,
                &filter.webhook_id,
                &filter.status.map(DeliveryStatus::as_str),
                &filter.since,
                &after,
                &limit,
            ],
        )
        .await?;
    rows.iter().map(delivery_from_row).collect()
}

/// One delivery of a tenant.
pub async fn get(db: &impl GenericClient, tenant: &str, id: Uuid) -> Result<Delivery, StoreError> {
    let sql = format!("SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE tenant = $1 AND id = $2");
    db.query_opt(&sql, &[&tenant, &id])
        .await?
        .map(|r| delivery_from_row(&r))
        .transpose()?
        .ok_or_else(|| StoreError::not_found(format!("delivery `{id}` in tenant `{tenant}`")))
}

/// What reopening a delivery for another round found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reopen {
    /// Set back to pending and not yet re-published: publish it with this many
    /// attempts made before, then call [`mark_published`].
    Publish { attempts_before: u32 },
    /// Already re-published by an earlier run (or still in its first round): nothing
    /// to send again.
    InFlight,
    /// Delivered since: nothing to send.
    Delivered,
}

/// Makes a failed delivery pending again for a fresh round of attempts. The state is
/// kept in the row (`published` false until the new message is confirmed), so a
/// redelivery interrupted at any point neither loses the delivery nor sends it twice
/// when run again: the router's publish protocol, reused.
///
/// `unsettled`: the delivery's dead letter says the sender could not settle it (the
/// row is still pending, its message gone to the dead-letter queue), so a pending,
/// published row is reopened too. Any other pending delivery is in flight, which is
/// why only such a dead letter may ask for this.
pub async fn reopen(
    db: &impl GenericClient,
    id: Uuid,
    unsettled: bool,
) -> Result<Option<Reopen>, StoreError> {
    let row = db
        .query_opt(
            "UPDATE deliveries SET status = 'pending', published = false, \
               next_attempt_at = NULL, updated_at = now() \
             WHERE id = $1 AND (status IN ('failed', 'held') \
               OR ($2 AND status = 'pending' AND published)) \
             RETURNING attempts",
            &[&id, &unsettled],
        )
        .await?;
    if let Some(row) = row {
        let attempts: i32 = row.try_get("attempts")?;
        return Ok(Some(Reopen::Publish {
            attempts_before: u32::try_from(attempts).unwrap_or(0),
        }));
    }
    let row = db
        .query_opt(
            "SELECT status, published, attempts FROM deliveries WHERE id = $1",
            &[&id],
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let status = DeliveryStatus::parse(row.try_get("status")?)?;
    let published: bool = row.try_get("published")?;
    let attempts: i32 = row.try_get("attempts")?;
    Ok(Some(match (status, published) {
        (DeliveryStatus::Delivered, _) => Reopen::Delivered,
        (DeliveryStatus::Pending, false) => Reopen::Publish {
            attempts_before: u32::try_from(attempts).unwrap_or(0),
        },
        _ => Reopen::InFlight,
    }))
}

/// Holds a queued delivery of a paused or disabled webhook (the sender, instead of
/// attempting it): true if held. The webhook row is read `FOR SHARE`, so this cannot
/// interleave with a resume or enable: either it holds before their update of the
/// webhook, and they then release it, or it sees the webhook active and holds
/// nothing (false: send it).
pub async fn hold(db: &impl GenericClient, id: Uuid, webhook_id: Uuid) -> Result<bool, StoreError> {
    let n = db
        .execute(
            &format!(
                "UPDATE deliveries SET status = 'held', published = false, next_attempt_at = NULL, \
                   updated_at = now() \
                 WHERE id = $1 AND status = 'pending' AND EXISTS ( \
                   SELECT 1 FROM webhooks w WHERE w.id = $2 AND {} FOR SHARE)",
                super::webhooks::HOLDING
            ),
            &[&id, &webhook_id],
        )
        .await?;
    Ok(n == 1)
}

/// The newest held delivery of one webhook: what a breaker's probe sends. Read from
/// the newest end of the webhook's index, where held deliveries are.
pub async fn newest_held(
    db: &impl GenericClient,
    tenant: &str,
    webhook_id: Uuid,
) -> Result<Option<Delivery>, StoreError> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries \
         WHERE webhook_id = $1 AND tenant = $2 AND status = 'held' \
         ORDER BY created_at DESC LIMIT 1"
    );
    db.query_opt(&sql, &[&webhook_id, &tenant])
        .await?
        .map(|r| delivery_from_row(&r))
        .transpose()
}

/// The held deliveries of one webhook, oldest first: what a resume releases. Found
/// by the webhook's index and filtered (an index on `status` would stop its updates
/// from being HOT), so it reads as far as the webhook's history.
pub async fn held_of_webhook(
    db: &impl GenericClient,
    tenant: &str,
    webhook_id: Uuid,
) -> Result<Vec<Delivery>, StoreError> {
    let filter = DeliveryFilter {
        webhook_id: Some(webhook_id),
        status: Some(DeliveryStatus::Held),
        ..DeliveryFilter::default()
    };
    list(db, tenant, &filter, None, i64::MAX).await
}

/// Discards what a webhook holds (`dry_run`: counts it): each held delivery becomes
/// failed with the reason, never sent. Returns how many.
pub async fn discard_held(
    db: &impl GenericClient,
    tenant: &str,
    webhook_id: Uuid,
    dry_run: bool,
) -> Result<u64, StoreError> {
    let sql = if dry_run {
        "SELECT count(*) FROM deliveries WHERE webhook_id = $1 AND tenant = $2 AND status = 'held'"
    } else {
        "WITH gone AS (UPDATE deliveries SET status = 'failed', \
           last_error = 'discarded by an operator while held', updated_at = now() \
         WHERE webhook_id = $1 AND tenant = $2 AND status = 'held' RETURNING 1) \
         SELECT count(*) FROM gone"
    };
    let n: i64 = db
        .query_one(sql, &[&webhook_id, &tenant])
        .await?
        .try_get(0)?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Failed deliveries of one webhook created at or after `since`: what "redeliver all
/// failed" reopens.
pub async fn failed_of_webhook(
    db: &impl GenericClient,
    tenant: &str,
    webhook_id: Uuid,
    since: OffsetDateTime,
) -> Result<Vec<Delivery>, StoreError> {
    let filter = DeliveryFilter {
        webhook_id: Some(webhook_id),
        status: Some(DeliveryStatus::Failed),
        since: Some(since),
        ..DeliveryFilter::default()
    };
    list(db, tenant, &filter, None, i64::MAX).await
}

/// One HTTP attempt of a delivery (or a permanent failure found before sending), as
/// operators and tests see it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attempt {
    /// 1-based, counted over every round.
    #[cfg_attr(feature = "openapi", schema(minimum = 1))]
    pub attempt: i32,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    pub latency_ms: f64,
    /// Null when no answer came.
    pub status_code: Option<i32>,
    pub error: Option<String>,
    /// The start of the receiver's answer.
    pub response_snippet: Option<String>,
    /// `delivered`, `retry` (another attempt was scheduled) or `failed`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^(delivered|retry|failed)$"))]
    pub outcome: String,
}

pub async fn attempts(
    db: &impl GenericClient,
    delivery_id: Uuid,
) -> Result<Vec<Attempt>, StoreError> {
    let rows = db
        .query(
            "SELECT attempt, started_at, latency_ms, status_code, error, response_snippet, outcome \
             FROM delivery_attempts WHERE delivery_id = $1 ORDER BY id",
            &[&delivery_id],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Attempt {
                attempt: r.try_get("attempt")?,
                started_at: r.try_get("started_at")?,
                latency_ms: r.try_get("latency_ms")?,
                status_code: r.try_get("status_code")?,
                error: r.try_get("error")?,
                response_snippet: r.try_get("response_snippet")?,
                outcome: r.try_get("outcome")?,
            })
        })
        .collect()
}

/// The failed deliveries that hold an ordered key back (its webhook blocks after a
/// failure): failed and numbered after what an operator skipped, in key order.
/// Not found: the webhook has no such key.
pub async fn blocking_of_key(
    db: &impl GenericClient,
    tenant: &str,
    webhook_id: Uuid,
    key: &str,
) -> Result<Vec<Delivery>, StoreError> {
    let sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.tenant = $1 AND d.webhook_id = $2 \
           AND d.ordering_key = $3 AND d.seq IS NOT NULL AND d.status = 'failed' \
           AND d.seq > (SELECT k.skipped_through FROM ordering_keys k \
             WHERE k.webhook_id = $2 AND k.ordering_key = $3) \
         ORDER BY d.seq"
    );
    key_exists(db, tenant, webhook_id, key).await?;
    db.query(&sql, &[&tenant, &webhook_id, &key])
        .await?
        .iter()
        .map(delivery_from_row)
        .collect()
}

/// Skips what holds an ordered key back: its failed deliveries so far hold nothing
/// back any more (they stay failed, their dead letters stay in the queue). Returns
/// the number up to which the key's failures are skipped.
pub async fn skip_key(
    db: &impl GenericClient,
    tenant: &str,
    webhook_id: Uuid,
    key: &str,
) -> Result<i64, StoreError> {
    db.query_opt(
        "UPDATE ordering_keys k SET skipped_through = GREATEST(k.skipped_through, \
           COALESCE((SELECT max(d.seq) FROM deliveries d WHERE d.webhook_id = $2 \
             AND d.ordering_key = $3 AND d.seq IS NOT NULL AND d.status = 'failed'), 0)) \
         WHERE k.tenant = $1 AND k.webhook_id = $2 AND k.ordering_key = $3 \
         RETURNING k.skipped_through",
        &[&tenant, &webhook_id, &key],
    )
    .await?
    .map(|r| r.try_get(0))
    .transpose()?
    .ok_or_else(|| no_key(webhook_id, key))
}

async fn key_exists(
    db: &impl GenericClient,
    tenant: &str,
    webhook_id: Uuid,
    key: &str,
) -> Result<(), StoreError> {
    db.query_opt(
        "SELECT 1 FROM ordering_keys WHERE tenant = $1 AND webhook_id = $2 AND ordering_key = $3",
        &[&tenant, &webhook_id, &key],
    )
    .await?
    .map(|_| ())
    .ok_or_else(|| no_key(webhook_id, key))
}

fn no_key(webhook_id: Uuid, key: &str) -> StoreError {
    StoreError::not_found(format!("ordering key `{key}` of webhook {webhook_id}"))
}
