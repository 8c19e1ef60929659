//! What handlers take from a request (path, query, body) and the shapes of list
//! answers. Every refusal is the JSON error naming the field that was wrong. Path and
//! query values pass `hookrelay_model::text`'s rule (no control characters, at most
//! `MAX_PARAM_CHARS`) before they are parsed.

use axum::body::Bytes;
use axum::extract;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use hookrelay_model::envelope::field_of;
use hookrelay_model::{Invalid, text};
use serde::de::DeserializeOwned;
use time::OffsetDateTime;
use uuid::Uuid;

use super::error::ApiError;

pub(super) const DEFAULT_LIMIT: i64 = 50;
pub(super) const MAX_LIMIT: i64 = 500;

/// The path's parameters, as axum's `Path` parses them, refused as a JSON error that
/// names the parameter.
pub(super) struct Path<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        use extract::path::ErrorKind;
        // Every value by the one rule before it is parsed (and long before any SQL).
        if let Ok(raw) = extract::RawPathParams::from_request_parts(parts, state).await {
            for (key, value) in &raw {
                text::check_text(key, value, text::MAX_PARAM_CHARS)?;
            }
        }
        match extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(extract::Path(value)) => Ok(Self(value)),
            Err(extract::rejection::PathRejection::FailedToDeserializePathParams(e)) => {
                let field = match e.kind() {
                    ErrorKind::ParseErrorAtKey { key, .. }
                    | ErrorKind::InvalidUtf8InPathParam { key }
                    | ErrorKind::DeserializeError { key, .. } => Some(key.clone()),
                    _ => None,
                };
                Err(ApiError::bad_request(e.body_text(), field))
            }
            Err(other) => Err(ApiError::new(other.status(), other.body_text())),
        }
    }
}

/// The query string, parsed like axum's `Query` but refused as a JSON error that
/// names the parameter.
pub(super) struct Params<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        // Every value by the one rule before it is parsed (and long before any SQL).
        if let Ok(Query(pairs)) = Query::<Vec<(String, String)>>::try_from_uri(&parts.uri) {
            for (key, value) in &pairs {
                text::check_chars(key, value, text::MAX_PARAM_CHARS)?;
            }
        }
        Query::try_from_uri(&parts.uri)
            .map(|Query(q)| Params(q))
            .map_err(|rejection| {
                let text = rejection.body_text();
                let text = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                // `path: message`, or the message alone for the query as a whole.
                let (path, message) = match text.split_once(": ") {
                    Some((path, message)) if !path.contains(' ') => (path, message),
                    _ => (".", text),
                };
                let field = field_of(path, message).map(str::to_owned);
                ApiError::bad_request(format!("query: {text}"), field)
            })
    }
}

/// A request body, read whatever its Content-Type; too large a body is a JSON 413.
pub(super) struct Body(Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        Bytes::from_request(request, state)
            .await
            .map(Self)
            .map_err(|rejection| {
                ApiError::new(
                    rejection.status(),
                    format!("request body: {}", rejection.body_text()),
                )
            })
    }
}

impl Body {
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Parses the body as JSON, naming the field that was wrong.
    pub(super) fn parse<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        parse_json(&self.0)
    }

    /// An optional body: none when empty (JSON `null` parses as none too).
    pub(super) fn parse_optional<T: DeserializeOwned>(&self) -> Result<Option<T>, ApiError> {
        if self.is_empty() {
            Ok(None)
        } else {
            self.parse()
        }
    }
}

pub(super) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // Every body of this API is an object, but serde also fills a struct from an
    // array (`[]` is a struct whose fields all have defaults).
    if body.trim_ascii_start().starts_with(b"[") {
        return Err(ApiError::bad_request(
            "invalid request body: a JSON object is expected, not an array",
            None,
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = without_position(e.inner());
        let field = field_of(&path, &inner).map(str::to_owned);
        ApiError::bad_request(format!("invalid request body at `{path}`: {inner}"), field)
    })
}

