//! The document shell every page of the console and the portal shares: its head
//! (stylesheet, script, viewport, the accent colour) and the page without navigation.

use maud::{DOCTYPE, Markup, PreEscaped, html};

/// Which surface a page belongs to: where its assets are and where "back" leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Surface {
    #[default]
    Console,
    Portal,
}

impl Surface {
    fn assets(self) -> &'static str {
        match self {
            Self::Console => "/console/assets",
            Self::Portal => "/portal/assets",
        }
    }

    /// The link an error page offers, if any (a portal session's pages are reached
    /// by their link only).
    pub fn home(self) -> Option<(&'static str, &'static str)> {
        match self {
            Self::Console => Some(("/console", "Back to the console")),
            Self::Portal => None,
        }
    }
}

/// How a page looks: its surface and, for the portal, the accent colour of the theme
/// (checked by `hookrelay_model::portal::check_accent`: a colour and nothing else).
#[derive(Debug, Clone, Default)]
pub struct Look {
    pub surface: Surface,
    pub accent: Option<String>,
}

impl Look {
    pub fn console() -> Self {
        Self::default()
    }
}

pub fn head(title: &str, site: &str, look: &Look) -> Markup {
    let assets = look.surface.assets();
    let accent = look
        .accent
        .as_deref()
        .filter(|c| hookrelay_model::portal::check_accent("accent", c).is_ok());
    html! {
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · " (site) }
            link rel="stylesheet" href={ (assets) "/kit.css" };
            @if let Some(colour) = accent {
                // A checked colour only: nothing else reaches the style.
                style { (PreEscaped(format!(":root {{ --accent: {colour}; }}"))) }
            }
            script src={ (assets) "/kit.js" } defer {}
        }
    }
}

/// A page without navigation (sign-in, errors).
pub fn bare(title: &str, look: &Look, body: Markup) -> Markup {
    let site = match look.surface {
        Surface::Console => "hookrelay",
        Surface::Portal => "Webhooks",
    };
    html! {
        (DOCTYPE)
        html lang="en" {
            (head(title, site, look))
            body { (body) }
        }
    }
}
