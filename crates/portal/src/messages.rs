//! The message log: the events and deliveries to the session's endpoints, searchable
//! by event id, type, status and time; one event with its deliveries; one delivery
//! with its attempts (time, outcome, status, latency, the response's first bytes),
//! and redelivering it.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use hookrelay_console::kit::api::enc;
use hookrelay_console::kit::parts::{self, badge, button, notice, text, value, when};
use hookrelay_model::envelope::redact_private_fields;
use hookrelay_model::wire;
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use crate::endpoints::endpoints;
use crate::page::{self, Problem, Section};
use crate::session::Customer;
use crate::state::Portal;

/// The session's endpoints by id: which deliveries it may see, under which name.
async fn visible_ids(portal: &Portal, c: &Customer) -> Result<HashMap<String, String>, Problem> {
    Ok(endpoints(portal, c)
        .await?
        .iter()
        .map(|w| (text(w, "id").to_owned(), text(w, "key").to_owned()))
        .collect())
}

/// The deliveries of a list that went to the session's endpoints.
fn visible(deliveries: &Value, ids: &HashMap<String, String>) -> Vec<Value> {
    deliveries
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| ids.contains_key(text(d, "webhook_id")))
        .cloned()
        .collect()
}

#[derive(Deserialize, Default)]
pub(crate) struct Search {
    endpoint: Option<String>,
    event_id: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    status: Option<String>,
    since: Option<String>,
    /// The page after this delivery (the previous page's last).
    cursor: Option<String>,
    done: Option<String>,
}

impl Search {
    /// This search's address, on the page after `cursor`.
    fn older(&self, c: &Customer, cursor: &str) -> String {
        let mut href = format!("/messages?cursor={}", enc(cursor));
        for (name, v) in [
            ("endpoint", &self.endpoint),
            ("event_id", &self.event_id),
            ("status", &self.status),
            ("since", &self.since),
        ] {
            if let Some(v) = given(v) {
                href.push_str(&format!("&{name}={}", enc(v)));
            }
        }
        c.href(&href)
    }
}

fn given(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn search_form(c: &Customer, q: &Search, names: &[String]) -> Markup {
    let v = |o: &Option<String>| o.clone().unwrap_or_default();
    html! {
        form.picker method="get" action=(c.href("/messages")) {
            label for="endpoint" { "Endpoint" }
            select #endpoint name="endpoint" {
                option value="" { "all" }
                @for n in names { option value=(n) selected[q.endpoint.as_deref() == Some(n.as_str())] { (n) } }
            }
            label for="event_id" { "Event id" }
            input #event_id name="event_id" value=(v(&q.event_id));
            label for="type" { "Type" }
            input #type name="type" value=(v(&q.event_type));
            label for="status" { "Status" }
            select #status name="status" {
                @for s in ["", "pending", "delivered", "failed"] {
                    option value=(s) selected[q.status.as_deref().unwrap_or("") == s] { @if s.is_empty() { "any" } @else { (s) } }
                }
            }
            label for="since" { "Since (RFC 3339)" }
            input #since name="since" value=(v(&q.since));
            button type="submit" { "Search" }
        }
    }
}

pub(crate) async fn search(
    State(portal): State<Portal>,
    c: Customer,
    Query(q): Query<Search>,
) -> Result<Response, Problem> {
    let ids = visible_ids(&portal, &c).await?;
    let mut names: Vec<String> = ids.values().cloned().collect();
    names.sort();
    let results = match given(&q.event_type) {
        Some(t) => events_of_type(&portal, &c, t, given(&q.since)).await?,
        None => deliveries(&portal, &c, &q, &ids).await?,
    };
    Ok(page::page(
        &c,
        Section::Messages,
        "Message log",
        html! {
            (notice(q.done.as_deref()))
            (search_form(&c, &q, &names))
            (results)
        },
    ))
}

