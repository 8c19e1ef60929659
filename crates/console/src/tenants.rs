//! Which tenant a page is about: a tenant token's own, or the one the operator
//! picked (with the picker above the page, and a page asking for one until then).

use maud::{Markup, html};

use crate::page::{self, Failure, Section};
use crate::session::Viewer;
use crate::state::Console;
use hookrelay_store::tenants;

/// A page's tenant, or the page that asks the operator for one.
pub(crate) enum Scope {
    Tenant { tenant: String, picker: Markup },
    Pick(Markup),
}

/// The tenant asked for (`?tenant=`), checked against the viewer: a tenant token
/// gets its own whatever it asks, and another one's is refused.
pub(crate) async fn scope(
    console: &Console,
    viewer: &Viewer,
    asked: Option<&str>,
    section: Section,
    (path, title, what): (&str, &str, &str),
) -> Result<Scope, Failure> {
    let asked = asked.map(str::trim).filter(|t| !t.is_empty());
    let tenant = match (viewer.own_tenant(), asked) {
        (Some(own), Some(asked)) if own != asked => return Err(Failure::not_yours()),
        (Some(own), _) => Some(own.to_owned()),
        (None, asked) => asked.map(str::to_owned),
    };
    let picker = match viewer.is_operator() {
        true => picker(console, path, tenant.as_deref()).await?,
        false => Markup::default(),
    };
    Ok(match tenant {
        Some(tenant) => Scope::Tenant { tenant, picker },
        None => Scope::Pick(page::page(
            viewer,
            section,
            title,
            html! { p { "Pick a tenant to see its " (what) "." } (picker) },
        )),
    })
}

/// The operator's choice of tenant.
async fn picker(console: &Console, action: &str, current: Option<&str>) -> Result<Markup, Failure> {
    let db = console.db().await?;
    let known = tenants::list(&db).await?;
    Ok(html! {
        form.picker method="get" action=(action) {
            label for="tenant" { "Tenant" }
            input #tenant name="tenant" list="tenants" value=[current] required;
            datalist #tenants {
                @for t in &known { option value=(t.tenant) {} }
            }
            button type="submit" { "Show" }
        }
    })
}
