//! The first page: per tenant, the deliveries of the last hour and day by status and
//! the dead letters; the queues and their consumers (a role that consumes is up);
//! the webhooks whose breaker is open.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use hookrelay_admin::queues;
use hookrelay_store::webhooks;
use maud::{Markup, html};
use serde_json::Value;

use crate::kit::api::enc;
use crate::page::{self, Failure, Section};
use crate::session::Viewer;
use crate::state::Console;

/// Per tenant: the statuses of the last hour, of the last day, and dead letters.
#[derive(Default)]
struct TenantRow {
    hour: [u64; 4],
    day: [u64; 4],
    dead_letters: u64,
}

const STATUSES: [&str; 4] = ["delivered", "failed", "pending", "held"];

/// `?tenant=`: whose delivery health the operator sees.
#[derive(serde::Deserialize, Default)]
pub(crate) struct OverviewQuery {
    tenant: Option<String>,
}

pub(crate) async fn page(
    State(console): State<Console>,
    viewer: Viewer,
    Query(q): Query<OverviewQuery>,
) -> Result<Markup, Failure> {
    let rows = per_tenant(&stats_of(&console, &viewer, None).await?);
    let health = health(&console, &viewer, q.tenant, &rows).await;
    let operator = viewer.is_operator();
    let tripped = tripped(&console, &viewer).await?;
    let queues = match viewer.is_operator() {
        true => Some(queue_depths(&console).await),
        false => None,
    };
    Ok(page::page(
        &viewer,
        Section::Overview,
        "Overview",
        html! {
            section aria-labelledby="tenants" {
                h2 #tenants { "Deliveries by tenant" }
                @if rows.is_empty() {
                    p { "No webhooks yet. " a href="/console/webhooks" { "Create one" } "." }
                } @else {
                    div.scroll { table {
                        thead {
                            tr { th rowspan="2" { "Tenant" } th colspan="4" { "Last hour" } th colspan="4" { "Last day" } @if operator { th rowspan="2" { "Dead letters" } } }
                            tr { @for _ in 0..2 { @for s in STATUSES { th { (s) } } } }
                        }
                        tbody {
                            @for (tenant, r) in &rows {
                                tr {
                                    th scope="row" { a href={ "/console/webhooks?tenant=" (enc(tenant)) } { (tenant) } }
                                    @for n in r.hour { td.num { (n) } }
                                    @for n in r.day { td.num { (n) } }
                                    @if operator { td.num { (r.dead_letters) } }
                                }
                            }
                        }
                    } }
                }
            }
            (health)
            section aria-labelledby="tripped" {
                h2 #tripped { "Tripped webhooks" }
                @if tripped.is_empty() {
                    p { "No circuit breaker is open." }
                } @else {
                    ul {
                        @for (tenant, key) in &tripped {
                            li { a href={ "/console/tenants/" (enc(tenant)) "/webhooks/" (enc(key)) } { (tenant) " / " (key) } }
                        }
                    }
                }
            }
            @if let Some(queues) = queues {
                section aria-labelledby="queues" {
                    h2 #queues { "Queues and roles" }
                    (queue_table(&queues))
                }
            }
        },
    ))
}

/// The delivery-health charts of one tenant: a tenant token's own; the one the
/// operator asked for, or the only one there is; otherwise links to each.
async fn health(
    console: &Console,
    viewer: &Viewer,
    asked: Option<String>,
    rows: &BTreeMap<String, TenantRow>,
) -> Markup {
    let only = (rows.len() == 1)
        .then(|| rows.keys().next().cloned())
        .flatten();
    let tenant = viewer.own_tenant().map(str::to_owned).or(asked).or(only);
    match tenant {
        Some(tenant) => crate::health::section(console, viewer, &tenant, None).await,
        None if rows.is_empty() => Markup::default(),
        None => html! {
            section aria-labelledby="health" {
                h2 #health { "Delivery health" }
                p { "Charts of the last 24 hours for: "
                    @for (i, tenant) in rows.keys().enumerate() {
                        @if i > 0 { ", " }
                        a href={ "/console?tenant=" (enc(tenant)) "#health" } { (tenant) }
                    }
                }
            }
        },
    }
}

/// Statistics per webhook, of `tenant` or of every tenant: the operator's from
/// `/v1/stats` (with dead letters), a tenant token's from its tenant's deliveries
/// (`/v1/stats` and the dead letters are the operator's), in the same shape.
pub(crate) async fn stats_of(
    console: &Console,
    viewer: &Viewer,
    tenant: Option<&str>,
) -> Result<Vec<Value>, Failure> {
    let Some(own) = viewer.own_tenant() else {
        let path = match tenant {
            Some(t) => format!("/v1/stats?tenant={}", enc(t)),
            None => "/v1/stats".to_owned(),
        };
        let all = console.get(&viewer.caller, &path).await?;
        return Ok(all["data"].as_array().cloned().unwrap_or_default());
    };
    let db = console.db().await?;
    Ok(crate::kit::health::of_tenant(&db, own).await?)
}

fn per_tenant(stats: &[Value]) -> BTreeMap<String, TenantRow> {
    let mut rows: BTreeMap<String, TenantRow> = BTreeMap::new();
    for s in stats {
        let row = rows.entry(page::text(s, "tenant").to_owned()).or_default();
        for (i, status) in STATUSES.iter().enumerate() {
            row.hour[i] += s["last_hour"][status].as_u64().unwrap_or(0);
            row.day[i] += s["last_day"][status].as_u64().unwrap_or(0);
        }
        row.dead_letters += s["dead_letters"].as_u64().unwrap_or(0);
    }
    rows
}

async fn tripped(console: &Console, viewer: &Viewer) -> Result<Vec<(String, String)>, Failure> {
    let db = console.db().await?;
    let all = webhooks::tripped(&db).await?;
    Ok(all.into_iter().filter(|(t, _)| viewer.sees(t)).collect())
}

async fn queue_depths(console: &Console) -> Result<Vec<queues::QueueDepth>, String> {
    let connection = console
        .admin
        .connection()
        .await
        .map_err(|e| e.to_string())?;
    queues::depths(&connection, &console.admin.topology)
        .await
        .map_err(|e| e.to_string())
}

fn queue_table(queues: &Result<Vec<queues::QueueDepth>, String>) -> Markup {
    let queues = match queues {
        Ok(q) => q,
        Err(e) => return html! { p.error role="alert" { "RabbitMQ cannot be reached: " (e) } },
    };
    html! {
        div.scroll { table {
            thead { tr { th { "Queue" } th { "Ready messages" } th { "Consumers" } } }
            tbody {
                @for q in queues {
                    tr {
                        th scope="row" { code { (q.name) } }
                        td.num { (q.messages.map_or("missing".to_owned(), |n| n.to_string())) }
                        td.num {
                            (q.consumers.map_or("–".to_owned(), |n| n.to_string()))
                        }
                    }
                }
            }
        } }
        p.help { "The router consumes the first queue and the senders the second: a work queue \
                  with no consumer means that role is down." }
    }
}
