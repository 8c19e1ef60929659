//! Re-publishes retries whose delay-queue message is overdue. A retry's row says
//! when it is due (`next_attempt_at`); its message waits in a delay queue and comes
//! back by the broker's dead-lettering. Should that message be lost or stuck
//! (RabbitMQ 3.10.8's dead-letter worker, after a queue's leader moved, was seen
//! leaving expired messages in place for minutes: docs/reliability.md), the row is
//! still there, and this sends the delivery again once it is `grace` overdue.
//!
//! A message that turns up after all finds its delivery settled (acked without a
//! POST) or, if both arrive together, makes one extra attempt: the at-least-once
//! trade of every redelivery.

use std::time::Duration;

use deadpool_postgres::Pool;
use hookrelay_model::Topology;
use hookrelay_model::shutdown::Shutdown;
use hookrelay_model::wire::DeliveryMessage;
use hookrelay_store::deliveries::{self, Resend};
use hookrelay_store::turns;
use lapin::Channel;

use crate::shared::LoopError;

/// Deliveries one round re-publishes at most.
const PER_ROUND: i64 = 500;

/// Sweeps every `grace / 4` (100 ms to 30 s) until shutdown.
pub(crate) async fn watch(
    pool: Pool,
    channel: Channel,
    topology: Topology,
    grace: Duration,
    mut shutdown: Shutdown,
) {
    let every = (grace / 4).clamp(Duration::from_millis(100), Duration::from_secs(30));
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.wait() => return,
        }
        match round(&pool, &channel, &topology, grace).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                republished = n,
                overdue_by_more_than = ?grace,
                "retries whose delay-queue message was overdue sent again"
            ),
            Err(e) => tracing::warn!(error = %e, "overdue retries not swept; trying again"),
        }
    }
}

async fn round(
    pool: &Pool,
    channel: &Channel,
    topology: &Topology,
    grace: Duration,
) -> Result<usize, LoopError> {
    let db = pool.get().await?;
    let overdue = deliveries::claim_overdue_retries(&db, grace, PER_ROUND).await?;
    drop(db);
    for o in &overdue {
        hookrelay_amqp::publish_reopened(channel, topology, &message(o), o.trace_id.as_deref())
            .await?;
    }
    Ok(overdue.len())
}

/// The retry's message as the sender would have published it, its attempt number
/// counted over every round (the round it began is not stored): never more attempts
/// than the schedule allows.
fn message(o: &Resend) -> DeliveryMessage {
    DeliveryMessage {
        attempt: o.attempts + 1,
        ..DeliveryMessage::again(
            o.delivery.id,
            &o.delivery.tenant,
            &o.delivery.event_id,
            o.delivery.webhook_id,
            0,
        )
    }
}

/// How often the turn sweep looks: a waiting delivery's own `next_attempt_at` is as
/// far ahead (`turns::LOOK_AGAIN`).
pub(crate) const TURN_LOOK_AGAIN: Duration = turns::LOOK_AGAIN;

/// Waiting deliveries the turn sweep releases in one round at most.
const TURNS_PER_ROUND: i64 = 200;

/// Releases waiting deliveries whose turn came with no release, and publishes those a
/// sender kept to send itself and lost (docs/delivery-semantics.md, "Ordered webhooks:
/// the sender's gate"), every [`TURN_LOOK_AGAIN`] until shutdown.
pub(crate) async fn turns(
    pool: Pool,
    channel: Channel,
    topology: Topology,
    mut shutdown: Shutdown,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(TURN_LOOK_AGAIN) => {}
            () = shutdown.wait() => return,
        }
        match release_round(&pool, &channel, &topology).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(
                released = n,
                "waiting deliveries whose turn had come released by the sweep"
            ),
            Err(e) => tracing::warn!(error = %e, "waiting deliveries not swept; trying again"),
        }
    }
}

async fn release_round(
    pool: &Pool,
    channel: &Channel,
    topology: &Topology,
) -> Result<usize, LoopError> {
    let mut db = pool.get().await?;
    let stalled = turns::stalled(&db, TURNS_PER_ROUND).await?;
    let mut released = 0;
    for place in stalled {
        // The one before it may be gone (retention): release the first after it.
        let before = turns::Place {
            seq: place.seq - 1,
            ..place
        };
        if release(&mut db, channel, topology, &before).await? {
            released += 1;
        }
    }
    for id in turns::lapsed(&db, TURNS_PER_ROUND).await? {
        let reopened = turns::reopen_lapsed(&mut db, id).await?;
        if let Some(next) = &reopened.next {
            publish(channel, topology, next).await?;
            released += 1;
        }
        reopened.commit().await?;
    }
    Ok(released)
}

async fn publish(
    channel: &Channel,
    topology: &Topology,
    next: &Resend,
) -> Result<(), hookrelay_amqp::AmqpError> {
    hookrelay_amqp::publish_reopened(channel, topology, &next.message(), next.trace_id.as_deref())
        .await
}

/// Releases the delivery of `place`'s key numbered next after it, if its turn has
/// come: made pending, its message published, then committed (`turns::Release`).
/// True if one was released.
pub(crate) async fn release(
    db: &mut deadpool_postgres::Client,
    channel: &Channel,
    topology: &Topology,
    place: &turns::Place,
) -> Result<bool, LoopError> {
    let release = turns::release_after(
        db,
        place.webhook_id,
        &place.key,
        place.seq,
        turns::Handing::Publish,
    )
    .await?;
    let Some(next) = &release.next else {
        return Ok(false);
    };
    publish(channel, topology, next).await?;
    release.commit().await?;
    Ok(true)
}
