//! Webhooks as operators configure them: the domain types and their rules. The store
//! keeps them; the router matches them; the sender signs with their secrets.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use serde_json::Value;

use crate::destination;
use crate::error::Invalid;
use crate::filter::PayloadFilter;
use crate::headers::CustomHeaders;
use crate::ids::WebhookKey;
use crate::rate::{Bucket, DeliveryPolicy, Rate, validate_max_in_flight};
use crate::retry::RetryPolicy;
pub use crate::signing::{
    SIGNING_SECRET_PATTERN, SIGNING_SECRET_PREFIX, SigningScheme, generate_signing_secret,
    signing_key,
};
use crate::template;
use crate::text;

pub use crate::secret::Secret;

/// How the POST body is built: `json` sends the event's payload minus its private
/// fields as `application/json`; `form` sends `uploadId=<upload id>` as
/// `application/x-www-form-urlencoded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum BodyFormat {
    /// The event's payload, minus private fields, as `application/json`.
    #[default]
    Json,
    /// `uploadId=<upload id>` as `application/x-www-form-urlencoded`.
    Form,
}

impl BodyFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Form => "form",
        }
    }
}

impl std::str::FromStr for BodyFormat {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Self::Json),
            "form" => Ok(Self::Form),
            other => Err(Invalid::new(
                "format",
                format!("`{other}` is not json or form"),
            )),
        }
    }
}

/// What an ordered webhook does with the rest of a key when the key's head
/// delivery fails for good (docs/delivery-semantics.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum OnFailure {
    /// Dead-letter the head and send the key's next event.
    #[default]
    Skip,
    /// Dead-letter the head and hold the rest of the key until an operator resumes
    /// or skips it (`hookrelay deliveries resume-key` / `skip-key`).
    Block,
}

impl OnFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "skip",
            Self::Block => "block",
        }
    }
}

impl std::str::FromStr for OnFailure {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "skip" => Ok(Self::Skip),
            "block" => Ok(Self::Block),
            other => Err(Invalid::new(
                "on_failure",
                format!("`{other}` is not skip or block"),
            )),
        }
    }
}

/// An open circuit breaker: when and why it tripped, and when one held delivery is
/// next sent as a probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = WebhookBreaker))]
pub struct Breaker {
    #[serde(with = "time::serde::rfc3339")]
    pub opened_at: OffsetDateTime,
    /// Why it tripped, e.g. `10 failed attempts in a row (last: HTTP 503)` or
    /// `hanging: no answer for 5s with 8 requests in flight`.
    pub reason: String,
    #[serde(with = "time::serde::rfc3339")]
    pub next_probe_at: OffsetDateTime,
}

