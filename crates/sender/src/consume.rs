//! The consume loop: connect, declare, run each delivery as its own task within the
//! concurrency bound, reconnect on failure, drain on shutdown.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use hookrelay_amqp::{self as amqp, AmqpError};
use hookrelay_model::shutdown::Shutdown;
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicRejectOptions};
use lapin::{Channel, Connection, Consumer};
use tokio::sync::Semaphore;
use tracing::Instrument;

use crate::limiter::PerTarget;
use crate::outcome::{Ctx, HandleError, handle, open as open_message};
use crate::{Sender, SenderError};

const CONSUMER_TAG: &str = "hookrelay-sender";

pub(crate) async fn run(sender: Sender, mut shutdown: Shutdown) -> Result<(), SenderError> {
    let disabler = Arc::new(crate::disable::Disabler::new(
        &sender.config,
        sender.pool.clone(),
        Arc::clone(&sender.metrics),
    ));
    let destinations = Arc::new(sender.config.destinations.clone());
    let client = crate::request::client(sender.config.http_timeout, destinations)?;
    let recorder = crate::recorder::Recorder::start(sender.pool.clone());
    let loader = crate::recorder::Loader::start(sender.pool.clone(), sender.config.cipher.clone());
    let limiter = PerTarget::new(
        sender.config.per_webhook_concurrency,
        sender.config.slow_after,
    );
    let mut pause = Duration::from_millis(200);
    while !shutdown.is_triggered() {
        let opened = tokio::select! {
            o = open(&sender) => o,
            () = shutdown.wait() => break,
        };
        match opened {
            Ok((connection, channel, consumer)) => {
                pause = Duration::from_millis(200);
                let ctx = Arc::new(Ctx {
                    sender: sender.clone(),
                    recorder: recorder.clone(),
                    loader: loader.clone(),
                    client: client.clone(),
                    channel,
                    limiter: Arc::clone(&limiter),
                    disabler: Arc::clone(&disabler),
                });
                tokio::spawn(crate::disable::announce_pending(
                    Arc::clone(&disabler),
                    ctx.channel.clone(),
                    sender.config.announce_every,
                    shutdown.clone(),
                ));
                sender.metrics.set_consuming(crate::ROLE, true);
                let result = consume(&ctx, consumer, shutdown.clone()).await;
                sender.metrics.set_consuming(crate::ROLE, false);
                let _ = connection.close(200, "sender stopping".into()).await;
                match result {
                    Ok(()) => break,
                    Err(e) => tracing::warn!(error = %e, "sender lost the broker; reconnecting"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?pause, "sender cannot start consuming")
            }
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = shutdown.wait() => break,
        }
        pause = (pause * 2).min(Duration::from_secs(10));
    }
    tracing::info!("sender stopped");
    Ok(())
}

async fn open(sender: &Sender) -> Result<(Connection, Channel, Consumer), AmqpError> {
    let config = &sender.config;
    amqp::open_consumer(
        &config.amqp_url,
        CONSUMER_TAG,
        &config.topology,
        &config.topology.deliveries_queue(),
        config.concurrency,
    )
    .await
}

async fn consume(
    ctx: &Arc<Ctx>,
    mut consumer: Consumer,
    mut shutdown: Shutdown,
) -> Result<(), AmqpError> {
    let slots = Arc::new(Semaphore::new(usize::from(
        ctx.sender.config.concurrency.max(1),
    )));
    let outcome = loop {
        let permit = tokio::select! {
            p = Arc::clone(&slots).acquire_owned() => p,
            () = shutdown.wait() => break Ok(()),
        };
        let Ok(permit) = permit else { break Ok(()) };
        let next = tokio::select! {
            n = consumer.next() => n,
            () = shutdown.wait() => break Ok(()),
        };
        let delivery = match next {
            Some(Ok(d)) => d,
            Some(Err(e)) => break Err(AmqpError::Broker(e)),
            None => break Err(AmqpError::ConsumerEnded),
        };
        let ctx = Arc::clone(ctx);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let in_flight = ctx.sender.metrics.track_in_flight(crate::ROLE);
            process(&ctx, delivery, shutdown).await;
            drop(in_flight);
            drop(permit);
        });
    };
    if outcome.is_ok() {
        drain(ctx, &slots).await;
    }
    outcome
}

/// Stops taking new deliveries and gives in-flight ones the grace period to finish.
/// Whatever is still unacked after that returns to the queue when the channel closes.
async fn drain(ctx: &Ctx, slots: &Arc<Semaphore>) {
    let _ = ctx
        .channel
        .basic_cancel(CONSUMER_TAG.into(), BasicCancelOptions::default())
        .await;
    let all = u32::from(ctx.sender.config.concurrency.max(1));
    let grace = ctx.sender.config.shutdown_grace;
    if tokio::time::timeout(grace, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            ?grace,
            "in-flight deliveries did not finish in time; they return to the queue"
        );
    }
}

/// Handles one delivery; while the database is away, waits and tries again. Every
/// line logged meanwhile carries the delivery's ids.
async fn process(ctx: &Ctx, delivery: Delivery, mut shutdown: Shutdown) {
    let (message, span) = match open_message(ctx, &delivery).await {
        Ok(Some(opened)) => opened,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %e, "broker error while dead-lettering an unreadable delivery");
            return;
        }
    };
    async {
        let mut pause = Duration::from_millis(100);
        loop {
            match handle(ctx, &delivery, &message).await {
                Ok(()) => return,
                Err(HandleError::Store(e) | HandleError::Unrecorded(e)) if e.is_transient() => {
                    tracing::warn!(error = %e, retry_in = ?pause, "database unavailable; holding delivery");
                }
                Err(HandleError::Store(e) | HandleError::Unrecorded(e)) => {
                    // Only when even dead-lettering failed on the database: reject
                    // (not nack) counts toward x-delivery-limit on every RabbitMQ
                    // version, so the broker dead-letters it in the end.
                    tracing::error!(error = %e, "delivery could not be handled; returning it to the queue");
                    let _ = delivery
                        .acker
                        .reject(BasicRejectOptions { requeue: true })
                        .await;
                    return;
                }
                Err(HandleError::Broker(e)) => {
                    // The channel is likely gone; the broker will redeliver the message.
                    tracing::warn!(error = %e, "broker error while handling a delivery");
                    return;
                }
            }
            tokio::select! {
                () = tokio::time::sleep(pause) => {}
                () = shutdown.wait() => return,
            }
            pause = (pause * 2).min(Duration::from_secs(5));
        }
    }
    .instrument(span)
    .await;
}
