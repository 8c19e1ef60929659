//! Events and deliveries: search a tenant's deliveries (by event, webhook, status,
//! time) or events (by session, type, time); an event with its deliveries; a
//! delivery's attempt timeline; redeliver.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use crate::kit::api::enc;
use crate::page::{self, Failure, Section, badge, text, value, when};
use crate::session::{CsrfOnly, Viewer};
use crate::state::Console;
use crate::tenants::{self, Scope};

const PAGE: usize = 50;

#[derive(Deserialize, Default)]
pub(crate) struct Search {
    tenant: Option<String>,
    event_id: Option<String>,
    /// A webhook's id.
    webhook: Option<String>,
    status: Option<String>,
    since: Option<String>,
    session: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    cursor: Option<String>,
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

impl Search {
    /// The API's query for this search, and whether it lists events (a session or a
    /// type was asked for) rather than deliveries.
    fn api_query(&self) -> (String, bool) {
        let events = given(&self.session).is_some() || given(&self.event_type).is_some();
        let pairs: Vec<(&str, Option<&str>)> = if events {
            vec![
                ("session_id", given(&self.session)),
                ("type", given(&self.event_type)),
                ("since", given(&self.since)),
            ]
        } else {
            vec![
                ("event_id", given(&self.event_id)),
                ("webhook_id", given(&self.webhook)),
                ("status", given(&self.status)),
                ("since", given(&self.since)),
            ]
        };
        let mut q = format!("limit={PAGE}");
        if !events {
            // An operator looks for what just happened.
            q.push_str("&order=newest");
        }
        for (k, v) in pairs.into_iter().chain([("cursor", given(&self.cursor))]) {
            if let Some(v) = v {
                q.push_str(&format!("&{k}={}", enc(v)));
            }
        }
        (q, events)
    }