/// A stored webhook. Secrets are never shown: `secret` and every signing secret
/// serialize as `********`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Webhook {
    /// A time-ordered (v7) UUID.
    pub id: Uuid,
    pub tenant: String,
    /// Unique within the tenant; usable in place of `id` in paths.
    pub key: String,
    /// May hold `{{NAME}}` placeholders, resolved from the event's environment at
    /// send time. An `amqp://` or `amqps://` URL publishes to a broker; its
    /// credentials show as `********` (`amqp://********@broker.example/vhost`).
    pub url: String,
    /// The exchange an `amqp(s)://` webhook publishes to (`""`: the broker's default
    /// exchange); null for HTTP.
    pub amqp_exchange: Option<String>,
    /// The routing key of its messages; null for HTTP.
    pub amqp_routing_key: Option<String>,
    /// A broker URL's credentials (`user:password`), sealed at rest, never shown.
    #[serde(skip)]
    pub url_credentials: Option<Secret>,
    /// The event types it receives; empty means every type.
    pub event_types: Vec<String>,
    /// `********` when the webhook has a Basic-auth secret, else null.
    pub secret: Option<Secret>,
    /// Standard Webhooks signing secrets, newest first, masked. Two during a rotation
    /// with `keep_previous`. With `ed25519`, the private keys (never shown).
    pub signing_secrets: Vec<Secret>,
    /// How deliveries are signed: `hmac-sha256` (Standard Webhooks `v1`, a shared
    /// secret) or `ed25519` (`v1a`, verified with `public_keys`).
    pub signing_scheme: SigningScheme,
    /// The ed25519 public keys receivers verify `v1a` signatures with
    /// (`whpk_<base64>`), newest first: two during a rotation with `keep_previous`.
    /// Empty for HMAC.
    pub public_keys: Vec<String>,
    /// Custom headers sent with every delivery: their names (lower case), each
    /// value masked.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::headers::masked_schema))]
    pub headers: CustomHeaders,
    pub development_mode: bool,
    pub import_identifiers: Vec<String>,
    pub schema_ids: Vec<String>,
    pub format: BodyFormat,
    pub retry_on: RetryPolicy,
    /// Conditions on the payload its events must meet (docs/operations.md, Payload
    /// filters); null: none.
    #[serde(serialize_with = "filter_source")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::filter::FilterSchema>))]
    pub filter: Option<PayloadFilter>,
    pub enabled: bool,
    /// Why it is disabled (`disabled by an operator`, or the sender's
    /// automatic-disable reason); null while enabled.
    pub disabled_reason: Option<String>,
    /// When an operator paused it; null while it is not paused. While paused, its
    /// deliveries are held (status `held`): none is attempted, none ages into the
    /// dead-letter queue, and resuming sends them, oldest first.
    #[serde(with = "time::serde::rfc3339::option")]
    pub paused_at: Option<OffsetDateTime>,
    /// The circuit breaker, while it is open (tripped by a sender because the webhook
    /// kept failing or hung); null while closed. While open, its deliveries are held
    /// as for a pause; one probe at `next_probe_at` closes it again.
    pub breaker: Option<Breaker>,
    /// At most this many requests per second, minute or hour (`50/s`, `600/m`,
    /// `1000/h`), across all senders together; null: no limit. Deliveries over it
    /// are held and sent, oldest first, as the rate allows.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, example = "50/s"))]
    pub rate_limit: Option<Rate>,
    /// Requests that may go at once after a quiet spell; null: one period's worth
    /// of `rate_limit`.
    pub rate_burst: Option<u32>,
    /// Requests in flight to it at once, across all senders together; null: each
    /// sender's `--per-webhook-concurrency`.
    pub max_in_flight: Option<u16>,
    /// Deliveries of events with the same `ordering_key` go one at a time, in the
    /// order recorded.
    pub ordered: bool,
    /// When an ordered key's head fails for good: `skip` to the next, or `block` the
    /// key until an operator resumes or skips it.
    pub on_failure: OnFailure,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

fn filter_source<S: serde::Serializer>(
    filter: &Option<PayloadFilter>,
    s: S,
) -> Result<S::Ok, S::Error> {
    filter.as_ref().map(PayloadFilter::source).serialize(s)
}

