//! The shared state of webhooks' delivery policies (`webhook_rates`, `rate_held`),
//! and the advisory locks that cap requests in flight, so that every sender
//! process enforces one limit together (docs/operations.md, Delivery policy).

use deadpool_postgres::GenericClient;
use hookrelay_model::rate::Bucket;
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;
use crate::deliveries::Resend;

/// What [`admit`] decided for one delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Within the rate: send it now.
    Send,
    /// Over the rate (or behind others held for it): held, `rate_held` row written;
    /// a releaser sends it when the rate allows.
    Held,
    /// The delivery was no longer pending: nothing held, nothing taken.
    Settled,
}

/// Takes one request from the webhook's bucket, or holds the delivery behind the
/// others held for the rate. One transaction with the bucket's row locked, so two
/// senders never take the same token.
pub async fn admit(
    db: &mut deadpool_postgres::Client,
    webhook_id: Uuid,
    delivery_id: Uuid,
    bucket: &Bucket,
) -> Result<Admission, StoreError> {
    let tx = db.transaction().await?;
    let row = tx
        .query_one(
            // DO UPDATE (not NOTHING) so that the row comes back locked either way.
            "INSERT INTO webhook_rates (webhook_id) VALUES ($1) \
             ON CONFLICT (webhook_id) DO UPDATE SET webhook_id = EXCLUDED.webhook_id \
             RETURNING tat, backlog, now() AS now",
            &[&webhook_id],
        )
        .await?;
    let tat: Option<OffsetDateTime> = row.try_get("tat")?;
    let backlog: bool = row.try_get("backlog")?;
    let now: OffsetDateTime = row.try_get("now")?;
    let taken = bucket.take(tat, now, 1);
    if !backlog && taken.granted == 1 {
        tx.execute(
            "UPDATE webhook_rates SET tat = $2 WHERE webhook_id = $1",
            &[&webhook_id, &taken.tat],
        )
        .await?;
        tx.commit().await?;
        return Ok(Admission::Send);
    }
    let held = tx
        .execute(
            "UPDATE deliveries SET status = 'held', published = false, next_attempt_at = NULL, \
               updated_at = now() WHERE id = $1 AND status = 'pending'",
            &[&delivery_id],
        )
        .await?;
    if held == 0 {
        tx.commit().await?;
        return Ok(Admission::Settled);
    }
    tx.execute(
        "INSERT INTO rate_held (webhook_id, delivery_id) VALUES ($1, $2) \
         ON CONFLICT (webhook_id, delivery_id) DO UPDATE SET released_at = NULL",
        &[&webhook_id, &delivery_id],
    )
    .await?;
    tx.execute(
        "UPDATE webhook_rates SET backlog = true WHERE webhook_id = $1",
        &[&webhook_id],
    )
    .await?;
    tx.commit().await?;
    Ok(Admission::Held)
}

/// Deliveries released by [`release_due`]: publish each, then [`released`].
#[derive(Debug, Clone)]
pub struct Release {
    pub webhook_id: Uuid,
    pub deliveries: Vec<Resend>,
}

/// How long a released row may wait for its publish before another releaser takes
/// it for one whose sender died midway.
const RELEASE_TIMEOUT: &str = "30 seconds";

/// The most deliveries one webhook releases per round.
const MAX_RELEASE: u32 = 1_000;

/// Releases, for each webhook with a backlog that the rate now allows (and that does
/// not hold for a pause, disable or breaker), as many held deliveries as its bucket
/// has tokens, oldest first: reopened (pending, unpublished) and marked released in
/// one transaction, with the tokens taken. Buckets another sender is releasing are
/// skipped.
pub async fn release_due(
    db: &mut deadpool_postgres::Client,
    buckets: impl Fn(&hookrelay_model::webhook::Webhook) -> Option<Bucket>,
    limit: i64,
) -> Result<Vec<Release>, StoreError> {
    // Every sender asks every 50 ms, mostly to find nothing: prepared, it is not
    // planned each time (0.3 ms of planning for 0.03 ms of execution).
    static SQL: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        format!(
            "SELECT r.webhook_id, r.tat, now() AS now, {} FROM webhook_rates r \
             JOIN webhooks w ON w.id = r.webhook_id \
             WHERE r.backlog AND NOT {} \
             ORDER BY r.tat NULLS FIRST LIMIT $1 FOR UPDATE OF r SKIP LOCKED",
            // Without the secrets: the releaser has no cipher and needs only the policy.
            super::webhooks::select_prefixed_without_secrets("w", "w_"),
            super::webhooks::HOLDING,
        )
    });
    let tx = db.transaction().await?;
    let statement = super::prepared(&tx, &SQL).await?;
    let rows = tx.query(&statement, &[&limit]).await?;
    let mut out = Vec::new();
    for row in &rows {
        let Some(webhook) = super::webhooks::from_row_prefixed(row, "w_", &crate::Cipher::none())?
        else {
            continue;
        };
        let tat: Option<OffsetDateTime> = row.try_get("tat")?;
        let now: OffsetDateTime = row.try_get("now")?;
        let Some(bucket) = buckets(&webhook) else {
            // The limit was removed: release everything held for it.
            let released = release_rows(&tx, webhook.id, i64::from(MAX_RELEASE)).await?;
            finish(&tx, webhook.id, None, &released, MAX_RELEASE).await?;
            out.push(Release {
                webhook_id: webhook.id,
                deliveries: released,
            });
            continue;
        };
        let room = bucket.take(tat, now, MAX_RELEASE).granted;
        if room == 0 {
            continue;
        }
        let released = release_rows(&tx, webhook.id, i64::from(room)).await?;
        let used = u32::try_from(released.len()).unwrap_or(room);
        let taken = bucket.take(tat, now, used);
        finish(&tx, webhook.id, Some(taken.tat), &released, room).await?;
        out.push(Release {
            webhook_id: webhook.id,
            deliveries: released,
        });
    }
    tx.commit().await?;
    Ok(out)
}

