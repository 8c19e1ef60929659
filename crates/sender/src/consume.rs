//! The sender's handler of the consumer supervisor: run each delivery as its own task
//! within the concurrency bound, hold it while the database is away, drain on
//! shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use backon::BackoffBuilder;
use futures_util::StreamExt;
use hookrelay_amqp::consumer::{Ended, Session, Supervisor};
use hookrelay_amqp::{self as amqp, AmqpError, Headers};
use hookrelay_model::shutdown::Shutdown;
use hookrelay_model::wire::{self, BatchedDelivery, DeliveryMessage};
use hookrelay_store::deliveries::{Resend, SendJob};
use hookrelay_store::{TRANSIENT_RETRY, TRANSIENT_RETRY_MAX};
use lapin::Consumer;
use lapin::message::Delivery;
use lapin::options::{BasicCancelOptions, BasicRejectOptions};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tracing::Instrument;

use crate::acks::Acks;
use crate::batch::{self, Batch, Finish, PartEnd};
use crate::breaker::{self, Breakers};
use crate::disable::{Disabler, announce_pending};
use crate::handover::{HandOver, Kept};
use crate::inbound::Inbound;
use crate::limiter::PerTarget;
use crate::outcome::{Ctx, HandleError, attempt_span, handle, open as open_message};
use crate::recorder::{Loader, Recorder};
use crate::shared::{Sender, SenderError};

/// What outlives a connection: one of each per sender.
struct Shared {
    recorder: Recorder,
    loader: Loader,
    client: crate::request::Client,
    brokers: Arc<crate::brokers::Brokers>,
    limiter: Arc<PerTarget>,
    disabler: Arc<Disabler>,
    breakers: Arc<Breakers>,
    slots: Arc<crate::policy::Slots>,
}

pub(crate) async fn run(sender: Sender, shutdown: Shutdown) -> Result<(), SenderError> {
    let config = &sender.config;
    let destinations = Arc::new(config.destinations.clone());
    if let Some(proxy) = &config.egress_proxy {
        // The proxy's Display has no credentials.
        tracing::info!(proxy = %proxy, authenticated = proxy.has_credentials(), "deliveries leave through the egress proxy");
    }
    let shared = Shared {
        recorder: Recorder::start(sender.pool.clone()),
        loader: Loader::start(sender.pool.clone(), config.cipher.clone()),
        client: crate::request::client(
            config.http_timeout,
            Arc::clone(&destinations),
            config.egress_proxy.as_ref(),
        )?,
        brokers: crate::brokers::Brokers::new(
            destinations,
            config.http_timeout,
            config.amqp_destination_idle,
        ),
        limiter: PerTarget::new(config.per_webhook_concurrency, config.slow_after),
        disabler: Arc::new(Disabler::new(
            config,
            sender.pool.clone(),
            Arc::clone(&sender.metrics),
        )),
        breakers: Breakers::new(
            config.breaker.clone(),
            sender.pool.clone(),
            config.topology.clone(),
        ),
        slots: crate::policy::Slots::new(sender.pool.clone()),
    };
    let supervisor = Supervisor {
        role: crate::shared::ROLE,
        url: config.amqp_url.clone(),
        topology: config.topology.clone(),
        queue: config.topology.deliveries_queue(),
        prefetch: config.concurrency.saturating_add(config.concurrency / 2),
        sole: false,
    };
    supervisor
        .run(shutdown, |session, shutdown| {
            serve(&sender, &shared, session, shutdown)
        })
        .await
}

