//! The event envelope: the one body format upstreams publish (docs/wire-contract.md).
//!
//! Parsing is strict and every error names the field that is wrong, because the
//! publisher is usually another team's service and a vague error costs them hours.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use crate::ids::{EventId, OrderingKey};

pub use crate::ids::MAX_ID_CHARS;
/// Longest tenant and event type, in bytes (both go into the routing key).
pub const MAX_NAME_CHARS: usize = 120;
/// Default body size limit (`HOOKRELAY_MAX_EVENT_BYTES`).
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;

/// How the event was initiated (OneSchema's trigger types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum TriggerType {
    User,
    Api,
    Automation,
}

/// One event as published to the `{prefix}.events` exchange, posted to
/// `POST /v1/events` or given to `hookrelay publish`. docs/wire-contract.md explains
/// every field.
// Its JSON Schema (`json_schema`) is derived from this type; `Event::validate` checks
// what a schema cannot say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = EventEnvelope))]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Unique per tenant: the de-duplication key. An event whose (tenant, id)
    /// hookrelay has already recorded is not fanned out again. 1 to 255 bytes, no
    /// control characters. Publish it as the AMQP message_id too.
    #[cfg_attr(feature = "openapi", schema(value_type = Text))]
    pub id: EventId,
    /// The organisation the event belongs to. Only this tenant's webhooks can receive
    /// it. ASCII letters, digits, `_` and `-`; 1 to 120 bytes. First word of the
    /// routing key.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9_-]{1,120}$"))]
    pub tenant: String,
    /// The event type, matched against each webhook's event types. ASCII letters,
    /// digits, `_`, `-`, `.` and `:`; 1 to 120 bytes. Rest of the routing key.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9_.:-]{1,120}$"))]
    pub event_type: String,
    /// When the event happened: an RFC 3339 date-time with a UTC offset, e.g.
    /// 2024-04-24T17:20:14.659349Z.
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// Dromo's developmentMode. Stored (managed) webhooks fire only for events whose
    /// development_mode equals their own; not considered for webhook_keys or
    /// webhook_url.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(default = false))]
    pub development_mode: bool,
    /// Name of the tenant's environment (e.g. Production, Sandbox) whose variables
    /// fill `{{NAME}}` placeholders in webhook URLs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Text>))]
    pub environment: Option<String>,
    /// Dromo's importIdentifier; matched against a managed webhook's import
    /// identifiers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Text>))]
    pub import_identifier: Option<String>,
    /// Dromo's saved schema id; matched against a managed webhook's schema ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Text>))]
    pub schema_id: Option<String>,
    /// The import or embed session the event belongs to (e.g. OneSchema's embed id as
    /// a string). Stored for looking events up by session; not used for matching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Text>))]
    pub session_id: Option<String>,
    /// Events of this tenant with the same ordering key are delivered to each
    /// `ordered` webhook one at a time, in the order the router recorded them (for one
    /// publisher publishing in order on one channel, its publish order:
    /// docs/wire-contract.md). Without it, or to an unordered webhook, events go in
    /// parallel. 1 to 255 characters, no control characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(inline))]
    pub ordering_key: Option<OrderingKey>,
    /// OneSchema's trigger type: how the event was initiated. Stored; not used for
    /// matching.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger_type: Option<TriggerType>,
    /// OneSchema's eventWebhookKeys. When present, the event goes only to the
    /// tenant's webhooks with these keys that subscribe to its type; an empty list
    /// means no stored webhook receives it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Vec<Text>>))]
    pub webhook_keys: Option<Vec<String>>,
    /// A one-off Dromo basic webhook. When present, the event is delivered only to
    /// this URL, as the form body uploadId=<upload_id or id>, and to no stored
    /// webhook. Must start with http:// or https://, have a non-empty host and hold
    /// no whitespace, control characters or `{{`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(
        feature = "openapi",
        schema(
            pattern = r"^https?://(?!.*\{\{)[^/?#\[\]\s\u0000-\u001f\u007f-\u009f]+(?=[/?#]|$)[^\s\u0000-\u001f\u007f-\u009f]*$"
        )
    )]
    pub webhook_url: Option<String>,
    /// The uploadId a basic (form) webhook receives; the event id when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Text>))]
    pub upload_id: Option<String>,
    /// JSON pointers (RFC 6901) into the payload; what they point at is removed from
    /// every JSON webhook body. A pointer to nothing is ignored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[cfg_attr(feature = "openapi", schema(pattern = "^/", default = json!([])))]
    pub private_fields: Vec<String>,
    /// The JSON body that JSON webhooks receive, minus private_fields. Must be an
    /// object.
    #[cfg_attr(feature = "openapi", schema(value_type = Payload))]
    pub payload: Value,
}

