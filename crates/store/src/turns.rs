//! A sequenced delivery's turn in its (webhook, ordering key): the rows of
//! `deliveries` that wait for an earlier delivery of their key, and the key's lock
//! (a transaction-level advisory lock) that orders waiting against releasing
//! (docs/delivery-semantics.md, "Ordered webhooks: the sender's gate").
//!
//! A delivery whose turn has not come waits in its row (status `waiting`, no message
//! out). Whoever settles the delivery before it releases it ([`release_after`]):
//! pending again, and its message published. Both happen under the key's lock,
//! each in its own transaction whose statements read after the lock is taken, so a
//! release never misses a delivery that is starting to wait: either the waiter's
//! transaction commits first and the release sees it waiting, or the release commits
//! first and the waiter sees its predecessor settled and goes on. A release lost to a
//! crash is found by [`stalled`].

use std::sync::LazyLock;
use std::time::Duration;

use deadpool_postgres::GenericClient;
use uuid::Uuid;

use super::Cipher;
use super::StoreError;
use super::deliveries::{AttemptRecord, Resend, SendJob, record_attempts, send_jobs};

/// How long a delivery parked to wait for its turn waits before the turn sweep
/// looks at it (its `next_attempt_at`), and how often the sweep looks: the longest a
/// delivery whose release was lost (its predecessor's sender died between recording
/// and releasing) stays waiting.
pub const LOOK_AGAIN: Duration = Duration::from_secs(5);

/// The turn of delivery `d`, as text: `free`, `waiting` or `blocked`. Decided by the
/// nearest earlier delivery of its key that still exists (one index probe, however
/// long the key's history): a key's deliveries are sent one at a time in order, so
/// when that one is settled every earlier one was. `waiting` while it is pending,
/// held or waiting; `blocked` while it failed for good under `on_failure = block`
/// and an operator has not skipped it; `free` otherwise, and for an unsequenced
/// delivery.
pub(crate) const TURN_OF_D: &str = "\
    CASE WHEN d.seq IS NULL THEN 'free' ELSE COALESCE(( \
      SELECT CASE WHEN p.status IN ('pending', 'held', 'waiting') THEN 'waiting' \
        WHEN p.status = 'failed' AND pw.on_failure = 'block' AND p.seq > COALESCE(( \
          SELECT k.skipped_through FROM ordering_keys k \
          WHERE k.webhook_id = p.webhook_id AND k.ordering_key = p.ordering_key), 0) \
        THEN 'blocked' ELSE 'free' END \
      FROM deliveries p LEFT JOIN webhooks pw ON pw.id = p.webhook_id \
      WHERE p.webhook_id = d.webhook_id AND p.ordering_key = d.ordering_key \
        AND p.seq < d.seq \
      ORDER BY p.seq DESC LIMIT 1), 'free') END";

/// Where a sequenced delivery stands behind the earlier deliveries of its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Not sequenced, or the delivery before it is settled: delivered, failed and
    /// skipped (`on_failure = skip`, or skipped by an operator).
    Free,
    /// The one before it is still to be settled (pending, retrying, held, waiting).
    Waiting,
    /// The one before it failed for good and the webhook blocks the key
    /// (`on_failure = block`) until an operator resumes or skips it.
    Blocked,
}

impl Turn {
    pub(crate) fn parse(text: &str) -> Result<Self, StoreError> {
        match text {
            "free" => Ok(Self::Free),
            "waiting" => Ok(Self::Waiting),
            "blocked" => Ok(Self::Blocked),
            other => Err(StoreError::corrupt(
                "turn of a delivery",
                format!("`{other}` is no turn"),
            )),
        }
    }
}

/// A sequenced delivery's place: its webhook, key and number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub webhook_id: Uuid,
    pub key: String,
    pub seq: i64,
}

/// Parks a pending delivery until its turn: true if it now waits (its message can be
/// acked), false if its turn came meanwhile (send it). `look_again`: when the
/// sweep checks on it if no release came.
pub async fn wait_turn(
    db: &mut deadpool_postgres::Client,
    id: Uuid,
    place: &Place,
    look_again: Duration,
) -> Result<bool, StoreError> {
    let tx = db.transaction().await?;
    lock_key(&tx, place).await?;
    let parked = park(&tx, &[id], look_again).await?;
    tx.commit().await?;
    Ok(!parked.is_empty())
}

