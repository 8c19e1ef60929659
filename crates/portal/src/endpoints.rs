//! The session's endpoints (its tenant's webhooks, within its limits): the list with
//! health, create and edit (the API's validation errors beside the field), the
//! signing secret, how to verify, send an example, pause, resume, enable, and
//! redeliver the failed deliveries since a time after a dry-run count.

use std::collections::HashMap;

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use hookrelay_console::chart;
use hookrelay_console::kit::api::{Refused, enc};
use hookrelay_console::kit::health;
use hookrelay_console::kit::parts::{
    self, breaker, button, csrf, field, input, json_or_null, notice, refusal, state_badge,
    success_rate, text, text_or_null, value,
};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::page::{self, Problem, Section};
use crate::session::Customer;
use crate::state::Portal;

#[derive(Deserialize, Default)]
pub(crate) struct Done {
    done: Option<String>,
}

/// The session's endpoints as the API lists them, within its limits.
pub(crate) async fn endpoints(portal: &Portal, c: &Customer) -> Result<Vec<Value>, Problem> {
    let hooks = c.get(portal, &c.v1("/webhooks?limit=500")).await?;
    Ok(hooks["data"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|w| visible(c, w))
        .collect())
}

fn types_of(w: &Value) -> Vec<String> {
    w["event_types"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the session's limits show this webhook.
pub(crate) fn visible(c: &Customer, w: &Value) -> bool {
    c.limits.allows_key(text(w, "key")) && c.limits.allows_subscription(&types_of(w))
}

/// An event type the session may pick: from the catalog (with its description,
/// schema and example) within the session's limits, or one its limits name.
#[derive(Clone)]
pub(crate) struct Choice {
    name: String,
    description: String,
    schema: Value,
    example: Value,
    deprecated: bool,
}

/// The types the session may pick from: the catalog's within its limits; without a
/// catalog, the types its limits name (none: the endpoint's types are typed in).
pub(crate) async fn choices(portal: &Portal, c: &Customer) -> Result<Vec<Choice>, Problem> {
    let catalog = c.get(portal, "/v1/event-types").await?;
    let listed: Vec<Choice> = catalog["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| c.limits.allows_type(text(t, "name")))
        .map(|t| Choice {
            name: text(t, "name").to_owned(),
            description: text(t, "description").to_owned(),
            schema: t["schema"].clone(),
            example: t["example"].clone(),
            deprecated: t["deprecated"].as_bool().unwrap_or(false),
        })
        .collect();
    if !listed.is_empty() {
        return Ok(listed);
    }
    Ok(c.limits
        .event_types
        .iter()
        .map(|name| Choice {
            name: name.clone(),
            description: String::new(),
            schema: Value::Null,
            example: Value::Null,
            deprecated: false,
        })
        .collect())
}

/// One endpoint of the session, or 404 (another's is as unknown as a missing one).
async fn endpoint(portal: &Portal, c: &Customer, key: &str) -> Result<Value, Problem> {
    let w = c
        .get(portal, &c.v1(&format!("/webhooks/{}", enc(key))))
        .await
        .map_err(|r| match r.status {
            StatusCode::NOT_FOUND => Problem::not_found("endpoint"),
            _ => r.into(),
        })?;
    if visible(c, &w) {
        Ok(w)
    } else {
        Err(Problem::not_found("endpoint"))
    }
}

pub(crate) async fn list(
    State(portal): State<Portal>,
    c: Customer,
    Query(q): Query<Done>,
) -> Result<Response, Problem> {
    let data = endpoints(&portal, &c).await?;
    let db = portal
        .pool
        .get()
        .await
        .map_err(hookrelay_store::StoreError::from)?;
    let health: HashMap<String, Value> = health::of_tenant(&db, &c.tenant)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|r| Some((r["webhook_key"].as_str()?.to_owned(), r)))
        .collect();
    Ok(page::page(
        &c,
        Section::Endpoints,
        "Endpoints",
        html! {
            (notice(q.done.as_deref()))
            @if !c.read_only {
                p { a.button href=(c.href("/endpoints")) { "New endpoint" } }
            }
            @if data.is_empty() {
                p { "No endpoints yet." }
            } @else {
                div.scroll { table {
                    thead { tr {
                        th { "Endpoint" } th { "URL" } th { "State" } th { "Success (24 h)" }
                        th { "Last error (24 h)" } th { "Breaker" }
                    } }
                    tbody {
                        @for w in &data {
                            @let key = text(w, "key");
                            tr {
                                th scope="row" { a href=(c.href(&format!("/endpoints/{}", enc(key)))) { (key) } }
                                td.url { code { (text(w, "url")) } }
                                td { (state_badge(w)) }
                                td.num { (health.get(key).map(success_rate).unwrap_or_else(|| "–".into())) }
                                td.error-text { (health.get(key).and_then(|h| h["last_error"].as_str()).unwrap_or("–")) }
                                td { (breaker(w)) }
                            }
                        }
                    }
                } }
            }
        },
    ))
}

/// The endpoint form as typed: shown again when the API refuses it.
#[derive(Default, Clone)]
pub(crate) struct EndpointForm {
    csrf: String,
    key: String,
    url: String,
    /// Picked boxes (`event_type`, repeated) and the typed list (`event_types`).
    event_types: Vec<String>,
    filter: String,
    rate_limit: String,
    /// Custom headers typed one `Name: value` per line; never filled in.
    headers: String,
    clear_headers: bool,
    amqp_exchange: String,
    amqp_routing_key: String,
}

impl EndpointForm {
    fn parse(pairs: Vec<(String, String)>) -> Self {
        let mut f = Self::default();
        for (name, v) in pairs {
            match name.as_str() {
                "csrf" => f.csrf = v,
                "key" => f.key = v,
                "url" => f.url = v,
                "event_type" => f.event_types.push(v),
                "event_types" => f.event_types.extend(parts::list(&v)),
                "filter" => f.filter = v,
                "rate_limit" => f.rate_limit = v,
                "headers" => f.headers = v,
                "clear_headers" => f.clear_headers = true,
                "amqp_exchange" => f.amqp_exchange = v,
                "amqp_routing_key" => f.amqp_routing_key = v,
                _ => {}
            }
        }
        f
    }

    fn of(w: &Value) -> Self {
        Self {
            key: text(w, "key").into(),
            url: text(w, "url").into(),
            amqp_exchange: text(w, "amqp_exchange").into(),
            amqp_routing_key: text(w, "amqp_routing_key").into(),
            event_types: types_of(w),
            filter: match &w["filter"] {
                Value::Null => String::new(),
                v => serde_json::to_string_pretty(v).unwrap_or_default(),
            },
            rate_limit: match &w["rate_limit"] {
                Value::Null => String::new(),
                v => value(v),
            },
            ..Self::default()
        }
    }

    /// The API's body, after the session's limits are checked. Creating leaves empty
    /// settings out; editing sends them as null (removed).
    fn body(&self, c: &Customer, creating: bool) -> Result<Value, Refused> {
        c.limits
            .check_webhook(self.key.trim(), &self.event_types)
            .map_err(|e| Refused::of_field(StatusCode::BAD_REQUEST, e.problem, &e.field))?;
        let mut body = Map::new();
        if creating {
            body.insert("key".into(), json!(self.key.trim()));
        }
        body.insert("url".into(), json!(self.url.trim()));
        for (name, v) in parts::amqp_change(
            &self.url,
            &self.amqp_exchange,
            &self.amqp_routing_key,
            creating,
        ) {
            body.insert(name.into(), v);
        }
        body.insert("event_types".into(), json!(self.event_types));
        for (name, v) in [
            ("rate_limit", text_or_null(&self.rate_limit)),
            ("filter", json_or_null("filter", &self.filter)?),
        ] {
            if !(creating && v.is_null()) {
                body.insert(name.into(), v);
            }
        }
        if let Some(headers) = parts::headers_change(&self.headers, self.clear_headers, creating)? {
            body.insert("headers".into(), headers);
        }
        Ok(Value::Object(body))
    }
}

/// The form's fields; `current`: the endpoint being edited (its custom headers are
/// listed, masked).
fn form_fields(
    choices: &[Choice],
    f: &EndpointForm,
    current: Option<&Value>,
    refused: Option<&Refused>,
) -> Markup {
    let creating = current.is_none();
    let types_help = match choices.is_empty() {
        true => "Comma-separated; empty: every type.",
        false => "Pick the event types this endpoint receives.",
    };
    html! {
        @if creating {
            (field("key", "Name", "A short name for this endpoint, unique among yours.", input("key", &f.key, "text"), refused))
        }
        (field("url", "URL", "https:// address that receives the events, or amqps://user:password@host/vhost to have them published to your RabbitMQ (the password is kept secret and shown as ********; leave the mask to keep it).", input("url", &f.url, "url"), refused))
        (parts::amqp_fields(&f.amqp_exchange, &f.amqp_routing_key, refused))
        @if choices.is_empty() {
            (field("event_types", "Event types", types_help, input("event_types", &f.event_types.join(", "), "text"), refused))
        } @else {
            fieldset #event_types.types aria-describedby="event_types-help" {
                legend { "Event types" }
                @for (i, t) in choices.iter().enumerate() {
                    @let id = format!("event_type_{i}");
                    @let picked = f.event_types.contains(&t.name);
                    @if !t.deprecated || picked {
                        div.type {
                            input id=(id) type="checkbox" name="event_type" value=(t.name) checked[picked];
                            label for=(id) { code { (t.name) } @if t.deprecated { " (deprecated)" } }
                            @if !t.description.is_empty() { p.help { (t.description) } }
                            @if !t.schema.is_null() || !t.example.is_null() {
                                details {
                                    summary { "Schema and example" }
                                    @if !t.example.is_null() { p { "Example:" } pre.json { (serde_json::to_string_pretty(&t.example).unwrap_or_default()) } }
                                    @if !t.schema.is_null() { p { "Schema:" } pre.json { (serde_json::to_string_pretty(&t.schema).unwrap_or_default()) } }
                                }
                            }
                        }
                    }
                }
            }
            p.help #event_types-help { (types_help) }
            @if let Some(r) = refused.filter(|r| r.field.as_deref().is_some_and(|f| f.starts_with("event_types"))) {
                p.error #event_types-error role="alert" { (r.error) }
            }
        }
        (field("filter", "Payload filter", "JSON conditions on the payload; empty: every event of the types.", html! {
            textarea #filter name="filter" rows="3" aria-describedby="filter-help" { (f.filter) }
        }, refused))
        (field("rate_limit", "Rate limit", "e.g. 50/s, 600/m; empty: none.", input("rate_limit", &f.rate_limit, "text"), refused))
        (parts::headers_field(current, refused))
    }
}

fn new_page(
    c: &Customer,
    choices: &[Choice],
    f: &EndpointForm,
    refused: Option<&Refused>,
) -> Response {
    page::page(
        c,
        Section::Endpoints,
        "New endpoint",
        html! {
            (refusal(refused))
            form.stack method="post" action=(c.href("/endpoints")) {
                (csrf(c))
                (form_fields(choices, f, None, refused))
                button type="submit" { "Create endpoint" }
            }
        },
    )
}

pub(crate) async fn new_form(
    State(portal): State<Portal>,
    c: Customer,
) -> Result<Response, Problem> {
    if c.read_only {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "This portal session is read-only.",
        ));
    }
    let choices = choices(&portal, &c).await?;
    Ok(new_page(&c, &choices, &EndpointForm::default(), None))
}