impl Event {
    /// An event hookrelay publishes itself (`hookrelay.webhook_disabled`), with a
    /// fresh id and the current time; every optional field empty.
    pub fn operational(tenant: &str, event_type: &str, payload: Value) -> Self {
        Self {
            id: EventId::fresh("hookrelay"),
            tenant: tenant.to_owned(),
            event_type: event_type.to_owned(),
            occurred_at: OffsetDateTime::now_utc(),
            development_mode: false,
            environment: None,
            import_identifier: None,
            schema_id: None,
            session_id: None,
            ordering_key: None,
            trigger_type: None,
            webhook_keys: None,
            webhook_url: None,
            upload_id: None,
            private_fields: Vec::new(),
            payload,
        }
    }
}

/// Why an envelope was refused. The text is what the publisher sees (HTTP 400 body,
/// dead-letter `x-hookrelay-reason`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("event is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("field `{field}`: {problem}")]
    Field { field: String, problem: String },
}

impl From<&EnvelopeError> for crate::error::ErrorBody {
    fn from(e: &EnvelopeError) -> Self {
        Self {
            error: e.to_string(),
            field: e.field_name().map(str::to_owned),
        }
    }
}

impl EnvelopeError {
    fn field(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Field {
            field: field.into(),
            problem: problem.into(),
        }
    }

    /// The field that was wrong, when the error is about one.
    pub fn field_name(&self) -> Option<&str> {
        match self {
            Self::Field { field, .. } => Some(field),
            _ => None,
        }
    }
}

impl Event {
    /// Parses and validates one envelope from raw bytes.
    pub fn from_slice(body: &[u8], max_bytes: usize) -> Result<Self, EnvelopeError> {
        check_size(body, max_bytes)?;
        let value: Value =
            serde_json::from_slice(body).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
        Self::from_value(value)
    }

    /// Validates an already parsed JSON value as an envelope.
    pub fn from_value(value: Value) -> Result<Self, EnvelopeError> {
        if !value.is_object() {
            return Err(EnvelopeError::field("$", "the event must be a JSON object"));
        }
        let event: Event = serde_path_to_error::deserialize(value).map_err(serde_error)?;
        event.validate()?;
        Ok(event)
    }

