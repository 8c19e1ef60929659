//! Custom headers per webhook: static headers an operator sets (an API gateway's key,
//! a team id), sent with every HTTP delivery. Their values are secrets: sealed at
//! rest, never shown again. The one rule of which names and values may be set
//! ([`check_header`], [`CustomHeaders::check`]): the API, the CLI, the console and
//! the portal all go through it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Invalid;
use crate::secret::Secret;

/// Custom headers a webhook may have at most.
pub const MAX_HEADERS: usize = 16;
/// The longest header name, in bytes.
pub const MAX_NAME_BYTES: usize = 64;
/// The longest header value, in bytes (a long bearer token fits).
pub const MAX_VALUE_BYTES: usize = 2048;
/// Names and values of one webhook's headers together, in bytes.
pub const MAX_TOTAL_BYTES: usize = 8192;

/// What a header name must match: an HTTP token (RFC 9110) of 1 to 64 characters.
pub const NAME_PATTERN: &str = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$";
/// What a header value must match: visible ASCII, spaces and tabs inside only.
pub const VALUE_PATTERN: &str = r"^(?:[!-~](?:[ \t!-~]*[!-~])?)?$";

/// A webhook's custom headers, by name. Names are case-insensitive and stored in
/// lower case ([`Self::normalized`]); values are [`Secret`]s, so they show as
/// `********` in `Debug` and in output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CustomHeaders(BTreeMap<String, Secret>);

impl CustomHeaders {
    pub fn new(headers: impl IntoIterator<Item = (String, Secret)>) -> Self {
        Self(headers.into_iter().collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Names and values, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Secret)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// The names, by name.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// The same headers with lower-case names: what is stored and sent. Check first:
    /// two names that differ only in case would become one.
    pub fn normalized(&self) -> Self {
        Self(
            self.0
                .iter()
                .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
                .collect(),
        )
    }

    /// The whole rule: at most [`MAX_HEADERS`], each one allowed ([`check_header`]),
    /// no name given twice (in any case), names and values together at most
    /// [`MAX_TOTAL_BYTES`]. `basic_auth`: the webhook has a Basic-auth `secret`.
    pub fn check(&self, basic_auth: bool) -> Result<(), Invalid> {
        if self.0.len() > MAX_HEADERS {
            return Err(Invalid::new(
                "headers",
                format!("at most {MAX_HEADERS} headers ({} given)", self.0.len()),
            ));
        }
        let mut seen = std::collections::HashSet::new();
        let mut total = 0;
        for (name, value) in &self.0 {
            check_header(name, value.expose(), basic_auth)?;
            if !seen.insert(name.to_ascii_lowercase()) {
                return Err(Invalid::new(
                    field(name),
                    format!("`{name}` is given twice (names are case-insensitive)"),
                ));
            }
            total += name.len() + value.expose().len();
        }
        if total > MAX_TOTAL_BYTES {
            return Err(Invalid::new(
                "headers",
                format!("names and values together are {total} bytes, more than {MAX_TOTAL_BYTES}"),
            ));
        }
        Ok(())
    }
}

/// The field an error about header `name` names: `headers.<name>`.
fn field(name: &str) -> String {
    format!("headers.{name}")
}

/// Why a header name is not the operator's to set, if it is not (`name` in lower
/// case). `basic_auth`: the webhook has a Basic-auth `secret`.
pub fn reserved(name: &str, basic_auth: bool) -> Option<&'static str> {
    const HOP_BY_HOP: &[&str] = &[
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ];
    const FROM_THE_REQUEST: &[&str] = &["host", "content-length"];
    const OF_THE_BODY: &[&str] = &["content-type", "content-encoding"];
    // What the sender sets on every delivery (crates/sender/src/request.rs and
    // `wire::delivery_headers`): the Standard Webhooks headers, the user agent, trace
    // context; hookrelay's own `x-hookrelay-*` are refused by their prefix.
    const HOOKRELAYS: &[&str] = &[
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "user-agent",
        crate::wire::HEADER_TRACEPARENT,
        crate::wire::HEADER_TRACESTATE,
    ];
    if HOP_BY_HOP.contains(&name) || name.starts_with("proxy-") {
        Some("is a hop-by-hop header: it describes one connection, not the delivery")
    } else if FROM_THE_REQUEST.contains(&name) {
        Some("is set by the HTTP client from the URL and the body")
    } else if OF_THE_BODY.contains(&name) {
        Some("describes the body, which hookrelay builds (the webhook's `format`)")
    } else if HOOKRELAYS.contains(&name) || name.starts_with(crate::wire::HEADER_PREFIX) {
        Some("is set by hookrelay on every delivery (signature, ids, tracing)")
    } else if name == "authorization" && basic_auth {
        Some("would replace the Basic auth of the webhook's `secret`: remove one of them")
    } else {
        None
    }
}

