//! One delivery message from start to ack: load, check, send, decide, record, follow up.

use std::sync::Arc;
use std::time::Duration;

use hookrelay_amqp::deadletter::{self, DeadLetter};
use hookrelay_amqp::trace;
use hookrelay_amqp::{self as amqp, AmqpError, Headers};
use hookrelay_metrics::{outcome, status_class};
use hookrelay_model::DeadLetterReason;
use hookrelay_model::destination::{self, Destination};
use hookrelay_model::retry::{Failure, RetryPolicy};
use hookrelay_model::template;
use hookrelay_model::webhook::{BodyFormat, Secret, Webhook};
use hookrelay_model::wire::{self, DeliveryMessage};
use hookrelay_store::deliveries::{self, AttemptRecord, DeliveryStatus, SendJob};
use hookrelay_store::rates;
use hookrelay_store::turns::{self, Turn};
use hookrelay_store::{StoreError, environments};
use lapin::Channel;
use time::OffsetDateTime;

use crate::admission::{self, Admission, Hold, Rate, Row, Rules, Wait, before_load};
use crate::brokers::Publish;
use crate::disable::Disabler;
use crate::inbound::Inbound;
use crate::limiter::{PerTarget, Slot};
use crate::request::{self, Answer, Outgoing};
use crate::shared::Sender;
use crate::verdict::{Answered, Verdict, verdict};

/// What a delivery task shares with the others.
pub(crate) struct Ctx {
    pub sender: Sender,
    pub recorder: crate::recorder::Recorder,
    pub loader: crate::recorder::Loader,
    pub client: crate::request::Client,
    /// Connections to webhooks' brokers (`amqp://` URLs).
    pub brokers: Arc<crate::brokers::Brokers>,
    pub channel: Channel,
    pub limiter: Arc<PerTarget>,
    pub disabler: Arc<Disabler>,
    pub breakers: Arc<crate::breaker::Breakers>,
    /// This channel's acks, coalesced.
    pub acks: Arc<crate::acks::Acks>,
    /// Slots of webhooks capped across senders.
    pub slots: Arc<crate::policy::Slots>,
    /// Where an ordered key's next delivery goes when this sender sends it itself.
    pub handover: crate::handover::HandOver,
}