    /// Checks every rule of the wire contract that serde's types cannot express.
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        check_name("tenant", &self.tenant, tenant_char)?;
        check_name("type", &self.event_type, type_char)?;
        for (field, value) in [
            ("environment", &self.environment),
            ("import_identifier", &self.import_identifier),
            ("schema_id", &self.schema_id),
            ("session_id", &self.session_id),
            ("upload_id", &self.upload_id),
        ] {
            if let Some(v) = value {
                check_text(field, v, MAX_ID_CHARS)?;
            }
        }
        if let Some(keys) = &self.webhook_keys {
            for (i, key) in keys.iter().enumerate() {
                check_text(&format!("webhook_keys[{i}]"), key, MAX_ID_CHARS)?;
            }
        }
        if let Some(url) = &self.webhook_url {
            check_http_url("webhook_url", url)?;
            if url.contains("{{") {
                // Variables belong to the tenant's stored webhooks, never to upstreams.
                return Err(EnvelopeError::field(
                    "webhook_url",
                    "may not hold {{placeholders}}; only stored webhooks' URLs use environment variables",
                ));
            }
        }
        for (i, pointer) in self.private_fields.iter().enumerate() {
            if !pointer.starts_with('/') {
                return Err(EnvelopeError::field(
                    format!("private_fields[{i}]"),
                    "must be a JSON pointer starting with `/` (e.g. `/data/headless/review_url`)",
                ));
            }
        }
        if !self.payload.is_object() {
            return Err(EnvelopeError::field("payload", "must be a JSON object"));
        }
        if let Some((path, problem)) = find_unstorable(&self.payload, "payload") {
            return Err(EnvelopeError::field(path, problem));
        }
        Ok(())
    }

    /// AMQP routing key on the events exchange: `{tenant}.{type}`.
    pub fn routing_key(&self) -> String {
        format!("{}.{}", self.tenant, self.event_type)
    }

    /// The payload with every `private_fields` pointer removed: what a webhook body holds.
    pub fn public_payload(&self) -> Value {
        let mut payload = self.payload.clone();
        for pointer in &self.private_fields {
            remove_pointer(&mut payload, pointer);
        }
        payload
    }

    /// The `uploadId` a basic webhook receives.
    pub fn upload_id(&self) -> &str {
        self.upload_id.as_deref().unwrap_or(&self.id)
    }

    pub fn to_json(&self) -> Vec<u8> {
        // Serializing a struct of strings, bools and `Value`s cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// A stored envelope as a caller without access to private fields sees it: every
/// `private_fields` pointer removed from its `payload`, and the list itself dropped.
pub fn redact_private_fields(envelope: &mut Value) {
    let pointers: Vec<String> = match envelope.get_mut("private_fields").map(Value::take) {
        Some(Value::Array(items)) => items
            .into_iter()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    };
    if let Some(map) = envelope.as_object_mut() {
        map.remove("private_fields");
    }
    if let Some(payload) = envelope.get_mut("payload") {
        for pointer in &pointers {
            remove_pointer(payload, pointer);
        }
    }
}

/// Parses a body that is one envelope or a JSON array of envelopes (ingest and CLI).
/// Errors in an array name the element: `[3].tenant`.
pub fn parse_one_or_many(body: &[u8], max_bytes: usize) -> Result<Vec<Event>, EnvelopeError> {
    check_size(body, max_bytes)?;
    let value: Value =
        serde_json::from_slice(body).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
    match value {
        Value::Array(items) => {
            if items.is_empty() {
                return Err(EnvelopeError::field("$", "the array of events is empty"));
            }
            items
                .into_iter()
                .enumerate()
                .map(|(i, item)| {
                    Event::from_value(item).map_err(|e| match e {
                        EnvelopeError::Field { field, problem } => {
                            let field = if field == "$" {
                                format!("[{i}]")
                            } else {
                                format!("[{i}].{field}")
                            };
                            EnvelopeError::Field { field, problem }
                        }
                        other => other,
                    })
                })
                .collect()
        }
        other => Event::from_value(other).map(|e| vec![e]),
    }
}

/// The schema of the envelope's text fields, as `check_text` has them: 1 to 255
/// characters, no control characters.
#[cfg(feature = "openapi")]
struct Text;

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Text {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::text::schema(MAX_ID_CHARS).into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Text {}

/// The schema of `payload`, as `find_unstorable` has it: an object whose keys and strings,
/// however deep, hold no NUL (Postgres cannot store one in `jsonb`).
#[cfg(feature = "openapi")]
struct Payload;

#[cfg(feature = "openapi")]
const NO_NUL_PATTERN: &str = r"^[^\u0000]*$";

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Payload {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        object_without_nul().into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Payload {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push(("JsonWithoutNul".into(), json_without_nul()));
    }
}

/// A string without NUL.
#[cfg(feature = "openapi")]
fn string_without_nul() -> utoipa::openapi::schema::ObjectBuilder {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(NO_NUL_PATTERN))
}

/// An object whose keys hold no NUL and whose values are [`json_without_nul`]: the
/// payload, and the object case of any value inside it.
#[cfg(feature = "openapi")]
fn object_without_nul() -> utoipa::openapi::schema::ObjectBuilder {
    use utoipa::openapi::Ref;
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(string_without_nul()))
        .additional_properties(Some(Ref::from_schema_name("JsonWithoutNul")))
}

