//! A page's delivery-health section: the series of a tenant or one webhook, read
//! through `GET /v1/tenants/{tenant}/stats/series` as the viewer, drawn by [`chart`].

use maud::Markup;

use crate::chart;
use crate::kit::api::enc;
use crate::session::Viewer;
use crate::state::Console;

/// The section, headed "Delivery health"; a series the API refuses is said in its
/// place, and the rest of the page is still shown.
pub(crate) async fn section(
    console: &Console,
    viewer: &Viewer,
    tenant: &str,
    webhook: Option<&str>,
) -> Markup {
    let mut path = format!("/v1/tenants/{}/stats/series", enc(tenant));
    if let Some(key) = webhook {
        path.push_str(&format!("?webhook={}", enc(key)));
    }
    let of = match webhook {
        Some(key) => format!("webhook {key}"),
        None => format!("tenant {tenant}"),
    };
    chart::section(console.get(&viewer.caller, &path).await, &of)
}
