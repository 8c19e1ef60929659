//! Why a message is in the dead-letter queue: every reason hookrelay writes, in one
//! place. The router and the sender write them (`x-hookrelay-reason`), the admin API
//! and the console read them back, metrics count by them.

use std::fmt;

/// The reason a message was dead-lettered. Its text is what the header carries and
/// what operators filter on; a reason hookrelay did not write (the broker's own, such
/// as `delivery_limit`, or an older version's) is kept as `Other`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeadLetterReason {
    /// The router: the event breaks the wire contract.
    InvalidEvent,
    /// The router: the database refused the event on its own.
    EventCannotBeStored,
    /// The router: the payload breaks its type's schema in the event catalog
    /// (`HOOKRELAY_SCHEMA_VALIDATION=enforce`); the error names the path and the rule.
    SchemaViolation,
    /// The sender: the delivery message cannot be read.
    InvalidDeliveryMessage,
    /// The sender: no row for the delivery (purged by retention, or never committed).
    DeliveryNotFound,
    /// The sender: the delivery's webhook was deleted.
    WebhookDeleted,
    /// The sender: the webhook on the row belongs to another tenant than the delivery.
    WebhookOfAnotherTenant,
    /// The last attempt of the round failed with a retryable failure.
    RetriesExhausted,
    /// The failure is not in the webhook's `retry_on`.
    NotRetryable,
    /// Trying again cannot succeed: a bad URL, an unresolved variable, a blocked address.
    PermanentFailure,
    /// The request was made but the database refused its record for good.
    AttemptNotRecorded,
    /// The database refused for good what the sender needed before the request.
    DeliveryCouldNotBeHandled,
    /// A reason hookrelay does not write.
    Other(String),
}

/// Each reason hookrelay writes with its text, in the order the docs list them.
const OURS: [(DeadLetterReason, &str); 12] = [
    (DeadLetterReason::InvalidEvent, "invalid event"),
    (
        DeadLetterReason::EventCannotBeStored,
        "event cannot be stored",
    ),
    (DeadLetterReason::SchemaViolation, "schema violation"),
    (
        DeadLetterReason::InvalidDeliveryMessage,
        "invalid delivery message",
    ),
    (DeadLetterReason::DeliveryNotFound, "delivery not found"),
    (DeadLetterReason::WebhookDeleted, "webhook deleted"),
    (
        DeadLetterReason::WebhookOfAnotherTenant,
        "webhook belongs to another tenant",
    ),
    (DeadLetterReason::RetriesExhausted, "retries exhausted"),
    (DeadLetterReason::NotRetryable, "not retryable"),
    (DeadLetterReason::PermanentFailure, "permanent failure"),
    (DeadLetterReason::AttemptNotRecorded, "attempt not recorded"),
    (
        DeadLetterReason::DeliveryCouldNotBeHandled,
        "delivery could not be handled",
    ),
];

impl DeadLetterReason {
    /// The text in `x-hookrelay-reason` and in the `reason` label of metrics.
    pub fn as_str(&self) -> &str {
        if let Self::Other(text) = self {
            return text;
        }
        OURS.iter()
            .find(|(r, _)| r == self)
            .map_or("", |(_, text)| text)
    }

    /// Reads a reason back from its text.
    pub fn parse(text: &str) -> Self {
        OURS.iter()
            .find(|(_, t)| *t == text)
            .map_or_else(|| Self::Other(text.to_owned()), |(r, _)| r.clone())
    }

    /// Every reason hookrelay writes.
    pub fn ours() -> impl Iterator<Item = Self> {
        OURS.into_iter().map(|(r, _)| r)
    }

    /// Whether the sender wrote it without settling the delivery (its row stays
    /// pending): a replay sends it again whatever its round.
    pub fn unsettled(&self) -> bool {
        matches!(
            self,
            Self::AttemptNotRecorded | Self::DeliveryCouldNotBeHandled
        )
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Read as its text, so `Option<DeadLetterReason>::as_deref` compares with a `&str`.
impl std::ops::Deref for DeadLetterReason {
    type Target = str;

    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl serde::Serialize for DeadLetterReason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_reads_back_as_itself_and_others_are_kept() {
        let all: Vec<_> = DeadLetterReason::ours().collect();
        assert_eq!(all.len(), OURS.len());
        for reason in all {
            assert!(!reason.as_str().is_empty(), "{reason:?} has a text");
            assert_eq!(DeadLetterReason::parse(reason.as_str()), reason);
        }
        let broker = DeadLetterReason::parse("delivery_limit");
        assert_eq!(broker, DeadLetterReason::Other("delivery_limit".into()));
        assert_eq!(broker.as_str(), "delivery_limit");
    }

    #[test]
    fn only_the_unrecorded_ones_are_unsettled() {
        let unsettled: Vec<_> = DeadLetterReason::ours()
            .filter(DeadLetterReason::unsettled)
            .map(|r| r.to_string())
            .collect();
        assert_eq!(
            unsettled,
            ["attempt not recorded", "delivery could not be handled"]
        );
    }
}
