//! Publishing to the dead-letter exchange with headers that say why. Used by the
//! router (events it cannot route) and the sender (deliveries that failed).

use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};

use hookrelay_model::wire;
use hookrelay_model::{DeadLetterReason, Topology};

use crate::{self as amqp, AmqpError, Headers};

/// Why a message is dead-lettered, and where it came from.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Why, from the one list of reasons.
    pub reason: DeadLetterReason,
    /// The detail: the validation error, the last HTTP status or transport error.
    pub error: Option<String>,
    pub source_queue: String,
    pub routing_key: String,
    /// Further `x-hookrelay-*` headers (attempts, webhook id, event id, ...).
    pub extra: Headers,
}

/// Publishes `body` to `{prefix}.dead-letter` keeping its original properties and
/// headers, adding the reason headers; returns once the broker confirmed it.
pub async fn publish(
    channel: &Channel,
    topology: &Topology,
    body: &[u8],
    original: &BasicProperties,
    letter: DeadLetter,
) -> Result<(), AmqpError> {
    let mut table = original.headers().clone().unwrap_or_default();
    let mut add = letter
        .extra
        .text(wire::HEADER_REASON, letter.reason.as_str())
        .text(wire::HEADER_SOURCE_QUEUE, letter.source_queue)
        .text(wire::HEADER_ROUTING_KEY, letter.routing_key.clone())
        .text(wire::HEADER_DEAD_LETTERED_AT, now_rfc3339());
    if let Some(error) = letter.error {
        add = add.text(wire::HEADER_ERROR, truncate(&error, 2000));
    }
    merge(&mut table, add.into_table());
    // The dead letter continues the trace of whoever dead-letters it.
    let table = crate::trace::inject(&tracing::Span::current(), None, Headers::from_table(table))
        .into_table();
    let properties = original.clone().with_headers(table).with_delivery_mode(2);
    amqp::publish_confirmed(
        channel,
        &topology.dead_letter_exchange(),
        &letter.routing_key,
        body,
        properties,
    )
    .await
}

/// The properties of a message from upstream with every `x-hookrelay-*` header
/// removed (in any case): only hookrelay may say what a dead letter is, whose it is
/// and why, since the dead-letter tools act on what those headers say.
pub fn without_hookrelay_headers(original: &BasicProperties) -> BasicProperties {
    let Some(headers) = original.headers() else {
        return original.clone();
    };
    let mut kept = FieldTable::default();
    for (k, v) in headers.inner() {
        let name = k.as_str();
        let ours = name
            .get(..wire::HEADER_PREFIX.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(wire::HEADER_PREFIX));
        if !ours {
            kept.insert(k.clone(), v.clone());
        }
    }
    original.clone().with_headers(kept)
}

fn merge(into: &mut FieldTable, from: FieldTable) {
    for (k, v) in from.inner() {
        into.insert(k.clone(), v.clone());
    }
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Cuts text at a character boundary at or below `max` bytes.
pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}
