//! Minting customer portal links, shared by `POST /v1/tenants/{tenant}/portal-sessions`
//! and `hookrelay portal link`: where links point and how long they last.

use std::time::Duration;

use deadpool_postgres::GenericClient;
use hookrelay_model::portal::{self, Limits};
use hookrelay_store::StoreError;
use hookrelay_store::portal::{NewLink, PortalSession};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

/// Where links point and how long they and their sessions last.
#[derive(Debug, Clone)]
pub struct Links {
    /// The base URL customers reach hookrelay's api role at (`HOOKRELAY_PUBLIC_URL`).
    pub public_url: String,
    /// How long a link may wait to be opened (`HOOKRELAY_PORTAL_LINK_TTL`).
    pub link_ttl: Duration,
    /// How long the session a link opens lasts (`HOOKRELAY_PORTAL_SESSION_TTL`).
    pub session_ttl: Duration,
}

impl Default for Links {
    fn default() -> Self {
        Self {
            public_url: format!("http://{}", hookrelay_model::config::DEFAULT_HTTP_ADDR),
            link_ttl: portal::DEFAULT_LINK_TTL,
            session_ttl: portal::DEFAULT_SESSION_TTL,
        }
    }
}

/// What a link is asked for; `None` takes the deployment's default.
#[derive(Debug, Clone, Default)]
pub struct Ask {
    pub read_only: bool,
    pub link_ttl: Option<Duration>,
    pub session_ttl: Option<Duration>,
    pub limits: Limits,
}

/// A minted link: shown once.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Minted {
    pub id: Uuid,
    /// The single-use link to open (in an iframe or a new tab).
    pub url: String,
    /// The link must be opened before this.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub session: PortalSession,
}

/// The path a link token opens, below the public URL.
pub fn link_path(token: &str) -> String {
    format!("/portal/open/{token}")
}

/// Mints a link for `tenant` as `created_by` (the minting tenant token, if any).
pub async fn mint(
    db: &impl GenericClient,
    links: &Links,
    tenant: &str,
    ask: Ask,
    created_by: &str,
    token_id: Option<Uuid>,
) -> Result<Minted, StoreError> {
    let link_ttl = portal::check_ttl("ttl", ask.link_ttl.unwrap_or(links.link_ttl))?;
    let session_ttl =
        portal::check_ttl("session_ttl", ask.session_ttl.unwrap_or(links.session_ttl))?;
    let new = NewLink {
        tenant: tenant.to_owned(),
        read_only: ask.read_only,
        limits: ask.limits,
        link_ttl,
        session_ttl,
        created_by: created_by.to_owned(),
        token_id,
    };
    let (session, token) = hookrelay_store::portal::mint(db, &new).await?;
    Ok(Minted {
        id: session.id,
        url: format!(
            "{}{}",
            links.public_url.trim_end_matches('/'),
            link_path(token.expose())
        ),
        expires_at: session.link_expires_at,
        session,
    })
}
