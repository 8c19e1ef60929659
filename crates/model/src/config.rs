//! Parsing of the human-written values in configuration: durations (`300ms`, `10s`,
//! `5m`) and comma-separated lists. Used by clap value parsers in every role.

use std::time::Duration;

/// Defaults shared by every role (docs/configuration.md).
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/hookrelay";
pub const DEFAULT_PREFIX: &str = "hookrelay";
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8080";

/// A duration as configuration writes it (`300ms`, `10s`, `5m`) and prints it back,
/// so that a flag's default is the role's own constant, not a second copy in text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl std::fmt::Display for Span {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

impl std::str::FromStr for Span {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration(s).map(Self)
    }
}

/// A duration, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanOrOff(pub Option<Duration>);

impl std::fmt::Display for SpanOrOff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(d) => Span(d).fmt(f),
            None => f.write_str("off"),
        }
    }
}

impl std::str::FromStr for SpanOrOff {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s.trim() == "off" {
            return Ok(Self(None));
        }
        parse_duration(s).map(|d| Self(Some(d)))
    }
}

/// Comma-separated durations (`5s,30s`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanList(pub Vec<Duration>);

impl std::fmt::Display for SpanList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let items: Vec<String> = self.0.iter().map(|d| Span(*d).to_string()).collect();
        f.write_str(&items.join(","))
    }
}

impl std::str::FromStr for SpanList {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_durations(s).map(Self)
    }
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("`{s}` is not a duration like 300ms, 10s or 5m ({e})"))
}

/// `5s,30s` → two durations. An empty string is an empty list.
pub fn parse_durations(s: &str) -> Result<Vec<Duration>, String> {
    parse_list(s).iter().map(|d| parse_duration(d)).collect()
}

/// `a, b,,c` → `["a", "b", "c"]`.
pub fn parse_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(str::to_owned)
        .collect()
}

/// An RFC 3339 time (`2026-11-23T10:00:00Z`), as query strings take it.
pub fn parse_time(s: &str) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("`{s}` is not an RFC 3339 time like 2026-11-23T10:00:00Z: {e}"))
}

/// A time as people write it on a command line, relative to `now`: RFC 3339
/// (`2026-11-23T10:00:00Z`), a date (`2026-11-23`, midnight UTC), or a span ago
/// (`90m`, `1h`, `2d`, `1week`: humantime's spans).
pub fn parse_time_at(s: &str, now: time::OffsetDateTime) -> Result<time::OffsetDateTime, String> {
    let s = s.trim();
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Ok(t);
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(date) = time::Date::parse(s, &date_format) {
        return Ok(date.midnight().assume_utc());
    }
    humantime::parse_duration(s)
        .ok()
        .and_then(|ago| time::Duration::try_from(ago).ok())
        .and_then(|ago| now.checked_sub(ago))
        .ok_or_else(|| {
            format!(
                "`{s}` is not a time: give an RFC 3339 time (2026-11-23T10:00:00Z), a date \
                 (2026-11-23) or a span ago (90m, 1h, 2d)"
            )
        })
}

/// Hides the password of a URL (`amqp://user:pass@host`, `postgres://...`) for
/// messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{}:***{}", &url[..scheme + 3], user, &url[at..])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_taken_as_rfc_3339_dates_or_spans_ago() {
        let now = time::macros::datetime!(2026-12-02 12:00 UTC);
        let at = |s| parse_time_at(s, now).unwrap();
        assert_eq!(
            at("2026-11-23T10:00:00Z"),
            time::macros::datetime!(2026-11-23 10:00 UTC)
        );
        assert_eq!(
            at("2026-11-23"),
            time::macros::datetime!(2026-11-23 0:00 UTC)
        );
        assert_eq!(at("1h"), time::macros::datetime!(2026-12-02 11:00 UTC));
        assert_eq!(at("2d"), time::macros::datetime!(2026-11-30 12:00 UTC));
        let err = parse_time_at("yesterday", now).unwrap_err();
        assert!(err.contains("span ago"), "{err}");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("amqp://guest:secret@127.0.0.1:5672/%2f"),
            "amqp://guest:***@127.0.0.1:5672/%2f"
        );
        assert_eq!(redact_url("amqp://host"), "amqp://host");
    }

    #[test]
    fn human_durations() {
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("soon").unwrap_err().contains("`soon`"));
        assert_eq!(
            parse_durations("5s, 30s"),
            Ok(vec![Duration::from_secs(5), Duration::from_secs(30)])
        );
        assert_eq!(parse_durations(""), Ok(vec![]));
        assert_eq!(parse_list("a, b,,c"), vec!["a", "b", "c"]);
    }
}

#[cfg(test)]
mod span_tests {
    use super::*;

    #[test]
    fn a_default_prints_as_it_is_written_and_reads_back() {
        for text in ["300ms", "10s", "5m", "1h", "5days", "off"] {
            let read: SpanOrOff = text.parse().unwrap();
            assert_eq!(read.to_string(), text);
        }
        let list: SpanList = "5s, 30s".parse().unwrap();
        assert_eq!(list.to_string(), "5s,30s");
        assert!("soon".parse::<Span>().unwrap_err().contains("`soon`"));
    }
}
