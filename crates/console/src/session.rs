//! Signing in and out, and who is signed in. The cookie holds a random session id
//! (HttpOnly, SameSite=Strict, Secure behind TLS); the session row holds the caller
//! and the CSRF token every form of the session must send back.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use hookrelay_model::access::Caller;
use hookrelay_model::webhook::Secret;
use hookrelay_store::console;
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::kit::failure::Failure;
use crate::kit::parts::Forms;
use crate::state::Console;

const COOKIE: &str = "hookrelay_console";

/// The signed-in caller of a request. A request without a live session is sent to
/// the sign-in page.
pub(crate) struct Viewer {
    pub caller: Caller,
    csrf: Secret,
    pub(crate) id: String,
}

impl Forms for Viewer {
    fn csrf(&self) -> &str {
        self.csrf.expose()
    }
}

impl Viewer {
    /// Refuses a post whose form did not carry this session's CSRF token.
    pub fn check(&self, given: &str) -> Result<(), Failure> {
        self.check_csrf(given)
    }

    /// The tenant a tenant token is limited to; none for the operator.
    pub fn own_tenant(&self) -> Option<&str> {
        match &self.caller {
            Caller::Operator => None,
            Caller::Tenant { tenant, .. } => Some(tenant),
        }
    }

    pub fn is_operator(&self) -> bool {
        self.caller == Caller::Operator
    }

    /// Whether the caller may see `tenant` at all.
    pub fn sees(&self, tenant: &str) -> bool {
        self.own_tenant().is_none_or(|own| own == tenant)
    }
}

/// Sent instead of the page when nobody is signed in.
pub(crate) struct SignInFirst;

impl IntoResponse for SignInFirst {
    fn into_response(self) -> Response {
        Redirect::to("/console/sign-in").into_response()
    }
}

impl FromRequestParts<Console> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Response> {
        let Some(id) = cookie_value(&parts.headers) else {
            return Err(SignInFirst.into_response());
        };
        let found = match console.pool.get().await {
            Ok(db) => console::find(&db, &id).await,
            Err(e) => Err(e.into()),
        };
        let session = match found {
            Ok(Some(s)) => s,
            Ok(None) => return Err(SignInFirst.into_response()),
            Err(e) => {
                tracing::warn!(error = %e, "console session lookup failed");
                return Err(Failure::unavailable().into_response());
            }
        };
        // An operator session ends when the operator token changes.
        if let Some(opened_with) = &session.operator_token_sha256 {
            let now = hookrelay_store::crypto::sha256(operator_token(console));
            if !bool::from(opened_with.as_slice().ct_eq(now.as_slice())) {
                return Err(SignInFirst.into_response());
            }
        }
        Ok(Viewer {
            caller: session.caller,
            csrf: session.csrf,
            id,
        })
    }
}

pub(crate) fn operator_token(console: &Console) -> &str {
    console.operator_token.as_deref().unwrap_or("")
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(Cookie::split_parse)
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE)
        .map(|c| c.value().to_owned())
}

/// Behind a TLS-terminating proxy the cookie is marked Secure.
pub(crate) fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

pub(crate) fn set_cookie(value: &str, max_age: time::Duration, secure: bool) -> HeaderValue {
    let cookie = Cookie::build((COOKIE, value.to_owned()))
        .path("/console")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .max_age(max_age)
        .build();
    // A cookie made of our own base64url id and fixed attributes is valid header text.
    HeaderValue::from_str(&cookie.to_string()).unwrap_or(HeaderValue::from_static(""))
}

/// A form of one field: the session's CSRF token.
#[derive(Deserialize)]
pub(crate) struct CsrfOnly {
    #[serde(default)]
    pub csrf: String,
}
