//! What a web page in the operator's browser must not be able to make `/v1` do.
//!
//! Browsers send some cross-site requests without asking (HTML forms, `fetch` in
//! `no-cors` mode: `POST` with a `text/plain`, form or multipart body) and attach
//! cookies, not bearer tokens. So, before authentication:
//! - a state-changing request (any method but GET, HEAD and OPTIONS) from another
//!   origin is refused: `Sec-Fetch-Site` says `cross-site` or `same-site`, or
//!   `Origin` names another host than `Host`;
//! - a state-changing request with a body must say `Content-Type: application/json`,
//!   which no page can send to another origin without a CORS preflight (never
//!   granted: the API sends no CORS headers);
//! - without `HOOKRELAY_API_TOKEN` (loopback only) every request must name a loopback
//!   host in `Host`, so a DNS name re-pointed at 127.0.0.1 (DNS rebinding) cannot
//!   reach the open API from a page.
//!
//! Clients that are not browsers (curl, the CLI, upstream services) send none of
//! `Origin` or `Sec-Fetch-Site` and are unaffected.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hookrelay_admin::http::ApiError;
use url::{Host, Url};

/// Whether the API runs without a token (and therefore on loopback only).
#[derive(Clone, Copy)]
pub struct Tokenless(pub bool);

pub async fn guard(State(tokenless): State<Tokenless>, request: Request, next: Next) -> Response {
    match check(request.method(), request.headers(), tokenless.0) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

/// The console's forms post `application/x-www-form-urlencoded` (a CSRF token in
/// each guards them), so `/console` is checked for its site but not for JSON.
pub async fn guard_forms(
    State(tokenless): State<Tokenless>,
    request: Request,
    next: Next,
) -> Response {
    match check_site(request.method(), request.headers(), tokenless.0) {
        Ok(()) => next.run(request).await,
        Err(refusal) => refusal.into_response(),
    }
}

fn check(method: &Method, headers: &HeaderMap, tokenless: bool) -> Result<(), ApiError> {
    check_site(method, headers, tokenless)?;
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && has_body(headers) && !is_json(text(headers, header::CONTENT_TYPE)) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the request body must be sent with `Content-Type: application/json`",
        ));
    }
    Ok(())
}

/// A loopback `Host` without a token; no change from another site.
fn check_site(method: &Method, headers: &HeaderMap, tokenless: bool) -> Result<(), ApiError> {
    let host = text(headers, header::HOST);
    if tokenless && let Some(host) = host {
        check_loopback_host(host)?;
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Ok(());
    }
    if let Some(site) = text(headers, "sec-fetch-site")
        && matches!(site, "cross-site" | "same-site")
    {
        return Err(forbidden(format!(
            "a {method} from another site is refused (Sec-Fetch-Site: {site})"
        )));
    }
    if let Some(origin) = text(headers, header::ORIGIN)
        && !same_origin(origin, host)
    {
        return Err(forbidden(format!(
            "a {method} from origin `{origin}` is refused: it is not this server's"
        )));
    }
    Ok(())
}

fn text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn forbidden(message: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, message)
}

/// `Host: evil.example` on a loopback socket means a page's DNS name was re-pointed here.
fn check_loopback_host(host: &str) -> Result<(), ApiError> {
    let loopback = match Url::parse(&format!("http://{host}/"))
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
    {
        Some(Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if loopback {
        Ok(())
    } else {
        Err(forbidden(format!(
            "host `{host}` is refused: without HOOKRELAY_API_TOKEN the API answers loopback \
             host names only (localhost, 127.0.0.1, [::1])"
        )))
    }
}

/// Whether `origin` (`scheme://host[:port]`) is the server that `Host` names.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let (Ok(origin), Some(host)) = (Url::parse(origin), host) else {
        return false;
    };
    let Ok(served) = Url::parse(&format!("{}://{host}/", origin.scheme())) else {
        return false;
    };
    origin.host() == served.host()
        && origin.port_or_known_default() == served.port_or_known_default()
}

/// HTTP/1.1 frames a body by one of these two headers; without either there is none.
fn has_body(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TRANSFER_ENCODING)
        || text(headers, header::CONTENT_LENGTH).is_some_and(|n| n.trim() != "0")
}

/// `application/json`, with or without parameters (`; charset=utf-8`).
fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    fn status(method: Method, pairs: &[(&'static str, &str)], tokenless: bool) -> Option<u16> {
        check(&method, &headers(pairs), tokenless)
            .err()
            .map(|e| e.into_response().status().as_u16())
    }

    #[test]
    fn a_form_post_from_another_site_is_refused() {
        let form = [
            ("host", "127.0.0.1:8080"),
            ("origin", "https://evil.example"),
            ("content-type", "text/plain"),
            ("content-length", "12"),
        ];
        assert_eq!(status(Method::POST, &form, true), Some(403));
        assert_eq!(status(Method::POST, &form, false), Some(403));
        let fetch = [("host", "127.0.0.1:8080"), ("sec-fetch-site", "cross-site")];
        assert_eq!(status(Method::DELETE, &fetch, true), Some(403));
    }

    #[test]
    fn a_body_that_is_not_json_is_refused_even_from_a_client_without_origin() {
        let plain = [
            ("host", "localhost:8080"),
            ("content-type", "text/plain"),
            ("content-length", "2"),
        ];
        assert_eq!(status(Method::POST, &plain, true), Some(415));
        let none = [("host", "localhost:8080"), ("content-length", "2")];
        assert_eq!(status(Method::PUT, &none, true), Some(415));
        let json = [
            ("host", "localhost:8080"),
            ("content-type", "Application/JSON; charset=utf-8"),
            ("content-length", "2"),
        ];
        assert_eq!(status(Method::POST, &json, true), None);
        let empty = [("host", "localhost:8080"), ("content-length", "0")];
        assert_eq!(status(Method::POST, &empty, true), None);
    }

    #[test]
    fn the_same_origin_and_clients_without_origin_pass() {
        let same = [
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ];
        assert_eq!(status(Method::POST, &same, true), None);
        let default_port = [
            ("host", "hookrelay.example"),
            ("origin", "https://hookrelay.example:443"),
        ];
        assert_eq!(status(Method::DELETE, &default_port, false), None);
        let other_port = [
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:3000"),
        ];
        assert_eq!(status(Method::DELETE, &other_port, true), Some(403));
        let opaque = [("host", "127.0.0.1:8080"), ("origin", "null")];
        assert_eq!(status(Method::DELETE, &opaque, true), Some(403));
        assert_eq!(
            status(Method::DELETE, &[("host", "127.0.0.1:8080")], true),
            None
        );
    }

    #[test]
    fn without_a_token_only_loopback_host_names_are_answered() {
        for host in [
            "127.0.0.1:8080",
            "localhost",
            "LOCALHOST.:1",
            "app.localhost:8080",
            "[::1]:8080",
            "127.1.2.3",
        ] {
            assert_eq!(status(Method::GET, &[("host", host)], true), None, "{host}");
        }
        for host in [
            "rebind.evil.example:8080",
            "10.0.0.1",
            "[::ffff:127.0.0.1]:8080",
            "localhost.evil.example",
        ] {
            assert_eq!(
                status(Method::GET, &[("host", host)], true),
                Some(403),
                "{host}"
            );
        }
        assert_eq!(
            status(Method::GET, &[("host", "hookrelay.example")], false),
            None
        );
    }
}
