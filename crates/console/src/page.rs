//! The page shell (head, navigation, who is signed in) and the small pieces every
//! page uses. maud escapes every value it renders.

use maud::{DOCTYPE, Markup, html};

pub(crate) use crate::kit::failure::Failure;
pub(crate) use crate::kit::parts::{
    badge, button, csrf, done, notice, number_or_text, refusal, text, value, when,
};
use crate::kit::shell::{Look, head};
use crate::session::Viewer;

/// A page of the console without navigation (sign-in).
pub(crate) fn bare(title: &str, body: Markup) -> Markup {
    crate::kit::shell::bare(title, &Look::console(), body)
}

/// Which navigation entry a page belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Overview,
    Webhooks,
    Deliveries,
    DeadLetters,
    EventTypes,
    Settings,
}

const SECTIONS: [(Section, &str, &str); 6] = [
    (Section::Overview, "/console", "Overview"),
    (Section::Webhooks, "/console/webhooks", "Webhooks"),
    (
        Section::Deliveries,
        "/console/deliveries",
        "Events & deliveries",
    ),
    (
        Section::DeadLetters,
        "/console/dead-letters",
        "Dead letters",
    ),
    (Section::EventTypes, "/console/event-types", "Event types"),
    (Section::Settings, "/console/settings", "Settings"),
];

/// A signed-in page: navigation, who is signed in, sign-out, then `body`.
pub(crate) fn page(viewer: &Viewer, section: Section, title: &str, body: Markup) -> Markup {
    let who = match viewer.own_tenant() {
        None => "operator".to_owned(),
        Some(tenant) => format!("tenant {tenant}"),
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, "hookrelay", &Look::console()))
            body {
                a.skip href="#main" { "Skip to content" }
                header.top {
                    a.brand href="/console" { "hookrelay" }
                    nav aria-label="Sections" {
                        ul {
                            @for (s, href, name) in SECTIONS {
                                @if s != Section::DeadLetters || viewer.is_operator() {
                                    li {
                                        a href=(href) aria-current=[(s == section).then_some("page")] { (name) }
                                    }
                                }
                            }
                        }
                    }
                    form.sign-out method="post" action="/console/sign-out" {
                        span.who { "Signed in as " strong { (who) } }
                        (csrf(viewer))
                        button type="submit" { "Sign out" }
                    }
                }
                main #main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}
