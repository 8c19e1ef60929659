//! The page shell (head, navigation, who is signed in) and the small pieces every
//! page uses. maud escapes every value it renders.

use axum::response::{IntoResponse, Redirect, Response};
use maud::{DOCTYPE, Markup, html};

pub(crate) use crate::failure::Failure;
pub(crate) use crate::shell::bare;
use crate::shell::head;
use serde_json::Value;

use crate::api::{Refused, enc};
use crate::session::Viewer;

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
            (head(title))
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

/// The session's CSRF token, in every form that changes something.
pub(crate) fn csrf(viewer: &Viewer) -> Markup {
    html! { input type="hidden" name="csrf" value=(viewer.csrf()); }
}

/// A form of one button that posts to `action` (pause, resume, redeliver...).
pub(crate) fn button(viewer: &Viewer, action: &str, label: &str, class: &str) -> Markup {
    html! {
        form.inline method="post" action=(action) {
            (csrf(viewer))
            button type="submit" class=(class) { (label) }
        }
    }
}

/// A status as a badge whose text says it (colour is never the only cue).
pub(crate) fn badge(status: &str) -> Markup {
    html! { span class={ "badge " (status) } { (status) } }
}

pub(crate) fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// A value as the API gave it: text as is, null as a dash, the rest as JSON.
pub(crate) fn value(v: &Value) -> String {
    match v {
        Value::Null => "–".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// An RFC 3339 time as `2026-12-04 01:02:03`, in UTC as stored.
pub(crate) fn when(v: &Value) -> String {
    match v.as_str() {
        Some(t) => t.replace('T', " ").chars().take(19).collect(),
        None => "–".into(),
    }
}

/// The API's refusal of a form, shown above it (and beside its field, by the page).
pub(crate) fn refusal(refused: Option<&Refused>) -> Markup {
    html! {
        @if let Some(r) = refused {
            p.error role="alert" {
                (r.error)
                @if let Some(field) = &r.field { " (field " code { (field) } ")" }
            }
        }
    }
}

/// A notice after an action.
pub(crate) fn notice(text: Option<&str>) -> Markup {
    html! {
        @if let Some(t) = text {
            p.notice role="status" { (t) }
        }
    }
}

/// Back to `to` after an action, with `notice` shown there (`?done=`).
pub(crate) fn done(to: &str, notice: &str) -> Response {
    let join = if to.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{to}{join}done={}", enc(notice))).into_response()
}

/// A form's number as a JSON number; empty as null; anything else as typed, for the
/// API to refuse naming its field.
pub(crate) fn number_or_text<N: std::str::FromStr + Into<Value>>(s: &str) -> Value {
    match s.trim() {
        "" => Value::Null,
        t => t
            .parse::<N>()
            .map(Into::into)
            .unwrap_or_else(|_| Value::from(t)),
    }
}