pub(crate) async fn create(
    State(portal): State<Portal>,
    c: Customer,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, Problem> {
    let form = EndpointForm::parse(pairs);
    c.check(&form.csrf)?;
    let created = match form.body(&c, true) {
        Ok(body) => {
            c.call(&portal, Method::POST, &c.v1("/webhooks"), Some(body))
                .await
        }
        Err(r) => Err(r),
    };
    match created {
        Ok(w) => Ok(
            Redirect::to(&c.href(&format!("/endpoints/{}", enc(text(&w, "key"))))).into_response(),
        ),
        Err(r) => {
            let choices = choices(&portal, &c).await?;
            Ok((r.status, new_page(&c, &choices, &form, Some(&r))).into_response())
        }
    }
}

/// How to verify a delivery: the Standard Webhooks headers and a copyable example.
fn verify_help() -> Markup {
    html! {
        p { "Each delivery is signed as " a href="https://www.standardwebhooks.com/" { "Standard Webhooks" }
            " say: headers " code { "webhook-id" } ", " code { "webhook-timestamp" } " and "
            code { "webhook-signature" } ". Verify them with your signing secret before trusting the body:" }
        pre.copy { code { r#"# Python: pip install standardwebhooks
from standardwebhooks.webhooks import Webhook
wh = Webhook("whsec_...")            # your signing secret
payload = wh.verify(request_body, request_headers)  # raises if forged or replayed

// Node: npm install standardwebhooks
import { Webhook } from "standardwebhooks";
const payload = new Webhook("whsec_...").verify(body, headers);"# } }
    }
}

/// How to verify an ed25519 endpoint's deliveries (`v1a`) with its public key.
fn verify_ed25519_help() -> Markup {
    html! {
        p { "Each delivery is signed as " a href="https://www.standardwebhooks.com/" { "Standard Webhooks" }
            " say, with ed25519 (" code { "v1a" } "): verify " code { "webhook-signature" }
            " with the public key above over " code { "{webhook-id}.{webhook-timestamp}.{body}" }
            " before trusting the body; any one " code { "v1a,…" } " signature that verifies is enough:" }
        pre.copy { code { r#"# Python: pip install cryptography
import base64
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key.removeprefix("whpk_")))
signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
def verifies(sig):
    try:
        key.verify(base64.b64decode(sig), signed)
        return True
    except Exception:  # InvalidSignature
        return False
ok = any(verifies(sig) for version, _, sig in
         (s.partition(",") for s in headers["webhook-signature"].split()) if version == "v1a")"# } }
    }
}

pub(crate) async fn show(
    State(portal): State<Portal>,
    c: Customer,
    Path((_, key)): Path<(String, String)>,
    Query(q): Query<Done>,
) -> Result<Response, Problem> {
    show_page(&portal, &c, &key, None, q.done.as_deref()).await
}

async fn show_page(
    portal: &Portal,
    c: &Customer,
    key: &str,
    form: Option<(&EndpointForm, &Refused)>,
    done: Option<&str>,
) -> Result<Response, Problem> {
    let w = endpoint(portal, c, key).await?;
    let here = c.href(&format!("/endpoints/{}", enc(key)));
    let (values, refused) = match form {
        Some((f, r)) => (f.clone(), Some(r)),
        None => (EndpointForm::of(&w), None),
    };
    let paused = !w["paused_at"].is_null();
    let enabled = w["enabled"].as_bool().unwrap_or(true);
    let subscribed = types_of(&w);
    let choices = choices(portal, c).await?;
    let example_types: Vec<String> = match subscribed.is_empty() {
        false => subscribed.clone(),
        true => choices.iter().map(|t| t.name.clone()).collect(),
    };
    let messages = c.href(&format!("/messages?endpoint={}", enc(key)));
    let series = chart::section(
        c.get(
            portal,
            &c.v1(&format!("/stats/series?webhook={}", enc(key))),
        )
        .await,
        &format!("endpoint {key}"),
    );
    let since_default = (OffsetDateTime::now_utc() - time::Duration::hours(24))
        .format(&Rfc3339)
        .unwrap_or_default();
    Ok(page::page(
        c,
        Section::Endpoints,
        &format!("Endpoint {key}"),
        html! {
            (notice(done))
            dl.facts {
                dt { "URL" } dd { code { (text(&w, "url")) } }
                dt { "Destination" } dd { (parts::destination(&w)) }
                dt { "Event types" } dd { @if subscribed.is_empty() { "every type" } @else { (subscribed.join(", ")) } }
                dt { "State" } dd { (state_badge(&w)) @if let Some(r) = w["disabled_reason"].as_str() { " " (r) } }
                dt { "Breaker" } dd { (breaker(&w)) }
                dt { "Custom headers" } dd { (parts::custom_headers(&w)) }
                dt { "Signing" } dd { (parts::signing(&w)) }
                dt { "Messages" } dd { a href=(messages) { "See its messages" } }
            }
            (series)
            @if !c.read_only {
                section aria-labelledby="actions" {
                    h2 #actions { "Actions" }
                    div.actions {
                        @if paused {
                            (button(c, &format!("{here}/resume"), "Resume", ""))
                        } @else {
                            (button(c, &format!("{here}/pause"), "Pause", ""))
                        }
                        @if !enabled {
                            (button(c, &format!("{here}/enable"), "Enable", ""))
                        }
                    }
                }
                section aria-labelledby="secret" {
                    h2 #secret { "Signing secret" }
                    p { "The secret is shown once, when it is made. Revealing a new one keeps the current one valid until the next time, so you can switch without missing a delivery." }
                    (button(c, &format!("{here}/rotate-secret"), "Reveal a new signing secret", ""))
                }
                section aria-labelledby="example" {
                    h2 #example { "Send an example" }
                    form.inline method="post" action={ (here) "/send-example" } {
                        (csrf(c))
                        label for="example_type" { "Event type" }
                        @if example_types.is_empty() {
                            input #example_type name="event_type" type="text" required;
                        } @else {
                            select #example_type name="event_type" {
                                @for t in &example_types { option value=(t) { (t) } }
                            }
                        }
                        button type="submit" { "Send example" }
                    }
                }
                section aria-labelledby="redeliver" {
                    h2 #redeliver { "Redeliver failed messages" }
                    form.inline method="post" action={ (here) "/redeliver-failed" } {
                        (csrf(c))
                        label for="since" { "Failed since (RFC 3339, UTC)" }
                        input #since name="since" type="text" value=(since_default) required;
                        button type="submit" { "Count them" }
                    }
                }
                section aria-labelledby="edit" {
                    h2 #edit { "Settings" }
                    (refusal(refused))
                    form.stack method="post" action=(here) {
                        (csrf(c))
                        (form_fields(&choices, &values, Some(&w), refused))
                        button type="submit" { "Save changes" }
                    }
                }
            }
            section aria-labelledby="verify" {
                h2 #verify { "Verifying deliveries" }
                @if w["signing_scheme"].as_str() == Some("ed25519") {
                    (verify_ed25519_help())
                } @else {
                    (verify_help())
                }
            }
        },
    ))
}

pub(crate) async fn update(
    State(portal): State<Portal>,
    c: Customer,
    Path((_, key)): Path<(String, String)>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> Result<Response, Problem> {
    let mut form = EndpointForm::parse(pairs);
    c.check(&form.csrf)?;
    endpoint(&portal, &c, &key).await?;
    form.key = key.clone();
    let path = c.v1(&format!("/webhooks/{}", enc(&key)));
    let updated = match form.body(&c, false) {
        Ok(body) => c.call(&portal, Method::PATCH, &path, Some(body)).await,
        Err(r) => Err(r),
    };
    match updated {
        Ok(_) => Ok(parts::done(
            &c.href(&format!("/endpoints/{}", enc(&key))),
            "Saved.",
        )),
        Err(r) => {
            let page = show_page(&portal, &c, &key, Some((&form, &r)), None).await?;
            Ok((r.status, page).into_response())
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct ActionForm {
    #[serde(default)]
    csrf: String,
    event_type: Option<String>,
    since: Option<String>,
    confirm: Option<String>,
}

pub(crate) async fn act(
    State(portal): State<Portal>,
    c: Customer,
    Path((_, key, action)): Path<(String, String, String)>,
    Form(form): Form<ActionForm>,
) -> Result<Response, Problem> {
    c.check(&form.csrf)?;
    let w = endpoint(&portal, &c, &key).await?;
    let path = c.v1(&format!("/webhooks/{}", enc(&key)));
    let here = c.href(&format!("/endpoints/{}", enc(&key)));
    let notice = match action.as_str() {
        "pause" => "Paused: its messages are held until you resume it.",
        "resume" => "Resumed: held messages are being sent, oldest first.",
        "enable" => "Enabled.",
        "rotate-secret" => return rotate(&portal, &c, &key, &path).await,
        "send-example" => return send_example(&portal, &c, &w, form.event_type.as_deref()).await,
        "redeliver-failed" => return redeliver_failed(&portal, &c, &w, &form).await,
        _ => return Err(Problem::not_found("action")),
    };
    c.call(&portal, Method::POST, &format!("{path}/{action}"), None)
        .await?;
    Ok(parts::done(&here, notice))
}

/// The new secret is shown on this page only, once.
async fn rotate(portal: &Portal, c: &Customer, key: &str, path: &str) -> Result<Response, Problem> {
    let rotated = c
        .call(
            portal,
            Method::POST,
            &format!("{path}/rotate-signing-secret"),
            None,
        )
        .await?;
    Ok(page::page(
        c,
        Section::Endpoints,
        "Your signing secret",
        html! {
            @if let Some(public) = rotated["public_key"].as_str() {
                p { "Endpoint " strong { (key) } " now signs with a new ed25519 key pair (the previous key stays valid until the next time). Verify with its public key, also shown on the endpoint's page; the private key never leaves us." }
                p { code.public-key #public-key { (public) } }
            } @else {
                p { "Endpoint " strong { (key) } " now signs with this secret (the previous one stays valid until the next time). Copy it now: it is not shown again." }
                p { code.secret #signing-secret { (text(&rotated, "signing_secret")) } }
            }
            p { a href=(c.href(&format!("/endpoints/{}", enc(key)))) { "Back to the endpoint" } }
        },
    ))
}

/// Publishes an example of `event_type` to this endpoint only, then shows the event.
async fn send_example(
    portal: &Portal,
    c: &Customer,
    w: &Value,
    event_type: Option<&str>,
) -> Result<Response, Problem> {
    let event_type = event_type.map(str::trim).unwrap_or("");
    let subscribed = types_of(w);
    let takes = subscribed.is_empty() || subscribed.iter().any(|t| t == event_type);
    if event_type.is_empty() || !takes || !c.limits.allows_type(event_type) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            format!("This endpoint does not receive events of type `{event_type}`."),
        ));
    }
    // The catalog's example of the type, when it has one.
    let payload = choices(portal, c)
        .await?
        .into_iter()
        .find(|t| t.name == event_type && !t.example.is_null())
        .map(|t| t.example)
        .unwrap_or_else(|| json!({"type": event_type, "example": true, "data": {}}));
    let id = format!("example-{}", uuid::Uuid::now_v7());
    let envelope = json!({
        "id": id,
        "tenant": c.tenant,
        "type": event_type,
        "occurred_at": OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
        "webhook_keys": [text(w, "key")],
        "payload": payload,
    });
    c.publish_example(portal, envelope).await?;
    Ok(Redirect::to(&c.href(&format!("/events/{}", enc(&id)))).into_response())
}

/// Without `confirm`: how many failed deliveries since the time would go again (a
/// dry run), and the button that sends them; with it: sends them.
async fn redeliver_failed(
    portal: &Portal,
    c: &Customer,
    w: &Value,
    form: &ActionForm,
) -> Result<Response, Problem> {
    let key = text(w, "key");
    let since_text = form.since.as_deref().unwrap_or("").trim();
    let since = OffsetDateTime::parse(since_text, &Rfc3339).map_err(|_| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            format!("`{since_text}` is not a time such as 2026-12-07T03:00:00Z."),
        )
    })?;
    let since = since.format(&Rfc3339).unwrap_or_default();
    let here = c.href(&format!("/endpoints/{}", enc(key)));
    if form.confirm.as_deref() == Some("yes") {
        let summary = c
            .call(
                portal,
                Method::POST,
                &c.v1(&format!("/webhooks/{}/redeliver", enc(key))),
                Some(json!({"since": since})),
            )
            .await?;
        let n = summary["requeued"].as_u64().unwrap_or(0);
        return Ok(parts::done(
            &here,
            &format!("{n} failed messages sent again."),
        ));
    }
    let found = c
        .get(
            portal,
            &c.v1(&format!(
                "/deliveries?webhook_id={}&status=failed&since={}&limit=500",
                enc(text(w, "id")),
                enc(&since)
            )),
        )
        .await?;
    let n = found["data"].as_array().map_or(0, Vec::len);
    let more = !found["next_cursor"].is_null();
    Ok(page::page(
        c,
        Section::Endpoints,
        "Redeliver failed messages",
        html! {
            p #dry-run { strong { (n) @if more { "+" } } " failed messages of " (key) " since " (since) " would be sent again." }
            @if n > 0 {
                form.inline method="post" action={ (here) "/redeliver-failed" } {
                    (csrf(c))
                    input type="hidden" name="since" value=(since);
                    input type="hidden" name="confirm" value="yes";
                    button type="submit" { "Redeliver them" }
                }
            }
            p { a href=(here) { "Back to the endpoint" } }
        },
    ))
}
