//! `/v1/audit`: every change made through the API, the console and the portal, for
//! the operator's token only; and the layer that records them.

use axum::Json;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use deadpool_postgres::Pool;
use hookrelay_model::access::{Caller, Via};
use hookrelay_store::audit::{self, AuditEntry, AuditFilter, NewEntry};
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{BadParameter, Database};
use super::extract::{Params, limit, page, parse_time, uuid_cursor};
use super::{AdminState, Result, db};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    /// Only changes to this tenant.
    tenant: Option<String>,
    /// At or after this RFC 3339 time.
    #[param(format = DateTime)]
    since: Option<String>,
    /// Before this RFC 3339 time.
    #[param(format = DateTime)]
    until: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(format = Uuid)]
    cursor: Option<String>,
    /// Items at most (400 with `field: "limit"` outside 1 to 500).
    #[param(minimum = 1, maximum = 500, default = 50)]
    limit: Option<i64>,
}

page! {
    /// A page of the audit log, newest first.
    AuditPage of AuditEntry;
    /// Pass as `cursor` for the next (older) page. Null when this page holds fewer
    /// than `limit` items.
    #[schema(format = Uuid)]
}

/// List the audit log
///
/// Every change that succeeded through the API, the console or the portal: when,
/// which tenant, who (`operator`, `tenant token (write)`, `portal session <id>`),
/// through what (`api`, `console`, `portal`) and the route called. Newest first.
/// Operator's token only.
#[utoipa::path(get, path = "/", tag = "audit", params(AuditQuery),
    responses(
        (status = 200, description = "A page of the audit log.", body = AuditPage),
        BadParameter, Database,
    ))]
pub(super) async fn list_audit(
    State(s): State<AdminState>,
    Params(q): Params<AuditQuery>,
) -> Result<Json<AuditPage>> {
    let limit = limit(q.limit)?;
    let filter = AuditFilter {
        tenant: q.tenant,
        since: parse_time("since", q.since.as_deref())?,
        until: parse_time("until", q.until.as_deref())?,
    };
    let after = uuid_cursor(q.cursor.as_deref())?;
    let data = audit::list(&db(&s).await?, &filter, after, limit).await?;
    Ok(AuditPage::new(data, limit, |e| e.id.to_string()))
}

/// The tenant a `/v1/tenants/{tenant}/...` path is about.
fn tenant_of(path: &str) -> Option<&str> {
    let mut segments = path.trim_start_matches('/').split('/');
    match (segments.next(), segments.next(), segments.next()) {
        (Some("v1"), Some("tenants"), Some(tenant)) if !tenant.is_empty() => Some(tenant),
        _ => None,
    }
}

/// Whether a request is a change the audit log records: any method but GET, HEAD
/// and OPTIONS, except events an upstream publishes (`POST /v1/events` without a
/// console or portal marker: data, not a change, and the hot path); an event sent
/// from the console or the portal (a test, an example) is recorded.
fn audited(method: &Method, path: &str, via: Option<&Via>) -> bool {
    let changes = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    changes && (via.is_some() || path != "/v1/events")
}

/// Records every change (see `audited`) that answered with success, with the caller
/// and the surface (`Via`) from the request's extensions. A record that cannot be
/// written is logged: the change is made already.
pub async fn record_changes(State(pool): State<Pool>, request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let via = request.extensions().get::<Via>().cloned();
    if !audited(&method, &path, via.as_ref()) {
        return next.run(request).await;
    }
    let caller = request.extensions().get::<Caller>().cloned();
    let response = next.run(request).await;
    if response.status().is_success() {
        let status = response.status();
        record_change(&pool, caller.as_ref(), via.as_ref(), &method, &path, status).await;
    }
    response
}

/// Writes one change to the audit log: what the layer records for every `/v1`
/// change, and what a surface records for a change it makes through an admin
/// function directly (the console's dead-letter replay job). A record that cannot be
/// written is logged: the change is made already.
pub async fn record_change(
    pool: &Pool,
    caller: Option<&Caller>,
    via: Option<&Via>,
    method: &Method,
    path: &str,
    status: axum::http::StatusCode,
) {
    let actor = caller.unwrap_or(&Caller::Operator).describe(via);
    let entry = NewEntry {
        tenant: tenant_of(path),
        actor: &actor,
        via: Via::name(via),
        method: method.as_str(),
        path,
        status: status.as_u16(),
    };
    let written = match pool.get().await {
        Ok(db) => audit::record(&db, &entry).await,
        Err(e) => Err(e.into()),
    };
    if let Err(e) = written {
        tracing::error!(error = %e, method = %method, path, "the audit log missed a change");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_audited_but_upstream_events_are_not() {
        let portal = Via::Portal {
            session: uuid::Uuid::nil(),
        };
        // (method, path, via, audited)
        let table = [
            (Method::GET, "/v1/tenants/a/webhooks", None, false),
            (Method::POST, "/v1/tenants/a/webhooks", None, true),
            (
                Method::DELETE,
                "/v1/tenants/a/webhooks/k",
                Some(&Via::Console),
                true,
            ),
            (Method::POST, "/v1/events", None, false),
            (Method::POST, "/v1/events", Some(&portal), true),
            (Method::POST, "/v1/dead-letter/replay", None, true),
        ];
        for (method, path, via, expected) in table {
            assert_eq!(
                audited(&method, path, via),
                expected,
                "{method} {path} {via:?}"
            );
        }
    }

    #[test]
    fn the_tenant_of_a_path_is_its_third_segment() {
        for (path, tenant) in [
            ("/v1/tenants/acme/webhooks/k/pause", Some("acme")),
            ("/v1/tenants/acme", Some("acme")),
            ("/v1/dead-letter/replay", None),
            ("/v1/tenants/", None),
        ] {
            assert_eq!(super::tenant_of(path), tenant, "{path}");
        }
    }
}
