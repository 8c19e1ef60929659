//! Turning off webhooks that are gone: a `410 Gone` answer disables a webhook at
//! once; a webhook that failed every delivery for `disable_failing_after` is disabled
//! at its next failure. Each is recorded on the webhook (`disabled_reason`) and
//! announced with a `hookrelay.webhook_disabled` event on the events exchange, which
//! a tenant's webhooks may subscribe to like any event type.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use hookrelay_amqp::trace;
use hookrelay_amqp::{self as amqp, Headers};
use hookrelay_metrics::Metrics;
use hookrelay_model::Event;
use hookrelay_model::shutdown::Shutdown;
use hookrelay_model::webhook::Webhook;
use hookrelay_store::webhooks::{self};
use lapin::Channel;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::shared::SenderConfig;

/// The type of the event announcing a disabled webhook.
pub const WEBHOOK_DISABLED: &str = "hookrelay.webhook_disabled";

/// Disables and announces, one per sender process. Asks "failing for the whole
/// period?" at most every `check_every` per webhook: a dead endpoint fails in bursts,
/// and the question reads its history. Announcements go out on the channel of the
/// connection at hand, given with each call.
pub(crate) struct Disabler {
    pool: Pool,
    metrics: Arc<Metrics>,
    failing_after: Option<Duration>,
    events_exchange: String,
    check_every: Duration,
    last_checked: Mutex<HashMap<Uuid, Instant>>,
}

impl Disabler {
    pub(crate) fn new(config: &SenderConfig, pool: Pool, metrics: Arc<Metrics>) -> Self {
        Self {
            pool,
            metrics,
            failing_after: config.disable_failing_after,
            events_exchange: config.topology.events_exchange(),
            check_every: config.disable_check_every,
            last_checked: Mutex::default(),
        }
    }

    fn due(&self, webhook: Uuid) -> bool {
        let Ok(mut seen) = self.last_checked.lock() else {
            return true;
        };
        let now = Instant::now();
        if seen
            .get(&webhook)
            .is_some_and(|t| now - *t < self.check_every)
        {
            return false;
        }
        seen.retain(|_, t| now - *t < self.check_every);
        seen.insert(webhook, now);
        true
    }

    /// After an attempt: 410 disables; a final failure disables a webhook failing
    /// for the configured period. Trouble here is logged and never fails the
    /// delivery: a disabling that did not happen is tried at the next failure, an
    /// announcement that did not go out by the periodic announcer.
    pub(crate) async fn after_attempt(
        &self,
        channel: &Channel,
        webhook: Option<&Webhook>,
        status: Option<u16>,
        final_failure: bool,
    ) {
        let Some(webhook) = webhook else {
            return;
        };
        let reason = if status == Some(410) {
            Some("the receiver answered 410 Gone".to_owned())
        } else if final_failure {
            self.failing_reason(webhook).await
        } else {
            None
        };
        if let Some(reason) = reason
            && let Err(e) = self.disable(channel, webhook, &reason).await
        {
            tracing::warn!(error = %e, webhook_id = %webhook.id, "disabling the webhook failed; the next failure tries again");
        }
    }

    async fn failing_reason(&self, webhook: &Webhook) -> Option<String> {
        let period = self.failing_after?;
        if !self.due(webhook.id) {
            return None;
        }
        let db = self.pool.get().await.ok()?;
        match webhooks::failing_for(&db, webhook.id, period).await {
            Ok(true) => Some(format!(
                "every delivery failed for {}",
                humantime::format_duration(period)
            )),
            Ok(false) => None,
            Err(e) => {
                tracing::warn!(error = %e, "reading the webhook's failures failed");
                None
            }
        }
    }

    async fn disable(
        &self,
        channel: &Channel,
        webhook: &Webhook,
        reason: &str,
    ) -> Result<(), DisableError> {
        let db = self.pool.get().await?;
        let Some((disabled, at)) = webhooks::disable(&db, webhook.id, reason).await? else {
            return Ok(()); // Someone else disabled it first and announces it.
        };
        drop(db);
        tracing::warn!(webhook_id = %disabled.id, key = %disabled.key, tenant = %disabled.tenant, reason, "webhook disabled");
        self.metrics.webhook_disabled();
        self.announce(channel, &disabled, at).await
    }

    /// Publishes the `hookrelay.webhook_disabled` event (confirmed), then notes it
    /// announced. Its id comes from the webhook and the time it was disabled, so an
    /// announcement repeated after a crash is fanned out once.
    async fn announce(
        &self,
        channel: &Channel,
        disabled: &Webhook,
        at: OffsetDateTime,
    ) -> Result<(), DisableError> {
        let mut event = Event::operational(
            &disabled.tenant,
            WEBHOOK_DISABLED,
            json!({
                "event": WEBHOOK_DISABLED,
                "data": {
                    "webhook_id": disabled.id,
                    "key": disabled.key,
                    "url": disabled.url,
                    "reason": disabled.disabled_reason,
                    "disabled_at": at.format(&Rfc3339).unwrap_or_default(),
                },
            }),
        );
        // One id per disabling, so a repeated announcement is fanned out once.
        event.id = hookrelay_model::EventId::parse(format!(
            "hookrelay-webhook-disabled-{}-{}",
            disabled.id,
            at.unix_timestamp_nanos() / 1000
        ))?;
        let headers = trace::inject(&tracing::Span::current(), None, Headers::new());
        let properties = amqp::persistent(&event.id, headers.into_table())?;
        amqp::publish_confirmed(
            channel,
            &self.events_exchange,
            &event.routing_key(),
            &event.to_json(),
            properties,
        )
        .await?;
        let db = self.pool.get().await?;
        webhooks::announced(&db, disabled.id, at).await?;
        Ok(())
    }

    async fn announce_batch(&self, channel: &Channel) -> Result<(), DisableError> {
        let pending = webhooks::to_announce(&self.pool.get().await?, 100).await?;
        for (webhook, at) in pending {
            self.announce(channel, &webhook, at).await?;
            tracing::info!(webhook_id = %webhook.id, "disabled webhook announced");
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
enum DisableError {
    #[error(transparent)]
    Store(#[from] hookrelay_store::StoreError),
    #[error(transparent)]
    Broker(#[from] amqp::AmqpError),
    #[error(transparent)]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("the announcement's event id: {0}")]
    Id(#[from] hookrelay_model::Invalid),
}

/// Announces what was disabled but not announced yet (a sender stopped in between),
/// every `every` while `channel` is open.
pub(crate) async fn announce_pending(
    disabler: Arc<Disabler>,
    channel: Channel,
    every: Duration,
    mut shutdown: Shutdown,
) {
    while channel.status().connected() && !shutdown.is_triggered() {
        if let Err(e) = disabler.announce_batch(&channel).await {
            tracing::warn!(error = %e, "announcing disabled webhooks failed; trying again later");
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = shutdown.wait() => return,
        }
    }
}
