//! Webhooks: a tenant's list with health, the create and edit form (the API's
//! validation errors shown beside the field), and the actions on one webhook.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::kit::api::{Refused, enc};
use crate::kit::parts;
use crate::kit::parts::{
    breaker, counts, field, input, json_or_null, state_badge, success_rate, text_or_null,
};
use crate::page::{self, Failure, Section, text, value};
use crate::session::Viewer;
use crate::state::Console;
use crate::tenants::{self, Scope};

#[derive(Deserialize)]
pub(crate) struct TenantQuery {
    tenant: Option<String>,
    /// A notice to show (after a delete).
    done: Option<String>,
}

pub(crate) async fn list(
    State(console): State<Console>,
    viewer: Viewer,
    Query(q): Query<TenantQuery>,
) -> Result<Markup, Failure> {
    let what = ("/console/webhooks", "Webhooks", "webhooks");
    let (tenant, picker) = match tenants::scope(
        &console,
        &viewer,
        q.tenant.as_deref(),
        Section::Webhooks,
        what,
    )
    .await?
    {
        Scope::Tenant { tenant, picker } => (tenant, picker),
        Scope::Pick(page) => return Ok(page),
    };
    let tenant = tenant.as_str();
    let t = enc(tenant);
    let hooks = console
        .get(
            &viewer.caller,
            &format!("/v1/tenants/{t}/webhooks?limit=500"),
        )
        .await?;
    let health = health_by_key(&console, &viewer, tenant).await;
    let may_change = viewer.caller.may_change();
    Ok(page::page(
        &viewer,
        Section::Webhooks,
        &format!("Webhooks of {tenant}"),
        html! {
            (picker)
            (page::notice(q.done.as_deref()))
            @if may_change {
                p { a.button href={ "/console/tenants/" (t) "/webhooks" } { "New webhook" } }
            }
            @let data = hooks["data"].as_array().cloned().unwrap_or_default();
            @if data.is_empty() {
                p { "This tenant has no webhooks yet." }
            } @else {
                div.scroll { table {
                    thead { tr {
                        th { "Key" } th { "URL" } th { "State" } th { "Success (24 h)" }
                        th { "Last day" } th { "Last error (24 h)" } th { "Breaker" }
                    } }
                    tbody {
                        @for w in &data {
                            @let key = text(w, "key");
                            tr {
                                th scope="row" { a href={ "/console/tenants/" (t) "/webhooks/" (enc(key)) } { (key) } }
                                td.url { code { (text(w, "url")) } }
                                td { (state_badge(w)) }
                                td.num { (health.get(key).map(success_rate).unwrap_or_else(|| "–".into())) }
                                td { (health.get(key).map(counts).unwrap_or_else(|| "–".into())) }
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

/// Each webhook's statistics (`/v1/stats`: the last day's counts and last error), by
/// key, for the health columns.
async fn health_by_key(
    console: &Console,
    viewer: &Viewer,
    tenant: &str,
) -> std::collections::HashMap<String, Value> {
    // The health columns are extra: without them the list still helps.
    let rows = crate::overview::stats_of(console, viewer, Some(tenant))
        .await
        .unwrap_or_default();
    rows.into_iter()
        .filter_map(|r| Some((r["webhook_key"].as_str()?.to_owned(), r)))
        .collect()
}

/// The form's fields as typed: what is shown again when the API refuses them.
#[derive(Deserialize, Default, Clone)]
pub(crate) struct WebhookForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    key: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    event_types: String,
    #[serde(default)]
    import_identifiers: String,
    #[serde(default)]
    schema_ids: String,
    development_mode: Option<String>,
    #[serde(default)]
    format: String,
    #[serde(default)]
    retry_on: String,
    #[serde(default)]
    rate_limit: String,
    #[serde(default)]
    rate_burst: String,
    #[serde(default)]
    max_in_flight: String,
    #[serde(default)]
    filter: String,
    #[serde(default)]
    secret: String,
    /// Typed one `Name: value` per line; never filled in from the webhook.
    #[serde(default)]
    headers: String,
    clear_headers: Option<String>,
    ordered: Option<String>,
    #[serde(default)]
    on_failure: String,
    #[serde(default)]
    signing_scheme: String,
    #[serde(default)]
    amqp_exchange: String,
    #[serde(default)]
    amqp_routing_key: String,
}

impl WebhookForm {
    fn of(w: &Value) -> Self {
        let list = |k: &str| {
            w[k].as_array()
                .map(|a| a.iter().map(value).collect::<Vec<_>>().join(", "))
                .unwrap_or_default()
        };
        let opt = |k: &str| match &w[k] {
            Value::Null => String::new(),
            v => value(v),
        };
        Self {
            key: text(w, "key").into(),
            url: text(w, "url").into(),
            event_types: list("event_types"),
            import_identifiers: list("import_identifiers"),
            schema_ids: list("schema_ids"),
            development_mode: w["development_mode"]
                .as_bool()
                .unwrap_or(false)
                .then(String::new),
            format: text(w, "format").into(),
            retry_on: list("retry_on"),
            rate_limit: opt("rate_limit"),
            rate_burst: opt("rate_burst"),
            max_in_flight: opt("max_in_flight"),
            ordered: w["ordered"].as_bool().unwrap_or(false).then(String::new),
            on_failure: text(w, "on_failure").into(),
            signing_scheme: text(w, "signing_scheme").into(),
            amqp_exchange: text(w, "amqp_exchange").into(),
            amqp_routing_key: text(w, "amqp_routing_key").into(),
            filter: match &w["filter"] {
                Value::Null => String::new(),
                v => serde_json::to_string_pretty(v).unwrap_or_default(),
            },
            ..Self::default()
        }
    }

    /// The API's request body. `creating`: every empty field is left out; editing:
    /// an empty optional setting is null (removed), an empty secret is kept.
    fn body(&self, creating: bool) -> Result<Value, Refused> {
        let mut body = Map::new();
        body.insert("key".into(), json!(self.key.trim()));
        body.insert("url".into(), json!(self.url.trim()));
        for (name, v) in parts::amqp_change(
            &self.url,
            &self.amqp_exchange,
            &self.amqp_routing_key,
            creating,
        ) {
            body.insert(name.into(), v);
        }
        body.insert("event_types".into(), json!(parts::list(&self.event_types)));
        body.insert(
            "import_identifiers".into(),
            json!(parts::list(&self.import_identifiers)),
        );
        body.insert("schema_ids".into(), json!(parts::list(&self.schema_ids)));
        body.insert(
            "development_mode".into(),
            json!(self.development_mode.is_some()),
        );
        if !self.format.is_empty() {
            body.insert("format".into(), json!(self.format));
        }
        body.insert("ordered".into(), json!(self.ordered.is_some()));
        if !self.on_failure.is_empty() {
            body.insert("on_failure".into(), json!(self.on_failure));
        }
        // The same scheme again changes nothing; a switch to ed25519 makes a key pair.
        if !self.signing_scheme.is_empty() {
            body.insert("signing_scheme".into(), json!(self.signing_scheme));
        }
        let retry_on = parts::list(&self.retry_on);
        if !retry_on.is_empty() {
            body.insert("retry_on".into(), json!(retry_on));
        }
        let optional = [
            ("rate_limit", text_or_null(&self.rate_limit)),
            ("rate_burst", page::number_or_text::<u64>(&self.rate_burst)),
            (
                "max_in_flight",
                page::number_or_text::<u64>(&self.max_in_flight),
            ),
            ("filter", json_or_null("filter", &self.filter)?),
        ];
        for (name, value) in optional {
            if !(creating && value.is_null()) {
                body.insert(name.into(), value);
            }
        }
        if !self.secret.is_empty() {
            body.insert("secret".into(), json!(self.secret));
        }
        if let Some(headers) =
            parts::headers_change(&self.headers, self.clear_headers.is_some(), creating)?
        {
            body.insert("headers".into(), headers);
        }
        Ok(Value::Object(body))
    }
}

/// Whether deliveries of one ordering key go one at a time, and what a failed head does.
fn ordering(w: &Value) -> String {
    if w["ordered"].as_bool().unwrap_or(false) {
        format!(
            "ordered per ordering key; after a key's head fails for good: {}",
            text(w, "on_failure")
        )
    } else {
        "unordered".into()
    }
}

/// An ordered webhook that blocks after a failure: the keys it holds, each with its
/// failed delivery and, for those who may change it, Resume and Skip.
async fn blocked_keys(
    console: &Console,
    viewer: &Viewer,
    path: &str,
    w: &Value,
    here: &str,
) -> Result<Markup, Failure> {
    if !(w["ordered"].as_bool().unwrap_or(false) && text(w, "on_failure") == "block") {
        return Ok(html! {});
    }
    let keys = console
        .get(&viewer.caller, &format!("{path}/blocked-keys"))
        .await?;
    let keys = keys.as_array().cloned().unwrap_or_default();
    let tenant = text(w, "tenant");
    Ok(html! {
        section aria-labelledby="blocked-keys" {
            h2 #blocked-keys { "Blocked keys" }
            @if keys.is_empty() {
                p { "No key is blocked." }
            } @else {
                p { "Each key waits behind a delivery that failed for good. Resume sends that delivery again, then the rest in order; Skip leaves it failed and sends the rest." }
                table {
                    thead { tr { th { "Ordering key" } th { "Failed delivery" } th { "Failed at" } @if viewer.caller.may_change() { th { "Actions" } } } }
                    tbody {
                        @for k in &keys {
                            @let key = text(k, "key");
                            @let failed = text(k, "failed_delivery");
                            tr {
                                td { code { (key) } }
                                td { a href={ "/console/tenants/" (enc(tenant)) "/deliveries/" (enc(failed)) } { "number " (k["failed_seq"]) } }
                                td { (text(k, "failed_at")) }
                                @if viewer.caller.may_change() {
                                    td.actions {
                                        (page::button(viewer, &format!("{here}/keys/{}/resume", enc(key)), "Resume", ""))
                                        (page::button(viewer, &format!("{here}/keys/{}/skip", enc(key)), "Skip", ""))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    })
}

#[derive(Deserialize)]
pub(crate) struct KeyActionPath {
    tenant: String,
    key: String,
    ordering_key: String,
    action: String,
}

/// Resume or Skip a blocked ordering key.
pub(crate) async fn act_on_key(
    State(console): State<Console>,
    viewer: Viewer,
    Path(a): Path<KeyActionPath>,
    Form(form): Form<ActionForm>,
) -> Result<Response, Failure> {
    viewer.check(&form.csrf)?;
    let notice = match a.action.as_str() {
        "resume" => format!(
            "Key {} resumed: its failed delivery is sent again, then the rest in order.",
            a.ordering_key
        ),
        "skip" => format!(
            "Key {} skipped: its failed delivery stays failed; the rest are sent.",
            a.ordering_key
        ),
        _ => return Err(Failure::new(StatusCode::NOT_FOUND, "No such action.")),
    };
    let path = format!(
        "/v1/tenants/{}/webhooks/{}/keys/{}/{}",
        enc(&a.tenant),
        enc(&a.key),
        enc(&a.ordering_key),
        a.action
    );
    console
        .call(&viewer.caller, Method::POST, &path, None)
        .await?;
    Ok(page::done(&webhook_href(&a.tenant, &a.key), &notice))
}

/// The form's fields; `current`: the webhook being edited (its custom headers are
/// listed, masked).
fn form_fields(f: &WebhookForm, current: Option<&Value>, refused: Option<&Refused>) -> Markup {
    html! {
        (field("key", "Key", "Unique within the tenant; usable in place of the id.", input("key", &f.key, "text"), refused))
        (field("url", "URL", "http:// or https://, or amqp:// or amqps://user:password@host/vhost to publish to a broker (credentials sealed, shown as ********; keep the mask to keep them); may hold {{VARIABLES}} from the event's environment.", input("url", &f.url, "text"), refused))
        (parts::amqp_fields(&f.amqp_exchange, &f.amqp_routing_key, refused))
        (field("event_types", "Event types", "Comma-separated; empty: every type.", input("event_types", &f.event_types, "text"), refused))
        (field("import_identifiers", "Triggers: import identifiers", "Comma-separated; empty: any.", input("import_identifiers", &f.import_identifiers, "text"), refused))
        (field("schema_ids", "Triggers: schema ids", "Comma-separated; empty: any.", input("schema_ids", &f.schema_ids, "text"), refused))
        (field("retry_on", "Retry on", "Comma-separated: timeout, 5xx, 429, 408 or a status; empty: the default.", input("retry_on", &f.retry_on, "text"), refused))
        (field("format", "Body format", "", html! {
            select #format name="format" {
                @for v in ["json", "form"] { option value=(v) selected[f.format == v] { (v) } }
            }
        }, refused))
        (field("rate_limit", "Rate limit", "e.g. 50/s, 600/m, 1000/h; empty: none.", input("rate_limit", &f.rate_limit, "text"), refused))
        (field("rate_burst", "Burst", "Requests that may go at once after a quiet spell; empty: one period's worth.", input("rate_burst", &f.rate_burst, "text"), refused))
        (field("max_in_flight", "Max in flight", "Requests at once, across all senders; empty: the senders' default.", input("max_in_flight", &f.max_in_flight, "text"), refused))
        (field("filter", "Payload filter", "JSON conditions on the payload (docs/operations.md); empty: none.", html! {
            textarea #filter name="filter" rows="3" aria-describedby="filter-help" { (f.filter) }
        }, refused))
        (field("secret", "Basic-auth secret", "Sent as the Basic-auth password; never shown again. Empty: unchanged.", html! {
            input #secret name="secret" type="password" autocomplete="new-password" aria-describedby="secret-help";
        }, refused))
        (parts::headers_field(current, refused))
        (field("signing_scheme", "Signing scheme", "hmac-sha256: Standard Webhooks v1 with a shared secret (rotate to get one); ed25519: v1a, hookrelay makes the key pair and shows its public key. Switching keeps the current key signing until the next rotation.", html! {
            select #signing_scheme name="signing_scheme" aria-describedby="signing_scheme-help" {
                @for v in ["hmac-sha256", "ed25519"] { option value=(v) selected[f.signing_scheme == v] { (v) } }
            }
        }, refused))
        div.field.check {
            input #development_mode name="development_mode" type="checkbox" value="on" checked[f.development_mode.is_some()];
            label for="development_mode" { "Development mode" }
        }
        div.field.check {
            input #ordered name="ordered" type="checkbox" value="on" checked[f.ordered.is_some()];
            label for="ordered" { "Ordered: events with the same ordering key go one at a time, in order" }
        }
        (field("on_failure", "When an ordered key's head fails for good", "skip: go on with the next; block: hold the key until an operator resumes or skips it.", html! {
            select #on_failure name="on_failure" {
                @for v in ["skip", "block"] { option value=(v) selected[f.on_failure == v] { (v) } }
            }
        }, refused))
    }
}

fn new_page(viewer: &Viewer, tenant: &str, f: &WebhookForm, refused: Option<&Refused>) -> Markup {
    page::page(
        viewer,
        Section::Webhooks,
        &format!("New webhook in {tenant}"),
        html! {
            (page::refusal(refused))
            form.stack method="post" action={ "/console/tenants/" (enc(tenant)) "/webhooks" } {
                (page::csrf(viewer))
                (form_fields(f, None, refused))
                button type="submit" { "Create webhook" }
            }
        },
    )
}

pub(crate) async fn new_form(
    viewer: Viewer,
    Path(tenant): Path<String>,
) -> Result<Markup, Failure> {
    if !viewer.sees(&tenant) {
        return Err(Failure::not_yours());
    }
    Ok(new_page(&viewer, &tenant, &WebhookForm::default(), None))
}

pub(crate) async fn create(
    State(console): State<Console>,
    viewer: Viewer,
    Path(tenant): Path<String>,
    Form(form): Form<WebhookForm>,
) -> Result<Response, Failure> {
    viewer.check(&form.csrf)?;
    let path = format!("/v1/tenants/{}/webhooks", enc(&tenant));
    let created = match form.body(true) {
        Ok(body) => {
            console
                .call(&viewer.caller, Method::POST, &path, Some(body))
                .await
        }
        Err(r) => Err(r),
    };
    match created {
        Ok(w) => Ok(Redirect::to(&webhook_href(&tenant, text(&w, "key"))).into_response()),
        Err(r) => Ok((r.status, new_page(&viewer, &tenant, &form, Some(&r))).into_response()),
    }
}

fn webhook_href(tenant: &str, key: &str) -> String {
    format!("/console/tenants/{}/webhooks/{}", enc(tenant), enc(key))
}

#[derive(Deserialize)]
pub(crate) struct WebhookPath {
    tenant: String,
    key: String,
}

#[derive(Deserialize, Default)]
pub(crate) struct ShowQuery {
    done: Option<String>,
}

pub(crate) async fn show_page(
    console: &Console,
    viewer: &Viewer,
    p: &WebhookPath,
    form: Option<(&WebhookForm, &Refused)>,
    done: Option<&str>,
) -> Result<Markup, Failure> {
    let path = format!("/v1/tenants/{}/webhooks/{}", enc(&p.tenant), enc(&p.key));
    let w = console.get(&viewer.caller, &path).await?;
    let here = webhook_href(&p.tenant, text(&w, "key"));
    let may_change = viewer.caller.may_change();
    let (values, refused) = match form {
        Some((f, r)) => (f.clone(), Some(r)),
        None => (WebhookForm::of(&w), None),
    };
    let paused = !w["paused_at"].is_null();
    let enabled = w["enabled"].as_bool().unwrap_or(true);
    let deliveries = format!(
        "/console/deliveries?tenant={}&webhook={}",
        enc(&p.tenant),
        enc(text(&w, "id"))
    );
    let health = crate::health::section(console, viewer, &p.tenant, Some(text(&w, "key"))).await;
    let blocked = blocked_keys(console, viewer, &path, &w, &here).await?;
    Ok(page::page(
        viewer,
        Section::Webhooks,
        &format!("Webhook {}", text(&w, "key")),
        html! {
            (page::notice(done))
            dl.facts {
                dt { "Tenant" } dd { a href={ "/console/webhooks?tenant=" (enc(&p.tenant)) } { (p.tenant) } }
                dt { "Id" } dd { code { (text(&w, "id")) } }
                dt { "State" } dd { (state_badge(&w)) @if let Some(r) = w["disabled_reason"].as_str() { " " (r) } }
                dt { "Breaker" } dd { (breaker(&w)) }
                dt { "Order" } dd { (ordering(&w)) }
                dt { "Signing" } dd { (parts::signing(&w)) }
                dt { "Custom headers" } dd { (parts::custom_headers(&w)) }
                dt { "URL" } dd { code { (text(&w, "url")) } }
                dt { "Destination" } dd { (parts::destination(&w)) }
                dt { "Deliveries" } dd { a href=(deliveries) { "See its deliveries" } }
            }
            (health)
            (blocked)
            @if may_change {
                section aria-labelledby="actions" {
                    h2 #actions { "Actions" }
                    div.actions {
                        @if paused {
                            (page::button(viewer, &format!("{here}/resume"), "Resume", ""))
                        } @else {
                            (page::button(viewer, &format!("{here}/pause"), "Pause", ""))
                        }
                        @if enabled {
                            (page::button(viewer, &format!("{here}/disable"), "Disable", ""))
                        } @else {
                            (page::button(viewer, &format!("{here}/enable"), "Enable", ""))
                        }
                        (page::button(viewer, &format!("{here}/rotate-signing-secret"), "Rotate signing secret", ""))
                        // Publishing events is the operator's (POST /v1/events).
                        @if viewer.is_operator() {
                            (page::button(viewer, &format!("{here}/test"), "Send a test event", ""))
                        }
                    }
                    form.inline.danger method="post" action={ (here) "/delete" } {
                        (page::csrf(viewer))
                        input #confirm-delete type="checkbox" name="confirm" value="yes" required;
                        label for="confirm-delete" { "Yes, delete this webhook" }
                        button.danger type="submit" { "Delete" }
                    }
                }
                section aria-labelledby="edit" {
                    h2 #edit { "Settings" }
                    (page::refusal(refused))
                    form.stack method="post" action=(here) {
                        (page::csrf(viewer))
                        (form_fields(&values, Some(&w), refused))
                        button type="submit" { "Save changes" }
                    }
                }
            } @else {
                section aria-labelledby="settings" {
                    h2 #settings { "Settings" }
                    pre.json { (serde_json::to_string_pretty(&w).unwrap_or_default()) }
                }
            }
        },
    ))
}

pub(crate) async fn show(
    State(console): State<Console>,
    viewer: Viewer,
    Path(p): Path<WebhookPath>,
    Query(q): Query<ShowQuery>,
) -> Result<Markup, Failure> {
    show_page(&console, &viewer, &p, None, q.done.as_deref()).await
}

pub(crate) async fn update(
    State(console): State<Console>,
    viewer: Viewer,
    Path(p): Path<WebhookPath>,
    Form(form): Form<WebhookForm>,
) -> Result<Response, Failure> {
    viewer.check(&form.csrf)?;
    let path = format!("/v1/tenants/{}/webhooks/{}", enc(&p.tenant), enc(&p.key));
    let updated = match form.body(false) {
        Ok(body) => {
            console
                .call(&viewer.caller, Method::PATCH, &path, Some(body))
                .await
        }
        Err(r) => Err(r),
    };
    match updated {
        Ok(w) => Ok(page::done(
            &webhook_href(&p.tenant, text(&w, "key")),
            "Saved.",
        )),
        Err(r) => {
            let page = show_page(&console, &viewer, &p, Some((&form, &r)), None).await?;
            Ok((r.status, page).into_response())
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct ActionPath {
    tenant: String,
    key: String,
    action: String,
}

#[derive(Deserialize)]
pub(crate) struct ActionForm {
    #[serde(default)]
    csrf: String,
    confirm: Option<String>,
}

pub(crate) async fn act(
    State(console): State<Console>,
    viewer: Viewer,
    Path(a): Path<ActionPath>,
    Form(form): Form<ActionForm>,
) -> Result<Response, Failure> {
    viewer.check(&form.csrf)?;
    let path = format!("/v1/tenants/{}/webhooks/{}", enc(&a.tenant), enc(&a.key));
    let notice = match a.action.as_str() {
        "pause" => "Paused: its deliveries are held until you resume it.",
        "resume" => "Resumed: held deliveries are being sent, oldest first.",
        "enable" => "Enabled.",
        "disable" => "Disabled.",
        "rotate-signing-secret" => return rotate(&console, &viewer, &a, &path).await,
        "test" => return send_test(&console, &viewer, &a, &path).await,
        "delete" => {
            if form.confirm.is_none() {
                return Err(Failure::new(
                    StatusCode::BAD_REQUEST,
                    "Tick the confirmation to delete the webhook.",
                ));
            }
            console
                .call(&viewer.caller, Method::DELETE, &path, None)
                .await?;
            let to = format!("/console/webhooks?tenant={}", enc(&a.tenant));
            return Ok(page::done(&to, &format!("Webhook {} deleted.", a.key)));
        }
        _ => return Err(Failure::new(StatusCode::NOT_FOUND, "No such action.")),
    };
    let path = format!("{path}/{}", a.action);
    console
        .call(&viewer.caller, Method::POST, &path, None)
        .await?;
    Ok(page::done(&webhook_href(&a.tenant, &a.key), notice))
}

/// Publishes an event for this webhook only (`webhook_keys`), of its first event
/// type (`hookrelay.test` when it takes every type), then shows the event.
async fn send_test(
    console: &Console,
    viewer: &Viewer,
    a: &ActionPath,
    path: &str,
) -> Result<Response, Failure> {
    let w = console.get(&viewer.caller, path).await?;
    let event_type = w["event_types"][0].as_str().unwrap_or("hookrelay.test");
    let id = format!("test-{}", uuid::Uuid::now_v7());
    let envelope = json!({
        "id": id,
        "tenant": a.tenant,
        "type": event_type,
        "occurred_at": time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        "development_mode": w["development_mode"],
        "webhook_keys": [text(&w, "key")],
        "payload": {"event": event_type, "data": {"test": true, "sent_from": "hookrelay console"}},
    });
    console
        .call(&viewer.caller, Method::POST, "/v1/events", Some(envelope))
        .await?;
    let to = format!("/console/tenants/{}/events/{}", enc(&a.tenant), enc(&id));
    Ok(Redirect::to(&to).into_response())
}

/// The new secret is shown on this page only, once.
async fn rotate(
    console: &Console,
    viewer: &Viewer,
    a: &ActionPath,
    path: &str,
) -> Result<Response, Failure> {
    let path = format!("{path}/rotate-signing-secret");
    let rotated = console
        .call(&viewer.caller, Method::POST, &path, None)
        .await?;
    let page = match rotated["public_key"].as_str() {
        // ed25519: nothing secret to show; the private key never leaves hookrelay.
        Some(public) => page::page(
            viewer,
            Section::Webhooks,
            "New signing key",
            html! {
                p { "Webhook " strong { (a.key) } " now signs with a new ed25519 key pair (the \
                     previous key keeps signing until the next rotation). Its public key:" }
                p { code.public-key { (public) } }
                p { a href=(webhook_href(&a.tenant, &a.key)) { "Back to the webhook" } }
            },
        ),
        None => page::page(
            viewer,
            Section::Webhooks,
            "New signing secret",
            html! {
                p { "Webhook " strong { (a.key) } " now signs with this secret (the previous one keeps \
                     signing until the next rotation). Copy it now: it is not shown again." }
                p { code.secret { (text(&rotated, "signing_secret")) } }
                p { a href=(webhook_href(&a.tenant, &a.key)) { "Back to the webhook" } }
            },
        ),
    };
    // Never cached: the page holds a secret.
    Ok(([(axum::http::header::CACHE_CONTROL, "no-store")], page).into_response())
}
