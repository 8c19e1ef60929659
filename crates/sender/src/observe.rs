//! The per-webhook metrics of a recorded attempt, and the end-to-end latency of a
//! delivered one.

use hookrelay_metrics::webhooks::ONE_OFF;
use hookrelay_metrics::{Metrics, attempt};
use hookrelay_model::retry::Failure;
use hookrelay_model::webhook::Webhook;
use hookrelay_store::deliveries::SendJob;
use time::OffsetDateTime;

use crate::request::Answer;

pub(crate) fn delivered(
    metrics: &Metrics,
    job: &SendJob,
    webhook: Option<&Webhook>,
    answer: &Answer,
) {
    record(metrics, job, webhook, attempt::DELIVERED, answer);
    let since_received = OffsetDateTime::now_utc() - job.received_at;
    metrics.delivered_after(since_received.as_seconds_f64());
}

pub(crate) fn retried(
    metrics: &Metrics,
    job: &SendJob,
    webhook: Option<&Webhook>,
    answer: &Answer,
) {
    record(metrics, job, webhook, attempt::RETRY, answer);
}

pub(crate) fn failed(metrics: &Metrics, job: &SendJob, webhook: Option<&Webhook>, answer: &Answer) {
    record(metrics, job, webhook, attempt::FAILED, answer);
}

fn record(
    metrics: &Metrics,
    job: &SendJob,
    webhook: Option<&Webhook>,
    outcome: &str,
    answer: &Answer,
) {
    let key = webhook.map_or(ONE_OFF, |w| w.key.as_str());
    // A refusal before any request (no URL, blocked destination) has no latency.
    let requested = answer.status.is_some()
        || matches!(answer.failure, Some(Failure::Timeout | Failure::Connect));
    let seconds = requested.then_some(answer.latency.as_secs_f64());
    metrics.webhook_attempt(&job.tenant, key, outcome, seconds);
}
