//! The page components the operator console and the customer portal are both built
//! from: the in-process `/v1` caller ([`api`]), the document shell ([`shell`]), error
//! pages ([`failure`]), the shared pieces of pages ([`parts`]), the stylesheet and
//! script, and the security headers of each surface ([`headers`]).

pub mod api;
pub mod failure;
pub mod headers;
pub mod health;
pub mod parts;
pub mod shell;

use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;

const CSS: &str = include_str!("../../assets/kit.css");
const JS: &str = include_str!("../../assets/kit.js");

/// The stylesheet both surfaces serve (`/console/assets/kit.css`, `/portal/assets/kit.css`).
pub async fn stylesheet() -> impl IntoResponse {
    asset("text/css; charset=utf-8", CSS)
}

/// The script both surfaces serve; every page works without it.
pub async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", JS)
}

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=300"),
            ),
        ],
        body,
    )
}