impl Ctx {
    fn rules(&self) -> Rules {
        let config = &self.sender.config;
        Rules {
            hanging_after: config.breaker.hanging_after,
            defer_delay: config.defer_delay,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum HandleError {
    #[error(transparent)]
    Broker(#[from] AmqpError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request was made but the database refused its record for good: sending
    /// the message back would repeat the POST.
    #[error("the attempt could not be recorded: {0}")]
    Unrecorded(StoreError),
}

impl From<lapin::Error> for HandleError {
    fn from(e: lapin::Error) -> Self {
        Self::Broker(AmqpError::Broker(e))
    }
}

/// Where the POST goes and how, once the webhook (if any) is loaded and checked.
struct Target {
    webhook: Option<Webhook>,
    format: BodyFormat,
    policy: RetryPolicy,
    url_template: String,
    /// Only stored webhooks' URLs may use environment variables: a one-off URL comes
    /// from the upstream, which must not be able to read the tenant's variables.
    templated: bool,
    limiter_key: String,
}

/// Parses the delivery message; one that cannot be read is dead-lettered (and
/// `None` returned), with the span every later log line about it carries.
pub(crate) async fn open(
    ctx: &Ctx,
    delivery: Inbound<'_>,
) -> Result<Option<(DeliveryMessage, tracing::Span)>, HandleError> {
    match DeliveryMessage::from_json(delivery.data) {
        Ok(m) => {
            let span = attempt_span(delivery, &m);
            Ok(Some((m, span)))
        }
        Err(e) => {
            let letter = letter(
                ctx,
                DeadLetterReason::InvalidDeliveryMessage,
                Some(e.to_string()),
                Headers::new(),
            );
            dead_letter_and_ack(ctx, delivery, letter, None).await?;
            Ok(None)
        }
    }
}

/// Handles one delivery message to its ack. A database error that is not worth
/// retrying dead-letters the message, marked unsettled (its row stays pending), so
/// it neither loops through the queue nor is lost: a replay sends it again.
/// `loaded`: the delivery's job when the caller has it already (a kept delivery,
/// loaded where it was released); loaded here otherwise.
pub(crate) async fn handle(
    ctx: &Ctx,
    delivery: Inbound<'_>,
    message: &DeliveryMessage,
    loaded: Option<SendJob>,
) -> Result<(), HandleError> {
    let (reason, error) = match handle_message(ctx, delivery, message.clone(), loaded).await {
        Err(HandleError::Unrecorded(e)) => (DeadLetterReason::AttemptNotRecorded, e),
        Err(HandleError::Store(e)) if !e.is_transient() => {
            (DeadLetterReason::DeliveryCouldNotBeHandled, e)
        }
        other => return other,
    };
    tracing::error!(%error, %reason, "delivery cannot be settled; dead-lettering it");
    let extra = ids(message).text(wire::HEADER_UNSETTLED, "true");
    let letter = letter(ctx, reason, Some(error.to_string()), extra);
    dead_letter_and_ack(ctx, delivery, letter, None).await
}

/// The span of one delivery message: every log line about it carries these fields.
pub(crate) fn attempt_span(delivery: Inbound<'_>, message: &DeliveryMessage) -> tracing::Span {
    let span = tracing::info_span!(
        "attempt",
        delivery_id = %message.delivery_id,
        event_id = %message.event_id,
        tenant = %message.tenant,
        webhook_id = message.webhook_id.map(tracing::field::display),
        attempt = message.attempt,
        trace_id = tracing::field::Empty,
    );
    trace::continue_from(&span, delivery.properties);
    if let Some(id) = trace::trace_id(&span, Some(delivery.properties)) {
        span.record("trace_id", id.as_str());
    }
    span
}

/// One delivery through the gates (each a pure decision in [`admission`], acted on
/// by [`admit`]), then the attempt and what its verdict asks.
async fn handle_message(
    ctx: &Ctx,
    delivery: Inbound<'_>,
    message: DeliveryMessage,
    loaded: Option<SendJob>,
) -> Result<(), HandleError> {
    let rules = ctx.rules();
    // A webhook that hangs at its cap gets no database work: deferred, or tripped
    // (its row then holds the delivery, found so by the load below).
    let hang = message
        .webhook_id
        .and_then(|id| ctx.limiter.hanging(&id.to_string()));
    if let Next::Done = admit(ctx, delivery, &message, None, before_load(hang, &rules)).await? {
        return Ok(());
    }
    let mut job = match loaded {
        Some(job) => Some(job),
        None => ctx.loader.load(message.delivery_id).await?,
    };
    if let Some(waiting) = job.as_mut().filter(|j| j.status == DeliveryStatus::Waiting) {
        claim_released(ctx, waiting).await?;
    }
    let row = job.as_ref().map(|job| row(job, message.probe));
    if let Next::Done = admit(
        ctx,
        delivery,
        &message,
        job.as_ref(),
        admission::on_load(row),
    )
    .await?
    {
        return Ok(());
    }
    let Some(job) = job else {
        return Ok(());
    };
    let order = admission::on_order(order(job.turn));
    if let Next::Done = admit(ctx, delivery, &message, Some(&job), order).await? {
        return Ok(());
    }
    let target = target(&job);
    let policy = target
        .webhook
        .as_ref()
        .map(Webhook::policy)
        .unwrap_or_default();
    let mut message = message;
    if let (Some(webhook), Some(bucket)) = (target.webhook.as_ref(), policy.bucket)
        && !message.rate_counted
    {
        let mut db = db(ctx).await?;
        let rate = match rates::admit(&mut db, webhook.id, job.id, &bucket).await? {
            rates::Admission::Send => Rate::Within,
            rates::Admission::Held => Rate::Over,
            rates::Admission::Settled => Rate::Settled,
        };
        drop(db);
        if let Next::Done = admit(
            ctx,
            delivery,
            &message,
            Some(&job),
            admission::on_rate(rate),
        )
        .await?
        {
            return Ok(());
        }
        // Counted now: parked below, it comes back without taking another token.
        message.rate_counted = true;
    }
    let cap = policy.max_in_flight.map(usize::from);
    let slot = match ctx.limiter.acquire(&target.limiter_key, cap).await {
        Ok(slot) => slot,
        Err(wait) => {
            let decided = admission::on_wait(wait, &rules);
            admit(ctx, delivery, &message, Some(&job), decided).await?;
            return Ok(());
        }
    };
    // Across senders: one of the webhook's slots, waited for while it is prompt.
    // Waiting for it is never hanging: the local slot is not sending yet.
    let shared_slot = match (&target.webhook, policy.max_in_flight) {
        (Some(webhook), Some(cap)) => {
            let patience = ctx.sender.config.slow_after;
            match ctx.slots.take(webhook.id, cap, patience).await? {
                Ok(shared) => Some(shared),
                Err(waited) => {
                    let decided = admission::on_wait(Wait::Busy(waited), &rules);
                    admit(ctx, delivery, &message, Some(&job), decided).await?;
                    return Ok(());
                }
            }
        }
        _ => None,
    };
    let attempt = message
        .attempt
        .max(u32::try_from(job.attempts).unwrap_or(0) + 1);
    let answer = attempt_once(ctx, &job, &target, attempt, delivery, &slot).await?;
    // The cap is on requests in flight to the endpoint, not on our bookkeeping.
    drop(shared_slot);
    drop(slot);
    if let Some(webhook) = &target.webhook {
        ctx.breakers
            .after_attempt(&ctx.channel, webhook, &answer)
            .await;
    }
    settle(ctx, delivery, &message, &job, &target, attempt, answer).await
}

/// Whether the delivery goes on after acting on a gate's decision.
enum Next {
    GoOn,
    Done,
}

/// Acts on a gate's decision. `job` is the loaded row (none before the load).
async fn admit(
    ctx: &Ctx,
    delivery: Inbound<'_>,
    message: &DeliveryMessage,
    job: Option<&SendJob>,
    admission: Admission,
) -> Result<Next, HandleError> {
    match admission {
        Admission::Go => return Ok(Next::GoOn),
        Admission::Defer(wait) => defer(ctx, delivery, message, wait).await?,
        Admission::Ack => {
            // Settled by a redelivery, a duplicate publish or the rate bucket.
            ctx.sender.metrics.outcome(outcome::ALREADY_SETTLED);
            tracing::debug!("delivery already settled; acking");
            delivery.ack(&ctx.acks);
        }
        Admission::DeadLetter(reason) => {
            let mut extra = ids(message);
            if let Some(job) = job {
                extra = extra.int(wire::HEADER_ATTEMPTS, i64::from(job.attempts));
            }
            let letter = letter(ctx, reason, None, extra);
            dead_letter_and_ack(ctx, delivery, letter, job).await?;
        }
        Admission::Hold(Hold::Rate) => {
            ctx.sender.metrics.outcome(outcome::RATE_LIMITED);
            tracing::debug!("over the webhook's rate limit; delivery held");
            delivery.ack(&ctx.acks);
        }
        Admission::Hold(Hold::Webhook) => {
            let Some(job) = job else {
                return Ok(Next::GoOn);
            };
            if !held(ctx, delivery, job).await? {
                return Ok(Next::GoOn);
            }
        }
        Admission::Hold(Hold::Turn) => {
            let Some(job) = job else {
                return Ok(Next::GoOn);
            };
            if !wait_turn(ctx, delivery, job).await? {
                return Ok(Next::GoOn);
            }
        }
        Admission::Trip { reason, otherwise } => {
            let Some(webhook_id) = message.webhook_id else {
                return Ok(Next::GoOn);
            };
            let open = ctx.breakers.trip_hanging(webhook_id, &reason).await;
            match job {
                // Before the load: the row now holds it, and the load will say so.
                None if open => return Ok(Next::GoOn),
                Some(job) if open && held(ctx, delivery, job).await? => {}
                _ => defer(ctx, delivery, message, otherwise).await?,
            }
        }
    }
    Ok(Next::Done)
}

/// The facts of a loaded row that the gates read.
fn row(job: &SendJob, probe: bool) -> Row {
    let webhook = match (job.webhook_id, &job.webhook) {
        (None, _) => admission::Webhook::OneOff,
        (Some(id), Some(w)) if w.id == id && w.tenant != job.tenant => {
            admission::Webhook::OfAnotherTenant
        }
        (Some(id), Some(w)) if w.id == id => admission::Webhook::Stored {
            paused: w.paused_at.is_some(),
            enabled: w.enabled,
            breaker_open: w.breaker.is_some(),
        },
        (Some(_), _) => admission::Webhook::Deleted,
    };
    Row {
        pending: job.status == DeliveryStatus::Pending,
        webhook,
        probe,
    }
}

/// The store's word on a sequenced delivery's predecessor, as the gate reads it.
fn order(turn: Turn) -> admission::Order {
    match turn {
        Turn::Free => admission::Order::Free,
        Turn::Waiting => admission::Order::Waiting,
        Turn::Blocked => admission::Order::Blocked,
    }
}

/// Parks a sequenced delivery in its row until its turn (the one before it settles,
/// or its blocked key is resumed or skipped): no attempt, no message. False (nothing
/// parked, nothing acked) when its turn came meanwhile: send it.
async fn wait_turn(ctx: &Ctx, delivery: Inbound<'_>, job: &SendJob) -> Result<bool, HandleError> {
    let Some(place) = &job.place else {
        return Ok(false);
    };
    let mut db = db(ctx).await?;
    if !turns::wait_turn(&mut db, job.id, place, crate::sweep::TURN_LOOK_AGAIN).await? {
        return Ok(false);
    }
    ctx.sender.metrics.outcome(outcome::WAITING);
    tracing::debug!(
        seq = place.seq,
        "an earlier delivery of its ordering key is not settled; waiting"
    );
    delivery.ack(&ctx.acks);
    Ok(true)
}

/// A message for a row still waiting: a release's, arrived before it committed (or
/// after it rolled back). Claimed, it goes on as pending with its turn come; if its
/// turn has not come, the row stays waiting and the gates ack the message.
async fn claim_released(ctx: &Ctx, job: &mut SendJob) -> Result<(), HandleError> {
    let Some(place) = &job.place else {
        return Ok(());
    };
    let mut db = db(ctx).await?;
    if turns::claim(&mut db, job.id, place).await? {
        job.status = DeliveryStatus::Pending;
        job.turn = Turn::Free;
    }
    Ok(())
}

/// After a sequenced delivery settles (delivered, or failed for good): the next one
/// of its key goes, if it waits and its turn has come. A release that fails is left
/// to the sweep (`sweep::turns`): the delivery is settled either way.
async fn release_next(ctx: &Ctx, job: &SendJob) {
    let Some(place) = &job.place else {
        return;
    };
    let released = match ctx.handover.slot() {
        Some(slot) => keep_next(ctx, place, slot).await,
        None => publish_next(ctx, place).await,
    };
    if let Err(error) = released {
        tracing::warn!(%error, "the next delivery of the ordering key not released; the sweep will");
    }
}

/// Records the attempt that settled the delivery (delivered, or failed for good),
/// then lets the next delivery of its key go. With a slot for the next one, a
/// sequenced delivery does both in one transaction and keeps the next
/// (`turns::settle_and_keep`); should that fail, the attempt is recorded alone (with
/// the recorder's retries) and released as any other, so the outcome is never lost.
async fn record_and_release(
    ctx: &Ctx,
    job: &SendJob,
    record: AttemptRecord,
) -> Result<(), HandleError> {
    if let Some(place) = &job.place
        && let Some(slot) = ctx.handover.slot()
    {
        match settle_and_keep(ctx, place, &record).await {
            Ok(kept) => {
                if let Some(turns::Kept { next, job }) = kept {
                    ctx.handover.run(next, job, slot);
                }
                return Ok(());
            }
            Err(error) => {
                tracing::warn!(%error, "settling and handing over in one transaction failed; recording alone");
            }
        }
    }
    ctx.recorder
        .record(record)
        .await
        .map_err(HandleError::Unrecorded)?;
    release_next(ctx, job).await;
    Ok(())
}

async fn settle_and_keep(
    ctx: &Ctx,
    place: &turns::Place,
    record: &AttemptRecord,
) -> Result<Option<turns::Kept>, StoreError> {
    let mut db = ctx.sender.pool.get().await?;
    let cipher = &ctx.sender.config.cipher;
    turns::settle_and_keep(&mut db, cipher, record, place, ctx.handover.lease()).await
}

/// Releases the key's next delivery to this sender, which sends it at once with no
/// message through the broker (`handover`).
async fn keep_next(
    ctx: &Ctx,
    place: &turns::Place,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> Result<(), crate::shared::LoopError> {
    let mut db = ctx.sender.pool.get().await?;
    let keep = turns::Handing::Keep {
        lease: ctx.handover.lease(),
    };
    let release =
        turns::release_after(&mut db, place.webhook_id, &place.key, place.seq, keep).await?;
    let next = release.next.clone();
    release.commit().await?;
    if let Some(next) = next {
        ctx.handover.run(next, None, slot);
    }
    Ok(())
}

async fn publish_next(ctx: &Ctx, place: &turns::Place) -> Result<(), crate::shared::LoopError> {
    let mut db = ctx.sender.pool.get().await?;
    let topology = &ctx.sender.config.topology;
    crate::sweep::release(&mut db, &ctx.channel, topology, place).await?;
    Ok(())
}

/// Holds the delivery of a webhook that holds (paused, disabled, breaker open): no
/// attempt, no slot, no delay queue; a resume, enable or closing breaker publishes it
/// again. False (nothing held, nothing acked) when the webhook no longer holds.
async fn held(ctx: &Ctx, delivery: Inbound<'_>, job: &SendJob) -> Result<bool, HandleError> {
    let Some(webhook_id) = job.webhook_id else {
        return Ok(false);
    };
    if !deliveries::hold(&db(ctx).await?, job.id, webhook_id).await? {
        return Ok(false);
    }
    ctx.sender.metrics.outcome(outcome::HELD);
    tracing::info!("webhook paused, disabled or its breaker open; delivery held");
    delivery.ack(&ctx.acks);
    Ok(true)
}

/// Where the POST goes, from a row the gates let through (its webhook, when it has
/// one, is loaded and the tenant's own).
fn target(job: &SendJob) -> Target {
    match job.webhook.clone().filter(|w| Some(w.id) == job.webhook_id) {
        None => {
            let url = job.url.clone().unwrap_or_default();
            Target {
                webhook: None,
                format: BodyFormat::Form,
                policy: RetryPolicy::default(),
                limiter_key: format!("url:{}", host_of(&url)),
                url_template: url,
                templated: false,
            }
        }
        Some(webhook) => Target {
            format: webhook.format,
            policy: webhook.retry_on.clone(),
            url_template: webhook.url.clone(),
            templated: true,
            limiter_key: webhook.id.to_string(),
            webhook: Some(webhook),
        },
    }
}

fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

/// Resolves the URL and sends (a POST, or a publish to the webhook's broker); a URL
/// that cannot be built is an answer too.
async fn attempt_once(
    ctx: &Ctx,
    job: &SendJob,
    target: &Target,
    attempt: u32,
    delivery: Inbound<'_>,
    slot: &Slot,
) -> Result<Answer, HandleError> {
    let event = &job.event;
    let credentials = target
        .webhook
        .as_ref()
        .and_then(|w| w.url_credentials.as_ref());
    let resolved = if target.templated {
        let templated = target.url_template.contains("{{")
            || credentials.is_some_and(|c| c.expose().contains("{{"));
        let variables = match (&event.environment, templated) {
            (Some(env), true) => environments::variables(&db(ctx).await?, &job.tenant, env).await?,
            _ => Default::default(),
        };
        let environment = event.environment.as_deref();
        template::resolve_url(&target.url_template, environment, &variables).and_then(|url| {
            let credentials = credentials
                .map(|c| template::fill(c.expose(), environment, &variables).map(Secret::new))
                .transpose()?;
            Ok((url, credentials))
        })
    } else {
        template::literal_url(&target.url_template).map(|url| (url, None))
    };
    let (url, credentials) = match resolved {
        Ok(resolved) => resolved,
        Err(e) => return Ok(Answer::refused(e.to_string())),
    };
    let destination = match &target.webhook {
        Some(webhook) => webhook.destination(&url),
        None => Ok(Destination::Http),
    };
    let destination = match destination {
        Ok(destination) => destination,
        Err(e) => return Ok(Answer::refused(e.to_string())),
    };
    if destination == Destination::Http
        && let Err(blocked) = ctx.sender.config.destinations.check_url(&url)
    {
        return Ok(Answer::refused(blocked.to_string()));
    }
    let (body, content_type) = request::body(event, target.format);
    let trace = trace_headers(delivery);
    let headers = request::headers(
        job.id,
        event,
        attempt,
        (&body, content_type),
        target.webhook.as_ref(),
        &trace,
    );
    slot.sending();
    let answer = match destination {
        Destination::Http => {
            request::send(
                &ctx.client,
                Outgoing { url, body, headers },
                ctx.sender.config.response_snippet_bytes,
            )
            .await
        }
        Destination::Amqp {
            exchange,
            routing_key,
        } => {
            let url = destination::with_credentials(&url, credentials.as_ref());
            ctx.brokers
                .publish(Publish {
                    url: &url,
                    exchange: &exchange,
                    routing_key: &routing_key,
                    body,
                    content_type,
                    headers,
                    message_id: job.id.to_string(),
                })
                .await
        }
    };
    let class = match (answer.status, answer.failure) {
        (Some(status), _) => Some(status_class(status)),
        (None, Some(Failure::Timeout)) => Some("timeout"),
        (None, Some(Failure::Connect)) => Some("connect"),
        _ => None,
    };
    if let Some(class) = class {
        ctx.sender
            .metrics
            .attempt(class, answer.latency.as_secs_f64());
    }
    tracing::info!(
        attempt, status = ?answer.status, error = ?answer.error,
        latency_ms = answer.latency.as_secs_f64() * 1000.0,
        "delivery attempt"
    );
    Ok(answer)
}

/// Records the attempt and does what its verdict asks: ack, schedule a retry, or
/// dead-letter. The order of recording and publishing differs by branch, each so
/// that a crash between the two repeats work and never loses it (the table in
/// docs/delivery-semantics.md).
async fn settle(
    ctx: &Ctx,
    delivery: Inbound<'_>,
    message: &DeliveryMessage,
    job: &SendJob,
    target: &Target,
    attempt: u32,
    answer: Answer,
) -> Result<(), HandleError> {
    let config = &ctx.sender.config;
    let answered = Answered {
        failure: answer.failure,
        retry_after: answer.retry_after,
        attempt_in_round: message.attempt_in_round(attempt),
    };
    let mut record = AttemptRecord {
        delivery_id: job.id,
        attempt: i32::try_from(attempt).unwrap_or(i32::MAX),
        started_at: answer.started_at,
        latency_ms: answer.latency.as_secs_f64() * 1000.0,
        status_code: answer.status.map(i32::from),
        error: answer.error.clone(),
        response_snippet: answer.snippet.clone(),
        status: DeliveryStatus::Delivered,
        next_attempt_at: None,
        why_failed: None,
    };
    let webhook = target.webhook.as_ref();
    match verdict(answered, &target.policy, &config.schedule, &config.topology) {
        Verdict::Delivered => {
            // Record, then ack: a crash between sends the message again, and the
            // row, no longer pending, has it acked without a POST.
            record_and_release(ctx, job, record).await?;
            ctx.sender.metrics.outcome(outcome::DELIVERED);
            crate::observe::delivered(&ctx.sender.metrics, job, webhook, &answer);
        }
        Verdict::Retry { after } => {
            // Record, then publish the next attempt: a crash between loses no
            // attempt (the message comes back and its attempt runs early), where
            // publishing first could send an attempt the row does not know of.
            record.status = DeliveryStatus::Pending;
            record.next_attempt_at = Some(OffsetDateTime::now_utc() + after);
            ctx.recorder
                .record(record)
                .await
                .map_err(HandleError::Unrecorded)?;
            ctx.disabler
                .after_attempt(&ctx.channel, webhook, answer.status, false)
                .await;
            // A failed probe's retry is an ordinary message: held while the breaker is open.
            let next = DeliveryMessage {
                attempt: attempt + 1,
                probe: false,
                rate_counted: false,
                ..message.clone()
            };
            publish_delayed(ctx, delivery, &next, after).await?;
            ctx.sender.metrics.outcome(outcome::RETRIED);
            crate::observe::retried(&ctx.sender.metrics, job, webhook, &answer);
        }
        Verdict::GiveUp { reason, why } => {
            // Publish the dead letter, then record `failed`: recording first, a
            // crash between would leave a failed row with nothing in the queue to
            // replay; this way it costs at most one more POST and a second letter.
            let mut extra = ids(message).int(wire::HEADER_ATTEMPTS, i64::from(attempt));
            if let Some(status) = answer.status {
                extra = extra.int(wire::HEADER_LAST_STATUS, i64::from(status));
            }
            // Replayed, it counts against the rate again.
            let failed = DeliveryMessage {
                attempt,
                rate_counted: false,
                ..message.clone()
            };
            tracing::warn!(%reason, error = ?answer.error, "delivery dead-lettered");
            let letter = letter(ctx, reason.clone(), answer.error.clone(), extra);
            deadletter::publish(
                &ctx.channel,
                &config.topology,
                &failed.to_json(),
                delivery.properties,
                letter,
            )
            .await?;
            record.status = DeliveryStatus::Failed;
            record.why_failed = Some(why);
            record_and_release(ctx, job, record).await?;
            ctx.disabler
                .after_attempt(&ctx.channel, webhook, answer.status, true)
                .await;
            ctx.sender.metrics.outcome(outcome::FAILED);
            crate::observe::failed(&ctx.sender.metrics, job, webhook, &answer);
            ctx.sender.metrics.dead_letter(crate::shared::ROLE, &reason);
        }
    }
    delivery.ack(&ctx.acks);
    Ok(())
}

/// Sends the message to the delay queue that waits at least `delay`. For a kept
/// delivery (`handover`) the row is marked published in the same step
/// (`turns::take_publication`): its message is out, so the row is no longer this
/// sender's to send. Should the turn sweep have published it first (the retry was
/// due before this got here), nothing is sent; left unpublished by a crash, the
/// sweep sends it once its `next_attempt_at` has passed.
async fn publish_delayed(
    ctx: &Ctx,
    delivery: Inbound<'_>,
    message: &DeliveryMessage,
    delay: Duration,
) -> Result<(), HandleError> {
    let topology = &ctx.sender.config.topology;
    let queue = topology.delay_queue_name(topology.delay_at_least(delay));
    let headers = trace::inject(
        &tracing::Span::current(),
        Some(delivery.properties),
        Headers::new(),
    );
    let properties = amqp::persistent(&message.delivery_id.to_string(), headers.into_table())?;
    let body = message.to_json();
    if !delivery.is_kept() {
        amqp::publish_confirmed(&ctx.channel, "", &queue, &body, properties).await?;
        return Ok(());
    }
    let mut db = db(ctx).await?;
    let Some(publication) = turns::take_publication(&mut db, message.delivery_id).await? else {
        tracing::info!("the turn sweep published the kept delivery already");
        return Ok(());
    };
    amqp::publish_confirmed(&ctx.channel, "", &queue, &body, properties).await?;
    publication.commit().await?;
    Ok(())
}

/// No slot for the webhook now: park this delivery in a delay queue for `wait` (the
/// gates chose it), no attempt counted, so this sender serves other endpoints meanwhile.
async fn defer(
    ctx: &Ctx,
    delivery: Inbound<'_>,
    message: &DeliveryMessage,
    wait: Duration,
) -> Result<(), HandleError> {
    publish_delayed(ctx, delivery, message, wait).await?;
    ctx.sender.metrics.outcome(outcome::DEFERRED);
    delivery.ack(&ctx.acks);
    Ok(())
}

/// Dead-letters the message as it is (confirmed), marks the delivery failed when
/// there is one, then acks. In that order: a crash in between repeats, never loses.
async fn dead_letter_and_ack(
    ctx: &Ctx,
    delivery: Inbound<'_>,
    letter: DeadLetter,
    failed: Option<&SendJob>,
) -> Result<(), HandleError> {
    tracing::warn!(reason = %letter.reason, error = ?letter.error, "delivery dead-lettered without a request");
    // Publish, then mark failed: a crash between sends the message again and the
    // letter twice, never a failed row without its letter.
    let reason = letter.reason.clone();
    deadletter::publish(
        &ctx.channel,
        &ctx.sender.config.topology,
        delivery.data,
        delivery.properties,
        letter,
    )
    .await?;
    if let Some(job) = failed {
        deliveries::mark_failed(&db(ctx).await?, job.id, reason.as_str()).await?;
        ctx.sender.metrics.outcome(outcome::FAILED);
        release_next(ctx, job).await;
    }
    ctx.sender.metrics.dead_letter(crate::shared::ROLE, &reason);
    delivery.ack(&ctx.acks);
    Ok(())
}

fn letter(
    ctx: &Ctx,
    reason: DeadLetterReason,
    error: Option<String>,
    extra: Headers,
) -> DeadLetter {
    DeadLetter {
        reason,
        error,
        source_queue: ctx.sender.config.topology.deliveries_queue(),
        routing_key: String::new(),
        extra,
    }
}

fn ids(m: &DeliveryMessage) -> Headers {
    let mut h = Headers::new()
        .text(wire::HEADER_DELIVERY_ID, m.delivery_id.to_string())
        .text(wire::HEADER_EVENT_ID, m.event_id.clone())
        .text(wire::HEADER_TENANT, m.tenant.clone());
    if let Some(w) = m.webhook_id {
        h = h.text(wire::HEADER_WEBHOOK_ID, w.to_string());
    }
    h
}

/// A pooled connection for one statement; never held across the HTTP call.
async fn db(ctx: &Ctx) -> Result<deadpool_postgres::Object, HandleError> {
    Ok(ctx.sender.pool.get().await.map_err(StoreError::from)?)
}

/// Trace headers for the POST: this attempt's span context, else the incoming ones.
fn trace_headers(delivery: Inbound<'_>) -> Vec<(&'static str, String)> {
    trace::context_headers(&tracing::Span::current(), Some(delivery.properties))
}
