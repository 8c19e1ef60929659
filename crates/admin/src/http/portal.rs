//! `/v1/tenants/{tenant}/portal-sessions` and `/portal-theme`: customer portal links
//! (minted, listed, revoked) and the tenant's portal theme.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use hookrelay_model::Invalid;
use hookrelay_model::access::Caller;
use hookrelay_model::config::parse_duration;
use hookrelay_model::portal::{Limits, Theme};
use hookrelay_store::portal::{self as sessions, PortalSession};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::error::{BadParameter, Body as BodyErrors, Database, NotFound};
use super::extract::{Body, Path, list, parse_uuid};
use super::{AdminState, Result, db};
use crate::access::Identified;
use crate::portal::{self, Ask, Minted};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"read_only": false, "ttl": "15m", "webhook_keys": ["orders"]}))]
pub(super) struct CreatePortalSession {
    /// The session sees but changes nothing (default false).
    #[serde(default)]
    read_only: bool,
    /// How long the link may wait to be opened (`10m`, `1h`; default
    /// `HOOKRELAY_PORTAL_LINK_TTL`, 10 minutes; at most 24h).
    ttl: Option<String>,
    /// How long the opened session lasts (default `HOOKRELAY_PORTAL_SESSION_TTL`, 1 hour;
    /// at most 24h).
    session_ttl: Option<String>,
    /// Only these webhook keys are shown and may be changed; empty or missing: all.
    #[serde(default)]
    webhook_keys: Vec<String>,
    /// Only these event types may be subscribed to and are shown; empty or missing: all.
    #[serde(default)]
    event_types: Vec<String>,
}

fn duration(
    field: &str,
    value: Option<&str>,
) -> std::result::Result<Option<std::time::Duration>, Invalid> {
    value
        .map(|v| parse_duration(v).map_err(|e| Invalid::new(field, e)))
        .transpose()
}

/// Create a portal link
///
/// A single-use link to the customer portal (`/portal`) for this tenant, to open in
/// an iframe or a new tab: it must be opened before `expires_at`, and the session it
/// opens lasts `session_ttl`. Operator's token, or a tenant token with scope `write`;
/// a session minted with a tenant token ends when that token is revoked.
#[utoipa::path(post, path = "/portal-sessions", tag = "portal",
    request_body(content = CreatePortalSession, description = "What the session may do."),
    responses(
        (status = 201, description = "The link, shown this once.", body = Minted),
        BodyErrors, Database,
    ))]
pub(super) async fn create_portal_session(
    State(s): State<AdminState>,
    caller: Option<Extension<Caller>>,
    identified: Option<Extension<Identified>>,
    Path(tenant): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<Minted>)> {
    let body: CreatePortalSession = body.parse()?;
    let ask = Ask {
        read_only: body.read_only,
        link_ttl: duration("ttl", body.ttl.as_deref())?,
        session_ttl: duration("session_ttl", body.session_ttl.as_deref())?,
        limits: Limits {
            webhook_keys: body.webhook_keys,
            event_types: body.event_types,
        },
    };
    let created_by = caller
        .as_deref()
        .unwrap_or(&Caller::Operator)
        .describe(None);
    let token_id = identified.and_then(|i| i.token_id);
    let minted = portal::mint(
        &db(&s).await?,
        &s.portal,
        &tenant,
        ask,
        &created_by,
        token_id,
    )
    .await?;
    Ok((StatusCode::CREATED, Json(minted)))
}

list! {
    /// The tenant's portal sessions, newest first (at most 500); not paged.
    PortalSessionList of PortalSession
}

/// List portal sessions
///
/// Every link minted for the tenant and the session it opened, with its state
/// (`unopened`, `expired`, `live`, `ended`, `revoked`); never the tokens.
#[utoipa::path(get, path = "/portal-sessions", tag = "portal",
    responses(
        (status = 200, description = "The tenant's portal sessions.", body = PortalSessionList),
        Database,
    ))]
pub(super) async fn list_portal_sessions(
    State(s): State<AdminState>,
    Path(tenant): Path<String>,
) -> Result<Json<PortalSessionList>> {
    Ok(PortalSessionList::of(
        sessions::list(&db(&s).await?, &tenant).await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct PortalSessionPath {
    #[param(ignore)]
    tenant: String,
    /// The session's id (400 with `field: "id"` when not a UUID).
    #[param(format = Uuid)]
    id: String,
}

/// Revoke a portal session
///
/// Its link and its session stop working at once (an open portal page answers with
/// a page saying so).
#[utoipa::path(delete, path = "/portal-sessions/{id}", tag = "portal", params(PortalSessionPath),
    responses(
        (status = 200, description = "The revoked session.", body = PortalSession),
        BadParameter, NotFound, Database,
    ))]
pub(super) async fn revoke_portal_session(
    State(s): State<AdminState>,
    Path(p): Path<PortalSessionPath>,
) -> Result<Json<PortalSession>> {
    let id = parse_uuid("id", &p.id)?;
    Ok(Json(sessions::revoke(&db(&s).await?, &p.tenant, id).await?))
}

/// Get the tenant's portal theme
///
/// The tenant's own name, logo URL and accent colour; a null value means the
/// deployment's (`HOOKRELAY_PORTAL_NAME`, `_LOGO_URL`, `_ACCENT`).
#[utoipa::path(get, path = "/portal-theme", tag = "portal",
    responses((status = 200, description = "The tenant's own theme.", body = Theme), Database))]
pub(super) async fn get_portal_theme(
    State(s): State<AdminState>,
    Path(tenant): Path<String>,
) -> Result<Json<Theme>> {
    Ok(Json(sessions::theme(&db(&s).await?, &tenant).await?))
}

/// Set the tenant's portal theme
///
/// Replaces the tenant's own theme; a missing or null value falls back to the
/// deployment's. `accent` is `#rgb` or `#rrggbb`; `logo_url` an http(s) URL.
#[utoipa::path(put, path = "/portal-theme", tag = "portal",
    request_body(content = Theme, description = "The tenant's own theme."),
    responses((status = 200, description = "The theme now.", body = Theme), BodyErrors, Database))]
pub(super) async fn put_portal_theme(
    State(s): State<AdminState>,
    Path(tenant): Path<String>,
    body: Body,
) -> Result<Json<Theme>> {
    let theme: Theme = body.parse()?;
    sessions::set_theme(&db(&s).await?, &tenant, &theme).await?;
    Ok(Json(theme))
}