/// Any JSON value whose keys and strings hold no NUL, at any depth.
#[cfg(feature = "openapi")]
fn json_without_nul() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    use utoipa::openapi::Ref;
    use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, SchemaType, Type};
    let itself = || Ref::from_schema_name("JsonWithoutNul");
    AnyOfBuilder::new()
        .item(string_without_nul())
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Number)
                .minimum(Some(-MAX_JSON_NUMBER))
                .maximum(Some(MAX_JSON_NUMBER)),
        )
        .item(ObjectBuilder::new().schema_type(SchemaType::from_iter([Type::Boolean, Type::Null])))
        .item(ArrayBuilder::new().items(itself()))
        .item(object_without_nul())
        .description(Some(
            "Any JSON value without a NUL character in a key or a string, and without a \
             number beyond ±1e300.",
        ))
        .into()
}

/// The envelope's JSON Schema (draft 2020-12), derived from [`Event`]: what
/// docs/event-envelope.schema.json holds and the api serves. The schemas it refers
/// to are its `$defs`.
#[cfg(feature = "openapi")]
pub fn json_schema() -> Value {
    use utoipa::{PartialSchema, ToSchema};
    let mut defs = Vec::new();
    Event::schemas(&mut defs);
    let mut out = serde_json::Map::new();
    out.insert(
        "$schema".into(),
        "https://json-schema.org/draft/2020-12/schema".into(),
    );
    out.insert("title".into(), "hookrelay event envelope".into());
    if let Value::Object(schema) = serde_json::to_value(Event::schema()).unwrap_or_default() {
        out.extend(schema);
    }
    let note = "Generated from `Event` in crates/model/src/envelope.rs, which decides \
        where the two differ. Known approximations: `occurred_at` is checked \
        by hookrelay whatever a validator does with `format`; the body size limit \
        (HOOKRELAY_MAX_EVENT_BYTES, 1 MiB by default) cannot be expressed. An optional \
        field given as `null` is the same as the field left out.";
    let description = match out.get("description").and_then(Value::as_str) {
        Some(own) => format!("{own}\n\n{note}"),
        None => note.to_owned(),
    };
    out.insert("description".into(), description.into());
    if !defs.is_empty() {
        let defs = defs
            .into_iter()
            .map(|(name, schema)| (name, serde_json::to_value(schema).unwrap_or_default()))
            .collect();
        out.insert("$defs".into(), Value::Object(defs));
    }
    let mut schema = Value::Object(out);
    local_refs(&mut schema);
    schema
}

/// utoipa refers to components (`#/components/schemas/X`); a JSON Schema of its own
/// refers to its `$defs`.
#[cfg(feature = "openapi")]
fn local_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(target) if key == "$ref" => {
                        if let Some(name) = target.strip_prefix("#/components/schemas/") {
                            *target = format!("#/$defs/{name}");
                        }
                    }
                    other => local_refs(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(local_refs),
        _ => {}
    }
}

fn check_size(body: &[u8], limit: usize) -> Result<(), EnvelopeError> {
    if body.len() > limit {
        return Err(EnvelopeError::TooLarge {
            size: body.len(),
            limit,
        });
    }
    Ok(())
}