/// Whether one header may be set: an HTTP token of 1 to [`MAX_NAME_BYTES`] as its
/// name, not [`reserved`]; a value of at most [`MAX_VALUE_BYTES`] of visible ASCII,
/// with spaces and tabs only inside. The error names the header, never the value.
pub fn check_header(name: &str, value: &str, basic_auth: bool) -> Result<(), Invalid> {
    if name.is_empty() {
        return Err(Invalid::new("headers", "a header name must not be empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(Invalid::new(
            field(name),
            format!(
                "the header name is {} bytes, longer than {MAX_NAME_BYTES}",
                name.len()
            ),
        ));
    }
    if let Some(c) = name.chars().find(|c| !is_token_char(*c)) {
        return Err(Invalid::new(
            field(name),
            format!(
                "`{}` is not a header name: U+{:04X} is not allowed (letters, digits and !#$%&'*+-.^_`|~ only)",
                name.escape_default(),
                u32::from(c)
            ),
        ));
    }
    if let Some(reason) = reserved(&name.to_ascii_lowercase(), basic_auth) {
        return Err(Invalid::new(field(name), format!("`{name}` {reason}")));
    }
    if value.len() > MAX_VALUE_BYTES {
        return Err(Invalid::new(
            field(name),
            format!(
                "the value of `{name}` is {} bytes, longer than {MAX_VALUE_BYTES}",
                value.len()
            ),
        ));
    }
    if value
        .chars()
        .any(|c| !(c.is_ascii_graphic() || c == ' ' || c == '\t'))
    {
        return Err(Invalid::new(
            field(name),
            format!("the value of `{name}` must be visible ASCII, spaces and tabs"),
        ));
    }
    if value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']) {
        return Err(Invalid::new(
            field(name),
            format!("the value of `{name}` must not start or end with a space or tab"),
        ));
    }
    Ok(())
}

/// A character of an HTTP token (RFC 9110, `tchar`).
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c)
}

/// The document's schema of custom headers as they are given: an object of at most
/// [`MAX_HEADERS`] names ([`NAME_PATTERN`]) to values ([`VALUE_PATTERN`]).
#[cfg(feature = "openapi")]
pub fn schema() -> utoipa::openapi::schema::Object {
    schema_of(utoipa::openapi::schema::Type::Object.into())
}

/// [`schema`], or null.
#[cfg(feature = "openapi")]
pub fn optional_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{SchemaType, Type};
    schema_of(SchemaType::from_iter([Type::Object, Type::Null]))
}

/// What the document says of custom headers as they are given.
#[cfg(feature = "openapi")]
const GIVEN: &str = "Static headers sent with every POST, e.g. `{\"x-api-key\": \"...\"}`: names are \
HTTP tokens (case-insensitive, shown in lower case), values visible ASCII; the values are \
stored sealed and never shown again. At most 16, values up to 2,048 bytes, 8,192 bytes in \
all. Refused with a 400 whose `field` is `headers.<name>`: hop-by-hop headers \
(`Connection`, `Keep-Alive`, `Proxy-*`, `TE`, `Trailer`, `Transfer-Encoding`, `Upgrade`), \
`Host`, `Content-Length`, `Content-Type`, `Content-Encoding`, what hookrelay sets \
(`webhook-id`, `webhook-timestamp`, `webhook-signature`, `User-Agent`, `traceparent`, \
`tracestate`, `x-hookrelay-*`), and `Authorization` while the webhook has a Basic-auth \
`secret`. In an update they replace every custom header; null or `{}` removes them.";

