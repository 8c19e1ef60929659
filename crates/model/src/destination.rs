//! Where a webhook's deliveries go: an HTTP POST to its URL, or a message published
//! to an exchange of an AMQP broker (`amqp://` / `amqps://`). Decided by pure rules
//! from the resolved URL and the webhook's exchange and routing key; the sender acts
//! on the decision. Also the rule of a broker URL's credentials: stored sealed apart
//! from the URL, which keeps [`CREDENTIALS_MASK`] in their place.

use crate::error::Invalid;
use crate::secret::Secret;
use crate::text;

/// What stands for a broker URL's credentials wherever the URL is stored or shown
/// (`amqp://********@broker.example/vhost`); given back unchanged in an update, it
/// keeps the stored credentials.
pub const CREDENTIALS_MASK: &str = "********";

/// An exchange name or routing key is an AMQP short string: at most 255 bytes. Both
/// are printable ASCII here, so characters are bytes (what the OpenAPI document can
/// state: [`AMQP_NAME_PATTERN`]).
pub const MAX_AMQP_NAME_BYTES: usize = 255;

/// What an exchange name or routing key may hold: printable ASCII.
pub const AMQP_NAME_PATTERN: &str = "^[ -~]*$";

/// Where one delivery goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// POST to the URL.
    Http,
    /// Publish to `exchange` (`""`: the default exchange, which routes to the queue
    /// named by the routing key) with `routing_key`, on the broker of the URL.
    Amqp {
        exchange: String,
        routing_key: String,
    },
}

/// Why a webhook's settings name no destination; the delivery fails for good.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DestinationError {
    #[error("an amqp:// or amqps:// URL needs an exchange (amqp_exchange)")]
    NoExchange,
    #[error("amqp_exchange and amqp_routing_key are for amqp:// and amqps:// URLs only")]
    ExchangeWithoutBroker,
    #[error("URL `{0}` is not an absolute http(s):// or amqp(s):// URL")]
    Unsupported(String),
}

/// The scheme a URL names, if it is one a webhook may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Amqp,
}

/// `http`/`https` or `amqp`/`amqps` (lower case, as every check of URLs here
/// takes them), else none.
pub fn scheme_of(url: &str) -> Option<Scheme> {
    let (scheme, _) = url.split_once("://")?;
    match scheme {
        "http" | "https" => Some(Scheme::Http),
        "amqp" | "amqps" => Some(Scheme::Amqp),
        _ => None,
    }
}

/// Decides where a delivery goes from its resolved URL (credentials masked or not)
/// and the webhook's exchange and routing key.
pub fn decide(
    url: &str,
    exchange: Option<&str>,
    routing_key: Option<&str>,
) -> Result<Destination, DestinationError> {
    match (scheme_of(url), exchange) {
        (Some(Scheme::Http), None) if routing_key.is_none() => Ok(Destination::Http),
        (Some(Scheme::Http), _) => Err(DestinationError::ExchangeWithoutBroker),
        (Some(Scheme::Amqp), Some(exchange)) => Ok(Destination::Amqp {
            exchange: exchange.to_owned(),
            routing_key: routing_key.unwrap_or_default().to_owned(),
        }),
        (Some(Scheme::Amqp), None) => Err(DestinationError::NoExchange),
        (None, _) => Err(DestinationError::Unsupported(url.to_owned())),
    }
}

/// An absolute `amqp://` or `amqps://` URL with a host, without whitespace or control
/// characters (lapin parses the rest: port, vhost, query).
pub fn check_amqp_url(field: &str, url: &str) -> Result<(), Invalid> {
    text::check_chars(field, url, text::MAX_URL_CHARS)?;
    let rest =
        strip_amqp(url).ok_or_else(|| Invalid::new(field, "must be an amqp:// or amqps:// URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') || url.chars().any(char::is_whitespace) {
        return Err(Invalid::new(field, "must be an absolute URL with a host"));
    }
    if host.contains(['[', ']']) {
        return Err(Invalid::new(
            field,
            "must name its host without `[` or `]` (an IPv6 host by its DNS name)",
        ));
    }
    Ok(())
}

fn strip_amqp(url: &str) -> Option<&str> {
    let (scheme, rest) = url.split_once("://")?;
    matches!(scheme, "amqp" | "amqps").then_some(rest)
}

/// A broker URL's credentials as an operator gives the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// None in the URL (or not a broker URL).
    None,
    /// `user:password` (as written, percent-encoding and placeholders included),
    /// sealed where the URL is stored.
    Given(Secret),
    /// The mask itself: keep what is stored.
    Kept,
}