/// One connection's consuming: its deliveries publish their follow-ups on its channel.
async fn serve(
    sender: &Sender,
    shared: &Shared,
    session: Session,
    shutdown: Shutdown,
) -> Ended<SenderError> {
    let config = &sender.config;
    let slots = Arc::new(Semaphore::new(usize::from(config.concurrency.max(1))));
    let lease = crate::handover::lease(config.http_timeout, config.slow_after);
    let (handover, kept) = HandOver::new(Arc::clone(&slots), shutdown.clone(), lease);
    let ctx = Arc::new(Ctx {
        sender: sender.clone(),
        recorder: shared.recorder.clone(),
        loader: shared.loader.clone(),
        client: shared.client.clone(),
        brokers: Arc::clone(&shared.brokers),
        channel: session.channel,
        limiter: Arc::clone(&shared.limiter),
        disabler: Arc::clone(&shared.disabler),
        breakers: Arc::clone(&shared.breakers),
        acks: Arc::new(Acks::default()),
        slots: Arc::clone(&shared.slots),
        handover,
    });
    // The loops publish on this session's channel: they end with it (dropping the set
    // aborts them), or a reconnect would leave them claiming rows they cannot send.
    let mut loops = JoinSet::new();
    if let Some(grace) = sender.config.retry_sweep_after {
        loops.spawn(crate::sweep::watch(
            sender.pool.clone(),
            ctx.channel.clone(),
            sender.config.topology.clone(),
            grace,
            shutdown.clone(),
        ));
    }
    loops.spawn(crate::sweep::turns(
        sender.pool.clone(),
        ctx.channel.clone(),
        sender.config.topology.clone(),
        shutdown.clone(),
    ));
    loops.spawn(run_kept(Arc::clone(&ctx), kept, shutdown.clone()));
    loops.spawn(Arc::clone(&shared.brokers).close_idle(shutdown.clone()));
    loops.spawn(crate::policy::release_loop(
        sender.pool.clone(),
        ctx.channel.clone(),
        sender.config.topology.clone(),
        shutdown.clone(),
    ));
    loops.spawn(breaker::watch(
        Arc::clone(&shared.breakers),
        ctx.channel.clone(),
        shutdown.clone(),
    ));
    loops.spawn(announce_pending(
        Arc::clone(&shared.disabler),
        ctx.channel.clone(),
        sender.config.announce_every,
        shutdown.clone(),
    ));
    let acks = tokio::spawn({
        let ctx = Arc::clone(&ctx);
        async move { ctx.acks.run().await }
    });
    sender.metrics.set_consuming(crate::shared::ROLE, true);
    let result = consume(&ctx, session.consumer, &slots, shutdown).await;
    ctx.acks.close();
    let _ = acks.await;
    loops.shutdown().await;
    sender.metrics.set_consuming(crate::shared::ROLE, false);
    match result {
        Ok(()) => Ended::Stopped,
        Err(e) => Ended::Lost(e),
    }
}

async fn consume(
    ctx: &Arc<Ctx>,
    mut consumer: Consumer,
    slots: &Arc<Semaphore>,
    mut shutdown: Shutdown,
) -> Result<(), AmqpError> {
    let tag = consumer.tag();
    let outcome = loop {
        let permit = tokio::select! {
            p = Arc::clone(slots).acquire_owned() => p,
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
        ctx.acks.taken(&delivery);
        if let Some(Ok(parts)) = wire::read_batch(&delivery.data) {
            if delivery.redelivered {
                let ctx = Arc::clone(ctx);
                tokio::spawn(async move {
                    split(&ctx, &delivery, &parts).await;
                    drop(permit);
                });
                continue;
            }
            if !start_batch(ctx, delivery, parts, permit, slots, &mut shutdown).await {
                break Ok(());
            }
            continue;
        }
        let ctx = Arc::clone(ctx);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let in_flight = ctx.sender.metrics.track_in_flight(crate::shared::ROLE);
            process(&ctx, delivery, shutdown).await;
            drop(in_flight);
            drop(permit);
        });
    };
    if outcome.is_ok() {
        drain(ctx, tag, slots).await;
    }
    outcome
}

/// Runs each delivery of a batch message as its own task, each in a slot of its
/// own (the first takes `permit`). False when shutdown came before all started: the
/// ones not started end abandoned, so the message is left to the closing channel.
async fn start_batch(
    ctx: &Arc<Ctx>,
    delivery: Delivery,
    parts: Vec<BatchedDelivery>,
    permit: OwnedSemaphorePermit,
    slots: &Arc<Semaphore>,
    shutdown: &mut Shutdown,
) -> bool {
    let batch = Batch::new(delivery, parts.len());
    if parts.is_empty() {
        ctx.acks.ack(&batch.delivery);
        return true;
    }
    let mut permit = Some(permit);
    let mut parts = parts.into_iter();
    while let Some(part) = parts.next() {
        let slot = match permit.take() {
            Some(p) => Some(p),
            None => tokio::select! {
                p = Arc::clone(slots).acquire_owned() => p.ok(),
                () = shutdown.wait() => None,
            },
        };
        let Some(slot) = slot else {
            abandon(ctx, &batch, 1 + parts.len()).await;
            return false;
        };
        let ctx = Arc::clone(ctx);
        let batch = Arc::clone(&batch);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let in_flight = ctx.sender.metrics.track_in_flight(crate::shared::ROLE);
            let end = process_part(&ctx, part, shutdown).await;
            if let Some(ends) = batch.end(end) {
                finish_batch(&ctx, &batch.delivery, &ends).await;
            }
            drop(in_flight);
            drop(slot);
        });
    }
    true
}