/// What an operator gives to create a webhook. Unknown fields are refused.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "key": "event_webhook",
    "url": "https://{{HOST}}/hooks",
    "event_types": ["embed_initialized", "import_submitted"],
    "retry_on": ["timeout", "5xx"]
})))]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Taken from the path over HTTP, so the document leaves it out; a body that
    /// still gives it must give the path's tenant (400 otherwise).
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub tenant: String,
    // Its rule and description are the type's (`WebhookKey`).
    #[cfg_attr(feature = "openapi", schema(inline))]
    pub key: WebhookKey,
    /// An absolute http:// or https:// URL, which may hold `{{NAME}}` placeholders
    /// (letters, digits and `_`); a URL starting with a placeholder may take its
    /// scheme from it. An `amqp://` or `amqps://` URL (`amqp://user:password@host:port/vhost`)
    /// publishes each delivery to `amqp_exchange` instead; its credentials are
    /// sealed and shown as `********`.
    #[cfg_attr(
        feature = "openapi",
        schema(
            example = "https://{{HOST}}/hooks",
            max_length = 2048,
            pattern = r"^(?:(?:https?|amqps?)://(?:\{\{[A-Za-z0-9_]+\}\}|(?!\{\{)[^/?#\[\]\s\u0000-\u001f\u007f-\u009f])(?:\{\{[A-Za-z0-9_]+\}\}|(?!\{\{)[^/?#\[\]\s\u0000-\u001f\u007f-\u009f])*(?=[/?#]|$)|\{\{[A-Za-z0-9_]+\}\})(?:\{\{[A-Za-z0-9_]+\}\}|(?!\{\{)[^\s\u0000-\u001f\u007f-\u009f])*$"
        )
    )]
    pub url: String,
    /// With an `amqp(s)://` URL (required then): the exchange each delivery is
    /// published to, `""` for the default exchange. At most 255 characters of printable ASCII.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 255, pattern = "^[ -~]*$"))]
    pub amqp_exchange: Option<String>,
    /// With an `amqp(s)://` URL: the routing key (default `""`). At most 255
    /// characters of printable ASCII.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 255, pattern = "^[ -~]*$"))]
    pub amqp_routing_key: Option<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = filter_list_schema))]
    pub event_types: Vec<String>,
    /// Sent as the Basic auth password (empty user name) with every POST. Never
    /// shown again. At most 1,024 characters, no control characters (an HTTP header
    /// cannot carry them).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, max_length = 1024, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"))]
    pub secret: Option<Secret>,
    /// `whsec_` and base64 of 24 to 64 bytes; every POST is then signed with it
    /// (Standard Webhooks `webhook-signature`).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = r"^whsec_(?:(?:[A-Za-z0-9+/]{4}){8,20}(?:[A-Za-z0-9+/]{4}|[A-Za-z0-9+/]{3}=|[A-Za-z0-9+/]{2}==)?|(?:[A-Za-z0-9+/]{4}){21}[A-Za-z0-9+/]{2}==)$"))]
    pub signing_secret: Option<Secret>,
    /// `hmac-sha256` (default; `v1`) or `ed25519` (`v1a`): with `ed25519` hookrelay
    /// generates the key pair and answers its public key in `public_keys`; a
    /// `signing_secret` is then refused.
    #[serde(default)]
    pub signing_scheme: SigningScheme,
    /// Static headers sent with every POST, values sealed and never shown again;
    /// the rule is [`crate::headers`]'s (the document's description is
    /// `headers::schema`'s).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::headers::schema))]
    pub headers: CustomHeaders,
    #[serde(default)]
    pub development_mode: bool,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = filter_list_schema))]
    pub import_identifiers: Vec<String>,
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(schema_with = filter_list_schema))]
    pub schema_ids: Vec<String>,
    #[serde(default)]
    pub format: BodyFormat,
    #[serde(default)]
    pub retry_on: RetryPolicy,
    /// Conditions on the payload the webhook's events must meet, e.g. `{"all":
    /// [{"path": "data.status", "eq": "completed"}, {"path": "data.rows", "gte":
    /// 100}]}`: `eq`, `in`, `exists`, `gt`, `gte`, `lt`, `lte` on a dotted `path`,
    /// combined with `all`, `any` and `not` (docs/operations.md). 400 naming the wrong
    /// part otherwise.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::filter::FilterSchema>))]
    pub filter: Option<Value>,
    /// `COUNT/s`, `COUNT/m` or `COUNT/h` (COUNT 1 to 100,000), enforced across all
    /// senders; over it, deliveries wait (held) and go oldest first.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = r"^(?:[1-9][0-9]{0,4}|100000)/[smh]$", example = "50/s"))]
    pub rate_limit: Option<Rate>,
    /// 1 to 100,000; only with `rate_limit`. Default: the rate's COUNT.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 100000))]
    pub rate_burst: Option<u32>,
    /// 1 to 1,000 requests in flight at once, across all senders.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 1000))]
    pub max_in_flight: Option<u16>,
    /// Send the deliveries of events with the same `ordering_key` one at a time, in
    /// the order recorded (docs/delivery-semantics.md). Default false.
    #[serde(default)]
    pub ordered: bool,
    /// For an ordered webhook, when a key's head fails for good: `skip` (default)
    /// goes on with the next, `block` holds the key until an operator acts.
    #[serde(default)]
    pub on_failure: OnFailure,
}