fn serde_error(err: serde_path_to_error::Error<serde_json::Error>) -> EnvelopeError {
    let path = err.path().to_string();
    let inner = err.into_inner().to_string();
    let field = field_of(&path, &inner).unwrap_or("$").to_owned();
    if inner.starts_with("missing field `") {
        return EnvelopeError::field(field, "is required");
    }
    if inner.starts_with("unknown field `") {
        return EnvelopeError::field(field, "is not a field of the event envelope");
    }
    EnvelopeError::field(field, inner)
}

/// The field a serde error is about: serde reports a missing or unknown field at its
/// parent's path (`.`), with the name only in the message. None for the whole value.
pub fn field_of<'a>(path: &'a str, message: &'a str) -> Option<&'a str> {
    for prefix in ["missing field `", "unknown field `"] {
        if let Some(rest) = message.strip_prefix(prefix) {
            return rest.split('`').next();
        }
    }
    (path != ".").then_some(path)
}

fn check_text(field: &str, value: &str, max: usize) -> Result<(), EnvelopeError> {
    crate::text::check_text(field, value, max).map_err(|e| EnvelopeError::field(e.field, e.problem))
}

fn tenant_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// The rule for tenant names wherever one arrives (envelope, admin path, stored
/// webhook): `tenant: <problem>` when it is broken.
pub fn check_tenant(tenant: &str) -> Result<(), crate::Invalid> {
    check_name_as_invalid("tenant", tenant, tenant_char)
}

fn type_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')
}

/// The rule for event type names wherever one arrives (envelope, the event catalog):
/// `{field}: <problem>` when it is broken.
pub fn check_event_type(field: &str, name: &str) -> Result<(), crate::Invalid> {
    check_name_as_invalid(field, name, type_char)
}

fn check_name_as_invalid(
    field: &str,
    value: &str,
    allowed: fn(char) -> bool,
) -> Result<(), crate::Invalid> {
    check_name(field, value, allowed).map_err(|e| match e {
        EnvelopeError::Field { field, problem } => crate::Invalid::new(field, problem),
        other => crate::Invalid::new(field, other.to_string()),
    })
}

fn check_name(field: &str, value: &str, allowed: fn(char) -> bool) -> Result<(), EnvelopeError> {
    check_text(field, value, MAX_NAME_CHARS)?;
    if let Some(bad) = value.chars().find(|c| !allowed(*c)) {
        return Err(EnvelopeError::field(
            field,
            format!("contains `{bad}`; allowed are letters, digits and the documented separators"),
        ));
    }
    Ok(())
}

/// A minimal, dependency-free check; the sender parses the URL fully before sending.
pub fn check_http_url(field: &str, url: &str) -> Result<(), EnvelopeError> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| EnvelopeError::field(field, "must be an http:// or https:// URL"))?;
    crate::text::check_chars(field, url, crate::text::MAX_URL_CHARS)
        .map_err(|e| EnvelopeError::field(e.field, e.problem))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || url.chars().any(char::is_whitespace) {
        return Err(EnvelopeError::field(
            field,
            "must be an absolute URL with a host",
        ));
    }
    // Python's and other clients' URL parsers refuse a bracket that does not enclose
    // a valid IPv6 address; a webhook reaches an IPv6 host by its DNS name.
    if host.contains(['[', ']']) {
        return Err(EnvelopeError::field(
            field,
            "must name its host without `[` or `]` (an IPv6 host by its DNS name)",
        ));
    }
    Ok(())
}

/// The path of the first string or key holding `\0`, which Postgres cannot store.
/// Numbers beyond ±this are refused in payloads: Postgres keeps a JSON
/// number exactly and hands all its digits back, and the largest doubles do not read
/// back (their 309 digits round to infinity), which would leave an event no sender
/// can load.
pub const MAX_JSON_NUMBER: f64 = 1e300;

const NUL_PROBLEM: &str = "contains a NUL character (\\u0000), which cannot be stored";
const NUMBER_PROBLEM: &str = "is a number beyond ±1e300, which cannot be stored and read back";

