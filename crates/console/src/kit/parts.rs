//! The pieces the console's and the portal's pages share: forms with their CSRF
//! token, fields with the API's complaint beside them, badges, values and times as
//! the API gives them, a webhook's health. maud escapes every value it renders.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde_json::{Value, json};

use super::api::{Refused, enc};
use super::failure::Failure;

/// A session whose forms carry a CSRF token (a console viewer, a portal session).
pub trait Forms {
    fn csrf(&self) -> &str;

    /// Refuses a post whose form did not carry this session's CSRF token (compared
    /// in constant time).
    fn check_csrf(&self, given: &str) -> Result<(), Failure> {
        use subtle::ConstantTimeEq;
        if bool::from(given.as_bytes().ct_eq(self.csrf().as_bytes())) {
            Ok(())
        } else {
            Err(Failure::new(
                StatusCode::FORBIDDEN,
                "This form is stale or came from another site (its CSRF token does not match \
                 your session). Reload the page and try again.",
            ))
        }
    }
}

/// The session's CSRF token, in every form that changes something.
pub fn csrf(session: &impl Forms) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf()); }
}

/// A form of one button that posts to `action` (pause, resume, redeliver...).
pub fn button(session: &impl Forms, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf(session))
            button type="submit" class=(class) { (label) }
        }
    }
}

/// A status as a badge whose text says it (colour is never the only cue).
pub fn badge(status: &str) -> Markup {
    html! { span class={ "badge " (status) } { (status) } }
}

pub fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// A value as the API gave it: text as is, null as a dash, the rest as JSON.
pub fn value(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An RFC 3339 time as `2026-12-04 01:02:03`, in UTC as stored.
pub fn when(v: &Value) -> String {
    match v.as_str() {
        Some(t) => t.replace('T', " ").chars().take(19).collect(),
        None => "–".into(),
    }
}

/// The API's refusal of a form, shown above it (and beside its field, by the page).
pub fn refusal(refused: Option<&Refused>) -> Markup {
    html! {
        @if let Some(r) = refused {
            p.error role="alert" {
                (r.error)
                @if let Some(field) = &r.field { " (field " code { (field) } ")" }
            }
        }
    }
}

/// A notice after an action.
pub fn notice(text: Option<&str>) -> Markup {
    html! {
        @if let Some(t) = text {
            p.notice role="status" { (t) }
        }
    }
}

/// Back to `to` after an action, with `notice` shown there (`?done=`).
pub fn done(to: &str, notice: &str) -> Response {
    let join = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{to}{join}done={}", enc(notice))).into_response()
}

/// A form's number as a JSON number; empty as null; anything else as typed, for the
/// API to refuse naming its field.
pub fn number_or_text<N: std::str::FromStr + Into<Value>>(s: &str) -> Value {
    match s.trim() {
        "" => Value::Null,
        t => t
            .parse::<N>()
            .map(Into::into)
            .unwrap_or_else(|_| Value::from(t)),
    }
}

/// A form's text as JSON text; empty as null.
pub fn text_or_null(s: &str) -> Value {
    match s.trim() {
        "" => Value::Null,
        t => json!(t),
    }
}

/// A form's JSON (a payload filter); empty as null; not JSON: refused naming `field`.
pub fn json_or_null(field: &str, s: &str) -> Result<Value, Refused> {
    match s.trim() {
        "" => Ok(Value::Null),
        t => serde_json::from_str(t).map_err(|e| {
            Refused::of_field(
                StatusCode::BAD_REQUEST,
                format!("the {field} is not JSON: {e}"),
                field,
            )
        }),
    }
}

/// Custom headers typed one per line as `Name: value`, as the API's JSON object
/// (empty lines skipped); no line: `None`. A line without a colon is refused naming
/// `headers` (and the line's number, never its text: it may hold a secret). Which
/// names and values may be set is the API's rule.
pub fn headers_of(s: &str) -> Result<Option<Value>, Refused> {
    let mut headers = serde_json::Map::new();
    for (i, line) in s.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(Refused::of_field(
                StatusCode::BAD_REQUEST,
                format!("line {} of the headers is not `Name: value`", i + 1),
                "headers",
            ));
        };
        headers.insert(name.trim().to_owned(), json!(value.trim()));
    }
    Ok((!headers.is_empty()).then_some(Value::Object(headers)))
}