/// Splits a webhook URL into what is stored in clear, with [`CREDENTIALS_MASK`] in
/// place of a broker URL's credentials, and the credentials. HTTP URLs are left as
/// they are.
pub fn split_credentials(url: &str) -> (String, Credentials) {
    let Some((scheme, rest)) = url
        .split_once("://")
        .filter(|_| scheme_of(url) == Some(Scheme::Amqp))
    else {
        return (url.to_owned(), Credentials::None);
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return (url.to_owned(), Credentials::None);
    };
    let masked = format!("{scheme}://{CREDENTIALS_MASK}@{host}{tail}");
    if userinfo == CREDENTIALS_MASK {
        (masked, Credentials::Kept)
    } else {
        (masked, Credentials::Given(Secret::new(userinfo)))
    }
}

/// The URL to connect to: the stored URL with its mask replaced by `credentials`.
/// A URL without the mask is returned as it is.
pub fn with_credentials(stored: &str, credentials: Option<&Secret>) -> String {
    let (Some((scheme, rest)), Some(credentials)) = (stored.split_once("://"), credentials) else {
        return stored.to_owned();
    };
    match rest
        .strip_prefix(CREDENTIALS_MASK)
        .and_then(|r| r.strip_prefix('@'))
    {
        Some(host) => format!("{scheme}://{}@{host}", credentials.expose()),
        None => stored.to_owned(),
    }
}

/// A URL to show: its credentials masked (a broker URL's as stored, so unchanged).
pub fn masked(url: &str) -> String {
    split_credentials(url).0
}

/// The exchange and routing key as given for a webhook: at most 255 characters of
/// printable ASCII (the exchange may be empty: the default exchange).
pub fn check_names(exchange: Option<&str>, routing_key: Option<&str>) -> Result<(), Invalid> {
    for (field, value) in [
        ("amqp_exchange", exchange),
        ("amqp_routing_key", routing_key),
    ] {
        if let Some(value) = value {
            text::check_chars(field, value, MAX_AMQP_NAME_BYTES)?;
            if let Some(c) = value.chars().find(|c| !(' '..='~').contains(c)) {
                return Err(Invalid::new(
                    field,
                    format!("must be printable ASCII (found U+{:04X})", u32::from(c)),
                ));
            }
        }
    }
    Ok(())
}