/// The path of the first string or key holding `\0`, or number beyond
/// [`MAX_JSON_NUMBER`], and what is wrong with it.
fn find_unstorable(value: &Value, path: &str) -> Option<(String, &'static str)> {
    match value {
        Value::String(s) if s.contains('\0') => Some((path.to_owned(), NUL_PROBLEM)),
        Value::Number(n) if n.as_f64().is_some_and(|f| f.abs() > MAX_JSON_NUMBER) => {
            Some((path.to_owned(), NUMBER_PROBLEM))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .find_map(|(i, v)| find_unstorable(v, &format!("{path}[{i}]"))),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            if k.contains('\0') {
                Some((
                    format!("{path}.{}", k.replace('\0', "\\u0000")),
                    NUL_PROBLEM,
                ))
            } else {
                find_unstorable(v, &format!("{path}.{k}"))
            }
        }),
        _ => None,
    }
}

/// Removes the value a JSON pointer (RFC 6901) points at; a missing target is fine.
fn remove_pointer(root: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let last = unescape_token(last);
    let target = if parent.is_empty() {
        Some(root)
    } else {
        root.pointer_mut(parent)
    };
    match target {
        Some(Value::Object(map)) => {
            map.remove(&last);
        }
        Some(Value::Array(items)) => {
            if let Ok(i) = last.parse::<usize>()
                && i < items.len()
            {
                items.remove(i);
            }
        }
        _ => {}
    }
}

