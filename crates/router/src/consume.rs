//! The router's handler of the consumer supervisor: take events in batches, route
//! each batch, hold it while the database is away.

use backon::BackoffBuilder;
use futures_util::StreamExt;
use hookrelay_amqp as amqp;
use hookrelay_amqp::consumer::{Ended, Session, Supervisor};
use hookrelay_model::shutdown::Shutdown;
use hookrelay_store::{TRANSIENT_RETRY, TRANSIENT_RETRY_MAX};
use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use lapin::{Channel, Consumer};

use crate::route::{BatchError, handle_batch, reject};
use crate::{Router, RouterError};

/// Consumes until shutdown. Broker trouble reconnects with backoff (the supervisor);
/// database trouble holds the batch and retries it, so nothing is acked that was not
/// handled.
pub async fn run(router: Router, shutdown: Shutdown) -> Result<(), RouterError> {
    let config = &router.config;
    let supervisor = Supervisor {
        role: crate::ROLE,
        url: config.amqp_url.clone(),
        topology: config.topology.clone(),
        queue: config.topology.router_queue(),
        prefetch: config.prefetch,
    };
    supervisor
        .run(shutdown, |session, shutdown| {
            serve(&router, session, shutdown)
        })
        .await
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

async fn consume(
    router: &Router,
    channel: &Channel,
    mut consumer: Consumer,
    mut shutdown: Shutdown,
) -> Result<(), ConsumeError> {
    let config = &router.config;
    loop {
        let first = tokio::select! {
            next = consumer.next() => next,
            () = shutdown.wait() => return Ok(()),
        };
        let Some(first) = first else {
            return Err(ConsumeError::Broker(amqp::AmqpError::ConsumerEnded));
        };
        let mut batch: Vec<Delivery> = vec![first.map_err(|e| ConsumeError::Broker(e.into()))?];
        let deadline = tokio::time::Instant::now() + config.batch_wait;
        while batch.len() < config.batch_size {
            match tokio::time::timeout_at(deadline, consumer.next()).await {
                Ok(Some(next)) => batch.push(next.map_err(|e| ConsumeError::Broker(e.into()))?),
                Ok(None) | Err(_) => break,
            }
        }
        handle_with_retry(router, channel, batch, &mut shutdown).await?;
    }
}

/// Handles a batch; while the database is away, waits and tries again with the same
/// messages (they stay unacked, so a crash meanwhile loses nothing). An error that
/// retrying cannot fix is narrowed down to the event causing it, which is
/// dead-lettered; the rest of the batch is routed.
async fn handle_with_retry(
    router: &Router,
    channel: &Channel,
    batch: Vec<Delivery>,
    shutdown: &mut Shutdown,
) -> Result<(), ConsumeError> {
    let mut pauses = TRANSIENT_RETRY.build();
    loop {
        match handle_batch(router, channel, &batch).await {
            Ok(()) => return Ok(()),
            Err(BatchError::Broker(e)) => return Err(ConsumeError::Broker(e)),
            Err(BatchError::Injected(f)) => return Err(ConsumeError::Injected(f)),
            Err(BatchError::Store(e)) if !e.is_transient() => {
                return isolate(router, channel, batch, &e, shutdown).await;
            }
            Err(BatchError::Store(e)) => {
                let pause = pauses.next().unwrap_or(TRANSIENT_RETRY_MAX);
                tracing::warn!(error = %e, retry_in = ?pause, events = batch.len(), "database unavailable; holding events");
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    // Unacked messages go back to the queue when the channel closes.
                    () = shutdown.wait() => return Ok(()),
                }
            }
        }
    }
}

/// Routes the events of a failed batch one at a time; one the database refuses on
/// its own is dead-lettered with the database's error.
async fn isolate(
    router: &Router,
    channel: &Channel,
    batch: Vec<Delivery>,
    error: &hookrelay_store::StoreError,
    shutdown: &mut Shutdown,
) -> Result<(), ConsumeError> {
    if let [delivery] = batch.as_slice() {
        reject(
            router,
            channel,
            delivery,
            "event cannot be stored",
            &error.to_string(),
        )
        .await
        .map_err(ConsumeError::Broker)?;
        // Acked now: it must not wait for the next batch's ack, holding a prefetch
        // slot, nor be dead-lettered again after a restart.
        delivery
            .acker
            .ack(BasicAckOptions::default())
            .await
            .map_err(|e| ConsumeError::Broker(e.into()))?;
        return Ok(());
    }
    tracing::warn!(%error, events = batch.len(), "batch refused by the database; routing its events one by one");
    for delivery in batch {
        Box::pin(handle_with_retry(router, channel, vec![delivery], shutdown)).await?;
    }
    Ok(())
}