/// A partial update: a missing or null field is left as it is, except `secret`,
/// where null removes the secret. Unknown fields (including `tenant` and
/// `signing_secret`) are refused; signing secrets change through
/// `rotate-signing-secret` (and a switch of `signing_scheme` to `ed25519`). Setting `enabled: false` records `disabled_reason:
/// "disabled by an operator"`; `enabled: true` clears the reason.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({"url": "https://example.com/v2/hooks"})))]
#[serde(deny_unknown_fields)]
pub struct WebhookUpdate {
    #[cfg_attr(feature = "openapi", schema(inline))]
    pub key: Option<WebhookKey>,
    #[cfg_attr(
        feature = "openapi",
        schema(
            max_length = 2048,
            pattern = r"^(?:(?:https?|amqps?)://(?:\{\{[A-Za-z0-9_]+\}\}|(?!\{\{)[^/?#\[\]\s\u0000-\u001f\u007f-\u009f])(?:\{\{[A-Za-z0-9_]+\}\}|(?!\{\{)[^/?#\[\]\s\u0000-\u001f\u007f-\u009f])*(?=[/?#]|$)|\{\{[A-Za-z0-9_]+\}\})(?:\{\{[A-Za-z0-9_]+\}\}|(?!\{\{)[^\s\u0000-\u001f\u007f-\u009f])*$"
        )
    )]
    pub url: Option<String>,
    /// A new exchange, or null to remove it; a new http(s) URL given without one
    /// removes it (and the routing key).
    #[serde(default, with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, max_length = 255, pattern = "^[ -~]*$"))]
    pub amqp_exchange: Option<Option<String>>,
    /// A new routing key, or null to remove it.
    #[serde(default, with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, max_length = 255, pattern = "^[ -~]*$"))]
    pub amqp_routing_key: Option<Option<String>>,
    #[cfg_attr(feature = "openapi", schema(schema_with = optional_filter_list_schema))]
    pub event_types: Option<Vec<String>>,
    /// A new secret (as when created), or null to remove it.
    #[serde(default, with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, max_length = 1024, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"))]
    pub secret: Option<Option<Secret>>,
    /// New custom headers (as when created), replacing all of them; null or `{}`
    /// removes them (the document's description is `headers::schema`'s).
    #[serde(default, with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::headers::optional_schema))]
    pub headers: Option<Option<CustomHeaders>>,
    /// A switch to `ed25519` generates a key pair at once (its public key is in the
    /// answer) and the previous newest key keeps signing beside it until the next
    /// rotation; a switch to `hmac-sha256` takes effect with the next
    /// `rotate-signing-secret`, which shows the new secret.
    pub signing_scheme: Option<SigningScheme>,
    pub development_mode: Option<bool>,
    #[cfg_attr(feature = "openapi", schema(schema_with = optional_filter_list_schema))]
    pub import_identifiers: Option<Vec<String>>,
    #[cfg_attr(feature = "openapi", schema(schema_with = optional_filter_list_schema))]
    pub schema_ids: Option<Vec<String>>,
    pub format: Option<BodyFormat>,
    pub retry_on: Option<RetryPolicy>,
    /// A new payload filter (as when created), or null to remove it.
    #[serde(default, with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<crate::filter::FilterSchema>))]
    pub filter: Option<Option<Value>>,
    pub enabled: Option<bool>,
    /// A new rate limit (as when created), or null to remove it (and its burst).
    #[serde(default, with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, pattern = r"^(?:[1-9][0-9]{0,4}|100000)/[smh]$"))]
    pub rate_limit: Option<Option<Rate>>,
    /// A new burst (the webhook must have a rate limit), or null for the default.
    #[serde(default, with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>, minimum = 1, maximum = 100000))]
    pub rate_burst: Option<Option<u32>>,
    /// A new cap on requests in flight, or null for the senders' default.
    #[serde(default, with = "double_option")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u16>, minimum = 1, maximum = 1000))]
    pub max_in_flight: Option<Option<u16>>,
    /// Switching an unordered webhook to ordered orders only events recorded after
    /// the switch (docs/delivery-semantics.md).
    pub ordered: Option<bool>,
    pub on_failure: Option<OnFailure>,
}

