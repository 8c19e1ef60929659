//! Messages between roles, and the AMQP header names hookrelay writes.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a delivery's POST says about itself, beside its body, content type,
/// signature and authorization: the sender sends these, the portal shows them.
/// `timestamp`: the attempt's Unix time, which the signature covers too.
pub fn delivery_headers(
    delivery_id: &str,
    timestamp: i64,
    event_id: &str,
    event_type: &str,
    attempt: u32,
) -> [(&'static str, String); 5] {
    [
        ("webhook-id", delivery_id.to_owned()),
        ("webhook-timestamp", timestamp.to_string()),
        (HEADER_EVENT_ID, event_id.to_owned()),
        ("x-hookrelay-event-type", event_type.to_owned()),
        ("x-hookrelay-attempt", attempt.to_string()),
    ]
}

/// Why a message was dead-lettered (human-readable).
pub const HEADER_REASON: &str = "x-hookrelay-reason";
/// What every header hookrelay writes starts with.
pub const HEADER_PREFIX: &str = "x-hookrelay-";
/// The error or last HTTP status behind the reason.
pub const HEADER_ERROR: &str = "x-hookrelay-error";
pub const HEADER_LAST_STATUS: &str = "x-hookrelay-last-status";
pub const HEADER_ATTEMPTS: &str = "x-hookrelay-attempts";
pub const HEADER_EVENT_ID: &str = "x-hookrelay-event-id";
pub const HEADER_WEBHOOK_ID: &str = "x-hookrelay-webhook-id";
pub const HEADER_TENANT: &str = "x-hookrelay-tenant";
pub const HEADER_DELIVERY_ID: &str = "x-hookrelay-delivery-id";
/// Which queue the message was taken from before it was dead-lettered.
pub const HEADER_SOURCE_QUEUE: &str = "x-hookrelay-source-queue";
pub const HEADER_ROUTING_KEY: &str = "x-hookrelay-original-routing-key";
pub const HEADER_DEAD_LETTERED_AT: &str = "x-hookrelay-dead-lettered-at";
/// On a delivery's dead letter: the sender could not settle the delivery row (it is
/// still pending), so a replay must publish it again.
pub const HEADER_UNSETTLED: &str = "x-hookrelay-unsettled";
/// On a dead letter whose body was cut (an event over the size limit): the size of
/// the body as published, in bytes. The dead letter keeps the first
/// [`DEAD_LETTER_SAMPLE_BYTES`] only.
pub const HEADER_BODY_BYTES: &str = "x-hookrelay-body-bytes";
/// Enough of an oversized event for an operator to tell what it was (its id, tenant
/// and type are near the start), and little enough that a flood of huge events
/// cannot fill the dead-letter queue's disk or the tools' memory.
pub const DEAD_LETTER_SAMPLE_BYTES: usize = 16 * 1024;
/// W3C trace context, carried on every hop.
pub const HEADER_TRACEPARENT: &str = "traceparent";
pub const HEADER_TRACESTATE: &str = "tracestate";

/// The router → sender message: small on purpose. The sender loads the stored event
/// and webhook, so a webhook disabled or edited meanwhile is seen at send time and no
/// secret ever sits in the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryMessage {
    pub delivery_id: Uuid,
    pub tenant: String,
    pub event_id: String,
    /// `None` for a one-off basic webhook.
    pub webhook_id: Option<Uuid>,
    /// 1 for the first attempt; the sender republishes with the next number.
    pub attempt: u32,
    /// Attempts made in earlier rounds: a replay or manual redelivery starts a fresh
    /// round of retries whose attempt numbers continue the delivery's count.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub attempts_before: u32,
    /// Sent by the circuit breaker as its probe: attempted although the breaker is
    /// open (its success closes it). A retry of it is an ordinary message again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub probe: bool,
    /// Its request was already counted against the webhook's rate limit (released
    /// by the rate limiter, or admitted and then parked): sent without taking
    /// another. A retry of it is an ordinary message again.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rate_counted: bool,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl DeliveryMessage {
    /// The message of a delivery sent again after `attempts_before` attempts (a
    /// redelivery, a release of held deliveries, a breaker's probe): a fresh round
    /// whose attempt numbers continue the delivery's count.
    pub fn again(
        delivery_id: Uuid,
        tenant: &str,
        event_id: &str,
        webhook_id: Option<Uuid>,
        attempts_before: u32,
    ) -> Self {
        Self {
            delivery_id,
            tenant: tenant.to_owned(),
            event_id: event_id.to_owned(),
            webhook_id,
            attempt: attempts_before + 1,
            attempts_before,
            probe: false,
            rate_counted: false,
        }
    }

    /// This attempt's place in its round (1 for the first), which the retry schedule
    /// is indexed by.
    pub fn attempt_in_round(&self, attempt: u32) -> u32 {
        attempt.saturating_sub(self.attempts_before).max(1)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_json(body: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

/// One delivery of a router → sender message that carries several (a JSON array of
/// these): one broker message, publish, confirm and ack for a batch's deliveries of
/// one tenant, each still loaded, sent and settled on its own. Its W3C trace context
/// travels in the body, as the message's headers cannot hold one per delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchedDelivery {
    #[serde(flatten)]
    pub message: DeliveryMessage,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

/// The body of a message carrying several deliveries.
pub fn batch_to_json(parts: &[BatchedDelivery]) -> Vec<u8> {
    serde_json::to_vec(parts).unwrap_or_default()
}

/// A delivery message's body read as a batch: `None` when it is not one (a single
/// delivery's object, or something unreadable that is read as one, so it is refused
/// as one); an array that does not parse is an error.
pub fn read_batch(body: &[u8]) -> Option<Result<Vec<BatchedDelivery>, serde_json::Error>> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace())?;
    (*first == b'[').then(|| serde_json::from_slice(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: u128) -> DeliveryMessage {
        DeliveryMessage::again(Uuid::from_u128(n), "acme", "evt_1", None, 0)
    }

    #[test]
    fn a_batch_reads_back_with_each_deliverys_trace_context() {
        let parts = vec![
            BatchedDelivery {
                message: message(1),
                traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
                tracestate: Some("vendor=1".into()),
            },
            BatchedDelivery {
                message: message(2),
                traceparent: None,
                tracestate: None,
            },
        ];
        let read = read_batch(&batch_to_json(&parts)).map(Result::ok);
        assert_eq!(read, Some(Some(parts)));
    }

    #[test]
    fn what_is_a_batch_is_decided_by_the_body_shape() {
        let cases: [(&[u8], Option<bool>); 5] = [
            (b"{\"delivery_id\":1}", None),
            (b"", None),
            (b"not json", None),
            (b"  [{\"tenant\":\"acme\"}]", Some(false)),
            (b"[]", Some(true)),
        ];
        for (body, expected) in cases {
            let got = read_batch(body).map(|r| r.is_ok());
            assert_eq!(got, expected, "{}", String::from_utf8_lossy(body));
        }
    }
}
