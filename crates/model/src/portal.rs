//! The customer portal's rules: what a portal link and its session may reach, when a
//! link or a session can be used, and the theme's values. Pure: the store keeps the
//! rows, the portal acts on these answers.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::Invalid;

/// How long a minted link may wait to be opened, unless the request says otherwise.
pub const DEFAULT_LINK_TTL: Duration = Duration::from_secs(10 * 60);
/// How long the session a link opens lasts, unless configured otherwise.
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(3600);
/// The longest a link may wait to be opened, and the longest session (a day): a link
/// is a bearer credential.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// What a session may reach within its tenant: some webhook keys and some event
/// types; an empty list is no limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Limits {
    /// Only these webhooks (by key) are shown and may be changed; empty: every one.
    #[serde(default)]
    pub webhook_keys: Vec<String>,
    /// Only these event types may be subscribed to and are shown; empty: every type.
    #[serde(default)]
    pub event_types: Vec<String>,
}

impl Limits {
    pub fn allows_key(&self, key: &str) -> bool {
        self.webhook_keys.is_empty() || self.webhook_keys.iter().any(|k| k == key)
    }

    pub fn allows_type(&self, event_type: &str) -> bool {
        self.event_types.is_empty() || self.event_types.iter().any(|t| t == event_type)
    }

    /// Whether a webhook subscribed to `types` (empty: every type) may be shown.
    pub fn allows_subscription(&self, types: &[String]) -> bool {
        match (self.event_types.is_empty(), types.is_empty()) {
            (true, _) => true,
            (false, true) => false,
            (false, false) => types.iter().all(|t| self.allows_type(t)),
        }
    }

    /// A webhook the session would create or change: its key and event types must be
    /// within the limits (a limited session cannot subscribe to every type).
    pub fn check_webhook(&self, key: &str, types: &[String]) -> Result<(), Invalid> {
        if !self.allows_key(key) {
            return Err(Invalid::new(
                "key",
                format!(
                    "this portal session may use the keys {} only",
                    self.webhook_keys.join(", ")
                ),
            ));
        }
        if !self.allows_subscription(types) {
            return Err(Invalid::new(
                "event_types",
                format!(
                    "this portal session may subscribe to {} only",
                    self.event_types.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

/// What a link can do when someone opens it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Opens a session now.
    Opens,
    /// Opened before: links are single-use.
    Used,
    Expired,
    Revoked,
}

/// The times a session row holds, as its state needs them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    pub link_expires_at: OffsetDateTime,
    pub opened_at: Option<OffsetDateTime>,
    pub expires_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

/// What a session can do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionState {
    Live,
    /// Its link was never opened, so there is no session yet.
    NotOpened,
    Expired,
    Revoked,
}

impl Lifetimes {
    /// Revocation first, then use, then time: a revoked link says so even when late.
    pub fn link(&self, now: OffsetDateTime) -> LinkState {
        if self.revoked_at.is_some() {
            LinkState::Revoked
        } else if self.opened_at.is_some() {
            LinkState::Used
        } else if now >= self.link_expires_at {
            LinkState::Expired
        } else {
            LinkState::Opens
        }
    }

    pub fn session(&self, now: OffsetDateTime) -> SessionState {
        match (self.revoked_at, self.opened_at, self.expires_at) {
            (Some(_), _, _) => SessionState::Revoked,
            (None, None, _) | (None, Some(_), None) => SessionState::NotOpened,
            (None, Some(_), Some(end)) if now >= end => SessionState::Expired,
            (None, Some(_), Some(_)) => SessionState::Live,
        }
    }

    /// The state a listing shows: `unopened`, `expired`, `live`, `ended` or `revoked`.
    pub fn describe(&self, now: OffsetDateTime) -> &'static str {
        match (self.link(now), self.session(now)) {
            (LinkState::Revoked, _) => "revoked",
            (LinkState::Opens, _) => "unopened",
            (LinkState::Expired, _) => "expired",
            (LinkState::Used, SessionState::Live) => "live",
            (LinkState::Used, _) => "ended",
        }
    }
}

/// A link's or session's lifetime, as asked: at most [`MAX_TTL`], at least a second.
pub fn check_ttl(field: &str, ttl: Duration) -> Result<Duration, Invalid> {
    if ttl < Duration::from_secs(1) || ttl > MAX_TTL {
        return Err(Invalid::new(
            field,
            "must be from 1s to 24h (a link is a bearer credential)",
        ));
    }
    Ok(ttl)
}

/// An accent colour: `#rgb` or `#rrggbb`, nothing else (it is written into the page's
/// style, so nothing but a colour may pass).
pub fn check_accent(field: &str, colour: &str) -> Result<(), Invalid> {
    let hex = colour.strip_prefix('#').unwrap_or("");
    if matches!(hex.len(), 3 | 6) && hex.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            format!("`{colour}` is not a colour: `#rgb` or `#rrggbb`"),
        ))
    }
}

/// A logo URL: `https://` (or `http://`), at most 2,000 bytes.
pub fn check_logo_url(field: &str, url: &str) -> Result<(), Invalid> {
    let scheme = url.starts_with("https://") || url.starts_with("http://");
    if scheme && url.len() <= 2000 && !url.chars().any(|c| c.is_control() || c == '"') {
        Ok(())
    } else {
        Err(Invalid::new(
            field,
            "must be an http:// or https:// URL of at most 2,000 bytes",
        ))
    }
}

