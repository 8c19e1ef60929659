//! AMQP message headers: a builder for header tables, reading a text header, and
//! the W3C trace context's carriers.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, FieldTable, LongString};

/// Builder for header tables.
#[derive(Debug, Default, Clone)]
pub struct Headers(FieldTable);

impl Headers {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn from_table(table: FieldTable) -> Self {
        Self(table)
    }

    pub fn text(mut self, key: &str, value: impl Into<String>) -> Self {
        self.0.insert(
            key.into(),
            AMQPValue::LongString(LongString::from(value.into())),
        );
        self
    }

    pub fn int(mut self, key: &str, value: i64) -> Self {
        self.0.insert(key.into(), AMQPValue::LongLongInt(value));
        self
    }

    pub fn into_table(self) -> FieldTable {
        self.0
    }
}

/// A header as text, whatever string type the publisher used.
pub fn header_text(properties: &BasicProperties, key: &str) -> Option<String> {
    let headers = properties.headers().as_ref()?;
    match headers.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        AMQPValue::LongLongInt(i) => Some(i.to_string()),
        AMQPValue::LongInt(i) => Some(i.to_string()),
        AMQPValue::ShortInt(i) => Some(i.to_string()),
        AMQPValue::LongUInt(i) => Some(i.to_string()),
        _ => None,
    }
}

/// OpenTelemetry's propagators write trace context through this.
pub struct HeaderInjector<'a>(pub &'a mut FieldTable);

impl opentelemetry::propagation::Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0
            .insert(key.into(), AMQPValue::LongString(LongString::from(value)));
    }
}

/// OpenTelemetry's propagators read trace context through this.
pub struct HeaderExtractor<'a>(pub &'a BasicProperties);

impl opentelemetry::propagation::Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        let headers = self.0.headers().as_ref()?;
        match headers.inner().get(key)? {
            AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
            AMQPValue::ShortString(s) => Some(s.as_str()),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .headers()
            .as_ref()
            .map(|h| h.inner().keys().map(|k| k.as_str()).collect())
            .unwrap_or_default()
    }
}
