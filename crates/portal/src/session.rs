//! Opening a portal link, and the session of a request. The session token travels
//! in the URL path (`/portal/s/{session}/...`) of every page and form, because a
//! portal framed by another site gets no cookie it can rely on; every form also
//! carries the session's CSRF token, and a read-only session's posts are refused.

use axum::extract::{FromRequestParts, Path, RawPathParams, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use hookrelay_console::kit::api::{Refused, enc};
use hookrelay_console::kit::parts::Forms;
use hookrelay_console::kit::shell::{Look, Surface, bare};
use hookrelay_model::access::{Caller, Scope, Via};
use hookrelay_model::portal::{Limits, LinkState, SessionState, Theme};
use hookrelay_model::webhook::Secret;
use hookrelay_store::portal::{self as store, Opened};
use maud::html;
use serde_json::Value;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::failure::{Problem, no_store};
use crate::state::Portal;

/// The portal session of a request.
pub(crate) struct Customer {
    pub id: Uuid,
    pub tenant: String,
    pub read_only: bool,
    pub limits: Limits,
    pub theme: Theme,
    caller: Caller,
    csrf: Secret,
    /// The session token, as the URL carries it.
    sid: String,
}

impl Forms for Customer {
    fn csrf(&self) -> &str {
        self.csrf.expose()
    }
}

impl Customer {
    /// A page of this session.
    pub fn href(&self, rest: &str) -> String {
        format!("/portal/s/{}{rest}", enc(&self.sid))
    }

    /// `/v1/tenants/{tenant}` and `rest`.
    pub fn v1(&self, rest: &str) -> String {
        format!("/v1/tenants/{}{rest}", enc(&self.tenant))
    }

    pub fn look(&self) -> Look {
        Look {
            surface: Surface::Portal,
            accent: self.theme.accent.clone(),
        }
    }

    /// Refuses a post from a read-only session, or without this session's CSRF token.
    pub fn check(&self, given: &str) -> Result<(), Problem> {
        if self.read_only {
            return Err(Problem::new(
                StatusCode::FORBIDDEN,
                "This portal session is read-only: it can look but not change anything.",
            ));
        }
        Ok(self.check_csrf(given)?)
    }

    pub async fn get(&self, portal: &Portal, path: &str) -> Result<Value, Refused> {
        self.call(portal, Method::GET, path, None).await
    }

    /// A request to `/v1` as the session's tenant caller; only the routes the portal
    /// needs (webhooks, events, deliveries of its tenant) are ever asked.
    pub async fn call(
        &self,
        portal: &Portal,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Refused> {
        if !portal_route(path, &self.tenant) {
            return Err(Refused::new(
                StatusCode::FORBIDDEN,
                "a portal session reaches its tenant's endpoints and messages only",
            ));
        }
        let via = Via::Portal { session: self.id };
        portal.v1.call(&self.caller, &via, method, path, body).await
    }

    /// Publishes an example event for one of the session's endpoints: the one change
    /// the portal makes as the operator (`POST /v1/events` is the operator's), with
    /// an envelope it builds itself for its own tenant and that endpoint only.
    pub async fn publish_example(
        &self,
        portal: &Portal,
        envelope: Value,
    ) -> Result<Value, Refused> {
        let own = envelope["tenant"].as_str() == Some(self.tenant.as_str())
            && envelope["webhook_keys"]
                .as_array()
                .is_some_and(|keys| keys.len() == 1);
        if !own || self.read_only {
            return Err(Refused::new(
                StatusCode::FORBIDDEN,
                "not this session's endpoint",
            ));
        }
        let via = Via::Portal { session: self.id };
        portal
            .v1
            .call(
                &Caller::Operator,
                &via,
                Method::POST,
                "/v1/events",
                Some(envelope),
            )
            .await
    }
}

/// The routes a portal session may ask: its tenant's webhooks, events, deliveries
/// and delivery series, and the event catalog (which every caller may read).
fn portal_route(path: &str, tenant: &str) -> bool {
    let route = path.split('?').next().unwrap_or(path);
    if route == "/v1/event-types" {
        return true;
    }
    let mut segments = route.trim_start_matches('/').split('/');
    let head = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    );
    let own = enc(tenant);
    let fifth = segments.next();
    match head {
        (Some("v1"), Some("tenants"), Some(t), Some(what)) if t == own => {
            matches!(what, "webhooks" | "events" | "deliveries")
                || (what == "stats" && fifth == Some("series"))
        }
        _ => false,
    }
}

/// The page a link or session that cannot be used answers with.
fn refused(status: StatusCode, title: &str, why: &str) -> Response {
    let look = Look {
        surface: Surface::Portal,
        accent: None,
    };
    let page = bare(
        title,
        &look,
        html! {
            main.sign-in {
                h1 { (title) }
                p.error role="alert" { (why) }
                p { "Ask the site that sent you here for a new link." }
            }
        },
    );
    no_store((status, page).into_response())
}

/// `GET /portal/open/{link}`: opens the link's session (once) and goes to it.
pub(crate) async fn open(
    State(portal): State<Portal>,
    Path(link): Path<String>,
) -> Result<Response, Problem> {
    let db = portal
        .pool
        .get()
        .await
        .map_err(hookrelay_store::StoreError::from)?;
    Ok(match store::open(&db, &link).await? {
        Opened::Session { token, .. } => {
            let to = format!("/portal/s/{}/", enc(token.expose()));
            no_store(Redirect::to(&to).into_response())
        }
        Opened::Refused(LinkState::Used) => refused(
            StatusCode::GONE,
            "This link was used already",
            "A portal link opens once. This one has been opened before.",
        ),
        Opened::Refused(LinkState::Expired) => refused(
            StatusCode::GONE,
            "This link has expired",
            "A portal link must be opened soon after it is made, and this one is too old.",
        ),
        Opened::Refused(LinkState::Revoked) => refused(
            StatusCode::GONE,
            "This link was revoked",
            "Access through this link has been withdrawn.",
        ),
        Opened::Refused(LinkState::Opens) | Opened::Unknown => refused(
            StatusCode::NOT_FOUND,
            "This link is not valid",
            "No portal link matches this address.",
        ),
    })
}

impl FromRequestParts<Portal> for Customer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, portal: &Portal) -> Result<Self, Response> {
        let params = RawPathParams::from_request_parts(parts, portal)
            .await
            .map_err(IntoResponse::into_response)?;
        let sid = params
            .iter()
            .find(|(name, _)| *name == "sid")
            .map(|(_, value)| value.to_owned())
            .unwrap_or_default();
        let found = match portal.pool.get().await {
            Ok(db) => match store::find(&db, &sid).await {
                Ok(Some(found)) => store::theme(&db, &found.session.tenant)
                    .await
                    .map(|theme| Some((found, theme))),
                other => other.map(|_| None),
            },
            Err(e) => Err(e.into()),
        };
        let (found, own_theme) = match found {
            Ok(Some(found)) => found,
            Ok(None) => {
                return Err(refused(
                    StatusCode::NOT_FOUND,
                    "This portal session is not valid",
                    "No portal session matches this address.",
                ));
            }
            Err(e) => return Err(Problem::from(e).into_response()),
        };
        let session = found.session;
        match session.lifetimes().session(OffsetDateTime::now_utc()) {
            SessionState::Live => {}
            SessionState::Revoked => {
                return Err(refused(
                    StatusCode::GONE,
                    "This portal session was revoked",
                    "Access through this session has been withdrawn.",
                ));
            }
            SessionState::Expired | SessionState::NotOpened => {
                return Err(refused(
                    StatusCode::GONE,
                    "This portal session has ended",
                    "Portal sessions last a limited time, and this one is over.",
                ));
            }
        }
        let scope = if session.read_only {
            Scope::Read
        } else {
            Scope::Write
        };
        Ok(Customer {
            id: session.id,
            caller: Caller::Tenant {
                tenant: session.tenant.clone(),
                scope,
            },
            tenant: session.tenant,
            read_only: session.read_only,
            limits: session.limits,
            theme: portal.theme.over(&own_theme),
            csrf: found.csrf,
            sid,
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_session_asks_its_tenants_endpoints_and_messages_only() {
        for (path, ok) in [
            ("/v1/tenants/acme/webhooks?limit=500", true),
            ("/v1/tenants/acme/webhooks/k/pause", true),
            ("/v1/tenants/acme/deliveries/1/redeliver", true),
            ("/v1/tenants/acme/events/e", true),
            ("/v1/tenants/acme/stats/series?webhook=k", true),
            ("/v1/tenants/acme/stats", false),
            ("/v1/tenants/acme/portal-sessions", false),
            ("/v1/tenants/acme/tokens", false),
            ("/v1/tenants/acme", false),
            ("/v1/tenants/other/webhooks", false),
            ("/v1/dead-letter", false),
            ("/v1/events", false),
            ("/v1/event-types", true),
        ] {
            assert_eq!(super::portal_route(path, "acme"), ok, "{path}");
        }
    }
}