/// Events of one type (within the session's limits), newest first.
async fn events_of_type(
    portal: &Portal,
    c: &Customer,
    event_type: &str,
    since: Option<&str>,
) -> Result<Markup, Problem> {
    if !c.limits.allows_type(event_type) {
        return Ok(html! { p { "No messages of this type." } });
    }
    let mut path = c.v1(&format!("/events?type={}&limit=100", enc(event_type)));
    if let Some(s) = since {
        path.push_str(&format!("&since={}", enc(s)));
    }
    let found = c.get(portal, &path).await?;
    let data = found["data"].as_array().cloned().unwrap_or_default();
    Ok(html! {
        @if data.is_empty() { p { "No messages of this type." } } @else {
            div.scroll { table {
                thead { tr { th { "Received" } th { "Event" } th { "Type" } } }
                tbody { @for e in &data { tr {
                    td { (when(&e["received_at"])) }
                    td { a href=(c.href(&format!("/events/{}", enc(text(e, "id"))))) { code { (text(e, "id")) } } }
                    td { (text(e, "type")) }
                } } }
            } }
        }
    })
}

/// Deliveries to the session's endpoints, newest first.
async fn deliveries(
    portal: &Portal,
    c: &Customer,
    q: &Search,
    ids: &HashMap<String, String>,
) -> Result<Markup, Problem> {
    let mut path = c.v1("/deliveries?order=newest&limit=100");
    if let Some(key) = given(&q.endpoint) {
        let Some(id) = ids
            .iter()
            .find(|(_, k)| k.as_str() == key)
            .map(|(id, _)| id)
        else {
            return Err(Problem::not_found("endpoint"));
        };
        path.push_str(&format!("&webhook_id={}", enc(id)));
    }
    for (name, v) in [
        ("event_id", &q.event_id),
        ("status", &q.status),
        ("since", &q.since),
        ("cursor", &q.cursor),
    ] {
        if let Some(v) = given(v) {
            path.push_str(&format!("&{name}={}", enc(v)));
        }
    }
    let found = c.get(portal, &path).await?;
    let older = found["next_cursor"].as_str().map(|next| q.older(c, next));
    Ok(html! {
        (delivery_table(c, &visible(&found["data"], ids), ids))
        @if let Some(href) = older { p { a rel="next" href=(href) { "Older messages" } } }
    })
}

fn delivery_table(c: &Customer, data: &[Value], ids: &HashMap<String, String>) -> Markup {
    html! {
        @if data.is_empty() { p { "No messages match." } } @else {
            div.scroll { table {
                thead { tr {
                    th { "Created" } th { "Event" } th { "Endpoint" } th { "Status" }
                    th { "Attempts" } th { "Last answer" } th { "Last error" }
                } }
                tbody { @for d in data { tr {
                    td { a href=(c.href(&format!("/deliveries/{}", text(d, "id")))) { (when(&d["created_at"])) } }
                    td { a href=(c.href(&format!("/events/{}", enc(text(d, "event_id"))))) { code { (text(d, "event_id")) } } }
                    td { (ids.get(text(d, "webhook_id")).map(String::as_str).unwrap_or("–")) }
                    td { (badge(text(d, "status"))) }
                    td.num { (value(&d["attempts"])) }
                    td.num { (value(&d["last_status"])) }
                    td.error-text { (value(&d["last_error"])) }
                } } }
            } }
        }
    }
}

