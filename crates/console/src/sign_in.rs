//! Signing in with a token and out again.

use axum::Form;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use hookrelay_admin::access;
use hookrelay_model::access::Caller;
use hookrelay_store::console::{self, Opener};
use maud::{Markup, html};
use serde::Deserialize;

use crate::page::{self, Failure};
use crate::session::{CsrfOnly, Viewer, operator_token, over_tls, set_cookie};
use crate::state::{Console, SESSION_TTL};

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
            token_sha256: hookrelay_store::crypto::sha256(operator_token(&console)),
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

pub(crate) async fn sign_out(
    State(console): State<Console>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, Failure> {
    viewer.check(&form.csrf)?;
    let db = console.db().await?;
    console::close(&db, &viewer.id).await?;
    let gone = set_cookie("", time::Duration::ZERO, over_tls(&headers));
    Ok((
        [(header::SET_COOKIE, gone)],
        Redirect::to("/console/sign-in"),
    )
        .into_response())
}
