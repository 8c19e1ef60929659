//! W3C trace context across hops: AMQP headers in and out, HTTP headers out.
//!
//! Each hop opens a span (publish, route, attempt) whose parent is the context found
//! in the incoming message, and writes its own context into what it sends next, so
//! upstream → router → sender → receiver is one trace. Without an OpenTelemetry
//! layer installed, spans carry no context; the incoming headers are then copied on
//! as they are, so an upstream's trace still reaches the receiver.

use lapin::BasicProperties;
use lapin::types::FieldTable;
use opentelemetry::propagation::{Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::headers::{HeaderExtractor, HeaderInjector, Headers, header_text};

/// Makes `span` a child of the trace context in the message's headers, if any.
pub fn continue_from(span: &tracing::Span, properties: &BasicProperties) {
    let parent = TraceContextPropagator::new().extract(&HeaderExtractor(properties));
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
}

/// Adds `span`'s trace context to outgoing headers; without one, copies the incoming
/// message's trace headers.
pub fn inject(
    span: &tracing::Span,
    incoming: Option<&BasicProperties>,
    headers: Headers,
) -> Headers {
    context_headers(span, incoming)
        .into_iter()
        .fold(headers, |headers, (key, value)| headers.text(key, value))
}

/// Headers for a message that continues a stored trace (a manual redelivery, a
/// replay): `span` becomes a child of it, so the new attempts join the event's
/// trace. Without an OpenTelemetry layer the stored trace is written on as it is.
pub fn continue_stored(span: &tracing::Span, trace_id: Option<&str>, headers: Headers) -> Headers {
    let Some(parent) = trace_id.and_then(remote_parent) else {
        return inject(span, None, headers);
    };
    let _ = span.set_parent(parent.clone());
    if span.context().span().span_context().is_valid() {
        return inject(span, None, headers);
    }
    let mut table: FieldTable = headers.into_table();
    TraceContextPropagator::new().inject_context(&parent, &mut HeaderInjector(&mut table));
    Headers::from_table(table)
}

/// A stored trace id as a remote parent (with a fresh span id: the original span
/// is long closed).
fn remote_parent(trace_id: &str) -> Option<opentelemetry::Context> {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    let trace_id = TraceId::from_hex(trace_id).ok()?;
    let mut span_id = [0u8; 8];
    getrandom::fill(&mut span_id).ok()?;
    let context = SpanContext::new(
        trace_id,
        SpanId::from_bytes(span_id),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    context
        .is_valid()
        .then(|| opentelemetry::Context::new().with_remote_span_context(context))
}

/// Writes `span`'s trace context through any injector (HTTP headers); returns false
/// when the span has none.
pub fn inject_into(span: &tracing::Span, injector: &mut dyn Injector) -> bool {
    let context = span.context();
    if !context.span().span_context().is_valid() {
        return false;
    }
    TraceContextPropagator::new().inject_context(&context, injector);
    true
}

/// The W3C trace headers (`traceparent`, `tracestate`) that carry `span`'s context
/// on; without one, the incoming message's as they are.
pub fn context_headers(
    span: &tracing::Span,
    incoming: Option<&BasicProperties>,
) -> Vec<(&'static str, String)> {
    struct Pairs(Vec<(&'static str, String)>);
    impl Injector for Pairs {
        fn set(&mut self, key: &str, value: String) {
            for known in [
                hookrelay_model::wire::HEADER_TRACEPARENT,
                hookrelay_model::wire::HEADER_TRACESTATE,
            ] {
                if key == known {
                    self.0.push((known, value.clone()));
                }
            }
        }
    }
    let mut pairs = Pairs(Vec::new());
    if inject_into(span, &mut pairs) {
        return pairs.0;
    }
    let Some(props) = incoming else {
        return Vec::new();
    };
    [
        hookrelay_model::wire::HEADER_TRACEPARENT,
        hookrelay_model::wire::HEADER_TRACESTATE,
    ]
    .into_iter()
    .filter_map(|k| header_text(props, k).map(|v| (k, v)))
    .collect()
}

/// The trace id of `span` (32 hex digits), else the one in the incoming headers.
pub fn trace_id(span: &tracing::Span, incoming: Option<&BasicProperties>) -> Option<String> {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    if span_context.is_valid() {
        return Some(span_context.trace_id().to_string());
    }
    let traceparent = header_text(incoming?, hookrelay_model::wire::HEADER_TRACEPARENT)?;
    let id = traceparent.split('-').nth(1)?;
    (id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit())).then(|| id.to_owned())
}