/// `Option<Option<T>>` for a field that may be absent (keep), null (clear) or a value.
pub mod double_option {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, T, D>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        T: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

/// A webhook URL, `{{NAME}}` placeholders allowed; at most [`text::MAX_URL_CHARS`]
/// bytes without control characters.
pub fn validate_url(url: &str) -> Result<(), Invalid> {
    text::check_text("url", url, text::MAX_URL_CHARS)?;
    template::check_url_template(url).map_err(|e| Invalid::new("url", e.to_string()))
}

/// The filters of a webhook (`event_types`, `import_identifiers`, `schema_ids`):
/// every item 1 to [`text::MAX_KEY_CHARS`] bytes without control characters.
pub fn validate_filters(
    event_types: Option<&[String]>,
    import_identifiers: Option<&[String]>,
    schema_ids: Option<&[String]>,
) -> Result<(), Invalid> {
    for (field, values) in [
        ("event_types", event_types),
        ("import_identifiers", import_identifiers),
        ("schema_ids", schema_ids),
    ] {
        if let Some(values) = values {
            text::check_list(field, values, text::MAX_KEY_CHARS)?;
        }
    }
    Ok(())
}

/// The document's schema of a filter list: what [`validate_filters`] takes.
#[cfg(feature = "openapi")]
pub fn filter_list_schema() -> utoipa::openapi::schema::Array {
    filter_list(utoipa::openapi::schema::Type::Array.into())
}

/// [`filter_list_schema`], or null (an update leaves the list as it is).
#[cfg(feature = "openapi")]
pub fn optional_filter_list_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{SchemaType, Type};
    filter_list(SchemaType::from_iter([Type::Array, Type::Null]))
}

#[cfg(feature = "openapi")]
fn filter_list(of: utoipa::openapi::schema::SchemaType) -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::ArrayBuilder;
    let item = text::schema(text::MAX_KEY_CHARS);
    ArrayBuilder::new().schema_type(of).items(item).build()
}

/// A webhook's Basic auth secret: at most [`text::MAX_SECRET_CHARS`] characters,
/// none of them a control character.
pub fn validate_secret(secret: &Secret) -> Result<(), Invalid> {
    text::check_chars("secret", secret.expose(), text::MAX_SECRET_CHARS)
}

impl NewWebhook {
    /// A webhook of `tenant` posting to `url` with every other setting at its default.
    pub fn new(tenant: impl Into<String>, key: WebhookKey, url: impl Into<String>) -> Self {
        Self {
            tenant: tenant.into(),
            key,
            url: url.into(),
            amqp_exchange: None,
            amqp_routing_key: None,
            event_types: Vec::new(),
            secret: None,
            signing_secret: None,
            signing_scheme: SigningScheme::default(),
            headers: CustomHeaders::default(),
            development_mode: false,
            import_identifiers: Vec::new(),
            schema_ids: Vec::new(),
            format: BodyFormat::default(),
            retry_on: RetryPolicy::default(),
            filter: None,
            rate_limit: None,
            rate_burst: None,
            max_in_flight: None,
            ordered: false,
            on_failure: OnFailure::default(),
        }
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        crate::envelope::check_tenant(&self.tenant)?;
        validate_url(&self.url)?;
        destination::check_given(
            &self.url,
            self.amqp_exchange.as_deref(),
            self.amqp_routing_key.as_deref(),
        )?;
        validate_filters(
            Some(&self.event_types),
            Some(&self.import_identifiers),
            Some(&self.schema_ids),
        )?;
        if let Some(s) = &self.secret {
            validate_secret(s)?;
        }
        self.signing_scheme
            .check_given(self.signing_secret.as_ref())?;
        self.headers.check(self.secret.is_some())?;
        if let Some(f) = &self.filter {
            PayloadFilter::parse("filter", f)?;
        }
        validate_policy(self.rate_limit, self.rate_burst, self.max_in_flight)?;
        if self.rate_burst.is_some() && self.rate_limit.is_none() {
            return Err(Invalid::new("rate_burst", "needs a rate_limit"));
        }
        Ok(())
    }
}

/// The delivery policy's parts that are given: a burst within bounds, a cap on
/// requests in flight within bounds.
fn validate_policy(
    rate: Option<Rate>,
    burst: Option<u32>,
    max_in_flight: Option<u16>,
) -> Result<(), Invalid> {
    if let Some(burst) = burst {
        // Any rate will do to check the burst's bounds.
        Bucket::new(rate.unwrap_or(DEFAULT_RATE), Some(burst))?;
    }
    if let Some(n) = max_in_flight {
        validate_max_in_flight(n)?;
    }
    Ok(())
}

