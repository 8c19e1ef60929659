//! What every portal handler shares: the settings and the portal's state. Pages
//! reach it here, not through the crate root.

use deadpool_postgres::Pool;
use hookrelay_console::kit::api::V1;
use hookrelay_model::portal::Theme;

/// The portal's settings (`HOOKRELAY_PORTAL_*`).
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// The deployment's theme; a tenant's own values win.
    pub theme: Theme,
    /// Origins that may frame the portal (CSP `frame-ancestors` sources); empty:
    /// none may.
    pub frame_ancestors: Vec<String>,
}

/// What every portal handler needs.
#[derive(Clone)]
pub struct Portal {
    pub(crate) v1: V1,
    pub(crate) pool: Pool,
    pub(crate) theme: Theme,
}

impl Portal {
    /// `v1`: the `/v1` routes below authentication, as the console gets them.
    pub fn new(v1: axum::Router, pool: Pool, settings: &Settings) -> Self {
        Self {
            v1: V1::new(v1),
            pool,
            theme: settings.theme.clone(),
        }
    }
}
