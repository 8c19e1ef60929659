//! The `portal_sessions` table (customer portal links and the sessions they open) and
//! each tenant's portal theme. A link's token and a session's token are shown once;
//! only their SHA-256 is stored.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use hookrelay_model::portal::{Lifetimes, Limits, LinkState, Theme};
use hookrelay_model::webhook::Secret;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;
use crate::crypto::{random_text, sha256};

/// Every portal link token starts so; every session token with `hps_`.
pub const LINK_PREFIX: &str = "hpl_";
const SESSION_PREFIX: &str = "hps_";

/// What a new link is for.
#[derive(Debug, Clone)]
pub struct NewLink {
    pub tenant: String,
    pub read_only: bool,
    pub limits: Limits,
    pub link_ttl: Duration,
    pub session_ttl: Duration,
    /// Who minted it (`operator`, `token <name>`, `cli`).
    pub created_by: String,
    /// The tenant token that minted it: revoking that token ends the session.
    pub token_id: Option<Uuid>,
}

/// A portal session as listed (never its tokens).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PortalSession {
    pub id: Uuid,
    pub tenant: String,
    pub read_only: bool,
    #[serde(flatten)]
    pub limits: Limits,
    pub created_by: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// The link must be opened before this.
    #[serde(with = "time::serde::rfc3339")]
    pub link_expires_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub opened_at: Option<OffsetDateTime>,
    /// When the opened session ends.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    pub revoked_at: Option<OffsetDateTime>,
    /// `unopened`, `expired` (never opened in time), `live`, `ended` or `revoked`.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = "^(unopened|expired|live|ended|revoked)$")
    )]
    pub state: &'static str,
}

impl PortalSession {
    pub fn lifetimes(&self) -> Lifetimes {
        Lifetimes {
            link_expires_at: self.link_expires_at,
            opened_at: self.opened_at,
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
        }
    }
}

/// A session found by its token, with the CSRF token its forms carry.
#[derive(Debug, Clone)]
pub struct Found {
    pub session: PortalSession,
    pub csrf: Secret,
}

const COLUMNS: &str = "id, tenant, read_only, webhook_keys, event_types, created_by, \
    created_at, link_expires_at, opened_at, expires_at, revoked_at, csrf";

fn from_row(r: &tokio_postgres::Row) -> Result<Found, StoreError> {
    let mut session = PortalSession {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        read_only: r.try_get("read_only")?,
        limits: Limits {
            webhook_keys: r.try_get("webhook_keys")?,
            event_types: r.try_get("event_types")?,
        },
        created_by: r.try_get("created_by")?,
        created_at: r.try_get("created_at")?,
        link_expires_at: r.try_get("link_expires_at")?,
        opened_at: r.try_get("opened_at")?,
        expires_at: r.try_get("expires_at")?,
        revoked_at: r.try_get("revoked_at")?,
        state: "",
    };
    session.state = session.lifetimes().describe(OffsetDateTime::now_utc());
    Ok(Found {
        session,
        csrf: Secret::new(r.try_get::<_, String>("csrf")?),
    })
}

/// Mints a link; returns the session's record and the only copy of the link token.
pub async fn mint(
    db: &impl GenericClient,
    new: &NewLink,
) -> Result<(PortalSession, Secret), StoreError> {
    use hookrelay_model::text;
    for key in &new.limits.webhook_keys {
        text::check_text("webhook_keys", key, text::MAX_KEY_CHARS)?;
    }
    for t in &new.limits.event_types {
        text::check_text("event_types", t, text::MAX_KEY_CHARS)?;
    }
    let token = format!("{LINK_PREFIX}{}", random_text()?);
    let row = db
        .query_one(
            &format!(
                "INSERT INTO portal_sessions (id, tenant, link_sha256, csrf, read_only, \
                 webhook_keys, event_types, session_ttl, created_by, token_id, link_expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, make_interval(secs => $8), $9, $10, \
                 now() + make_interval(secs => $11)) RETURNING {COLUMNS}"
            ),
            &[
                &Uuid::now_v7(),
                &new.tenant,
                &sha256(&token),
                &random_text()?,
                &new.read_only,
                &new.limits.webhook_keys,
                &new.limits.event_types,
                &new.session_ttl.as_secs_f64(),
                &new.created_by,
                &new.token_id,
                &new.link_ttl.as_secs_f64(),
            ],
        )
        .await?;
    Ok((from_row(&row)?.session, Secret::new(token)))
}