/// One event and its deliveries to the session's endpoints. An event the session
/// may not see is as unknown as a missing one.
pub(crate) async fn event(
    State(portal): State<Portal>,
    c: Customer,
    Path((_, id)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let ids = visible_ids(&portal, &c).await?;
    let found = c
        .get(&portal, &c.v1(&format!("/events/{}", enc(&id))))
        .await;
    let mut found = match found {
        Ok(found) => found,
        // Published, not yet recorded by the router: look again shortly.
        Err(r) if r.status == StatusCode::NOT_FOUND && id.starts_with("example-") => {
            return Ok(page::page(
                &c,
                Section::Messages,
                "Sending the example",
                html! {
                    p data-reload-after="1000" { "The example is on its way; this page looks again in a moment. " a href=(c.href(&format!("/events/{}", enc(&id)))) { "Look again" } }
                },
            ));
        }
        Err(r) if r.status == StatusCode::NOT_FOUND => return Err(Problem::not_found("message")),
        Err(r) => return Err(r.into()),
    };
    let deliveries = visible(&found["deliveries"], &ids);
    let event = &mut found["event"];
    let limited = !c.limits.webhook_keys.is_empty();
    if !c.limits.allows_type(text(event, "type")) || (limited && deliveries.is_empty()) {
        return Err(Problem::not_found("message"));
    }
    // The customer sees the event as its endpoints get it.
    redact_private_fields(&mut event["envelope"]);
    let waiting = deliveries.iter().any(|d| text(d, "status") == "pending");
    Ok(page::page(
        &c,
        Section::Messages,
        &format!("Event {id}"),
        html! {
            dl.facts {
                dt { "Type" } dd { (text(event, "type")) }
                dt { "Occurred" } dd { (when(&event["occurred_at"])) }
                dt { "Received" } dd { (when(&event["received_at"])) }
            }
            h2 { "Deliveries" }
            @if waiting { p data-reload-after="2000" { "Some deliveries are pending; this page looks again shortly." } }
            (delivery_table(&c, &deliveries, &ids))
            h2 { "Payload" }
            pre.json { (serde_json::to_string_pretty(&event["envelope"]["payload"]).unwrap_or_default()) }
        },
    ))
}

/// One delivery and its attempts, if it went to one of the session's endpoints.
async fn delivery_of(portal: &Portal, c: &Customer, id: &str) -> Result<(Value, String), Problem> {
    let ids = visible_ids(portal, c).await?;
    let d = c
        .get(portal, &c.v1(&format!("/deliveries/{}", enc(id))))
        .await
        .map_err(|r| match r.status {
            StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST => Problem::not_found("delivery"),
            _ => r.into(),
        })?;
    match ids.get(text(&d, "webhook_id")) {
        Some(key) => Ok((d.clone(), key.clone())),
        None => Err(Problem::not_found("delivery")),
    }
}

#[derive(Deserialize, Default)]
pub(crate) struct Done {
    done: Option<String>,
}

pub(crate) async fn delivery(
    State(portal): State<Portal>,
    c: Customer,
    Path((_, id)): Path<(String, String)>,
    Query(q): Query<Done>,
) -> Result<Response, Problem> {
    let (d, key) = delivery_of(&portal, &c, &id).await?;
    let attempts = c
        .get(
            &portal,
            &c.v1(&format!("/deliveries/{}/attempts", enc(&id))),
        )
        .await?;
    let attempts = attempts["data"].as_array().cloned().unwrap_or_default();
    let failed = text(&d, "status") == "failed";
    let event_path = c.v1(&format!("/events/{}", enc(text(&d, "event_id"))));
    let mut event = c.get(&portal, &event_path).await?["event"].take();
    redact_private_fields(&mut event["envelope"]);
    let event_type = text(&event, "type").to_owned();
    // Its Basic auth and custom headers, as the endpoint has them now (masked).
    let endpoint = c
        .get(&portal, &c.v1(&format!("/webhooks/{}", enc(&key))))
        .await?;
    Ok(page::page(
        &c,
        Section::Messages,
        "Delivery",
        html! {
            (notice(q.done.as_deref()))
            dl.facts {
                dt { "Endpoint" } dd { a href=(c.href(&format!("/endpoints/{}", enc(&key)))) { (key) } }
                dt { "Event" } dd { a href=(c.href(&format!("/events/{}", enc(text(&d, "event_id"))))) { code { (text(&d, "event_id")) } } }
                dt { "Status" } dd { (badge(text(&d, "status"))) }
                dt { "URL" } dd { code { (value(&d["url"])) } }
            }
            h2 { "Request body" }
            pre.json { (serde_json::to_string_pretty(&event["envelope"]["payload"]).unwrap_or_default()) }
            @if failed && !c.read_only {
                (button(&c, &c.href(&format!("/deliveries/{id}/redeliver")), "Redeliver", ""))
            }
            h2 { "Attempts" }
            @if attempts.is_empty() { p { "No attempt yet." } } @else {
                div.scroll { table {
                    thead { tr {
                        th { "#" } th { "Time" } th { "Outcome" } th { "Status" } th { "Latency" }
                        th { "Error" } th { "Response" } th { "Request headers" }
                    } }
                    tbody { @for a in &attempts { tr {
                        td.num { (value(&a["attempt"])) }
                        td { (when(&a["started_at"])) }
                        td { (badge(text(a, "outcome"))) }
                        td.num { (value(&a["status_code"])) }
                        td.num { (format!("{:.0} ms", a["latency_ms"].as_f64().unwrap_or(0.0))) }
                        td.error-text { (value(&a["error"])) }
                        td { code { (value(&a["response_snippet"])) } }
                        td { details {
                            summary { "Headers" }
                            pre.headers { (request_headers(&d, &event_type, a, &endpoint)) }
                        } }
                    } } }
                } }
            }
        },
    ))
}

/// One masked signature per key the endpoint signs with now, by version, its own
/// scheme's keys first (`v1a,•••••••• v1,••••••••` after a switch to ed25519).
fn masked_signatures(endpoint: &Value) -> String {
    let count = |k: &str| endpoint[k].as_array().map_or(0, Vec::len);
    let ed25519 = count("public_keys");
    let hmac = count("signing_secrets").saturating_sub(ed25519);
    let (first, second) = match endpoint["signing_scheme"].as_str() {
        Some("ed25519") => (("v1a", ed25519), ("v1", hmac)),
        _ => (("v1", hmac), ("v1a", ed25519)),
    };
    let versions: Vec<String> = [first, second]
        .into_iter()
        .flat_map(|(version, n)| std::iter::repeat_n(format!("{version},••••••••"), n))
        .collect();
    if versions.is_empty() {
        "v1,••••••••".to_owned()
    } else {
        versions.join(" ")
    }
}

/// The headers an attempt was sent with, as the sender builds them
/// (`hookrelay_model::wire::delivery_headers`), its secrets masked; the endpoint's
/// Basic auth and custom headers as it has them now.
fn request_headers(d: &Value, event_type: &str, attempt: &Value, endpoint: &Value) -> String {
    let timestamp = attempt["started_at"]
        .as_str()
        .and_then(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
        })
        .map_or(0, |t| t.unix_timestamp());
    let number = attempt["attempt"]
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or(0);
    let described = wire::delivery_headers(
        text(d, "id"),
        timestamp,
        text(d, "event_id"),
        event_type,
        number,
    );
    // An endpoint that is a broker gets these as message headers (the content type
    // as a property), without a user agent or Basic auth.
    let broker = !endpoint["amqp_exchange"].is_null();
    let mut lines = vec!["content-type: application/json".to_owned()];
    if !broker {
        lines.push(format!("user-agent: {}", hookrelay_model::USER_AGENT));
    }
    lines.extend(described.iter().map(|(name, v)| format!("{name}: {v}")));
    lines.push(format!(
        "webhook-signature: {} (masked)",
        masked_signatures(endpoint)
    ));
    if !endpoint["secret"].is_null() && !broker {
        lines.push("authorization: Basic •••••••• (masked)".to_owned());
    }
    if let Some(custom) = endpoint["headers"].as_object() {
        lines.extend(
            custom
                .keys()
                .map(|name| format!("{name}: •••••••• (masked)")),
        );
    }
    lines.join("\n")
}

#[derive(Deserialize)]
pub(crate) struct CsrfOnly {
    #[serde(default)]
    csrf: String,
}

pub(crate) async fn redeliver(
    State(portal): State<Portal>,
    c: Customer,
    Path((_, id)): Path<(String, String)>,
    Form(form): Form<CsrfOnly>,
) -> Result<Response, Problem> {
    c.check(&form.csrf)?;
    delivery_of(&portal, &c, &id).await?;
    c.call(
        &portal,
        Method::POST,
        &c.v1(&format!("/deliveries/{}/redeliver", enc(&id))),
        None,
    )
    .await?;
    Ok(parts::done(
        &c.href(&format!("/deliveries/{id}")),
        "Sent again: a fresh round of attempts.",
    ))
}