/// Parks the sequenced deliveries a batch just created whose turn has not come:
/// waiting in their rows, no message (the caller publishes only the others). Taken
/// where they are recorded, so that a hot key's deliveries never travel to a sender
/// only to be parked there, in a transaction that competes for the key's lock with
/// the release of the one before. `keys`: every (webhook, key) the rows are
/// sequenced under. The keys' locks are taken here, last in the caller's transaction
/// and held to its commit, in one order (two batches sharing keys never wait for
/// each other in a circle); the turn is read after them, so a release either
/// commits first (and the row stays pending, to be published) or sees the row
/// waiting once the batch commits (and releases it). Returns the ids parked.
pub async fn park_new(
    tx: &deadpool_postgres::Transaction<'_>,
    ids: &[Uuid],
    keys: &[(Uuid, &str)],
    look_again: Duration,
) -> Result<Vec<Uuid>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    lock_keys(tx, keys).await?;
    park(tx, ids, look_again).await
}

/// Makes these pending deliveries wait if their turn has not come; the caller holds
/// their keys' locks. Returns the ids now waiting.
async fn park(
    tx: &deadpool_postgres::Transaction<'_>,
    ids: &[Uuid],
    look_again: Duration,
) -> Result<Vec<Uuid>, StoreError> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE deliveries d SET status = 'waiting', published = false, \
               next_attempt_at = now() + make_interval(secs => $2), updated_at = now() \
             FROM unnest($1::uuid[]) AS u(id) \
             WHERE d.id = u.id AND d.status = 'pending' AND ({TURN_OF_D}) <> 'free' \
             RETURNING d.id"
        )
    });
    let statement = super::prepared(tx, &SQL).await?;
    let rows = tx
        .query(&statement, &[&ids, &look_again.as_secs_f64()])
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// A release under way: the next delivery of a key, made pending in a transaction
/// that still holds the key's lock. Publish its message, then [`Release::commit`];
/// dropped before, it is rolled back and the delivery still waits (for the sweep).
/// Committed only after the publish, so that no crash leaves a delivery pending with
/// no message: a message published before a crash finds its row still waiting and is
/// acked without a request.
pub struct Release<'a> {
    /// None when nothing could wait to be released.
    tx: Option<deadpool_postgres::Transaction<'a>>,
    /// What to publish, if a delivery was released.
    pub next: Option<Resend>,
}

impl Release<'_> {
    pub async fn commit(self) -> Result<(), StoreError> {
        if let Some(tx) = self.tx {
            tx.commit().await?;
        }
        Ok(())
    }
}

/// How a released delivery goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handing {
    /// Its message is published before the release commits (marked published).
    Publish,
    /// The releasing sender sends it itself, with no message: the row is marked
    /// unpublished, with `next_attempt_at` the end of the sender's lease. Should the
    /// sender die before it settles the delivery or publishes a message for it (a
    /// retry, a deferral), [`lapsed`] finds it once the lease is over.
    Keep { lease: Duration },
}

/// Releases the delivery numbered next after `after` in its key, if it waits and its
/// turn has come: pending again, and published or kept as `how` says (see [`Release`]).
pub async fn release_after<'a>(
    db: &'a mut deadpool_postgres::Client,
    webhook_id: Uuid,
    key: &str,
    after: i64,
    how: Handing,
) -> Result<Release<'a>, StoreError> {
    let place = Place {
        webhook_id,
        key: key.to_owned(),
        seq: after,
    };
    if !may_wait(&*db, &place).await? {
        return Ok(Release {
            tx: None,
            next: None,
        });
    }
    let tx = db.transaction().await?;
    lock_key(&tx, &place).await?;
    let next = release_next(&tx, &place, how).await?;
    Ok(Release { tx: Some(tx), next })
}

/// The next delivery of a key, kept by [`settle_and_keep`] and loaded in its
/// transaction: what the sender needs to send it, with no load of its own.
#[derive(Debug, Clone)]
pub struct Kept {
    pub next: Resend,
    /// Its send job as the transaction saw it (pending, its turn come); none if its
    /// event is gone.
    pub job: Option<SendJob>,
}

/// Records the attempt that settled a sequenced delivery and keeps the next delivery
/// of its key for this sender ([`Handing::Keep`]), loaded ([`Kept`]), in one
/// transaction under the key's lock: one commit where a record, a release and a load
/// took two commits and three round trips, which is what a hot key's deliveries wait
/// for between its receiver's answers. The lock is taken before the record, so a
/// delivery starting to wait either sees the record committed (and goes on) or
/// committed its wait first (and is released here).
pub async fn settle_and_keep(
    db: &mut deadpool_postgres::Client,
    cipher: &Cipher,
    record: &AttemptRecord,
    place: &Place,
    lease: Duration,
) -> Result<Option<Kept>, StoreError> {
    let tx = db.transaction().await?;
    lock_key(&tx, place).await?;
    record_attempts(&tx, std::slice::from_ref(record)).await?;
    let kept = match release_next(&tx, place, Handing::Keep { lease }).await? {
        Some(next) => {
            let job = send_jobs(&tx, cipher, &[next.delivery.id])
                .await?
                .remove(&next.delivery.id);
            Some(Kept { next, job })
        }
        None => None,
    };
    tx.commit().await?;
    Ok(kept)
}