/// Ends `count` deliveries of the batch that never started.
async fn abandon(ctx: &Ctx, batch: &Batch, count: usize) {
    for _ in 0..count {
        if let Some(ends) = batch.end(PartEnd::Abandoned) {
            finish_batch(ctx, &batch.delivery, &ends).await;
        }
    }
}

/// Handles one delivery of a batch as if its message had come alone.
async fn process_part(ctx: &Ctx, part: BatchedDelivery, shutdown: Shutdown) -> PartEnd {
    let properties = match part_properties(&part) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(delivery_id = %part.message.delivery_id, error = %e, "a batched delivery's message could not be made; sending it back");
            return PartEnd::GiveBack(part);
        }
    };
    let data = part.message.to_json();
    let settled = AtomicBool::new(false);
    let inbound = Inbound::part(&data, &properties, &settled);
    let span = attempt_span(inbound, &part.message);
    let handled = handle_until_done(ctx, inbound, &part.message, None, shutdown)
        .instrument(span)
        .await;
    match handled {
        Handled::GiveBack => PartEnd::GiveBack(part),
        Handled::Done if settled.load(Ordering::Acquire) => PartEnd::Settled,
        Handled::Done => PartEnd::Abandoned,
    }
}

/// The properties a batched delivery's message would have had alone.
fn part_properties(part: &BatchedDelivery) -> Result<lapin::BasicProperties, AmqpError> {
    let mut headers = Headers::new();
    if let Some(v) = &part.traceparent {
        headers = headers.text(wire::HEADER_TRACEPARENT, v.clone());
    }
    if let Some(v) = &part.tracestate {
        headers = headers.text(wire::HEADER_TRACESTATE, v.clone());
    }
    amqp::persistent(&part.message.delivery_id.to_string(), headers.into_table())
}

/// Acks a batch message whose deliveries have all ended, after publishing again
/// the ones that need another try (`batch::finish`).
async fn finish_batch(ctx: &Ctx, delivery: &Delivery, ends: &[PartEnd]) {
    match batch::finish(ends) {
        Finish::Ack => ctx.acks.ack(delivery),
        Finish::Leave => {}
        Finish::Republish(parts) => republish(ctx, delivery, parts).await,
    }
}

/// A batch message back from a sender that died or stopped holding it: its
/// deliveries go on as messages of their own. Held again whole, a batch would count
/// every crash against all of its deliveries (and one that crashes senders would
/// take its neighbours to the delivery limit with it); alone, the ones settled
/// meanwhile are acked without a request and each counts its own returns.
async fn split(ctx: &Ctx, delivery: &Delivery, parts: &[BatchedDelivery]) {
    tracing::info!(
        deliveries = parts.len(),
        "a batch message came back; its deliveries go on alone"
    );
    republish(ctx, delivery, parts.iter().collect()).await;
}

/// Publishes `parts` each as a message of its own (confirmed), then acks their
/// batch message; if a publish fails, the batch goes back to the queue whole.
async fn republish(ctx: &Ctx, delivery: &Delivery, parts: Vec<&BatchedDelivery>) {
    let exchange = ctx.sender.config.topology.deliveries_exchange();
    let mut pending = Vec::with_capacity(parts.len());
    for part in parts {
        let started = match part_properties(part) {
            Ok(properties) => {
                amqp::start_publish(
                    &ctx.channel,
                    &exchange,
                    &part.message.tenant,
                    &part.message.to_json(),
                    properties,
                )
                .await
            }
            Err(e) => Err(e),
        };
        match started {
            Ok(p) => pending.push(p),
            Err(e) => return batch_back(ctx, delivery, &e).await,
        }
    }
    match amqp::confirm_all(pending).await {
        Ok(()) => ctx.acks.ack(delivery),
        Err(e) => batch_back(ctx, delivery, &e).await,
    }
}

async fn batch_back(ctx: &Ctx, delivery: &Delivery, error: &AmqpError) {
    tracing::warn!(%error, "a batch's deliveries could not be published alone; returning the batch to the queue");
    give_back(ctx, delivery).await;
}

