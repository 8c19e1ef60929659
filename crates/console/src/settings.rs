//! A tenant's settings (retention) and environments (variables for webhook URLs,
//! their values masked as in the API).

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::kit::api::{Refused, enc};
use crate::page::{self, Failure, Section, text, value};
use crate::session::Viewer;
use crate::state::Console;
use crate::tenants::{self, Scope};

#[derive(Deserialize, Default)]
pub(crate) struct SettingsQuery {
    tenant: Option<String>,
    done: Option<String>,
}

pub(crate) async fn page(
    State(console): State<Console>,
    viewer: Viewer,
    Query(q): Query<SettingsQuery>,
) -> Result<Markup, Failure> {
    settings_page(
        &console,
        &viewer,
        q.tenant.as_deref(),
        q.done.as_deref(),
        None,
    )
    .await
}

async fn settings_page(
    console: &Console,
    viewer: &Viewer,
    tenant: Option<&str>,
    done: Option<&str>,
    refused: Option<&Refused>,
) -> Result<Markup, Failure> {
    let what = ("/console/settings", "Settings", "settings");
    let (tenant, picker) =
        match tenants::scope(console, viewer, tenant, Section::Settings, what).await? {
            Scope::Tenant { tenant, picker } => (tenant, picker),
            Scope::Pick(page) => return Ok(page),
        };
    let t = enc(&tenant);
    let settings = console
        .get(&viewer.caller, &format!("/v1/tenants/{t}"))
        .await?;
    let environments = console
        .get(&viewer.caller, &format!("/v1/tenants/{t}/environments"))
        .await?;
    let environments = environments["data"].as_array().cloned().unwrap_or_default();
    let may_change = viewer.caller.may_change();
    Ok(page::page(
        viewer,
        Section::Settings,
        &format!("Settings of {tenant}"),
        html! {
            (picker)
            (page::notice(done))
            (page::refusal(refused))
            section aria-labelledby="retention" {
                h2 #retention { "Retention" }
                p { "Events are kept " strong { (value(&settings["effective_retention_days"])) " days" }
                    @if settings["retention_days"].is_null() { " (the service-wide default)" } "." }
                @if may_change {
                    form.inline method="post" action={ "/console/tenants/" (t) "/settings" } {
                        (page::csrf(viewer))
                        label for="retention_days" { "Days (empty: the default)" }
                        input #retention_days name="retention_days" type="number" min="1" max="36500"
                            value=(match &settings["retention_days"] { Value::Null => String::new(), v => value(v) });
                        button type="submit" { "Save" }
                    }
                }
            }
            section aria-labelledby="environments" {
                h2 #environments { "Environments" }
                @if environments.is_empty() { p { "No environment yet." } }
                @for e in &environments {
                    h3 { (text(e, "name")) }
                    @let vars = e["variables"].as_object().cloned().unwrap_or_default();
                    @if vars.is_empty() { p { "No variables." } }
                    @else {
                        table {
                            thead { tr { th { "Variable" } th { "Value" } } }
                            tbody { @for (k, v) in &vars { tr { th scope="row" { code { (k) } } td { (value(v)) } } } }
                        }
                    }
                }
                @if may_change {
                    h3 { "Set a variable" }
                    form.stack method="post" action={ "/console/tenants/" (t) "/environments" } {
                        (page::csrf(viewer))
                        div.field { label for="environment" { "Environment" } input #environment name="environment" required; }
                        div.field { label for="variable" { "Variable (letters, digits, _)" } input #variable name="variable" required; }
                        div.field { label for="value" { "Value (never shown again)" } input #value name="value" type="password" autocomplete="off"; }
                        button type="submit" { "Set" }
                    }
                }
            }
        },
    ))
}

#[derive(Deserialize)]
pub(crate) struct RetentionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    retention_days: String,
}

pub(crate) async fn retention(
    State(console): State<Console>,
    viewer: Viewer,
    Path(tenant): Path<String>,
    Form(form): Form<RetentionForm>,
) -> Result<Response, Failure> {
    viewer.check(&form.csrf)?;
    let days = page::number_or_text::<i64>(&form.retention_days);
    let path = format!("/v1/tenants/{}", enc(&tenant));
    let body = json!({ "retention_days": days });
    finish(
        &console,
        &viewer,
        &tenant,
        Method::PUT,
        &path,
        body,
        "Retention saved.",
    )
    .await
}

#[derive(Deserialize)]
pub(crate) struct VariableForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    environment: String,
    #[serde(default)]
    variable: String,
    #[serde(default)]
    value: String,
}

pub(crate) async fn set_variable(
    State(console): State<Console>,
    viewer: Viewer,
    Path(tenant): Path<String>,
    Form(form): Form<VariableForm>,
) -> Result<Response, Failure> {
    viewer.check(&form.csrf)?;
    let path = format!(
        "/v1/tenants/{}/environments/{}",
        enc(&tenant),
        enc(form.environment.trim())
    );
    let body = json!({ "variables": { form.variable.trim(): form.value } });
    finish(
        &console,
        &viewer,
        &tenant,
        Method::PUT,
        &path,
        body,
        "Variable set.",
    )
    .await
}

/// Calls the API; on success back to the settings with a notice, else the page with
/// the API's refusal.
async fn finish(
    console: &Console,
    viewer: &Viewer,
    tenant: &str,
    method: Method,
    path: &str,
    body: Value,
    notice: &str,
) -> Result<Response, Failure> {
    match console.call(&viewer.caller, method, path, Some(body)).await {
        Ok(_) => {
            let to = format!("/console/settings?tenant={}", enc(tenant));
            Ok(page::done(&to, notice))
        }
        Err(r) => {
            let page = settings_page(console, viewer, Some(tenant), None, Some(&r)).await?;
            Ok((r.status, page).into_response())
        }
    }
}
