//! The router's handler of the consumer supervisor: take events in batches, route
//! each batch, hold it while the database is away.

use backon::BackoffBuilder;
use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;
use hookrelay_amqp as amqp;
use hookrelay_amqp::consumer::{Ended, Session, Supervisor};
use hookrelay_model::DeadLetterReason;
use hookrelay_model::shutdown::Shutdown;
use hookrelay_store::{TRANSIENT_RETRY, TRANSIENT_RETRY_MAX};
use lapin::Acker;
use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use lapin::{Channel, Consumer};

use crate::route::{BatchError, handle_batch, reject};
use crate::turn::{Turn, Turns};
use crate::{Router, RouterError};

/// Consumes until shutdown, while this router leads (`lead`): one router consumes at a
/// time. Broker trouble reconnects with backoff (the supervisor); database trouble
/// holds the batch and retries it, so nothing is acked that was not handled.
pub async fn run(router: Router, mut shutdown: Shutdown) -> Result<(), RouterError> {
    let config = &router.config;
    let queue = config.topology.router_queue();
    let supervisor = Supervisor {
        role: crate::ROLE,
        url: config.amqp_url.clone(),
        topology: config.topology.clone(),
        queue: queue.clone(),
        prefetch: config.prefetch,
        sole: true,
    };
    loop {
        let Some(lead) = crate::lead::take(&router.pool, &queue, &mut shutdown).await else {
            return Ok(());
        };
        tracing::info!(%queue, "this router leads: consuming");
        let (stop, leading) = hookrelay_model::shutdown::channel();
        let consuming = supervisor.run(leading, |session, shutdown| {
            serve(&router, session, shutdown)
        });
        tokio::pin!(consuming);
        tokio::select! {
            ended = &mut consuming => return ended,
            () = shutdown.wait() => {
                stop.trigger();
                return consuming.await;
            }
            () = crate::lead::lost(&lead) => {
                tracing::warn!(%queue, "this router lost its lock in Postgres; stops consuming until it leads again");
            }
        }
        // Batches under way finish; the connection closes, handing the rest back.
        stop.trigger();
        consuming.await?;
        drop(lead);
    }
}

/// One connection's consuming.
async fn serve(router: &Router, session: Session, shutdown: Shutdown) -> Ended<RouterError> {
    router.metrics.set_consuming(crate::ROLE, true);
    let result = consume(router, &session.channel, session.consumer, shutdown).await;
    router.metrics.set_consuming(crate::ROLE, false);
    match result {
        Ok(()) => Ended::Stopped,
        Err(ConsumeError::Injected(f)) => Ended::Failed(RouterError::Injected(f)),
        Err(ConsumeError::Broker(e)) => Ended::Lost(e),
    }
}

pub(crate) enum ConsumeError {
    Broker(amqp::AmqpError),
    Injected(crate::Fault),
}

/// Takes batches while fewer than `prefetch / batch_size` are being handled, so the
/// next batch's transaction runs while an earlier one waits for its confirms, and
/// acks them in the order taken: one `multiple` ack of a batch's last message then
/// settles exactly that batch (those before it are settled already).
async fn consume(
    router: &Router,
    channel: &Channel,
    mut consumer: Consumer,
    mut shutdown: Shutdown,
) -> Result<(), ConsumeError> {
    let config = &router.config;
    let depth = (usize::from(config.prefetch) / config.batch_size.max(1)).max(1);
    let mut working = FuturesOrdered::new();
    let mut turns = Turns::new();
    loop {
        tokio::select! {
            Some(done) = working.next(), if !working.is_empty() => {
                if !ack(done?).await? {
                    return Ok(());
                }
            }
            taken = consumer.next(), if working.len() < depth => {
                let Some(first) = taken else {
                    return Err(ConsumeError::Broker(amqp::AmqpError::ConsumerEnded));
                };
                let batch = fill(config, &mut consumer, first).await?;
                working.push_back(handle_in_turn(
                    router,
                    channel,
                    batch,
                    turns.take(),
                    shutdown.clone(),
                ));
            }
            () = shutdown.wait() => {
                // Batches under way finish and are acked; the rest go back unacked.
                while let Some(done) = working.next().await {
                    if !ack(done?).await? {
                        break;
                    }
                }
                return Ok(());
            }
        }
    }
}