    /// This search's page link, continued at `cursor`.
    fn next(&self, tenant: &str, cursor: &str) -> String {
        let mut q = format!("/console/deliveries?tenant={}", enc(tenant));
        for (k, v) in [
            ("event_id", &self.event_id),
            ("webhook", &self.webhook),
            ("status", &self.status),
            ("since", &self.since),
            ("session", &self.session),
            ("type", &self.event_type),
        ] {
            if let Some(v) = given(v) {
                q.push_str(&format!("&{k}={}", enc(v)));
            }
        }
        format!("{q}&cursor={}", enc(cursor))
    }
}

pub(crate) async fn search(
    State(console): State<Console>,
    viewer: Viewer,
    Query(s): Query<Search>,
) -> Result<Markup, Failure> {
    let what = ("/console/deliveries", "Events & deliveries", "deliveries");
    let (tenant, picker) = match tenants::scope(
        &console,
        &viewer,
        s.tenant.as_deref(),
        Section::Deliveries,
        what,
    )
    .await?
    {
        Scope::Tenant { tenant, picker } => (tenant, picker),
        Scope::Pick(page) => return Ok(page),
    };
    let (query, events) = s.api_query();
    let list = if events { "events" } else { "deliveries" };
    let path = format!("/v1/tenants/{}/{list}?{query}", enc(&tenant));
    let found = console.get(&viewer.caller, &path).await;
    Ok(page::page(
        &viewer,
        Section::Deliveries,
        &format!("Events & deliveries of {tenant}"),
        html! {
            (picker)
            (search_form(&tenant, &s))
            @match &found {
                Err(r) => (page::refusal(Some(r))),
                Ok(found) => {
                    @let rows = found["data"].as_array().cloned().unwrap_or_default();
                    @if rows.is_empty() {
                        p { "Nothing matches." }
                    } @else if events {
                        (event_table(&tenant, &rows))
                    } @else {
                        (delivery_table(&tenant, &rows))
                    }
                    @if let Some(cursor) = found["next_cursor"].as_str() {
                        p { a href=(s.next(&tenant, cursor)) rel="next" { "Next page" } }
                    }
                }
            }
        },
    ))
}

fn search_form(tenant: &str, s: &Search) -> Markup {
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    html! {
        form.search method="get" action="/console/deliveries" {
            input type="hidden" name="tenant" value=(tenant);
            fieldset {
                legend { "Deliveries" }
                label { "Event id " input name="event_id" value=(value(&s.event_id)); }
                label { "Webhook id " input name="webhook" value=(value(&s.webhook)); }
                label { "Status "
                    select name="status" {
                        option value="" { "any" }
                        @for st in ["pending", "delivered", "failed", "held", "waiting"] {
                            option value=(st) selected[s.status.as_deref() == Some(st)] { (st) }
                        }
                    }
                }
            }
            fieldset {
                legend { "Or events" }
                label { "Session " input name="session" value=(value(&s.session)); }
                label { "Type " input name="type" value=(value(&s.event_type)); }
            }
            label { "Since (RFC 3339) " input name="since" placeholder="2026-12-04T00:00:00Z" value=(value(&s.since)); }
            button type="submit" { "Search" }
        }
    }
}

fn delivery_table(tenant: &str, rows: &[Value]) -> Markup {
    let t = enc(tenant);
    html! {
        div.scroll { table {
            thead { tr {
                th { "Delivery" } th { "Event" } th { "Status" } th { "Attempts" }
                th { "Last answer" } th { "Created" }
            } }
            tbody {
                @for d in rows {
                    tr {
                        th scope="row" { a href={ "/console/tenants/" (t) "/deliveries/" (text(d, "id")) } { code { (text(d, "id")) } } }
                        td { a href={ "/console/tenants/" (t) "/events/" (enc(text(d, "event_id"))) } { (text(d, "event_id")) } }
                        td { (badge(text(d, "status"))) }
                        td.num { (value(&d["attempts"])) }
                        td { (value(&d["last_status"])) }
                        td { (when(&d["created_at"])) }
                    }
                }
            }
        } }
    }
}

fn event_table(tenant: &str, rows: &[Value]) -> Markup {
    let t = enc(tenant);
    html! {
        div.scroll { table {
            thead { tr { th { "Event" } th { "Type" } th { "Session" } th { "Received" } } }
            tbody {
                @for e in rows {
                    tr {
                        th scope="row" { a href={ "/console/tenants/" (t) "/events/" (enc(text(e, "id"))) } { (text(e, "id")) } }
                        td { (text(e, "event_type")) }
                        td { (value(&e["session_id"])) }
                        td { (when(&e["received_at"])) }
                    }
                }
            }
        } }
    }
}

#[derive(Deserialize)]
pub(crate) struct ItemPath {
    tenant: String,
    id: String,
}

pub(crate) async fn event(
    State(console): State<Console>,
    viewer: Viewer,
    Path(p): Path<ItemPath>,
) -> Result<Markup, Failure> {
    let path = format!("/v1/tenants/{}/events/{}", enc(&p.tenant), enc(&p.id));
    let found = match console.get(&viewer.caller, &path).await {
        Ok(found) => found,
        Err(r) if r.status == StatusCode::NOT_FOUND => return Ok(not_yet(&viewer, &p.id)),
        Err(r) => return Err(r.into()),
    };
    let deliveries = found["deliveries"].as_array().cloned().unwrap_or_default();
    let e = &found["event"];
    Ok(page::page(
        &viewer,
        Section::Deliveries,
        &format!("Event {}", p.id),
        html! {
            dl.facts {
                dt { "Type" } dd { (text(e, "event_type")) }
                dt { "Session" } dd { (value(&e["session_id"])) }
                dt { "Occurred" } dd { (when(&e["occurred_at"])) }
                dt { "Received" } dd { (when(&e["received_at"])) }
            }
            h2 { "Deliveries" }
            @if deliveries.is_empty() { p { "No webhook matched this event." } }
            @else { (delivery_table(&p.tenant, &deliveries)) }
            h2 { "Envelope" }
            pre.json { (serde_json::to_string_pretty(&e["envelope"]).unwrap_or_default()) }
        },
    ))
}

/// An event just published is stored when the router takes it: the page says so
/// and (with script) looks again.
fn not_yet(viewer: &Viewer, id: &str) -> Markup {
    page::page(
        viewer,
        Section::Deliveries,
        &format!("Event {id}"),
        html! {
            p.note role="status" data-reload-after="1000" {
                "Not stored yet: the router stores an event as it routes it. "
                a href="" { "Look again" }
            }
        },
    )
}

#[derive(Deserialize, Default)]
pub(crate) struct Done {
    done: Option<String>,
}

pub(crate) async fn show_delivery(
    console: &Console,
    viewer: &Viewer,
    p: &ItemPath,
    done: Option<&str>,
) -> Result<Markup, Failure> {
    let base = format!("/v1/tenants/{}/deliveries/{}", enc(&p.tenant), enc(&p.id));
    let d = console.get(&viewer.caller, &base).await?;
    let attempts = console
        .get(&viewer.caller, &format!("{base}/attempts"))
        .await?;
    let attempts = attempts["data"].as_array().cloned().unwrap_or_default();
    let t = enc(&p.tenant);
    let target = match (d["webhook_id"].as_str(), d["url"].as_str()) {
        (Some(id), _) => {
            html! { a href={ "/console/deliveries?tenant=" (t) "&webhook=" (id) } { code { (id) } } }
        }
        (None, Some(url)) => html! { "one-off URL " code { (url) } },
        _ => html! { "–" },
    };
    Ok(page::page(
        viewer,
        Section::Deliveries,
        &format!("Delivery {}", p.id),
        html! {
            (page::notice(done))
            dl.facts {
                dt { "Status" } dd { (badge(text(&d, "status"))) }
                dt { "Event" } dd { a href={ "/console/tenants/" (t) "/events/" (enc(text(&d, "event_id"))) } { (text(&d, "event_id")) } }
                dt { "Webhook" } dd { (target) }
                dt { "Attempts" } dd { (value(&d["attempts"])) }
                dt { "Next attempt" } dd { (when(&d["next_attempt_at"])) }
                dt { "Why it failed" } dd { (value(&d["why_failed"])) }
                dt { "Trace id" } dd { code { (value(&d["trace_id"])) } }
            }
            @if viewer.caller.may_change() && text(&d, "status") == "failed" {
                (page::button(viewer, &format!("/console/tenants/{t}/deliveries/{}/redeliver", enc(&p.id)), "Redeliver", ""))
            }
            h2 { "Attempts" }
            @if attempts.is_empty() { p { "No attempt yet." } }
            @else {
                ol.timeline {
                    @for a in &attempts {
                        li {
                            p {
                                strong { "#" (value(&a["attempt"])) } " "
                                (when(&a["started_at"])) " · "
                                (badge(text(a, "outcome"))) " · "
                                "HTTP " (value(&a["status_code"])) " · "
                                (format!("{:.1}", a["latency_ms"].as_f64().unwrap_or(0.0))) " ms"
                            }
                            @if let Some(e) = a["error"].as_str() { p.error { (e) } }
                            @if let Some(s) = a["response_snippet"].as_str() { pre.snippet { (s) } }
                        }
                    }
                }
            }
        },
    ))
}

pub(crate) async fn show(
    State(console): State<Console>,
    viewer: Viewer,
    Path(p): Path<ItemPath>,
    Query(q): Query<Done>,
) -> Result<Markup, Failure> {
    show_delivery(&console, &viewer, &p, q.done.as_deref()).await
}

pub(crate) async fn redeliver(
    State(console): State<Console>,
    viewer: Viewer,
    Path(p): Path<ItemPath>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, Failure> {
    viewer.check(&form.csrf)?;
    let path = format!(
        "/v1/tenants/{}/deliveries/{}/redeliver",
        enc(&p.tenant),
        enc(&p.id)
    );
    console
        .call(&viewer.caller, Method::POST, &path, None)
        .await?;
    let to = format!(
        "/console/tenants/{}/deliveries/{}",
        enc(&p.tenant),
        enc(&p.id)
    );
    Ok(page::done(&to, "Requeued for a fresh round of attempts."))
}
