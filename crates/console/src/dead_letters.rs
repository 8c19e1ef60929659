//! The dead-letter queue (the operator's): messages grouped by tenant, webhook and
//! reason; one message; replay and purge by filter, each after a dry run that
//! shows how many messages it would touch.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::kit::api::enc;
use crate::page::{self, Failure, Section, text, value, when};
use crate::session::Viewer;
use crate::state::Console;

#[derive(Deserialize, Default, Clone)]
pub(crate) struct Filter {
    #[serde(default)]
    tenant: String,
    #[serde(default)]
    webhook: String,
    #[serde(default)]
    reason: String,
}

impl Filter {
    fn pairs(&self) -> [(&'static str, &str); 3] {
        [
            ("tenant", self.tenant.trim()),
            ("webhook", self.webhook.trim()),
            ("reason", self.reason.trim()),
        ]
    }

    fn query(&self) -> String {
        self.pairs()
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={}", enc(v)))
            .collect::<Vec<_>>()
            .join("&")
    }

    fn body(&self) -> Map<String, Value> {
        self.pairs()
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect()
    }

    /// The admin's filter, for a replay the console runs as a job.
    fn admin(&self) -> hookrelay_admin::dlq::Filter {
        let given = |v: &str| Some(v.trim().to_owned()).filter(|v| !v.is_empty());
        hookrelay_admin::dlq::Filter {
            tenant: given(&self.tenant),
            webhook: given(&self.webhook),
            reason: given(&self.reason),
            ids: Vec::new(),
            webhook_ids: None,
        }
    }

    fn is_empty(&self) -> bool {
        self.pairs().iter().all(|(_, v)| v.is_empty())
    }

    fn hidden(&self) -> Markup {
        html! {
            @for (k, v) in self.pairs() { input type="hidden" name=(k) value=(v); }
        }
    }

    /// What the filter matches, for headings and confirmations.
    fn describe(&self) -> String {
        let parts: Vec<String> = self
            .pairs()
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k} `{v}`"))
            .collect();
        match parts.is_empty() {
            true => "every message".into(),
            false => format!("the messages of {}", parts.join(", ")),
        }
    }
}

fn messages(n: u64) -> String {
    match n {
        1 => "1 message".into(),
        n => format!("{n} messages"),
    }
}

fn operator_only(viewer: &Viewer) -> Result<(), Failure> {
    match viewer.is_operator() {
        true => Ok(()),
        false => Err(Failure::new(
            StatusCode::FORBIDDEN,
            "The dead-letter queue is the operator's.",
        )),
    }
}

pub(crate) async fn groups(
    State(console): State<Console>,
    viewer: Viewer,
    Query(filter): Query<Filter>,
) -> Result<Markup, Failure> {
    operator_only(&viewer)?;
    let q = filter.query();
    let groups = console
        .get(&viewer.caller, &format!("/v1/dead-letter/summary?{q}"))
        .await;
    let messages = match filter.is_empty() {
        true => None,
        false => Some(
            console
                .get(&viewer.caller, &format!("/v1/dead-letter?{q}&limit=50"))
                .await,
        ),
    };
    Ok(page::page(
        &viewer,
        Section::DeadLetters,
        "Dead letters",
        html! {
            form.search method="get" action="/console/dead-letters" {
                label { "Tenant " input name="tenant" value=(filter.tenant); }
                label { "Webhook (key or id) " input name="webhook" value=(filter.webhook); }
                label { "Reason " input name="reason" value=(filter.reason); }
                button type="submit" { "Filter" }
            }
            @match &groups {
                Err(r) => (page::refusal(Some(r))),
                Ok(g) => (group_table(g["data"].as_array().map(Vec::as_slice).unwrap_or_default())),
            }
            section aria-labelledby="act" {
                h2 #act { "Replay or purge " (filter.describe()) }
                p.help { "Each first counts what it would touch; nothing happens until you confirm." }
                div.actions {
                    (action_form(&viewer, &filter, "replay", "Replay…", false))
                    (action_form(&viewer, &filter, "purge", "Purge…", false))
                }
            }
            @if let Some(found) = &messages {
                h2 { "Messages" }
                @match found {
                    Err(r) => (page::refusal(Some(r))),
                    Ok(m) => (message_table(m["data"].as_array().map(Vec::as_slice).unwrap_or_default())),
                }
            }
        },
    ))
}

