//! The portal's page shell (the theme's name and logo, navigation, the session's
//! scope), from the console's kit.

use axum::response::{IntoResponse, Response};
use hookrelay_console::kit::shell::head;
use maud::{DOCTYPE, Markup, html};

pub(crate) use crate::failure::Problem;
use crate::failure::no_store;
use crate::session::Customer;

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