/// A batch: `first`, then what the broker has already handed over (or hands over
/// within the batch wait), up to the batch size.
async fn fill(
    config: &crate::RouterConfig,
    consumer: &mut Consumer,
    first: Result<Delivery, lapin::Error>,
) -> Result<Vec<Delivery>, ConsumeError> {
    let mut batch: Vec<Delivery> = vec![first.map_err(|e| ConsumeError::Broker(e.into()))?];
    let deadline = tokio::time::Instant::now() + config.batch_wait;
    while batch.len() < config.batch_size {
        match tokio::time::timeout_at(deadline, consumer.next()).await {
            Ok(Some(next)) => batch.push(next.map_err(|e| ConsumeError::Broker(e.into()))?),
            Ok(None) | Err(_) => break,
        }
    }
    Ok(batch)
}

/// Acks a handled batch (all up to its last message); false for a batch left
/// unhandled at shutdown, which nothing after it may ack.
async fn ack(handled: Option<Acker>) -> Result<bool, ConsumeError> {
    let Some(last) = handled else {
        return Ok(false);
    };
    last.ack(BasicAckOptions { multiple: true })
        .await
        .map_err(|e| ConsumeError::Broker(e.into()))?;
    Ok(true)
}

/// Handles a batch taken with `turn`, then hands the turn on (a batch that took
/// sequence numbers did at its commit already).
async fn handle_in_turn(
    router: &Router,
    channel: &Channel,
    batch: Vec<Delivery>,
    turn: Turn,
    shutdown: Shutdown,
) -> Result<Option<Acker>, ConsumeError> {
    let handled = handle_with_retry(router, channel, batch, false, &turn, shutdown).await?;
    if handled.is_some() {
        turn.pass_on().await;
    }
    Ok(handled)
}

/// Handles a batch; while the database is away, waits and tries again with the same
/// messages (they stay unacked, so a crash meanwhile loses nothing). An error that
/// retrying cannot fix is narrowed down to the event causing it, which is
/// dead-lettered; the rest of the batch is routed. `retrying`: the batch failed
/// before, perhaps after its transaction committed; so does every later try.
/// Returns the acker of the batch's last message, or `None` if shutdown came first.
async fn handle_with_retry(
    router: &Router,
    channel: &Channel,
    batch: Vec<Delivery>,
    mut retrying: bool,
    turn: &Turn,
    mut shutdown: Shutdown,
) -> Result<Option<Acker>, ConsumeError> {
    let Some(last) = batch.last().map(|d| d.acker.clone()) else {
        return Ok(None);
    };
    let mut pauses = TRANSIENT_RETRY.build();
    loop {
        let handled = handle_batch(router, channel, &batch, retrying, turn).await;
        retrying = true;
        match handled {
            Ok(()) => return Ok(Some(last)),
            Err(BatchError::Broker(e)) => return Err(ConsumeError::Broker(e)),
            Err(BatchError::Injected(f)) => return Err(ConsumeError::Injected(f)),
            Err(BatchError::Store(e)) if !e.is_transient() => {
                let whole = isolate(router, channel, batch, &e, turn, shutdown).await?;
                return Ok(whole.then_some(last));
            }
            Err(BatchError::Store(e)) => {
                let pause = pauses.next().unwrap_or(TRANSIENT_RETRY_MAX);
                tracing::warn!(error = %e, retry_in = ?pause, events = batch.len(), "database unavailable; holding events");
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    // Unacked messages go back to the queue when the channel closes.
                    () = shutdown.wait() => return Ok(None),
                }
            }
        }
    }
}

/// Routes the events of a failed batch one at a time; one the database refuses on
/// its own is dead-lettered with the database's error. The caller acks the batch if
/// this returns true; false: shutdown came first, and what is left goes back unacked.
async fn isolate(
    router: &Router,
    channel: &Channel,
    batch: Vec<Delivery>,
    error: &hookrelay_store::StoreError,
    turn: &Turn,
    shutdown: Shutdown,
) -> Result<bool, ConsumeError> {
    if let [delivery] = batch.as_slice() {
        reject(
            router,
            channel,
            delivery,
            DeadLetterReason::EventCannotBeStored,
            &error.to_string(),
        )
        .await
        .map_err(ConsumeError::Broker)?;
        return Ok(true);
    }
    tracing::warn!(%error, events = batch.len(), "batch refused by the database; routing its events one by one");
    // One at a time, in the batch's order: each part takes its numbers after the
    // one before.
    let part = turn.within();
    for delivery in batch {
        let handled = Box::pin(handle_with_retry(
            router,
            channel,
            vec![delivery],
            true,
            &part,
            shutdown.clone(),
        ))
        .await?;
        if handled.is_none() {
            return Ok(false);
        }
    }
    Ok(true)
}