/// The delivery numbered next after `place` in its key, made pending if it waits and
/// its turn has come: published or kept as `how` says. The caller holds the key's lock.
async fn release_next(
    tx: &deadpool_postgres::Transaction<'_>,
    place: &Place,
    how: Handing,
) -> Result<Option<Resend>, StoreError> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE deliveries d SET status = 'pending', published = $4::float8 IS NULL, \
               next_attempt_at = now() + make_interval(secs => $4), updated_at = now() \
             WHERE d.id = (SELECT n.id FROM deliveries n WHERE n.webhook_id = $1 \
                 AND n.ordering_key = $2 AND n.seq > $3 ORDER BY n.seq LIMIT 1) \
               AND d.status = 'waiting' AND ({TURN_OF_D}) = 'free' \
             RETURNING d.id, d.tenant, d.event_id, d.webhook_id, d.attempts, d.trace_id"
        )
    });
    let statement = super::prepared(tx, &SQL).await?;
    let lease = match how {
        Handing::Publish => None,
        Handing::Keep { lease } => Some(lease.as_secs_f64()),
    };
    let row = tx
        .query_opt(
            &statement,
            &[&place.webhook_id, &place.key, &place.seq, &lease],
        )
        .await?;
    row.map(|r| Resend::from_row(&r)).transpose()
}

/// Deliveries a sender kept to send itself ([`Handing::Keep`]) and neither settled
/// nor published a message for by their `next_attempt_at` (the lease, or the due time
/// of a retry recorded before its message was out): the sender died, or lost its
/// broker or database for longer than that. Each to be published by [`reopen_lapsed`].
pub async fn lapsed(db: &impl GenericClient, limit: i64) -> Result<Vec<Uuid>, StoreError> {
    let rows = db
        .query(
            "SELECT d.id FROM deliveries d \
             WHERE d.next_attempt_at < now() AND d.status = 'pending' AND NOT d.published \
               AND d.seq IS NOT NULL \
             ORDER BY d.next_attempt_at LIMIT $1",
            &[&limit],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

/// Takes a lapsed delivery ([`lapsed`]) back from the sender that kept it: marked
/// published in a transaction that commits after its message is published, like a
/// [`Release`]. Nothing to publish if it was settled or published meanwhile.
pub async fn reopen_lapsed(
    db: &mut deadpool_postgres::Client,
    id: Uuid,
) -> Result<Release<'_>, StoreError> {
    let tx = db.transaction().await?;
    let row = tx
        .query_opt(
            "UPDATE deliveries d SET published = true, next_attempt_at = NULL, \
               updated_at = now() \
             WHERE d.id = $1 AND d.status = 'pending' AND NOT d.published \
               AND d.next_attempt_at < now() \
             RETURNING d.id, d.tenant, d.event_id, d.webhook_id, d.attempts, d.trace_id",
            &[&id],
        )
        .await?;
    let next = row.map(|r| Resend::from_row(&r)).transpose()?;
    Ok(Release { tx: Some(tx), next })
}

/// The publication of a kept delivery's message (its retry's, its deferral's),
/// taken from the turn sweep: the row is marked published in a transaction that
/// holds its row lock until [`Publication::commit`], after the message is confirmed.
/// The sweep's [`reopen_lapsed`] takes the same row the same way, so exactly one of
/// the two publishes: whichever goes second finds the row published and sends
/// nothing. (Marked after the publish instead, a retry due sooner than its message
/// was confirmed and marked could be published by both, and sent twice.)
pub struct Publication<'a>(deadpool_postgres::Transaction<'a>);

impl Publication<'_> {
    pub async fn commit(self) -> Result<(), StoreError> {
        self.0.commit().await?;
        Ok(())
    }
}