/// serde's message without "at line 1 column 220": a position in JSON a form's user
/// never typed (the path says where).
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    text.strip_suffix(&position).unwrap_or(&text).to_owned()
}

pub(super) fn limit(given: Option<i64>) -> Result<i64, Invalid> {
    match given {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(Invalid::new("limit", format!("must be 1 to {MAX_LIMIT}"))),
    }
}

pub(super) fn parse_time(
    field: &str,
    value: Option<&str>,
) -> Result<Option<OffsetDateTime>, Invalid> {
    value
        .map(|v| {
            OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
                .map_err(|e| Invalid::new(field, format!("`{v}` is not an RFC 3339 time: {e}")))
        })
        .transpose()
}

pub(super) fn parse_uuid(field: &str, value: &str) -> Result<Uuid, Invalid> {
    Uuid::parse_str(value).map_err(|_| Invalid::new(field, format!("`{value}` is not a UUID")))
}

/// The `cursor` of lists ordered by id.
pub(super) fn uuid_cursor(cursor: Option<&str>) -> Result<Option<Uuid>, Invalid> {
    cursor.map(|c| parse_uuid("cursor", c)).transpose()
}

/// The cursor of a page: a full page names its last item's, a short one none.
pub(super) fn next_cursor<T>(
    data: &[T],
    limit: i64,
    cursor: impl Fn(&T) -> String,
) -> Option<String> {
    (data.len() as i64 == limit)
        .then(|| data.last().map(cursor))
        .flatten()
}

/// A page of a list, as its own type: a generic one's schema would hold a copy of its
/// item's (utoipa inlines type parameters) instead of referring to it.
macro_rules! page {
    ($(#[$doc:meta])* $page:ident of $item:ty; $(#[$cursor:meta])*) => {
        $(#[$doc])*
        #[derive(serde::Serialize, utoipa::ToSchema)]
        pub(super) struct $page {
            data: Vec<$item>,
            $(#[$cursor])*
            next_cursor: Option<String>,
        }

        impl $page {
            pub(super) fn new(
                data: Vec<$item>,
                limit: i64,
                cursor: impl Fn(&$item) -> String,
            ) -> axum::Json<Self> {
                let next_cursor = super::extract::next_cursor(&data, limit, cursor);
                axum::Json(Self { data, next_cursor })
            }
        }
    };
}

/// A whole list, not paged, as its own type (see `page!`).
macro_rules! list {
    ($(#[$doc:meta])* $list:ident of $item:ty) => {
        $(#[$doc])*
        #[derive(serde::Serialize, utoipa::ToSchema)]
        pub(super) struct $list {
            data: Vec<$item>,
        }

        impl $list {
            pub(super) fn of(data: Vec<$item>) -> axum::Json<Self> {
                axum::Json(Self { data })
            }
        }
    };
}

pub(super) use {list, page};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_field_is_named_without_a_position_in_the_json() {
        #[derive(Debug, serde::Deserialize)]
        struct Policy {
            #[allow(dead_code)]
            rate_limit: u32,
        }
        let Err(refused) = parse_json::<Policy>(br#"{"rate_limit": "fast"}"#) else {
            panic!("a string is not a number");
        };
        let text = format!("{refused:?}");
        assert!(
            text.contains("invalid request body at `rate_limit`"),
            "{text}"
        );
        assert!(!text.contains("line 1 column"), "{text}");
    }

    #[test]
    fn an_array_is_not_a_request_whose_fields_all_have_defaults() {
        #[derive(Debug, serde::Deserialize)]
        struct DryRun {
            #[serde(default)]
            #[allow(dead_code)]
            dry_run: bool,
        }
        for body in [&b"[]"[..], b" [false]", b"\n[ ]"] {
            let Err(refused) = parse_json::<DryRun>(body) else {
                panic!("{} is not an object", String::from_utf8_lossy(body));
            };
            let text = format!("{refused:?}");
            assert!(text.contains("a JSON object is expected"), "{text}");
        }
        assert!(parse_json::<DryRun>(b"{}").is_ok());
    }
}