/// What opening a link did.
#[derive(Debug)]
pub enum Opened {
    /// A session began: its token (the only copy) and record.
    Session {
        token: Secret,
        session: Box<PortalSession>,
    },
    /// The link cannot open one, and why.
    Refused(LinkState),
    /// No such link.
    Unknown,
}

/// Opens a link: once only (one conditional update), before it expires, unless
/// revoked.
pub async fn open(db: &impl GenericClient, link: &str) -> Result<Opened, StoreError> {
    if !link.starts_with(LINK_PREFIX) {
        return Ok(Opened::Unknown);
    }
    let token = format!("{SESSION_PREFIX}{}", random_text()?);
    let opened = db
        .query_opt(
            &format!(
                "UPDATE portal_sessions SET opened_at = now(), session_sha256 = $2, \
                 expires_at = now() + session_ttl \
                 WHERE link_sha256 = $1 AND opened_at IS NULL AND revoked_at IS NULL \
                 AND link_expires_at > now() RETURNING {COLUMNS}"
            ),
            &[&sha256(link), &sha256(&token)],
        )
        .await?;
    if let Some(row) = opened {
        return Ok(Opened::Session {
            token: Secret::new(token),
            session: Box::new(from_row(&row)?.session),
        });
    }
    let row = db
        .query_opt(
            &format!("SELECT {COLUMNS} FROM portal_sessions WHERE link_sha256 = $1"),
            &[&sha256(link)],
        )
        .await?;
    Ok(match row {
        None => Opened::Unknown,
        Some(row) => {
            let found = from_row(&row)?;
            match found.session.lifetimes().link(OffsetDateTime::now_utc()) {
                // Opened by someone else in between: used.
                LinkState::Opens => Opened::Refused(LinkState::Used),
                state => Opened::Refused(state),
            }
        }
    })
}

/// The session a session token names, whatever its state (the caller decides).
pub async fn find(db: &impl GenericClient, token: &str) -> Result<Option<Found>, StoreError> {
    if !token.starts_with(SESSION_PREFIX) {
        return Ok(None);
    }
    let row = db
        .query_opt(
            &format!("SELECT {COLUMNS} FROM portal_sessions WHERE session_sha256 = $1"),
            &[&sha256(token)],
        )
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// A tenant's sessions, newest first (at most 500).
pub async fn list(db: &impl GenericClient, tenant: &str) -> Result<Vec<PortalSession>, StoreError> {
    let rows = db
        .query(
            &format!(
                "SELECT {COLUMNS} FROM portal_sessions WHERE tenant = $1 \
                 ORDER BY created_at DESC LIMIT 500"
            ),
            &[&tenant],
        )
        .await?;
    rows.iter().map(|r| Ok(from_row(r)?.session)).collect()
}

/// Revokes a session (or its unopened link): it stops working at once.
pub async fn revoke(
    db: &impl GenericClient,
    tenant: &str,
    id: Uuid,
) -> Result<PortalSession, StoreError> {
    let row = db
        .query_opt(
            &format!(
                "UPDATE portal_sessions SET revoked_at = coalesce(revoked_at, now()) \
                 WHERE tenant = $1 AND id = $2 RETURNING {COLUMNS}"
            ),
            &[&tenant, &id],
        )
        .await?;
    match row {
        Some(row) => Ok(from_row(&row)?.session),
        None => Err(StoreError::not_found(format!(
            "portal session `{id}` in tenant `{tenant}`"
        ))),
    }
}

/// The tenant's own theme (each value null when it has none).
pub async fn theme(db: &impl GenericClient, tenant: &str) -> Result<Theme, StoreError> {
    let row = db
        .query_opt(
            "SELECT portal_name, portal_logo_url, portal_accent FROM tenants WHERE id = $1",
            &[&tenant],
        )
        .await?;
    Ok(match row {
        None => Theme::default(),
        Some(r) => Theme {
            name: r.try_get("portal_name")?,
            logo_url: r.try_get("portal_logo_url")?,
            accent: r.try_get("portal_accent")?,
        },
    })
}

/// Sets the tenant's own theme (a null value falls back to the deployment's).
pub async fn set_theme(
    db: &impl GenericClient,
    tenant: &str,
    theme: &Theme,
) -> Result<(), StoreError> {
    theme.check()?;
    db.execute(
        "INSERT INTO tenants (id, portal_name, portal_logo_url, portal_accent) \
         VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET portal_name = $2, \
         portal_logo_url = $3, portal_accent = $4",
        &[&tenant, &theme.name, &theme.logo_url, &theme.accent],
    )
    .await?;
    Ok(())
}