/// A portal's look: the organisation's name, its logo and an accent colour.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Theme {
    /// Shown at the top of every page; null: `Webhooks`.
    pub name: Option<String>,
    /// An http(s) URL of an image shown beside the name.
    pub logo_url: Option<String>,
    /// `#rgb` or `#rrggbb`.
    pub accent: Option<String>,
}

impl Theme {
    /// Each value of `own` over the deployment's (`self`).
    pub fn over(&self, own: &Theme) -> Theme {
        Theme {
            name: own.name.clone().or_else(|| self.name.clone()),
            logo_url: own.logo_url.clone().or_else(|| self.logo_url.clone()),
            accent: own.accent.clone().or_else(|| self.accent.clone()),
        }
    }

    pub fn check(&self) -> Result<(), Invalid> {
        if let Some(name) = &self.name {
            crate::text::check_text("name", name, crate::text::MAX_KEY_CHARS)?;
        }
        if let Some(url) = &self.logo_url {
            check_logo_url("logo_url", url)?;
        }
        if let Some(accent) = &self.accent {
            check_accent("accent", accent)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn limits(keys: &[&str], types: &[&str]) -> Limits {
        Limits {
            webhook_keys: keys.iter().map(|s| s.to_string()).collect(),
            event_types: types.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn limits_allow_what_they_list_and_empty_lists_allow_everything() {
        let types = |t: &[&str]| t.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // (limits, key, subscribed types, allowed)
        let table = [
            (limits(&[], &[]), "any", types(&[]), true),
            (limits(&["a"], &[]), "a", types(&["x"]), true),
            (limits(&["a"], &[]), "b", types(&["x"]), false),
            (limits(&[], &["x", "y"]), "k", types(&["x"]), true),
            (limits(&[], &["x", "y"]), "k", types(&["x", "z"]), false),
            // Every type is more than some types.
            (limits(&[], &["x"]), "k", types(&[]), false),
        ];
        for (l, key, subscribed, allowed) in table {
            assert_eq!(
                l.check_webhook(key, &subscribed).is_ok(),
                allowed,
                "{l:?} {key} {subscribed:?}"
            );
        }
        assert_eq!(
            limits(&["a"], &[])
                .check_webhook("b", &[])
                .unwrap_err()
                .field,
            "key"
        );
        assert_eq!(
            limits(&[], &["x"])
                .check_webhook("k", &[])
                .unwrap_err()
                .field,
            "event_types"
        );
    }

    #[test]
    fn a_link_opens_once_before_it_expires_and_never_after_revocation() {
        let t0 = datetime!(2026-12-07 10:00 UTC);
        let later = datetime!(2026-12-07 10:20 UTC);
        let base = Lifetimes {
            link_expires_at: datetime!(2026-12-07 10:10 UTC),
            opened_at: None,
            expires_at: None,
            revoked_at: None,
        };
        let opened = Lifetimes {
            opened_at: Some(t0),
            expires_at: Some(datetime!(2026-12-07 11:00 UTC)),
            ..base
        };
        let revoked = Lifetimes {
            revoked_at: Some(t0),
            ..opened
        };
        // (lifetimes, now, link, session, described)
        let table = [
            (
                base,
                t0,
                LinkState::Opens,
                SessionState::NotOpened,
                "unopened",
            ),
            (
                base,
                later,
                LinkState::Expired,
                SessionState::NotOpened,
                "expired",
            ),
            (opened, t0, LinkState::Used, SessionState::Live, "live"),
            (opened, later, LinkState::Used, SessionState::Live, "live"),
            (
                opened,
                datetime!(2026-12-07 11:00 UTC),
                LinkState::Used,
                SessionState::Expired,
                "ended",
            ),
            (
                revoked,
                t0,
                LinkState::Revoked,
                SessionState::Revoked,
                "revoked",
            ),
        ];
        for (l, now, link, session, described) in table {
            assert_eq!(l.link(now), link, "{l:?} at {now}");
            assert_eq!(l.session(now), session, "{l:?} at {now}");
            assert_eq!(l.describe(now), described, "{l:?} at {now}");
        }
    }

    #[test]
    fn theme_values_are_checked_and_a_tenants_own_win() {
        for ok in ["#fff", "#0a7cff"] {
            assert!(check_accent("accent", ok).is_ok(), "{ok}");
        }
        for bad in ["red", "#12345", "#fff;}body{", "0a7cff", ""] {
            assert_eq!(check_accent("accent", bad).unwrap_err().field, "accent");
        }
        assert!(check_logo_url("logo_url", "javascript:alert(1)").is_err());
        assert!(check_logo_url("logo_url", "https://cdn.example/logo.png").is_ok());
        let global = Theme {
            name: Some("Acme".into()),
            logo_url: None,
            accent: Some("#000".into()),
        };
        let own = Theme {
            accent: Some("#fff".into()),
            ..Theme::default()
        };
        let both = global.over(&own);
        assert_eq!(both.name.as_deref(), Some("Acme"));
        assert_eq!(both.accent.as_deref(), Some("#fff"));
        assert_eq!(
            check_ttl("ttl", Duration::from_secs(0)).unwrap_err().field,
            "ttl"
        );
        assert!(check_ttl("ttl", MAX_TTL).is_ok());
    }
}