#[cfg(feature = "openapi")]
fn schema_of(of: utoipa::openapi::schema::SchemaType) -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let value = ObjectBuilder::new()
        .schema_type(Type::String)
        .max_length(Some(MAX_VALUE_BYTES))
        .pattern(Some(VALUE_PATTERN));
    let name = ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(NAME_PATTERN));
    ObjectBuilder::new()
        .schema_type(of)
        .description(Some(GIVEN))
        .additional_properties(Some(value))
        .property_names(Some(name))
        .max_properties(Some(MAX_HEADERS))
        .examples([serde_json::json!({"x-api-key": "k-123", "x-team": "payments"})])
        .build()
}

/// The document's schema of custom headers as they are shown: names to `********`.
#[cfg(feature = "openapi")]
pub fn masked_schema() -> utoipa::openapi::schema::Object {
    use utoipa::openapi::schema::{ObjectBuilder, Type};
    let masked = ObjectBuilder::new()
        .schema_type(Type::String)
        .examples([serde_json::json!("********")]);
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "Custom headers sent with every delivery: their names (lower case), each value masked.",
        ))
        .additional_properties(Some(masked))
        .examples([serde_json::json!({"x-api-key": "********"})])
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every refused header is named in the error's field and its text; the value
    /// never appears.
    #[test]
    fn which_headers_may_be_set() {
        use Expect::*;
        #[derive(Debug, PartialEq)]
        enum Expect {
            Ok,
            /// Refused; the reason holds this text.
            No(&'static str),
        }
        let basic = true;
        let table: &[(&str, &str, bool, Expect)] = &[
            ("X-Api-Key", "k-123", false, Ok),
            ("x-team", "payments team", false, Ok),
            ("Cookie", "a=b; c=d", false, Ok),
            ("X-Empty", "", false, Ok),
            ("Authorization", "Bearer abc.def", false, Ok),
            ("Authorization", "Bearer abc.def", basic, No("Basic auth")),
            ("authorization", "Bearer abc.def", basic, No("Basic auth")),
            ("Connection", "close", false, No("hop-by-hop")),
            ("Keep-Alive", "timeout=5", false, No("hop-by-hop")),
            ("Proxy-Authorization", "Basic x", false, No("hop-by-hop")),
            ("proxy-connection", "keep-alive", false, No("hop-by-hop")),
            ("TE", "trailers", false, No("hop-by-hop")),
            ("Trailer", "Expires", false, No("hop-by-hop")),
            ("Transfer-Encoding", "chunked", false, No("hop-by-hop")),
            ("Upgrade", "websocket", false, No("hop-by-hop")),
            ("Host", "example.com", false, No("from the URL")),
            (
                "Content-Length",
                "10",
                false,
                No("from the URL and the body"),
            ),
            (
                "Content-Type",
                "text/plain",
                false,
                No("describes the body"),
            ),
            ("Content-Encoding", "gzip", false, No("describes the body")),
            ("webhook-id", "msg_1", false, No("set by hookrelay")),
            ("Webhook-Timestamp", "1", false, No("set by hookrelay")),
            ("webhook-signature", "v1,abc", false, No("set by hookrelay")),
            ("User-Agent", "me", false, No("set by hookrelay")),
            ("traceparent", "00-ab-cd-01", false, No("set by hookrelay")),
            ("tracestate", "a=b", false, No("set by hookrelay")),
            ("X-Hookrelay-Attempt", "1", false, No("set by hookrelay")),
            ("x-hookrelay-anything", "1", false, No("set by hookrelay")),
            ("X Api", "v", false, No("not a header name")),
            ("X-Api:", "v", false, No("not a header name")),
            ("X-Clé", "v", false, No("not a header name")),
            ("X-Api", "line\r\nInjected: yes", false, No("visible ASCII")),
            ("X-Api", "nul\0", false, No("visible ASCII")),
            ("X-Api", "café", false, No("visible ASCII")),
            ("X-Api", " padded", false, No("start or end")),
            ("X-Api", "padded\t", false, No("start or end")),
        ];
        for (name, value, basic_auth, expect) in table {
            let got = check_header(name, value, *basic_auth);
            match (expect, got) {
                (Ok, Result::Ok(())) => {}
                (No(reason), Err(e)) => {
                    assert_eq!(e.field, format!("headers.{name}"), "{name}");
                    assert!(e.problem.contains(reason), "{name}: {e}");
                    assert!(
                        e.problem.contains(&name.escape_default().to_string()),
                        "names the header: {e}"
                    );
                    if !value.is_empty() {
                        assert!(!e.problem.contains(value), "never the value: {e}");
                    }
                }
                (expect, got) => panic!("{name}: {value:?}: expected {expect:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn names_and_values_are_bounded() {
        let long_name = "x".repeat(MAX_NAME_BYTES + 1);
        let e = check_header(&long_name, "v", false).unwrap_err();
        assert!(e.problem.contains("longer than 64"), "{e}");
        assert!(check_header(&"x".repeat(MAX_NAME_BYTES), "v", false).is_ok());
        let e = check_header("X-Big", &"v".repeat(MAX_VALUE_BYTES + 1), false).unwrap_err();
        assert_eq!(e.field, "headers.X-Big");
        assert!(check_header("X-Big", &"v".repeat(MAX_VALUE_BYTES), false).is_ok());
        assert_eq!(check_header("", "v", false).unwrap_err().field, "headers");

        let many = |n: usize, size: usize| {
            CustomHeaders::new((0..n).map(|i| (format!("x-h{i}"), Secret::new("v".repeat(size)))))
        };
        assert!(many(MAX_HEADERS, 10).check(false).is_ok());
        let e = many(MAX_HEADERS + 1, 10).check(false).unwrap_err();
        assert_eq!(e.field, "headers");
        assert!(e.problem.contains("at most 16"), "{e}");
        let e = many(5, MAX_VALUE_BYTES).check(false).unwrap_err();
        assert!(e.problem.contains("more than 8192"), "{e}");
    }

    #[test]
    fn names_differing_in_case_are_one_header_and_are_stored_in_lower_case() {
        let twice = CustomHeaders::new([
            ("X-Api-Key".to_owned(), Secret::new("a")),
            ("x-api-key".to_owned(), Secret::new("b")),
        ]);
        let e = twice.check(false).unwrap_err();
        assert!(e.problem.contains("given twice"), "{e}");
        let one = CustomHeaders::new([("X-Api-Key".to_owned(), Secret::new("a"))]);
        assert!(one.check(true).is_ok());
        assert_eq!(one.normalized().names().collect::<Vec<_>>(), ["x-api-key"]);
        let e = CustomHeaders::new([("AUTHORIZATION".to_owned(), Secret::new("Bearer t"))])
            .check(true)
            .unwrap_err();
        assert_eq!(e.field, "headers.AUTHORIZATION");
    }

    #[test]
    fn values_never_show() {
        let h: CustomHeaders =
            serde_json::from_value(serde_json::json!({"X-Api-Key": "k-123"})).unwrap();
        assert_eq!(h.iter().next().map(|(_, v)| v.expose()), Some("k-123"));
        let shown = serde_json::to_string(&h).unwrap();
        assert_eq!(shown, r#"{"X-Api-Key":"********"}"#);
        assert!(!format!("{h:?}").contains("k-123"));
    }

    #[test]
    fn the_patterns_say_what_the_rule_takes() {
        // Spot checks of the documented patterns against the rule (no regex engine
        // in the model): the characters the name pattern lists are the tokens'.
        let listed = NAME_PATTERN
            .trim_start_matches("^[")
            .split(']')
            .next()
            .unwrap();
        for c in "!#$%&'*+.^_`|~-".chars() {
            assert!(listed.contains(c) && is_token_char(c), "{c}");
        }
        assert!(NAME_PATTERN.contains(&format!("{{1,{MAX_NAME_BYTES}}}")));
    }
}