/// Up to `n` of the webhook's held rows, oldest first, reopened and marked released.
/// Rows whose delivery settled meanwhile (delivered, discarded) are dropped.
async fn release_rows(
    tx: &deadpool_postgres::Transaction<'_>,
    webhook_id: Uuid,
    n: i64,
) -> Result<Vec<Resend>, StoreError> {
    let rows = tx
        .query(
            &format!(
                "WITH next AS ( \
                   SELECT delivery_id FROM rate_held WHERE webhook_id = $1 \
                     AND (released_at IS NULL OR released_at < now() - interval '{RELEASE_TIMEOUT}') \
                   ORDER BY delivery_id LIMIT $2), \
                 marked AS ( \
                   UPDATE rate_held h SET released_at = now() FROM next \
                   WHERE h.webhook_id = $1 AND h.delivery_id = next.delivery_id) \
                 UPDATE deliveries d SET status = 'pending', published = false, \
                   next_attempt_at = NULL, updated_at = now() \
                 FROM next WHERE d.id = next.delivery_id \
                   AND (d.status = 'held' OR (d.status = 'pending' AND NOT d.published)) \
                 RETURNING d.id, d.tenant, d.event_id, d.webhook_id, d.attempts, d.trace_id"
            ),
            &[&webhook_id, &n],
        )
        .await?;
    let mut released = rows
        .iter()
        .map(Resend::from_row)
        .collect::<Result<Vec<_>, StoreError>>()?;
    released.sort_by_key(|r| r.delivery.id);
    // Held rows of deliveries that settled without us: nothing to send.
    tx.execute(
        "DELETE FROM rate_held h USING deliveries d \
         WHERE h.webhook_id = $1 AND h.delivery_id = d.id AND h.released_at = now() \
           AND NOT (d.status = 'pending' AND NOT d.published)",
        &[&webhook_id],
    )
    .await?;
    Ok(released)
}

/// Stores the bucket's new state and whether a backlog remains.
async fn finish(
    tx: &deadpool_postgres::Transaction<'_>,
    webhook_id: Uuid,
    tat: Option<OffsetDateTime>,
    released: &[Resend],
    room: u32,
) -> Result<(), StoreError> {
    // Fewer released than there was room for: nothing else waits (new arrivals
    // then take tokens themselves).
    let drained = u32::try_from(released.len()).unwrap_or(u32::MAX) < room;
    tx.execute(
        "UPDATE webhook_rates SET tat = coalesce($2, tat), \
           backlog = backlog AND NOT ($3 AND NOT EXISTS ( \
             SELECT 1 FROM rate_held WHERE webhook_id = $1 AND released_at IS NULL)) \
         WHERE webhook_id = $1",
        &[&webhook_id, &tat, &drained],
    )
    .await?;
    Ok(())
}

/// The released deliveries' messages are confirmed: their held rows go.
pub async fn released(db: &impl GenericClient, ids: &[Uuid]) -> Result<(), StoreError> {
    db.execute(
        "DELETE FROM rate_held WHERE delivery_id = ANY($1) AND released_at IS NOT NULL",
        &[&ids],
    )
    .await?;
    Ok(())
}

/// Whether the delivery waits for its webhook's rate (rather than for a pause, a
/// disable or a breaker).
pub async fn waits_for_rate(
    db: &impl GenericClient,
    delivery_id: Uuid,
) -> Result<bool, StoreError> {
    Ok(db
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM rate_held WHERE delivery_id = $1)",
            &[&delivery_id],
        )
        .await?
        .try_get(0)?)
}

/// The advisory-lock key of a webhook's in-flight slots: its id folded to 32 bits
/// (the slot number is the lock's second key).
pub fn slot_key(webhook_id: Uuid) -> i32 {
    let (a, b) = webhook_id.as_u64_pair();
    let folded = (a ^ b) ^ ((a ^ b) >> 32);
    // Truncation is the point: any 32 bits of the fold will do.
    folded as u32 as i32
}

/// Takes a free slot of the webhook's `cap` on this connection's session, skipping
/// the ones this session already holds (advisory locks are re-entrant within a
/// session, so those would be granted again). None when all are taken. A session
/// that ends (the process dies) frees its slots.
pub async fn take_slot(
    db: &impl GenericClient,
    webhook_id: Uuid,
    cap: u16,
    held_here: &[i32],
) -> Result<Option<i32>, StoreError> {
    let statement = super::prepared(
        db,
        // CASE fixes the order: a slot held here is never locked again.
        "SELECT s FROM generate_series(0, $2::int - 1) AS s \
         WHERE CASE WHEN s = ANY($3::int[]) THEN false ELSE pg_try_advisory_lock($1, s) END \
         LIMIT 1",
    )
    .await?;
    let row = db
        .query_opt(
            &statement,
            &[&slot_key(webhook_id), &i32::from(cap), &held_here],
        )
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

/// Frees a slot [`take_slot`] gave this session.
pub async fn give_slot(
    db: &impl GenericClient,
    webhook_id: Uuid,
    slot: i32,
) -> Result<(), StoreError> {
    let statement = super::prepared(db, "SELECT pg_advisory_unlock($1, $2)").await?;
    db.execute(&statement, &[&slot_key(webhook_id), &slot])
        .await?;
    Ok(())
}
