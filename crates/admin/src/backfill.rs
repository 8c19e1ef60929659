//! Backfill: the deliveries a webhook would have had for stored events it never got
//! (events from before it existed, or from while it filtered them out), created and
//! sent. An event that already has a delivery to the webhook is left alone, so a
//! backfill run twice, or over a window the webhook already served, sends nothing
//! twice: the store's one-delivery-per-(event, target) rule decides.

use deadpool_postgres::Pool;
use hookrelay_model::webhook::{Target, Webhook};
use hookrelay_model::{Event, matching};
use hookrelay_store::StoreError;
use hookrelay_store::deliveries::{self, NewDelivery};
use hookrelay_store::events::{self, Cursor, EventFilter, StoredEvent};
use lapin::Channel;
use serde::Serialize;
use time::OffsetDateTime;

use crate::AdminError;
use crate::redeliver::{self, Outcome};

/// Events read per page.
const PAGE: i64 = 500;

/// Which stored events to backfill: received in `[since, until)`, of these types
/// (any when empty).
#[derive(Debug, Clone)]
pub struct Window {
    pub since: OffsetDateTime,
    pub until: Option<OffsetDateTime>,
    pub event_types: Vec<String>,
}

/// What a backfill did (or, on a dry run, would do).
#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
#[schema(as = BackfillSummary)]
pub struct Summary {
    /// Events in the window (of the types asked for).
    pub scanned: u64,
    /// Of those, the events the webhook subscribes to.
    pub matched: u64,
    /// Matched events that already had a delivery to the webhook: left alone.
    pub existing: u64,
    /// Deliveries created (on a dry run: that would be created).
    pub created: u64,
    /// Created deliveries sent (published for a first round of attempts).
    pub sent: u64,
    /// Created deliveries held, since the webhook is paused (its resume sends them).
    pub held: u64,
    pub dry_run: bool,
}

/// Creates and sends the deliveries `webhook` misses in `window`, a page of events at
/// a time (newest page first); `progress` gets the events scanned so far.
pub async fn run(
    pool: &Pool,
    channel: &Channel,
    topology: &hookrelay_model::Topology,
    webhook: &Webhook,
    window: &Window,
    dry_run: bool,
    progress: &(dyn Fn(u64) + Send + Sync),
) -> Result<Summary, AdminError> {
    if !webhook.enabled {
        return Err(AdminError::Conflict(format!(
            "webhook `{}` is disabled: enable it before backfilling",
            webhook.key
        )));
    }
    let filter = EventFilter {
        since: Some(window.since),
        until: window.until,
        ..EventFilter::default()
    };
    let mut summary = Summary {
        dry_run,
        ..Summary::default()
    };
    let mut after: Option<Cursor> = None;
    loop {
        let db = pool.get().await.map_err(StoreError::from)?;
        // Oldest first: an ordered webhook's deliveries are numbered in this order.
        let from = (after.as_ref(), events::Direction::OldestFirst);
        let page = events::list_from(&db, &webhook.tenant, &filter, from, PAGE).await?;
        after = page.last().map(Cursor::of);
        let matched = matching_events(&page, webhook, window, &mut summary);
        let ids: Vec<&str> = matched.iter().map(|e| e.id.as_str()).collect();
        if dry_run {
            let missing =
                deliveries::without_delivery_to(&db, &webhook.tenant, &ids, webhook.id).await?;
            summary.created += missing.len() as u64;
            summary.existing += (ids.len() - missing.len()) as u64;
        } else {
            drop(db);
            let (created, held) = create(pool, webhook, &matched).await?;
            summary.created += created.len() as u64;
            summary.existing += (matched.len() - created.len()) as u64;
            if held {
                summary.held += created.len() as u64;
            } else {
                send(pool, channel, topology, webhook, &created, &mut summary).await?;
            }
        }
        progress(summary.scanned);
        if (page.len() as i64) < PAGE {
            return Ok(summary);
        }
    }
}

/// The events of a page the webhook subscribes to, as the router would match them
/// now; counts what it scanned and matched.
fn matching_events(
    page: &[StoredEvent],
    webhook: &Webhook,
    window: &Window,
    summary: &mut Summary,
) -> Vec<Event> {
    let mut out = Vec::new();
    for stored in page {
        if !window.event_types.is_empty() && !window.event_types.contains(&stored.event_type) {
            continue;
        }
        summary.scanned += 1;
        // Stored envelopes were valid when they arrived; one that no longer parses
        // (a rule tightened since) is not sent.
        let Ok(event) = Event::from_value(stored.envelope.clone()) else {
            continue;
        };
        let targets = matching::targets(&event, std::slice::from_ref(webhook));
        if targets.contains(&Target::Webhook(webhook.id)) {
            summary.matched += 1;
            out.push(event);
        }
    }
    out
}

/// Creates the deliveries of `matched` that do not exist, held if the webhook is
/// paused: decided in the same transaction, with the webhook read `FOR SHARE` as the
/// router does, so a concurrent resume releases them. Returns them, and whether held.
async fn create(
    pool: &Pool,
    webhook: &Webhook,
    matched: &[Event],
) -> Result<(Vec<deliveries::DeliveryRef>, bool), AdminError> {
    let mut client = pool.get().await.map_err(StoreError::from)?;
    let tx = client.transaction().await.map_err(StoreError::from)?;
    let held = !hookrelay_store::webhooks::still_holding(&tx, &[webhook.id])
        .await?
        .is_empty();
    // Retention may have deleted some since they were read; the rest stay until commit.
    let ids: Vec<&str> = matched.iter().map(|e| e.id.as_str()).collect();
    let present = hookrelay_store::events::lock_present(&tx, &webhook.tenant, &ids).await?;
    let new: Vec<NewDelivery> = matched
        .iter()
        .filter(|e| present.contains(e.id.as_str()))
        .map(|e| NewDelivery {
            tenant: webhook.tenant.clone(),
            event_id: e.id.to_string(),
            target: Target::Webhook(webhook.id),
            trace_id: None,
            held,
            // Backfilled deliveries of a key go after those it already has, in the
            // order the events were recorded (the page's order).
            ordering_key: hookrelay_model::ordering::sequenced_under(webhook, e).map(str::to_owned),
        })
        .collect();
    let created = deliveries::insert(&tx, &new, deliveries::Sending::Reopened)
        .await?
        .into_iter()
        .map(|c| c.delivery)
        .collect();
    tx.commit().await.map_err(StoreError::from)?;
    Ok((created, held))
}

/// Publishes each created delivery, as a redelivery does: published, confirmed, then
/// marked published.
async fn send(
    pool: &Pool,
    channel: &Channel,
    topology: &hookrelay_model::Topology,
    webhook: &Webhook,
    created: &[deliveries::DeliveryRef],
    summary: &mut Summary,
) -> Result<(), AdminError> {
    for made in created {
        let db = pool.get().await.map_err(StoreError::from)?;
        let delivery = deliveries::get(&db, &webhook.tenant, made.id).await?;
        drop(db);
        let outcome =
            redeliver::reopen_and_publish(pool, channel, topology, &delivery, false).await?;
        if outcome == Outcome::Requeued {
            summary.sent += 1;
        }
    }
    Ok(())
}
