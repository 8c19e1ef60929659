//! Signing in and out, and who is signed in. The cookie holds a random session id
//! (HttpOnly, SameSite=Strict, Secure behind TLS); the session row holds the caller
//! and the CSRF token every form of the session must send back.

use axum::Form;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use hookrelay_admin::access;
use hookrelay_model::access::Caller;
use hookrelay_model::webhook::Secret;
use hookrelay_store::console::{self, Opener};
use maud::{Markup, html};
use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::page::{self, Failure};
use crate::{Console, SESSION_TTL};

const COOKIE: &str = "hookrelay_console";

/// The signed-in caller of a request. A request without a live session is sent to
/// the sign-in page.
pub(crate) struct Viewer {
    pub caller: Caller,
    csrf: Secret,
    id: String,
}

impl Viewer {
    /// The CSRF token, for the forms of a page.
    pub fn csrf(&self) -> &str {
        self.csrf.expose()
    }

    /// Refuses a post whose form did not carry this session's CSRF token.
    pub fn check(&self, given: &str) -> Result<(), Failure> {
        if bool::from(given.as_bytes().ct_eq(self.csrf.expose().as_bytes())) {
            Ok(())
        } else {
            Err(Failure::new(
                StatusCode::FORBIDDEN,
                "This form is stale or came from another site (its CSRF token does not match \
                 your session). Reload the page and try again.",
            ))
        }
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
            let now = console::digest(operator_token(console));
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

fn operator_token(console: &Console) -> &str {
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
fn over_tls(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn set_cookie(value: &str, max_age: time::Duration, secure: bool) -> HeaderValue {
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

pub(crate) async fn sign_in_page(State(console): State<Console>) -> Markup {
    sign_in_form(&console, None)
}

fn sign_in_form(console: &Console, error: Option<&str>) -> Markup {
    let open = console.operator_token.is_none();
    page::bare(
        "Sign in",
        html! {
            main.sign-in {
                h1 { "hookrelay console" }
                form method="post" action="/console/sign-in" {
                    @if open {
                        p.note { "This server runs without HOOKRELAY_API_TOKEN (loopback only): \
                                  continue as the operator, or give a tenant token." }
                    }
                    label for="token" { "Token" }
                    input #token name="token" type="password" autocomplete="current-password"
                        required[!open] aria-describedby="token-help" autofocus;
                    p #token-help.help { "The operator token (HOOKRELAY_API_TOKEN) sees every tenant; \
                                          a tenant token (hrt_…) only its own." }
                    @if let Some(error) = error {
                        p.error role="alert" { (error) }
                    }
                    button type="submit" { "Sign in" }
                }
            }
        },
    )
}

#[derive(Deserialize)]
pub(crate) struct SignIn {
    #[serde(default)]
    token: String,
}

pub(crate) async fn sign_in(
    State(console): State<Console>,
    headers: HeaderMap,
    Form(form): Form<SignIn>,
) -> Response {
    let given = form.token.trim();
    let identified = match (&console.operator_token, given.is_empty()) {
        // Open API: an empty token is the operator, as on /v1.
        (None, true) => Ok(Some(access::Identified {
            caller: Caller::Operator,
            token_id: None,
        })),
        (Some(_), true) => Ok(None),
        (_, false) => access::identify(&console.pool, operator_token(&console), given).await,
    };
    let opener = match identified {
        Ok(Some(access::Identified {
            token_id: Some(id), ..
        })) => Opener::Token(id),
        Ok(Some(_)) => Opener::Operator {
            token_sha256: console::digest(operator_token(&console)),
        },
        Ok(None) => {
            let error = "That token is not valid here.";
            return (
                StatusCode::UNAUTHORIZED,
                sign_in_form(&console, Some(error)),
            )
                .into_response();
        }
        Err(e) => {
            tracing::warn!(error = %e, "console sign-in could not check the token");
            return Failure::unavailable().into_response();
        }
    };
    let opened = match console.pool.get().await {
        Ok(db) => console::open(&db, &opener, SESSION_TTL).await,
        Err(e) => Err(e.into()),
    };
    match opened {
        Ok(id) => {
            let ttl = time::Duration::seconds(SESSION_TTL.as_secs() as i64);
            let cookie = set_cookie(id.expose(), ttl, over_tls(&headers));
            ([(header::SET_COOKIE, cookie)], Redirect::to("/console")).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "console session not opened");
            Failure::unavailable().into_response()
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct CsrfOnly {
    #[serde(default)]
    pub csrf: String,
}

pub(crate) async fn sign_out(
    State(console): State<Console>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, Failure> {
    viewer.check(&form.csrf)?;
    let db = console
        .pool
        .get()
        .await
        .map_err(|_| Failure::unavailable())?;
    console::close(&db, &viewer.id)
        .await
        .map_err(|_| Failure::unavailable())?;
    let gone = set_cookie("", time::Duration::ZERO, over_tls(&headers));
    Ok((
        [(header::SET_COOKIE, gone)],
        Redirect::to("/console/sign-in"),
    )
        .into_response())
}
