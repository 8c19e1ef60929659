//! The event catalog, read-only: every type with its description, payload schema and
//! example, as `GET /v1/event-types` gives them to the viewer (tenants may read it).
//! It is changed with `hookrelay event-types` or the API.

use axum::extract::State;
use maud::{Markup, html};
use serde_json::Value;

use crate::page::{self, Failure, Section};
use crate::session::Viewer;
use crate::state::Console;

pub(crate) async fn list(
    State(console): State<Console>,
    viewer: Viewer,
) -> Result<Markup, Failure> {
    let catalog = console.get(&viewer.caller, "/v1/event-types").await?;
    let types = catalog["data"].as_array().cloned().unwrap_or_default();
    Ok(page::page(
        &viewer,
        Section::EventTypes,
        "Event types",
        html! {
            p.help { "The event catalog: what each type means and the payload its events carry. \
                      Changed with " code { "hookrelay event-types" } " or " code { "/v1/event-types" } "." }
            @if types.is_empty() {
                p { "The catalog is empty." }
            }
            @for t in &types {
                (entry(t))
            }
        },
    ))
}

fn entry(t: &Value) -> Markup {
    let name = t["name"].as_str().unwrap_or_default();
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    html! {
        section.event-type aria-label=(name) {
            h2 { code { (name) } @if t["deprecated"].as_bool() == Some(true) { " " span.badge.paused { "deprecated" } } }
            @if let Some(d) = t["description"].as_str().filter(|d| !d.is_empty()) { p { (d) } }
            @if t["schema"].is_null() {
                p.help { "No schema: its payloads are not checked." }
            } @else {
                details { summary { "Payload schema" } pre.json { (pretty(&t["schema"])) } }
            }
            @if !t["example"].is_null() {
                details { summary { "Example payload" } pre.json { (pretty(&t["example"])) } }
            }
        }
    }
}
