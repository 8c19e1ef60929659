//! One delivery message from start to ack: load, check, send, decide, record, follow up.

use std::sync::Arc;
use std::time::Duration;

use hookrelay_amqp::deadletter::{self, DeadLetter};
use hookrelay_amqp::trace;
use hookrelay_amqp::{self as amqp, AmqpError, Headers};
use hookrelay_metrics::{outcome, status_class};
use hookrelay_model::retry::{self, Failure, RetryPolicy};
use hookrelay_model::webhook::{BodyFormat, Webhook};
use hookrelay_model::wire::{self, DeliveryMessage};
use hookrelay_model::{matching, template};
use hookrelay_store::deliveries::{self, AttemptRecord, DeliveryStatus, SendJob};
use hookrelay_store::rates::{self, Admission};
use hookrelay_store::{StoreError, environments};
use lapin::Channel;
use lapin::message::Delivery;
use time::OffsetDateTime;

use crate::Sender;
use crate::disable::Disabler;
use crate::limiter::PerTarget;
use crate::request::{self, Answer, Outgoing};

/// What a delivery task shares with the others.
pub(crate) struct Ctx {
    pub sender: Sender,
    pub recorder: crate::recorder::Recorder,
    pub loader: crate::recorder::Loader,
    pub client: reqwest::Client,
    pub channel: Channel,
    pub limiter: Arc<PerTarget>,
    pub disabler: Arc<Disabler>,
    pub breakers: Arc<crate::breaker::Breakers>,
    /// This channel's acks, coalesced.
    pub acks: Arc<crate::acks::Acks>,
    /// Slots of webhooks capped across senders.
    pub slots: Arc<crate::policy::Slots>,
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
    delivery: &Delivery,
) -> Result<Option<(DeliveryMessage, tracing::Span)>, HandleError> {
    match DeliveryMessage::from_json(&delivery.data) {
        Ok(m) => {
            let span = attempt_span(delivery, &m);
            Ok(Some((m, span)))
        }
        Err(e) => {
            let letter = letter(
                ctx,
                "invalid delivery message",
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
pub(crate) async fn handle(
    ctx: &Ctx,
    delivery: &Delivery,
    message: &DeliveryMessage,
) -> Result<(), HandleError> {
    let (reason, error) = match handle_message(ctx, delivery, message.clone()).await {
        Err(HandleError::Unrecorded(e)) => ("attempt not recorded", e),
        Err(HandleError::Store(e)) if !e.is_transient() => ("delivery could not be handled", e),
        other => return other,
    };
    tracing::error!(%error, reason, "delivery cannot be settled; dead-lettering it");
    let extra = ids(message).text(wire::HEADER_UNSETTLED, "true");
    let letter = letter(ctx, reason, Some(error.to_string()), extra);
    dead_letter_and_ack(ctx, delivery, letter, None).await
}

/// The span of one delivery message: every log line about it carries these fields.
fn attempt_span(delivery: &Delivery, message: &DeliveryMessage) -> tracing::Span {
    let span = tracing::info_span!(
        "attempt",
        delivery_id = %message.delivery_id,
        event_id = %message.event_id,
        tenant = %message.tenant,
        webhook_id = message.webhook_id.map(tracing::field::display),
        attempt = message.attempt,
        trace_id = tracing::field::Empty,
    );
    trace::continue_from(&span, &delivery.properties);
    if let Some(id) = trace::trace_id(&span, Some(&delivery.properties)) {
        span.record("trace_id", id.as_str());
    }
    span
}

async fn handle_message(
    ctx: &Ctx,
    delivery: &Delivery,
    message: DeliveryMessage,
) -> Result<(), HandleError> {
    // A webhook that is full and hanging gets no database work: straight back to
    // wait, unless it hangs long enough to trip its breaker (then it is held below).
    if let Some((id, hanging_for)) = message
        .webhook_id
        .and_then(|id| Some((id, ctx.limiter.slow_and_full(&id.to_string())?)))
        && !ctx
            .breakers
            .after_hang(id, hanging_for, ctx.sender.config.per_webhook_concurrency)
            .await
    {
        return defer(ctx, delivery, &message, hanging_for).await;
    }
    let Some(job) = ctx.loader.load(message.delivery_id).await? else {
        let letter = letter(
            ctx,
            "delivery not found",
            Some("no delivery row with this id (purged by retention, or never committed)".into()),
            ids(&message),
        );
        return dead_letter_and_ack(ctx, delivery, letter, None).await;
    };
    if job.status != DeliveryStatus::Pending {
        // A redelivered message after a crash, or a duplicate publish: already settled.
        ctx.sender.metrics.outcome(outcome::ALREADY_SETTLED);
        tracing::debug!(
            status = job.status.as_str(),
            "delivery already settled; acking"
        );
        ctx.acks.ack(delivery);
        return Ok(());
    }
    let target = match target(&job) {
        Ok(t) => t,
        Err(reason) => {
            let attempts = ids(&message).int(wire::HEADER_ATTEMPTS, i64::from(job.attempts));
            let letter = letter(ctx, &reason, None, attempts);
            return dead_letter_and_ack(ctx, delivery, letter, Some(job.id)).await;
        }
    };
    if let Some(webhook) = target.webhook.as_ref().filter(|w| holds(w, &message))
        && held(ctx, delivery, &job, webhook.id).await?
    {
        return Ok(());
    }
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
        match rates::admit(&mut db, webhook.id, job.id, &bucket).await? {
            Admission::Send => {}
            Admission::Held => {
                ctx.sender.metrics.outcome(outcome::RATE_LIMITED);
                tracing::debug!("over the webhook's rate limit; delivery held");
                ctx.acks.ack(delivery);
                return Ok(());
            }
            Admission::Settled => {
                ctx.acks.ack(delivery);
                return Ok(());
            }
        }
        // Counted now: parked below, it comes back without taking another token.
        message.rate_counted = true;
    }
    let cap = policy.max_in_flight.map(usize::from);
    let slot = match ctx.limiter.acquire(&target.limiter_key, cap).await {
        Ok(slot) => slot,
        Err(hanging_for) => {
            let webhook_id = target.webhook.as_ref().map(|w| w.id);
            if let Some(id) = webhook_id
                && ctx
                    .breakers
                    .after_hang(id, hanging_for, ctx.sender.config.per_webhook_concurrency)
                    .await
                && held(ctx, delivery, &job, id).await?
            {
                return Ok(());
            }
            return defer(ctx, delivery, &message, hanging_for).await;
        }
    };
    // Across senders: one of the webhook's slots, waited for while it is prompt.
    let shared_slot = match (&target.webhook, policy.max_in_flight) {
        (Some(webhook), Some(cap)) => {
            let patience = ctx.sender.config.slow_after;
            match ctx.slots.take(webhook.id, cap, patience).await? {
                Ok(shared) => Some(shared),
                Err(waited) => return defer(ctx, delivery, &message, waited).await,
            }
        }
        _ => None,
    };
    let attempt = message
        .attempt
        .max(u32::try_from(job.attempts).unwrap_or(0) + 1);
    let answer = attempt_once(ctx, &job, &target, attempt, delivery).await?;
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

/// Whether the delivery waits instead of being attempted: its webhook is paused or
/// disabled, or its breaker is open and this is not the breaker's probe.
fn holds(webhook: &Webhook, message: &DeliveryMessage) -> bool {
    let only_the_breaker = webhook.paused_at.is_none() && webhook.enabled;
    matching::holds(webhook) && !(message.probe && only_the_breaker)
}

/// Holds the delivery of a webhook that holds (paused, disabled, breaker open): no
/// attempt, no slot, no delay queue; a resume, enable or closing breaker publishes it
/// again. False (nothing held, nothing acked) when the webhook no longer holds.
async fn held(
    ctx: &Ctx,
    delivery: &Delivery,
    job: &SendJob,
    webhook_id: uuid::Uuid,
) -> Result<bool, HandleError> {
    if !deliveries::hold(&db(ctx).await?, job.id, webhook_id).await? {
        return Ok(false);
    }
    ctx.sender.metrics.outcome(outcome::HELD);
    tracing::info!("webhook paused, disabled or its breaker open; delivery held");
    ctx.acks.ack(delivery);
    Ok(true)
}

/// Where the POST goes, from the loaded job. `Err(reason)` is a permanent refusal
/// without a POST.
fn target(job: &SendJob) -> Result<Target, String> {
    let Some(webhook_id) = job.webhook_id else {
        let url = job.url.clone().unwrap_or_default();
        return Ok(Target {
            webhook: None,
            format: BodyFormat::Form,
            policy: RetryPolicy::default(),
            limiter_key: format!("url:{}", host_of(&url)),
            url_template: url,
            templated: false,
        });
    };
    let webhook = match job.webhook.clone().filter(|w| w.id == webhook_id) {
        Some(w) if w.tenant != job.tenant => {
            return Err("webhook belongs to another tenant".into());
        }
        Some(w) => w,
        None => return Err("webhook deleted".into()),
    };
    Ok(Target {
        format: webhook.format,
        policy: webhook.retry_on.clone(),
        url_template: webhook.url.clone(),
        templated: true,
        limiter_key: webhook.id.to_string(),
        webhook: Some(webhook),
    })
}

fn host_of(url: &str) -> &str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    rest.split(['/', '?', '#']).next().unwrap_or(rest)
}

/// Resolves the URL and sends; a URL that cannot be built is an answer too.
async fn attempt_once(
    ctx: &Ctx,
    job: &SendJob,
    target: &Target,
    attempt: u32,
    delivery: &Delivery,
) -> Result<Answer, HandleError> {
    let event = &job.event;
    let url = if target.templated {
        let variables = match (&event.environment, target.url_template.contains("{{")) {
            (Some(env), true) => environments::variables(&db(ctx).await?, &job.tenant, env).await?,
            _ => Default::default(),
        };
        template::resolve_url(
            &target.url_template,
            event.environment.as_deref(),
            &variables,
        )
    } else {
        template::literal_url(&target.url_template)
    };
    let url = match url {
        Ok(url) => url,
        Err(e) => return Ok(Answer::refused(e.to_string())),
    };
    if let Err(blocked) = ctx.sender.config.destinations.check_url(&url) {
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
    let answer = request::send(
        &ctx.client,
        Outgoing { url, body, headers },
        ctx.sender.config.response_snippet_bytes,
    )
    .await;
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

/// Records the attempt and does what follows: ack, schedule a retry, or dead-letter.
async fn settle(
    ctx: &Ctx,
    delivery: &Delivery,
    message: &DeliveryMessage,
    job: &SendJob,
    target: &Target,
    attempt: u32,
    answer: Answer,
) -> Result<(), HandleError> {
    let config = &ctx.sender.config;
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
    let Some(failure) = answer.failure else {
        ctx.recorder
            .record(record.clone())
            .await
            .map_err(HandleError::Unrecorded)?;
        ctx.sender.metrics.outcome(outcome::DELIVERED);
        crate::observe::delivered(&ctx.sender.metrics, job, target.webhook.as_ref(), &answer);
        ctx.acks.ack(delivery);
        return Ok(());
    };
    let retryable = failure != Failure::Permanent && target.policy.retries(&failure);
    let next_delay = retryable
        .then(|| {
            let in_round = message.attempt_in_round(attempt);
            config.schedule.delay_after(in_round, answer.retry_after)
        })
        .flatten();
    if let Some(delay) = next_delay {
        record.status = DeliveryStatus::Pending;
        // The wait is rounded up to an existing delay queue; record the real one.
        let delay = config.topology.delay_at_least(delay);
        record.next_attempt_at = Some(OffsetDateTime::now_utc() + delay);
        ctx.recorder
            .record(record.clone())
            .await
            .map_err(HandleError::Unrecorded)?;
        ctx.disabler
            .after_attempt(&ctx.channel, target.webhook.as_ref(), answer.status, false)
            .await;
        // A failed probe's retry is an ordinary message: held while the breaker is open.
        let next = DeliveryMessage {
            attempt: attempt + 1,
            probe: false,
            rate_counted: false,
            ..message.clone()
        };
        publish_delayed(ctx, delivery, &next, delay).await?;
        ctx.sender.metrics.outcome(outcome::RETRIED);
        crate::observe::retried(&ctx.sender.metrics, job, target.webhook.as_ref(), &answer);
        ctx.acks.ack(delivery);
        return Ok(());
    }
    let reason = if retryable {
        "retries exhausted"
    } else if failure == Failure::Permanent {
        "permanent failure"
    } else {
        "not retryable"
    };
    let mut extra = ids(message).int(wire::HEADER_ATTEMPTS, i64::from(attempt));
    if let Some(status) = answer.status {
        extra = extra.int(wire::HEADER_LAST_STATUS, i64::from(status));
    }
    let letter = letter(ctx, reason, answer.error.clone(), extra);
    // Replayed, it counts against the rate again.
    let failed = DeliveryMessage {
        attempt,
        rate_counted: false,
        ..message.clone()
    };
    deadletter::publish(
        &ctx.channel,
        &config.topology,
        &failed.to_json(),
        &delivery.properties,
        letter,
    )
    .await?;
    record.status = DeliveryStatus::Failed;
    record.why_failed = Some(retry::why_not_retried(
        &failure,
        &target.policy,
        message.attempt_in_round(attempt),
        config.schedule.max_attempts(),
    ));
    ctx.recorder
        .record(record.clone())
        .await
        .map_err(HandleError::Unrecorded)?;
    ctx.disabler
        .after_attempt(&ctx.channel, target.webhook.as_ref(), answer.status, true)
        .await;
    ctx.sender.metrics.outcome(outcome::FAILED);
    crate::observe::failed(&ctx.sender.metrics, job, target.webhook.as_ref(), &answer);
    ctx.sender.metrics.dead_letter(crate::ROLE, reason);
    tracing::warn!(reason, error = ?answer.error, "delivery dead-lettered");
    ctx.acks.ack(delivery);
    Ok(())
}

/// Sends the message to the delay queue that waits at least `delay`.
async fn publish_delayed(
    ctx: &Ctx,
    delivery: &Delivery,
    message: &DeliveryMessage,
    delay: Duration,
) -> Result<(), HandleError> {
    let topology = &ctx.sender.config.topology;
    let queue = topology.delay_queue_name(topology.delay_at_least(delay));
    let headers = trace::inject(
        &tracing::Span::current(),
        Some(&delivery.properties),
        Headers::new(),
    );
    let properties = amqp::persistent(&message.delivery_id.to_string(), headers.into_table())?;
    amqp::publish_confirmed(&ctx.channel, "", &queue, &message.to_json(), properties).await?;
    Ok(())
}

/// The webhook has its fill of slow requests in flight: park this one, no attempt
/// counted, so this slot serves other endpoints meanwhile. The longer the endpoint
/// has been hanging, the longer the wait (up to 5 × the defer delay), so a dead
/// endpoint does not keep its deliveries cycling through the broker every second.
async fn defer(
    ctx: &Ctx,
    delivery: &Delivery,
    message: &DeliveryMessage,
    hanging_for: Duration,
) -> Result<(), HandleError> {
    let base = ctx.sender.config.defer_delay;
    let wait = hanging_for.clamp(base, base * 5);
    publish_delayed(ctx, delivery, message, wait).await?;
    ctx.sender.metrics.outcome(outcome::DEFERRED);
    ctx.acks.ack(delivery);
    Ok(())
}

/// Dead-letters the message as it is (confirmed), marks the delivery failed when
/// there is one, then acks. In that order: a crash in between repeats, never loses.
async fn dead_letter_and_ack(
    ctx: &Ctx,
    delivery: &Delivery,
    letter: DeadLetter,
    failed: Option<uuid::Uuid>,
) -> Result<(), HandleError> {
    tracing::warn!(reason = %letter.reason, error = ?letter.error, "delivery dead-lettered without a request");
    let reason = letter.reason.clone();
    deadletter::publish(
        &ctx.channel,
        &ctx.sender.config.topology,
        &delivery.data,
        &delivery.properties,
        letter,
    )
    .await?;
    if let Some(id) = failed {
        deliveries::mark_failed(&db(ctx).await?, id, &reason).await?;
        ctx.sender.metrics.outcome(outcome::FAILED);
    }
    ctx.sender.metrics.dead_letter(crate::ROLE, &reason);
    ctx.acks.ack(delivery);
    Ok(())
}

fn letter(ctx: &Ctx, reason: &str, error: Option<String>, extra: Headers) -> DeadLetter {
    DeadLetter {
        reason: reason.to_owned(),
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
fn trace_headers(delivery: &Delivery) -> Vec<(&'static str, String)> {
    struct Pairs(Vec<(&'static str, String)>);
    impl opentelemetry::propagation::Injector for Pairs {
        fn set(&mut self, key: &str, value: String) {
            match key {
                wire::HEADER_TRACEPARENT => self.0.push((wire::HEADER_TRACEPARENT, value)),
                wire::HEADER_TRACESTATE => self.0.push((wire::HEADER_TRACESTATE, value)),
                _ => {}
            }
        }
    }
    let mut pairs = Pairs(Vec::new());
    if trace::inject_into(&tracing::Span::current(), &mut pairs) {
        return pairs.0;
    }
    [wire::HEADER_TRACEPARENT, wire::HEADER_TRACESTATE]
        .into_iter()
        .filter_map(|k| amqp::header_text(&delivery.properties, k).map(|v| (k, v)))
        .collect()
}
