//! The portal's page shell (the theme's name and logo, navigation, the session's
//! scope) and its failures, from the console's kit.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use hookrelay_console::kit::api::Refused;
use hookrelay_console::kit::failure::Failure;
use hookrelay_console::kit::shell::{Surface, head};
use hookrelay_store::StoreError;
use maud::{DOCTYPE, Markup, html};

use crate::session::Customer;

/// A portal page that cannot be shown: the kit's failure page, without the console's
/// way back.
#[derive(Debug)]
pub(crate) struct Problem(Failure);

impl Problem {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self(Failure::new(status, message))
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, format!("No such {what} here."))
    }
}

impl From<Failure> for Problem {
    fn from(f: Failure) -> Self {
        Self(f)
    }
}

impl From<Refused> for Problem {
    fn from(r: Refused) -> Self {
        Self(r.into())
    }
}

impl From<StoreError> for Problem {
    fn from(e: StoreError) -> Self {
        Self(e.into())
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        no_store(self.0.on(Surface::Portal).into_response())
    }
}

/// Portal pages carry the session in their URLs: never cached.
pub(crate) fn no_store(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Endpoints,
    Messages,
}

/// A page of the session: the theme's name and logo, navigation, then `body`.
pub(crate) fn page(customer: &Customer, section: Section, title: &str, body: Markup) -> Response {
    let name = customer.theme.name.as_deref().unwrap_or("Webhooks");
    let sections = [
        (Section::Endpoints, customer.href("/"), "Endpoints"),
        (Section::Messages, customer.href("/messages"), "Message log"),
    ];
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, name, &customer.look()))
            body.portal {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    span.brand {
                        @if let Some(logo) = &customer.theme.logo_url {
                            img.logo src=(logo) alt="" height="24";
                            " "
                        }
                        (name)
                    }
                    nav aria-label="Sections" {
                        ul {
                            @for (s, href, label) in &sections {
                                li { a href=(href) aria-current=[(*s == section).then_some("page")] { (label) } }
                            }
                        }
                    }
                    @if customer.read_only {
                        span.who { strong { "Read-only" } }
                    }
                }
                main #main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    };
    no_store(markup.into_response())
}