fn group_table(groups: &[Value]) -> Markup {
    html! {
        @if groups.is_empty() {
            p { "The dead-letter queue is empty." }
        } @else {
            div.scroll { table {
                thead { tr { th { "Tenant" } th { "Webhook" } th { "Reason" } th { "Messages" } th { "Oldest" } th { "Newest" } } }
                tbody {
                    @for g in groups {
                        @let f = Filter {
                            tenant: text(g, "tenant").into(),
                            webhook: g["webhook_id"].as_str().unwrap_or("").into(),
                            reason: text(g, "reason").into(),
                        };
                        tr {
                            th scope="row" { (value(&g["tenant"])) }
                            td { (g["webhook_key"].as_str().or(g["webhook_id"].as_str()).unwrap_or("–")) }
                            td { a href={ "/console/dead-letters?" (f.query()) } { (value(&g["reason"])) } }
                            td.num { (value(&g["count"])) }
                            td { (when(&g["oldest"])) }
                            td { (when(&g["newest"])) }
                        }
                    }
                }
            } }
        }
    }
}

fn message_table(messages: &[Value]) -> Markup {
    html! {
        @if messages.is_empty() { p { "No message matches." } }
        @else {
            div.scroll { table {
                thead { tr { th { "Message" } th { "Kind" } th { "Event" } th { "Reason" } th { "Error" } th { "Dead-lettered" } } }
                tbody {
                    @for m in messages {
                        @let id = m["message_id"].as_str().unwrap_or("");
                        tr {
                            th scope="row" { a href={ "/console/dead-letters/message/" (enc(id)) } { code { (id) } } }
                            td { (value(&m["kind"])) }
                            td { (value(&m["event_id"])) }
                            td { (value(&m["reason"])) }
                            td { (value(&m["error"])) }
                            td { (when(&m["dead_lettered_at"])) }
                        }
                    }
                }
            } }
        }
    }
}

fn action_form(
    viewer: &Viewer,
    filter: &Filter,
    action: &str,
    label: &str,
    confirm: bool,
) -> Markup {
    let class = if action == "purge" { "danger" } else { "" };
    html! {
        form.inline method="post" action={ "/console/dead-letters/" (action) } {
            (page::csrf(viewer))
            (filter.hidden())
            @if confirm { input type="hidden" name="confirm" value="yes"; }
            button type="submit" class=(class) { (label) }
        }
    }
}