/// Stops taking new deliveries and gives in-flight ones the grace period to finish.
/// Whatever is still unacked after that returns to the queue when the channel closes.
async fn drain(ctx: &Ctx, tag: lapin::types::ShortString, slots: &Arc<Semaphore>) {
    let _ = ctx
        .channel
        .basic_cancel(tag, BasicCancelOptions::default())
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

/// Handles one delivery message; while the database is away, waits and tries again.
/// Every line logged meanwhile carries the delivery's ids.
async fn process(ctx: &Ctx, delivery: Delivery, shutdown: Shutdown) {
    let inbound = Inbound::from_broker(&delivery);
    let (message, span) = match open_message(ctx, inbound).await {
        Ok(Some(opened)) => opened,
        Ok(None) => return,
        Err(e) => {
            // As below: hand it back rather than hold its prefetch slot on a channel
            // that may still be open.
            tracing::warn!(error = %e, "broker error while dead-lettering an unreadable delivery");
            give_back(ctx, &delivery).await;
            return;
        }
    };
    let handled = handle_until_done(ctx, inbound, &message, None, shutdown)
        .instrument(span)
        .await;
    if handled == Handled::GiveBack {
        give_back(ctx, &delivery).await;
    }
}

/// Runs each delivery this sender kept (`handover`) as its own task, as a message
/// from the broker runs, until the session ends (its set of loops is dropped).
async fn run_kept(ctx: Arc<Ctx>, mut kept: mpsc::UnboundedReceiver<Kept>, shutdown: Shutdown) {
    while let Some(Kept { next, job, slot }) = kept.recv().await {
        let ctx = Arc::clone(&ctx);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let in_flight = ctx.sender.metrics.track_in_flight(crate::shared::ROLE);
            process_kept(&ctx, &next, job, shutdown).await;
            drop(in_flight);
            drop(slot);
        });
    }
}

/// Handles a delivery this sender kept (`handover`) as it would its message.
async fn process_kept(ctx: &Ctx, next: &Resend, job: Option<SendJob>, shutdown: Shutdown) {
    let message = next.message();
    let span = tracing::info_span!("hand-over", delivery_id = %message.delivery_id);
    let properties = match amqp::reopened_properties(&span, &message, next.trace_id.as_deref()) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "kept delivery not sent; the sweep publishes it after its lease");
            return;
        }
    };
    let data = message.to_json();
    let inbound = Inbound::kept(&data, &properties);
    let span = attempt_span(inbound, &message);
    let handled = handle_until_done(ctx, inbound, &message, job, shutdown)
        .instrument(span)
        .await;
    if handled == Handled::GiveBack {
        tracing::warn!("kept delivery not handled; the sweep publishes it after its lease");
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Handled {
    Done,
    /// Not handled: back to the queue (a kept delivery: left to its lease).
    GiveBack,
}

/// `loaded`: the job the caller has already, used by the first try only (one tried
/// again loads the row afresh).
async fn handle_until_done(
    ctx: &Ctx,
    inbound: Inbound<'_>,
    message: &DeliveryMessage,
    mut loaded: Option<SendJob>,
    mut shutdown: Shutdown,
) -> Handled {
    let mut pauses = TRANSIENT_RETRY.build();
    loop {
        match handle(ctx, inbound, message, loaded.take()).await {
            Ok(()) => return Handled::Done,
            Err(HandleError::Store(e) | HandleError::Unrecorded(e)) if e.is_transient() => {
                let pause = pauses.next().unwrap_or(TRANSIENT_RETRY_MAX);
                tracing::warn!(error = %e, retry_in = ?pause, "database unavailable; holding delivery");
                tokio::select! {
                    () = tokio::time::sleep(pause) => {}
                    () = shutdown.wait() => return Handled::Done,
                }
            }
            Err(HandleError::Store(e) | HandleError::Unrecorded(e)) => {
                // Only when even dead-lettering failed on the database: reject
                // (not nack) counts toward x-delivery-limit on every RabbitMQ
                // version, so the broker dead-letters it in the end.
                tracing::error!(error = %e, "delivery could not be handled; returning it to the queue");
                return Handled::GiveBack;
            }
            Err(HandleError::Broker(e)) => {
                // Usually the channel is gone and the broker redelivers by itself.
                // But a nack (a quorum queue between leaders refuses a publish)
                // leaves the channel open: unsettled, the delivery would hold its
                // prefetch slot for good, and 64 of them stop the sender. Hand it
                // back; reject counts toward x-delivery-limit.
                tracing::warn!(error = %e, "broker error while handling a delivery; returning it to the queue");
                return Handled::GiveBack;
            }
        }
    }
}

/// Returns the message to the queue and frees its prefetch slot.
async fn give_back(ctx: &Ctx, delivery: &Delivery) {
    let _ = delivery
        .acker
        .reject(BasicRejectOptions { requeue: true })
        .await;
    ctx.acks.settled(delivery);
}
