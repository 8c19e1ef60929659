//! The security headers of each surface's pages. The console may never be framed;
//! the portal may be framed by the origins the deployment allows
//! (`HOOKRELAY_PORTAL_FRAME_ANCESTORS`) and by nothing else.

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// The headers a surface adds to every answer.
#[derive(Debug, Clone)]
pub struct Policy {
    csp: HeaderValue,
    /// Sent only when no origin may frame the pages (browsers without CSP 3).
    frame_options: Option<HeaderValue>,
}

const BASE: &str = "default-src 'self'; img-src 'self' https: http: data:; \
    style-src 'self' 'unsafe-inline'; script-src 'self'; form-action 'self'; base-uri 'none'";

impl Policy {
    /// The console: never framed.
    pub fn console() -> Self {
        Self::framed_by(&[])
    }

    /// Pages that `ancestors` (CSP source expressions: `'self'`,
    /// `https://app.example`) may frame; none: nobody may.
    pub fn framed_by(ancestors: &[String]) -> Self {
        let list = match ancestors {
            [] => "'none'".to_owned(),
            some => some.join(" "),
        };
        let csp = format!("{BASE}; frame-ancestors {list}");
        Self {
            // Source expressions are checked at start-up (`check_ancestor`).
            csp: HeaderValue::from_str(&csp)
                .unwrap_or(HeaderValue::from_static("frame-ancestors 'none'")),
            frame_options: ancestors
                .is_empty()
                .then_some(HeaderValue::from_static("DENY")),
        }
    }
}

/// One source expression of `frame-ancestors`: `'self'`, `'none'` or an origin
/// (`scheme://host[:port]`, `*` allowed in the host as CSP allows); anything else is
/// refused so nothing but a source reaches the header.
pub fn check_ancestor(source: &str) -> Result<(), String> {
    let keyword = matches!(source, "'self'" | "'none'");
    let origin = source.split_once("://").is_some_and(|(scheme, rest)| {
        matches!(scheme, "http" | "https")
            && !rest.is_empty()
            && rest.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '*' | '[' | ']')
            })
    });
    if keyword || origin {
        Ok(())
    } else {
        Err(format!(
            "`{source}` is not a frame-ancestors source: 'self', 'none' or an origin such as https://app.example"
        ))
    }
}

/// Adds the surface's headers to every answer, and `Referrer-Policy: same-origin`:
/// the portal's URLs carry its session, so no other site may see them as a referrer
/// (a logo, a link out). Not `no-referrer`: with it a browser sends `Origin: null`
/// on the pages' own form posts, which the site check (`Origin` is this server)
/// must then refuse.
pub async fn add(State(policy): State<Policy>, request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, policy.csp.clone());
    if let Some(deny) = &policy.frame_options {
        headers.insert(header::X_FRAME_OPTIONS, deny.clone());
    }
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_source_expressions_are_frame_ancestors() {
        for ok in [
            "'self'",
            "'none'",
            "https://app.example",
            "http://localhost:3000",
            "https://*.example.com",
        ] {
            assert!(check_ancestor(ok).is_ok(), "{ok}");
        }
        for bad in [
            "*",
            "app.example",
            "https://a.example; script-src *",
            "javascript:x",
            "'unsafe-inline'",
        ] {
            assert!(check_ancestor(bad).is_err(), "{bad}");
        }
        let console = Policy::console();
        assert!(
            console
                .csp
                .to_str()
                .unwrap()
                .ends_with("frame-ancestors 'none'")
        );
        assert_eq!(console.frame_options.unwrap(), "DENY");
        let portal = Policy::framed_by(&["'self'".into(), "http://localhost:3000".into()]);
        assert!(
            portal
                .csp
                .to_str()
                .unwrap()
                .ends_with("frame-ancestors 'self' http://localhost:3000")
        );
        assert!(portal.frame_options.is_none());
    }
}