pub(crate) async fn show(
    State(console): State<Console>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Markup, Failure> {
    operator_only(&viewer)?;
    let m = console
        .get(&viewer.caller, &format!("/v1/dead-letter/{}", enc(&id)))
        .await?;
    Ok(page::page(
        &viewer,
        Section::DeadLetters,
        &format!("Dead letter {id}"),
        html! {
            dl.facts {
                @for k in ["kind", "tenant", "event_id", "webhook_id", "delivery_id", "reason", "error", "last_status", "attempts", "dead_lettered_at", "source_queue", "routing_key", "body_bytes"] {
                    dt { (k) } dd { (value(&m[k])) }
                }
            }
            @if m["body_truncated"].as_bool().unwrap_or(false) {
                p.note { "The body is shown cut short." }
            }
            h2 { "Body" }
            pre.json { (serde_json::to_string_pretty(&m["body"]).unwrap_or_default()) }
        },
    ))
}

#[derive(Deserialize)]
pub(crate) struct ActionForm {
    #[serde(default)]
    csrf: String,
    confirm: Option<String>,
    #[serde(flatten)]
    filter: Filter,
}

/// A dry run first (the count and a confirm button), then the run itself.
pub(crate) async fn act(
    State(console): State<Console>,
    viewer: Viewer,
    Path(action): Path<String>,
    Form(form): Form<ActionForm>,
) -> Result<Response, Failure> {
    operator_only(&viewer)?;
    viewer.check(&form.csrf)?;
    if !["replay", "purge"].contains(&action.as_str()) {
        return Err(Failure::new(StatusCode::NOT_FOUND, "No such action."));
    }
    let confirmed = form.confirm.is_some();
    if confirmed && action == "replay" {
        // A job through the admin function, not the route: recorded here.
        hookrelay_admin::http::record_change(
            &console.pool,
            Some(&viewer.caller),
            Some(&hookrelay_model::access::Via::Console),
            &Method::POST,
            "/v1/dead-letter/replay",
            StatusCode::ACCEPTED,
        )
        .await;
        let what = form.filter.describe();
        let id = console
            .jobs
            .replay(&console.admin, form.filter.admin(), what);
        return Ok(Redirect::to(&format!("/console/dead-letters/jobs/{id}")).into_response());
    }
    // What is confirmed here is a purge (a confirmed replay runs as a job, above).
    let mut body = form.filter.body();
    let flag = if confirmed { "confirm" } else { "dry_run" };
    body.insert(flag.into(), json!(true));
    let path = format!("/v1/dead-letter/{action}");
    let summary = console
        .call(
            &viewer.caller,
            Method::POST,
            &path,
            Some(Value::Object(body)),
        )
        .await?;
    let what = form.filter.describe();
    let n = |k: &str| summary[k].as_u64().unwrap_or(0);
    Ok(page::page(
        &viewer,
        Section::DeadLetters,
        &format!(
            "{} dead letters",
            if action == "replay" {
                "Replay"
            } else {
                "Purge"
            }
        ),
        html! {
            @if confirmed {
                p.notice role="status" {
                    (n("done")) " of " (n("matched")) " matching messages purged for good."
                }
                p { a href={ "/console/dead-letters?" (form.filter.query()) } { "Back to the dead letters" } }
            } @else {
                p #dry-run role="status" {
                    "Dry run of " (what) ": " strong.count { (n("matched")) } " of the "
                    (messages(n("scanned"))) " in the queue match. Nothing was changed."
                }
                @if n("matched") > 0 {
                    (action_form(&viewer, &form.filter, &action, &format!("Confirm: {action} {}", messages(n("matched"))), true))
                }
                p { a href={ "/console/dead-letters?" (form.filter.query()) } { "Cancel" } }
            }
        },
    )
    .into_response())
}

/// A replay's progress while it runs (the page looks again each second, with
/// script), then what it did.
pub(crate) async fn job(
    State(console): State<Console>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> Result<Markup, Failure> {
    operator_only(&viewer)?;
    let job = uuid::Uuid::parse_str(&id)
        .ok()
        .and_then(|id| console.jobs.get(id))
        .ok_or_else(|| {
            Failure::new(
                StatusCode::NOT_FOUND,
                "No such replay on this server (jobs are kept in memory by the api process \
                 that started them).",
            )
        })?;
    Ok(page::page(
        &viewer,
        Section::DeadLetters,
        "Replay dead letters",
        html! {
            @match &job.outcome {
                None => {
                    p role="status" data-reload-after="1000" {
                        "Replaying " (job.what) ": " (job.scanned) " of " (job.total) " messages looked at. "
                        a href="" { "Look again" }
                    }
                    progress max=(job.total.max(1)) value=(job.scanned) aria-label="Messages looked at" {}
                }
                Some(Err(e)) => p.error role="alert" { "The replay stopped: " (e) },
                Some(Ok(s)) => p.notice role="status" {
                    (s.done) " of " (s.matched) " matching messages replayed; "
                    (s.already_settled) " were already settled and removed; " (s.left) " left in the queue."
                },
            }
            p { a href="/console/dead-letters" { "Back to the dead letters" } }
        },
    ))
}