/// Takes the publication of kept delivery `id` ([`Publication`]); none when the
/// turn sweep published it already (its message is out: send nothing).
pub async fn take_publication(
    db: &mut deadpool_postgres::Client,
    id: Uuid,
) -> Result<Option<Publication<'_>>, StoreError> {
    let tx = db.transaction().await?;
    let statement = super::prepared(
        &tx,
        "UPDATE deliveries SET published = true, updated_at = now() \
         WHERE id = $1 AND NOT published",
    )
    .await?;
    let taken = tx.execute(&statement, &[&id]).await? == 1;
    Ok(taken.then_some(Publication(tx)))
}

/// Whether the delivery after `place` in its key could be waiting, or about to wait:
/// it exists and is pending or waiting. Read without the key's lock, after the caller
/// settled `place` (or skipped up to it): a delivery that is not there yet, or not
/// committed yet, loads later and finds `place` settled, so it never waits for it;
/// one that could wait is already there. Most settled deliveries have no successor
/// yet, and skip the release's transaction.
async fn may_wait(db: &impl GenericClient, place: &Place) -> Result<bool, StoreError> {
    let statement = super::prepared(
        db,
        "SELECT n.status IN ('pending', 'waiting') FROM deliveries n \
         WHERE n.webhook_id = $1 AND n.ordering_key = $2 AND n.seq > $3 \
         ORDER BY n.seq LIMIT 1",
    )
    .await?;
    let row = db
        .query_opt(&statement, &[&place.webhook_id, &place.key, &place.seq])
        .await?;
    Ok(row
        .map(|r| r.try_get::<_, bool>(0))
        .transpose()?
        .unwrap_or(false))
}

/// Takes a released delivery's message as its own: the message of a [`Release`] may
/// arrive before the release commits, and finds the row still waiting. Waits for the
/// key's lock (the release's transaction ends), then makes the row pending if its
/// turn has come (released, or a release rolled back after its publish). True: send
/// it; false: its turn has not come (a stale message: ack it, the row waits on).
pub async fn claim(
    db: &mut deadpool_postgres::Client,
    id: Uuid,
    place: &Place,
) -> Result<bool, StoreError> {
    let tx = db.transaction().await?;
    lock_key(&tx, place).await?;
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "UPDATE deliveries d SET status = 'pending', published = true, \
               next_attempt_at = NULL, updated_at = now() \
             WHERE d.id = $1 AND d.status IN ('waiting', 'pending') AND ({TURN_OF_D}) = 'free'"
        )
    });
    let statement = super::prepared(&tx, &SQL).await?;
    let n = tx.execute(&statement, &[&id]).await?;
    tx.commit().await?;
    Ok(n == 1)
}

/// Waiting deliveries whose turn has come but no release reached them (the sender
/// that settled the one before died between its record and the release, or a
/// retention run deleted it) and that have waited past their `next_attempt_at`:
/// each to be released by [`release_after`] its number less one (the one before it
/// may be gone).
pub async fn stalled(db: &impl GenericClient, limit: i64) -> Result<Vec<Place>, StoreError> {
    let sql = format!(
        "SELECT d.webhook_id, d.ordering_key, d.seq FROM deliveries d \
         WHERE d.next_attempt_at < now() AND d.status = 'waiting' \
           AND ({TURN_OF_D}) = 'free' \
         ORDER BY d.next_attempt_at LIMIT $1"
    );
    db.query(&sql, &[&limit])
        .await?
        .iter()
        .map(|r| {
            Ok(Place {
                webhook_id: r.try_get(0)?,
                key: r.try_get(1)?,
                seq: r.try_get(2)?,
            })
        })
        .collect()
}

/// Keys held back by a failure: a delivery waits behind one that failed for good
/// under `on_failure = block`. Counted from the waiting rows, found by
/// `deliveries_retry_due` (every waiting row has `next_attempt_at`).
pub async fn blocked_keys(db: &impl GenericClient) -> Result<i64, StoreError> {
    let sql = format!(
        "SELECT count(*) FROM deliveries d \
         WHERE d.next_attempt_at IS NOT NULL AND d.status = 'waiting' \
           AND ({TURN_OF_D}) = 'blocked'"
    );
    Ok(db.query_one(&sql, &[]).await?.try_get(0)?)
}

/// An ordering key held back by a failure (`on_failure = block`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlockedKey {
    /// The events' `ordering_key`.
    pub key: String,
    /// The delivery that failed for good and holds the key.
    pub failed_delivery: Uuid,
    /// Its place in the key (`seq`).
    pub failed_seq: i64,
    /// The next delivery of the key, waiting behind it.
    pub waiting_delivery: Uuid,
    /// When the failed delivery was settled.
    #[serde(with = "time::serde::rfc3339")]
    pub failed_at: time::OffsetDateTime,
}

