//! Who is calling the admin API and what they may do: the operator (their token, or
//! no token at all on loopback) may do everything; a tenant token opens its own
//! tenant's routes, read-only unless it was made with the `write` scope.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Invalid;

/// What a tenant token may do within its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// `GET` only; events are shown without their `private_fields` (as webhooks get
    /// them). For front ends.
    #[default]
    Read,
    /// Also creates, changes and deletes webhooks, environments and settings,
    /// redelivers, and sees events whole. For a tenant's own back end.
    Write,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Scope {
    type Err = Invalid;

    fn from_str(s: &str) -> Result<Self, Invalid> {
        match s {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            other => Err(Invalid::new(
                "scope",
                format!("`{other}` is not a scope: `read` or `write`"),
            )),
        }
    }
}

/// Who a request comes from, once its token was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Operator,
    Tenant { tenant: String, scope: Scope },
}

impl Caller {
    /// Whether the caller may send its tenant's routes a request that changes
    /// something (any method but GET, HEAD and OPTIONS). The operator may always.
    pub fn may_change(&self) -> bool {
        match self {
            Self::Operator => true,
            Self::Tenant { scope, .. } => *scope == Scope::Write,
        }
    }

    /// Whether events are shown with their `private_fields`.
    pub fn sees_private_fields(&self) -> bool {
        self.may_change()
    }
}

/// Which surface a request came through, beside its [`Caller`]: the console and the
/// portal put one in the request's extensions when they call `/v1` in process; a
/// request without one came to the API itself. The audit log records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Via {
    Console,
    /// A customer portal session (its id).
    Portal {
        session: uuid::Uuid,
    },
}

impl Caller {
    /// Who made a change, as the audit log says it.
    pub fn describe(&self, via: Option<&Via>) -> String {
        match (via, self) {
            (Some(Via::Portal { session }), _) => format!("portal session {session}"),
            (_, Self::Operator) => "operator".to_owned(),
            (_, Self::Tenant { scope, .. }) => format!("tenant token ({scope})"),
        }
    }
}

impl Via {
    /// `api` for a request without a marker.
    pub fn name(via: Option<&Via>) -> &'static str {
        match via {
            None => "api",
            Some(Via::Console) => "console",
            Some(Via::Portal { .. }) => "portal",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_token_is_read_only_unless_made_with_write() {
        let read = Caller::Tenant {
            tenant: "acme".into(),
            scope: Scope::default(),
        };
        assert!(!read.may_change() && !read.sees_private_fields());
        let write = Caller::Tenant {
            tenant: "acme".into(),
            scope: "write".parse().unwrap(),
        };
        assert!(write.may_change() && write.sees_private_fields());
        assert!(Caller::Operator.may_change());
        let err = "admin".parse::<Scope>().unwrap_err();
        assert_eq!(err.field, "scope");
    }
}