/// A webhook's custom headers as the API shows them: each name with its masked
/// value (`x-api-key: ********`), or "none".
pub fn custom_headers(w: &Value) -> Markup {
    let names: Vec<&String> = w["headers"]
        .as_object()
        .map(|h| h.keys().collect())
        .unwrap_or_default();
    html! {
        @if names.is_empty() {
            "none"
        } @else {
            ul.headers {
                @for name in names { li { code { (name) ": ********" } } }
            }
        }
    }
}

/// How a webhook signs as the API shows it: the scheme, its HMAC secrets (masked)
/// and the ed25519 public keys receivers verify with (newest first; two during a
/// rotation).
pub fn signing(w: &Value) -> Markup {
    let scheme = w["signing_scheme"].as_str().unwrap_or("hmac-sha256");
    let keys: Vec<&str> = w["public_keys"]
        .as_array()
        .map(|k| k.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let secrets = w["signing_secrets"].as_array().map_or(0, Vec::len);
    let hmac = secrets.saturating_sub(keys.len());
    html! {
        code { (scheme) }
        @if hmac > 0 || keys.is_empty() {
            ", " (hmac) " secret" @if hmac != 1 { "s" } " (masked)"
        }
        @if !keys.is_empty() {
            ", verified with the public key" @if keys.len() > 1 { "s" } ":"
            ul.public-keys {
                @for key in &keys { li { code.public-key { (key) } } }
            }
        }
    }
}

/// The form's field of custom headers: typed one per line; what a webhook has is
/// listed, masked, and never filled in (the values are secrets).
pub fn headers_field(current: Option<&Value>, refused: Option<&Refused>) -> Markup {
    let help = match current {
        None => {
            "One `Name: value` per line, sent with every delivery; the values are never shown again."
        }
        Some(_) => {
            "One `Name: value` per line: replaces every custom header. Empty: unchanged. The values are never shown again."
        }
    };
    html! {
        (field("headers", "Custom headers", help, html! {
            textarea #headers name="headers" rows="3" autocomplete="off" spellcheck="false" aria-describedby="headers-help" {}
        }, refused))
        @if let Some(w) = current {
            div.field {
                p #headers-now { "Now: " (custom_headers(w)) }
                @if w["headers"].as_object().is_some_and(|h| !h.is_empty()) {
                    div.check {
                        input #clear_headers name="clear_headers" type="checkbox" value="on";
                        label for="clear_headers" { "Remove every custom header" }
                    }
                }
            }
        }
    }
}

/// The API body's `headers` from a form's typed headers and its "remove every
/// custom header" box: `Some(object)` replaces, `Some(null)` removes (editing only),
/// `None` leaves them.
pub fn headers_change(typed: &str, clear: bool, creating: bool) -> Result<Option<Value>, Refused> {
    match headers_of(typed)? {
        Some(headers) => Ok(Some(headers)),
        None if clear && !creating => Ok(Some(Value::Null)),
        None => Ok(None),
    }
}

/// Whether a typed URL is a broker's (`amqp://`, `amqps://`): the form then sends
/// its exchange and routing key.
pub fn is_broker_url(url: &str) -> bool {
    let url = url.trim();
    url.starts_with("amqp://") || url.starts_with("amqps://")
}

/// The API body's `amqp_exchange` and `amqp_routing_key` from a form: as typed for
/// a broker URL (an empty exchange is the broker's default one); otherwise left
/// out when creating, null (removed) when editing.
pub fn amqp_change(
    url: &str,
    exchange: &str,
    routing_key: &str,
    creating: bool,
) -> Vec<(&'static str, Value)> {
    if is_broker_url(url) {
        vec![
            ("amqp_exchange", json!(exchange.trim())),
            ("amqp_routing_key", json!(routing_key.trim())),
        ]
    } else if creating {
        Vec::new()
    } else {
        vec![
            ("amqp_exchange", Value::Null),
            ("amqp_routing_key", Value::Null),
        ]
    }
}

/// The exchange and routing key fields of a webhook form.
pub fn amqp_fields(exchange: &str, routing_key: &str, refused: Option<&Refused>) -> Markup {
    html! {
        (field("amqp_exchange", "AMQP exchange", "With an amqp:// or amqps:// URL: the exchange each delivery is published to; empty: the broker's default exchange (the routing key names the queue). Ignored for http(s) URLs.", input("amqp_exchange", exchange, "text"), refused))
        (field("amqp_routing_key", "AMQP routing key", "With an amqp:// or amqps:// URL: the routing key of each message.", input("amqp_routing_key", routing_key, "text"), refused))
    }
}

/// Where a webhook's deliveries go: POSTed, or published to its broker's exchange.
pub fn destination(w: &Value) -> Markup {
    match w["amqp_exchange"].as_str() {
        Some(exchange) => html! {
            "published to exchange " code { @if exchange.is_empty() { "(default)" } @else { (exchange) } }
            " with routing key " code { (text(w, "amqp_routing_key")) }
            " (AMQP; credentials masked)"
        },
        None => html! { "HTTP POST" },
    }
}

/// A comma- or line-separated form list.
pub fn list(s: &str) -> Vec<String> {
    s.split([',', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// One field with its label, help and the API's complaint when it names it.
pub fn field(
    name: &str,
    label: &str,
    help: &str,
    input: Markup,
    refused: Option<&Refused>,
) -> Markup {
    let error = refused.filter(|r| {
        r.field.as_deref().is_some_and(|f| {
            f == name || f.starts_with(&format!("{name}.")) || f.starts_with(&format!("{name}["))
        })
    });
    html! {
        div.field {
            label for=(name) { (label) }
            (input)
            @if !help.is_empty() { p.help #{ (name) "-help" } { (help) } }
            @if let Some(r) = error { p.error #{ (name) "-error" } role="alert" { (r.error) } }
        }
    }
}

/// A text input described by its help.
pub fn input(name: &str, value: &str, kind: &str) -> Markup {
    html! { input id=(name) name=(name) type=(kind) value=(value) aria-describedby={ (name) "-help" }; }
}

/// A webhook's state: disabled, paused or active.
pub fn state_badge(w: &Value) -> Markup {
    if !w["enabled"].as_bool().unwrap_or(true) {
        badge("disabled")
    } else if !w["paused_at"].is_null() {
        badge("paused")
    } else {
        badge("active")
    }
}

/// A webhook's circuit breaker: closed, or open and why.
pub fn breaker(w: &Value) -> Markup {
    match &w["breaker"] {
        Value::Null => html! { "closed" },
        b => html! { (badge("open")) " " (value(&b["reason"])) },
    }
}

/// The last day's success rate of a webhook's statistics.
pub fn success_rate(stats: &Value) -> String {
    let day = &stats["last_day"];
    let delivered = day["delivered"].as_u64().unwrap_or(0);
    let failed = day["failed"].as_u64().unwrap_or(0);
    match delivered + failed {
        0 => "–".into(),
        n => format!("{:.1} %", 100.0 * delivered as f64 / n as f64),
    }
}

/// The last day's counts of a webhook's statistics.
pub fn counts(stats: &Value) -> String {
    let day = &stats["last_day"];
    format!(
        "{} delivered, {} failed, {} pending, {} held",
        day["delivered"], day["failed"], day["pending"], day["held"]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_values_become_the_json_the_api_takes() {
        assert_eq!(number_or_text::<u64>(" 5 "), json!(5));
        assert_eq!(number_or_text::<u64>("five"), json!("five"));
        assert_eq!(text_or_null("  "), Value::Null);
        assert_eq!(list("a, b\nc,,"), vec!["a", "b", "c"]);
        assert_eq!(
            json_or_null("filter", "{").unwrap_err().field.as_deref(),
            Some("filter")
        );
        assert_eq!(
            success_rate(&json!({"last_day": {"delivered": 3, "failed": 1}})),
            "75.0 %"
        );
    }

    #[test]
    fn typed_headers_become_the_object_the_api_takes() {
        assert_eq!(
            headers_of("X-Api-Key: k:1 \n\n x-team:payments\r\n").unwrap(),
            Some(json!({"X-Api-Key": "k:1", "x-team": "payments"}))
        );
        assert_eq!(headers_of(" \n").unwrap(), None);
        let refused = headers_of("X-Ok: 1\nsecret-without-colon").unwrap_err();
        assert_eq!(refused.field.as_deref(), Some("headers"));
        assert!(refused.error.contains("line 2") && !refused.error.contains("secret"));
        assert_eq!(headers_change("", true, false).unwrap(), Some(Value::Null));
        assert_eq!(headers_change("", true, true).unwrap(), None);
        assert_eq!(headers_change("", false, false).unwrap(), None);
    }
}