/// The keys of one webhook held back by a failure, oldest failure first.
pub async fn blocked_of_webhook(
    db: &impl GenericClient,
    tenant: &str,
    webhook_id: Uuid,
) -> Result<Vec<BlockedKey>, StoreError> {
    let sql = format!(
        "SELECT d.ordering_key, d.id AS waiting, p.id AS failed, p.seq, p.updated_at \
         FROM deliveries d \
         JOIN LATERAL (SELECT p.id, p.seq, p.updated_at FROM deliveries p \
           WHERE p.webhook_id = d.webhook_id AND p.ordering_key = d.ordering_key \
             AND p.seq < d.seq ORDER BY p.seq DESC LIMIT 1) p ON true \
         WHERE d.webhook_id = $1 AND d.tenant = $2 AND d.next_attempt_at IS NOT NULL \
           AND d.status = 'waiting' AND ({TURN_OF_D}) = 'blocked' \
         ORDER BY p.updated_at"
    );
    db.query(&sql, &[&webhook_id, &tenant])
        .await?
        .iter()
        .map(|r| {
            Ok(BlockedKey {
                key: r.try_get("ordering_key")?,
                failed_delivery: r.try_get("failed")?,
                failed_seq: r.try_get("seq")?,
                waiting_delivery: r.try_get("waiting")?,
                failed_at: r.try_get("updated_at")?,
            })
        })
        .collect()
}

/// Deletes the counters of a tenant's keys that have no sequenced delivery left (a
/// retention run deleted them all): without this, `ordering_keys` would keep a row for
/// every key ever used. A key used again starts from 1, which collides with nothing.
/// The counters are locked first (skipping those a router holds) and checked again
/// after, in a statement that sees every router's commit before the lock: a counter
/// whose deliveries a router is creating is never deleted.
pub async fn purge_keys(
    db: &mut deadpool_postgres::Client,
    tenant: &str,
) -> Result<u64, StoreError> {
    const UNUSED: &str = "NOT EXISTS (SELECT 1 FROM deliveries d \
        WHERE d.webhook_id = k.webhook_id AND d.ordering_key = k.ordering_key \
          AND d.seq IS NOT NULL)";
    let tx = db.transaction().await?;
    let locked = tx
        .query(
            &format!(
                "SELECT k.webhook_id, k.ordering_key FROM ordering_keys k \
                 WHERE k.tenant = $1 AND {UNUSED} FOR UPDATE SKIP LOCKED"
            ),
            &[&tenant],
        )
        .await?;
    let webhooks: Vec<Uuid> = locked.iter().map(|r| r.get(0)).collect();
    let keys: Vec<String> = locked.iter().map(|r| r.get(1)).collect();
    let n = tx
        .execute(
            &format!(
                "DELETE FROM ordering_keys k USING unnest($1::uuid[], $2::text[]) AS u(w, key) \
                 WHERE k.webhook_id = u.w AND k.ordering_key = u.key AND {UNUSED}"
            ),
            &[&webhooks, &keys],
        )
        .await?;
    tx.commit().await?;
    Ok(n)
}

/// Takes the keys' locks until the transaction ends: what orders a waiter against a
/// release (the module's doc). Transaction-level advisory locks on a hash of each
/// webhook and key: unlike a row lock they write nothing (no WAL, no dirty page); two
/// keys sharing a hash only wait for each other. Taken in hash order, so two
/// transactions locking several keys never wait for each other in a circle.
async fn lock_keys(
    tx: &deadpool_postgres::Transaction<'_>,
    keys: &[(Uuid, &str)],
) -> Result<(), StoreError> {
    let webhooks: Vec<String> = keys.iter().map(|(w, _)| w.to_string()).collect();
    let texts: Vec<&str> = keys.iter().map(|(_, k)| *k).collect();
    let statement = super::prepared(
        tx,
        "SELECT count(pg_advisory_xact_lock(h)) FROM (SELECT DISTINCT \
           hashtextextended(w || '/' || k, 0) AS h \
           FROM unnest($1::text[], $2::text[]) AS u(w, k) ORDER BY h) AS s",
    )
    .await?;
    tx.query_one(&statement, &[&webhooks, &texts]).await?;
    Ok(())
}

/// Takes one key's lock ([`lock_keys`]).
async fn lock_key(
    tx: &deadpool_postgres::Transaction<'_>,
    place: &Place,
) -> Result<(), StoreError> {
    lock_keys(tx, &[(place.webhook_id, place.key.as_str())]).await
}