/// Stands in for a missing rate when only a burst's bounds are checked.
const DEFAULT_RATE: Rate = Rate::per_second(1);

impl Webhook {
    /// Where a delivery to `resolved` (its URL, placeholders filled) goes.
    pub fn destination(
        &self,
        resolved: &str,
    ) -> Result<destination::Destination, destination::DestinationError> {
        destination::decide(
            resolved,
            self.amqp_exchange.as_deref(),
            self.amqp_routing_key.as_deref(),
        )
    }

    /// Its delivery policy: its rate limit with the burst, and its cap in flight.
    pub fn policy(&self) -> DeliveryPolicy {
        DeliveryPolicy {
            bucket: self
                .rate_limit
                .and_then(|rate| Bucket::new(rate, self.rate_burst).ok()),
            max_in_flight: self.max_in_flight,
        }
    }
}

impl WebhookUpdate {
    /// The rules of every field given (the secret is opaque).
    pub fn validate(&self) -> Result<(), Invalid> {
        if let Some(url) = &self.url {
            validate_url(url)?;
        }
        destination::check_names(
            self.amqp_exchange.as_ref().and_then(Option::as_deref),
            self.amqp_routing_key.as_ref().and_then(Option::as_deref),
        )?;
        if let (Some(url), Some(Some(_))) = (&self.url, &self.amqp_exchange)
            && destination::scheme_of(url) == Some(destination::Scheme::Http)
        {
            return Err(Invalid::new(
                "amqp_exchange",
                destination::DestinationError::ExchangeWithoutBroker.to_string(),
            ));
        }
        if let Some(Some(s)) = &self.secret {
            validate_secret(s)?;
        }
        if let Some(Some(headers)) = &self.headers {
            // Whether the webhook keeps a Basic-auth secret it already has is the
            // store's to check (a constraint), in the same statement as the change.
            headers.check(matches!(self.secret, Some(Some(_))))?;
        }
        if let Some(Some(f)) = &self.filter {
            PayloadFilter::parse("filter", f)?;
        }
        validate_policy(
            self.rate_limit.flatten(),
            self.rate_burst.flatten(),
            self.max_in_flight.flatten(),
        )?;
        validate_filters(
            self.event_types.as_deref(),
            self.import_identifiers.as_deref(),
            self.schema_ids.as_deref(),
        )
    }
}

/// Where a delivery goes: a configured webhook, or a basic webhook's one-off URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Webhook(Uuid),
    Url(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(text: &str) -> Result<Vec<u8>, Invalid> {
        signing_key(&Secret::new(text))
    }

    #[test]
    fn on_failure_is_skip_or_block_and_skip_by_default() {
        assert_eq!(OnFailure::default(), OnFailure::Skip);
        for policy in [OnFailure::Skip, OnFailure::Block] {
            assert_eq!(policy.as_str().parse::<OnFailure>().unwrap(), policy);
        }
        assert_eq!("halt".parse::<OnFailure>().unwrap_err().field, "on_failure");
        let new: NewWebhook = serde_json::from_value(
            serde_json::json!({"tenant": "t", "key": "k", "url": "https://x.test"}),
        )
        .unwrap();
        assert!(!new.ordered);
        assert_eq!(new.on_failure, OnFailure::Skip);
    }

    #[test]
    fn every_length_from_24_to_64_bytes_is_a_signing_key_whatever_its_last_bits() {
        use base64::Engine;
        for n in 24..=64 {
            let encoded = base64::engine::general_purpose::STANDARD.encode(vec![7u8; n]);
            assert_eq!(key_of(&format!("whsec_{encoded}")).unwrap().len(), n);
        }
        // `AB==` and `ABC=` leave low bits unused; set, they still decode.
        let a24 = "A".repeat(32);
        assert_eq!(key_of(&format!("whsec_{a24}BB==")).unwrap().len(), 25);
        assert_eq!(key_of(&format!("whsec_{a24}BBB=")).unwrap().len(), 26);
        for bad in [
            "whsec_",
            "whsec_AAAA",
            "sk_abc",
            &format!("whsec_{}", "A".repeat(92)),
        ] {
            assert!(key_of(bad).is_err(), "{bad}");
        }
    }
}