/// The settings of a webhook as given whole (on create): an amqp URL names an
/// exchange and gives its credentials rather than the mask, an HTTP URL names none.
/// A URL whose scheme comes from a placeholder is decided when sent.
pub fn check_given(
    url: &str,
    exchange: Option<&str>,
    routing_key: Option<&str>,
) -> Result<(), Invalid> {
    check_names(exchange, routing_key)?;
    if url.starts_with("{{") {
        return Ok(());
    }
    if split_credentials(url).1 == Credentials::Kept {
        return Err(Invalid::new(
            "url",
            "give the broker's credentials, not the mask",
        ));
    }
    decide(url, exchange, routing_key)
        .map(|_| ())
        .map_err(|e| match e {
            DestinationError::NoExchange => Invalid::new("amqp_exchange", e.to_string()),
            DestinationError::ExchangeWithoutBroker => {
                let field = if exchange.is_some() {
                    "amqp_exchange"
                } else {
                    "amqp_routing_key"
                };
                Invalid::new(field, e.to_string())
            }
            DestinationError::Unsupported(_) => Invalid::new("url", e.to_string()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    type Row<'a> = (
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Result<Destination, DestinationError>,
    );

    #[test]
    fn the_scheme_and_the_exchange_decide() {
        let amqp = |e: &str, k: &str| {
            Ok(Destination::Amqp {
                exchange: e.into(),
                routing_key: k.into(),
            })
        };
        let table: Vec<Row> = vec![
            ("https://a.test/x", None, None, Ok(Destination::Http)),
            (
                "HTTP://a.test/x",
                None,
                None,
                Err(DestinationError::Unsupported("HTTP://a.test/x".into())),
            ),
            (
                "amqp://h/vh",
                Some("orders"),
                Some("created"),
                amqp("orders", "created"),
            ),
            ("amqps://u:p@h:5671/vh", Some("x"), None, amqp("x", "")),
            (
                "amqp://h",
                Some(""),
                Some("queue-name"),
                amqp("", "queue-name"),
            ),
            (
                "amqp://h",
                None,
                Some("k"),
                Err(DestinationError::NoExchange),
            ),
            ("amqp://h", None, None, Err(DestinationError::NoExchange)),
            (
                "https://a.test",
                Some("x"),
                None,
                Err(DestinationError::ExchangeWithoutBroker),
            ),
            (
                "https://a.test",
                None,
                Some("k"),
                Err(DestinationError::ExchangeWithoutBroker),
            ),
            (
                "ftp://a.test",
                None,
                None,
                Err(DestinationError::Unsupported("ftp://a.test".into())),
            ),
            (
                "a.test",
                Some("x"),
                None,
                Err(DestinationError::Unsupported("a.test".into())),
            ),
        ];
        for (url, exchange, key, expected) in table {
            assert_eq!(
                decide(url, exchange, key),
                expected,
                "{url} {exchange:?} {key:?}"
            );
        }
    }

    #[test]
    fn credentials_are_split_from_a_broker_url_and_put_back() {
        let given = |s: &str| Credentials::Given(Secret::new(s));
        let table: Vec<(&str, &str, Credentials)> = vec![
            (
                "amqp://user:p%40ss@broker.test:5672/vh",
                "amqp://********@broker.test:5672/vh",
                given("user:p%40ss"),
            ),
            (
                "amqps://{{USER}}:{{PASS}}@{{HOST}}/%2f?heartbeat=10",
                "amqps://********@{{HOST}}/%2f?heartbeat=10",
                given("{{USER}}:{{PASS}}"),
            ),
            (
                "amqp://broker.test/vh",
                "amqp://broker.test/vh",
                Credentials::None,
            ),
            (
                "amqp://********@broker.test/vh",
                "amqp://********@broker.test/vh",
                Credentials::Kept,
            ),
            // An @ in the path is not userinfo.
            (
                "amqp://broker.test/v@h",
                "amqp://broker.test/v@h",
                Credentials::None,
            ),
            // HTTP URLs keep theirs (sent as Basic auth by the HTTP client).
            (
                "https://u:p@a.test/x",
                "https://u:p@a.test/x",
                Credentials::None,
            ),
        ];
        for (url, stored, credentials) in table {
            let (s, c) = split_credentials(url);
            assert_eq!((s.as_str(), &c), (stored, &credentials), "{url}");
            let back = match &c {
                Credentials::Given(secret) => with_credentials(&s, Some(secret)),
                _ => with_credentials(&s, None),
            };
            if matches!(c, Credentials::Given(_) | Credentials::None) {
                assert_eq!(back, url);
            }
        }
        assert_eq!(
            with_credentials("amqp://broker.test/vh", Some(&Secret::new("u:p"))),
            "amqp://broker.test/vh"
        );
        assert_eq!(masked("amqp://u:p@h/"), "amqp://********@h/");
    }

    #[test]
    fn broker_urls_name_a_host() {
        for good in [
            "amqp://h",
            "amqps://u:p@h:5671/vh",
            "amqp://h/%2f?heartbeat=5",
        ] {
            assert!(check_amqp_url("url", good).is_ok(), "{good}");
        }
        for bad in [
            "amqp://",
            "amqp:///vh",
            "amqp://u:p@/vh",
            "amqp://h /vh",
            "amqp://[::1]/",
            "http://h",
            "AMQP://h",
        ] {
            assert!(check_amqp_url("url", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn what_a_create_may_give() {
        assert!(check_given("amqp://u:p@h/vh", Some("x"), Some("k")).is_ok());
        assert!(check_given("{{TARGET}}", Some("x"), None).is_ok());
        let field = |url, e, k| check_given(url, e, k).unwrap_err().field;
        assert_eq!(field("amqp://h/vh", None, Some("k")), "amqp_exchange");
        assert_eq!(field("https://h/x", Some("x"), None), "amqp_exchange");
        assert_eq!(field("https://h/x", None, Some("k")), "amqp_routing_key");
        assert_eq!(field("amqp://********@h/vh", Some("x"), None), "url");
        let long = "k".repeat(256);
        assert_eq!(
            field("amqp://h", Some("x"), Some(&long)),
            "amqp_routing_key"
        );
        assert_eq!(field("amqp://h", Some("a\nb"), None), "amqp_exchange");
        assert_eq!(
            field("amqp://h", Some("x"), Some("café")),
            "amqp_routing_key"
        );
        assert!(check_given("amqp://h", Some(&"x".repeat(255)), Some("a.b-c:d_e #*")).is_ok());
    }
}
