//! A page's delivery-health section: the series of a tenant or one webhook, read
//! through `GET /v1/tenants/{tenant}/stats/series` as the viewer, drawn by [`chart`].

use hookrelay_model::series::Series;
use maud::{Markup, html};

use crate::Console;
use crate::api::enc;
use crate::chart;
use crate::session::Viewer;

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
    let drawn = match console.get(&viewer.caller, &path).await {
        Ok(value) => match serde_json::from_value::<Series>(value) {
            Ok(series) => chart::delivery_health(&series, &of),
            Err(e) => html! { p.error { "The series could not be read: " (e) } },
        },
        Err(refused) => html! { p.error { "The series could not be read: " (refused.error) } },
    };
    html! {
        section aria-labelledby="health" {
            h2 #health { "Delivery health, last 24 hours" }
            (drawn)
        }
    }
}