fn unescape_token(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn base() -> Value {
        json!({
            "id": "event-34cbc6e7-7f94-4a9a-8f26-e5bfbee90f18",
            "tenant": "acme",
            "type": "embed_initialized",
            "occurred_at": "2024-01-24T16:13:25.512352Z",
            "payload": {"uuid": "event-34cbc6e7", "data": {}}
        })
    }

    fn with(field: &str, value: Value) -> Value {
        let mut v = base();
        v[field] = value;
        v
    }

    fn without(field: &str) -> Value {
        let mut v = base();
        v.as_object_mut().unwrap().remove(field);
        v
    }

    fn field_of(v: Value) -> String {
        Event::from_value(v)
            .expect_err("must be refused")
            .field_name()
            .expect("names a field")
            .to_owned()
    }

    #[test]
    fn minimal_event_parses_with_defaults() {
        let e = Event::from_value(base()).unwrap();
        assert_eq!(e.tenant, "acme");
        assert!(!e.development_mode);
        assert_eq!(e.routing_key(), "acme.embed_initialized");
        assert_eq!(e.upload_id(), e.id.as_str());
    }

    #[test]
    fn every_required_field_is_named_when_missing() {
        for field in ["id", "tenant", "type", "occurred_at", "payload"] {
            assert_eq!(field_of(without(field)), field);
        }
    }

    #[test]
    fn id_length_bounds() {
        assert_eq!(field_of(with("id", json!(""))), "id");
        assert_eq!(field_of(with("id", json!("x".repeat(256)))), "id");
        assert!(Event::from_value(with("id", json!("x".repeat(255)))).is_ok());
    }

    #[test]
    fn wrong_types_name_the_field() {
        assert_eq!(field_of(with("id", json!(5))), "id");
        assert_eq!(
            field_of(with("development_mode", json!("yes"))),
            "development_mode"
        );
        assert_eq!(field_of(with("webhook_keys", json!("k"))), "webhook_keys");
        assert_eq!(
            field_of(with("webhook_keys", json!(["a", 1]))),
            "webhook_keys[1]"
        );
        assert_eq!(field_of(with("payload", json!([1]))), "payload");
        assert_eq!(
            field_of(with("occurred_at", json!("yesterday"))),
            "occurred_at"
        );
        assert_eq!(
            field_of(with("trigger_type", json!("robot"))),
            "trigger_type"
        );
    }

    #[test]
    fn tenant_and_type_must_fit_a_routing_key() {
        assert_eq!(field_of(with("tenant", json!("a.b"))), "tenant");
        assert_eq!(field_of(with("tenant", json!("a b"))), "tenant");
        assert_eq!(field_of(with("type", json!("a#b"))), "type");
        assert!(Event::from_value(with("type", json!("hookrelay.webhook_disabled"))).is_ok());
    }

    #[test]
    fn an_ordering_key_is_bounded_and_kept() {
        for bad in [
            json!(""),
            json!("a\u{7}b"),
            json!("k".repeat(256)),
            json!(7),
        ] {
            assert_eq!(field_of(with("ordering_key", bad)), "ordering_key");
        }
        let event = Event::from_value(with("ordering_key", json!("order-42"))).unwrap();
        assert_eq!(event.ordering_key.as_deref(), Some("order-42"));
        let again = Event::from_slice(&event.to_json(), DEFAULT_MAX_EVENT_BYTES).unwrap();
        assert_eq!(again, event);
        assert_eq!(Event::from_value(base()).unwrap().ordering_key, None);
    }

    #[test]
    fn optional_fields_are_checked() {
        assert_eq!(
            field_of(with("webhook_url", json!("ftp://x"))),
            "webhook_url"
        );
        assert_eq!(
            field_of(with("webhook_url", json!("https://"))),
            "webhook_url"
        );
        assert_eq!(
            field_of(with("private_fields", json!(["data"]))),
            "private_fields[0]"
        );
        assert_eq!(field_of(with("session_id", json!(""))), "session_id");
        assert_eq!(field_of(with("environment", json!("a\nb"))), "environment");
        assert_eq!(
            field_of(with("webhook_keys", json!([""]))),
            "webhook_keys[0]"
        );
        assert_eq!(field_of(with("colour", json!("red"))), "colour");
    }

    #[test]
    fn size_limit_and_non_json() {
        let body = serde_json::to_vec(&base()).unwrap();
        assert!(matches!(
            Event::from_slice(&body, 10),
            Err(EnvelopeError::TooLarge { limit: 10, .. })
        ));
        assert!(matches!(
            Event::from_slice(b"{not json", 1000),
            Err(EnvelopeError::NotJson(_))
        ));
        assert!(matches!(
            Event::from_slice(&[0xff, 0xfe], 1000),
            Err(EnvelopeError::NotJson(_))
        ));
        assert_eq!(field_of(json!("a string")), "$");
    }

    #[test]
    fn arrays_name_the_element() {
        let mut bad = base();
        bad["tenant"] = json!("");
        let body = serde_json::to_vec(&json!([base(), bad])).unwrap();
        let err = parse_one_or_many(&body, 10_000).unwrap_err();
        assert_eq!(err.field_name(), Some("[1].tenant"));
        let both = serde_json::to_vec(&json!([base(), base()])).unwrap();
        assert_eq!(parse_one_or_many(&both, 10_000).unwrap().len(), 2);
        assert!(parse_one_or_many(b"[]", 100).is_err());
    }

    #[test]
    fn a_redacted_envelope_has_no_private_field_nor_their_list() {
        let mut stored = json!({"id": "e", "payload": {"data": {"ssn": "1", "name": "a"}, "k": 1},
            "private_fields": ["/data/ssn", "/k"]});
        redact_private_fields(&mut stored);
        assert_eq!(
            stored,
            json!({"id": "e", "payload": {"data": {"name": "a"}}})
        );
        let mut plain = json!({"id": "e", "payload": {"x": 1}});
        redact_private_fields(&mut plain);
        assert_eq!(plain, json!({"id": "e", "payload": {"x": 1}}));
    }

    #[test]
    fn a_payload_number_postgres_could_not_hand_back_is_refused_naming_it() {
        let mut v = json!({"id": "e", "tenant": "acme", "type": "x",
            "occurred_at": "2024-01-24T16:13:25Z", "payload": {"data": {"n": [1, f64::MAX]}}});
        let err = Event::from_value(v.clone()).unwrap_err();
        assert_eq!(err.field_name(), Some("payload.data.n[1]"), "{err}");
        v["payload"]["data"]["n"] = json!([1, 1e300, -1e300, 12345678901234567890u64]);
        assert!(Event::from_value(v).is_ok());
    }

    #[test]
    fn private_fields_are_removed_from_the_body() {
        let mut v = base();
        v["payload"] = json!({"event": "x", "data": {"headless": {"review_url": "u", "a/b": 1, "keep": 2}}, "list": [1, 2]});
        v["private_fields"] = json!([
            "/data/headless/review_url",
            "/data/headless/a~1b",
            "/list/0",
            "/missing/x"
        ]);
        let e = Event::from_value(v).unwrap();
        assert_eq!(
            e.public_payload(),
            json!({"event": "x", "data": {"headless": {"keep": 2}}, "list": [2]})
        );
    }

    #[test]
    fn nul_characters_anywhere_are_refused_with_their_path() {
        let v = with("payload", json!({"data": {"rows": ["ok", "bad\u{0}"]}}));
        assert_eq!(field_of(v), "payload.data.rows[1]");
        assert_eq!(field_of(with("tenant", json!("a\u{0}"))), "tenant");
    }

    #[test]
    fn payload_key_order_is_kept() {
        let body = br#"{"id":"e","tenant":"t","type":"x","occurred_at":"2024-01-01T00:00:00Z","payload":{"z":1,"a":2,"m":3}}"#;
        let e = Event::from_slice(body, 10_000).unwrap();
        assert_eq!(
            serde_json::to_string(&e.public_payload()).unwrap(),
            r#"{"z":1,"a":2,"m":3}"#
        );
    }

    /// The derived JSON Schema keeps what the contract promises: required fields,
    /// no unknown ones, types, enum values and lengths.
    #[cfg(feature = "openapi")]
    #[test]
    fn the_json_schema_states_the_contract() {
        let schema = json_schema();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(
            schema["required"],
            json!(["id", "tenant", "type", "occurred_at", "payload"])
        );
        assert_eq!(schema["additionalProperties"], false);
        let p = &schema["properties"];
        let text = &schema["$defs"]["Text"];
        assert_eq!(p["id"]["$ref"], "#/$defs/Text");
        assert_eq!(
            (&text["minLength"], &text["maxLength"]),
            (&json!(1), &json!(255))
        );
        assert_eq!(p["tenant"]["pattern"], "^[A-Za-z0-9_-]{1,120}$");
        assert_eq!(p["occurred_at"]["format"], "date-time");
        assert_eq!(p["payload"]["$ref"], "#/$defs/Payload");
        assert_eq!(schema["$defs"]["Payload"]["type"], "object");
        assert_eq!(
            schema["$defs"]["JsonWithoutNul"]["anyOf"][0]["pattern"],
            "^[^\\u0000]*$"
        );
        assert_eq!(p["webhook_keys"]["items"]["$ref"], "#/$defs/Text");
        assert_eq!(p["private_fields"]["items"]["pattern"], "^/");
        let trigger = p["trigger_type"]["oneOf"][0]["$ref"].as_str().unwrap();
        let name = trigger.strip_prefix("#/$defs/").expect("a local reference");
        assert_eq!(
            schema["$defs"][name]["enum"],
            json!(["user", "api", "automation"])
        );
        assert!(!schema.to_string().contains("#/components/"));
    }

    #[test]
    fn round_trips_through_json() {
        let e = Event::from_value(with("webhook_keys", json!(["k1"]))).unwrap();
        let again = Event::from_slice(&e.to_json(), DEFAULT_MAX_EVENT_BYTES).unwrap();
        assert_eq!(e, again);
    }
}
