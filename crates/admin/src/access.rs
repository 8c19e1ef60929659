//! Which caller a token is: the one check behind the API's bearer tokens and the
//! console's sign-in.

use deadpool_postgres::Pool;
use hookrelay_model::access::Caller;
use hookrelay_store::{StoreError, tokens};
use subtle::ConstantTimeEq;
use uuid::Uuid;

/// A token that was recognised.
#[derive(Debug, Clone)]
pub struct Identified {
    pub caller: Caller,
    /// The tenant token's id; none for the operator.
    pub token_id: Option<Uuid>,
}

/// The caller `given` is: the operator's token (compared in constant time), a live
/// tenant token, or none.
pub async fn identify(
    pool: &Pool,
    operator_token: &str,
    given: &str,
) -> Result<Option<Identified>, StoreError> {
    if bool::from(given.as_bytes().ct_eq(operator_token.as_bytes())) {
        return Ok(Some(Identified {
            caller: Caller::Operator,
            token_id: None,
        }));
    }
    let db = pool.get().await?;
    Ok(tokens::find(&db, given).await?.map(|t| Identified {
        caller: Caller::Tenant {
            tenant: t.tenant,
            scope: t.scope,
        },
        token_id: Some(t.id),
    }))
}

/// `/v1/tenants/{tenant}` and below, except the tenant's tokens (operators only):
/// the routes a tenant token opens.
pub fn tenant_route(path: &str, tenant: &str) -> bool {
    let mut segments = path.trim_start_matches('/').split('/');
    let head = (segments.next(), segments.next(), segments.next());
    head == (Some("v1"), Some("tenants"), Some(tenant)) && segments.next() != Some("tokens")
}

/// `/v1/event-types` and below: the catalog, which every caller may read (a tenant's
/// customers pick event types from it) and only the operator changes.
pub fn catalog_route(path: &str) -> bool {
    let mut segments = path.trim_start_matches('/').split('/');
    (segments.next(), segments.next()) == (Some("v1"), Some("event-types"))
}

/// Whether `caller` may send `path` a request (`safe`: GET, HEAD or OPTIONS); if
/// not, why. The operator may send anything.
pub fn authorize(caller: &Caller, safe: bool, path: &str) -> Result<(), String> {
    let Caller::Tenant { tenant, scope } = caller else {
        return Ok(());
    };
    if safe && catalog_route(path) {
        return Ok(());
    }
    if !tenant_route(path, tenant) {
        return Err(format!(
            "this token opens the routes of tenant `{tenant}` only"
        ));
    }
    if !safe && !caller.may_change() {
        return Err(format!(
            "this token of tenant `{tenant}` is read-only (scope `{scope}`); a token made \
             with scope `write` may change things"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use hookrelay_model::access::Scope;

    use super::*;

    #[test]
    fn who_may_call_what() {
        let reader = Caller::Tenant {
            tenant: "acme".into(),
            scope: Scope::Read,
        };
        let writer = Caller::Tenant {
            tenant: "acme".into(),
            scope: Scope::Write,
        };
        let cases = [
            // (caller, safe, path, allowed)
            (&reader, true, "/v1/tenants/acme/webhooks", true),
            (&reader, false, "/v1/tenants/acme/webhooks", false),
            (&writer, false, "/v1/tenants/acme/webhooks", true),
            (&writer, true, "/v1/tenants/globex/webhooks", false),
            (&writer, true, "/v1/tenants/acme/tokens", false),
            (&reader, true, "/v1/event-types", true),
            (&reader, true, "/v1/event-types/import_completed", true),
            (&writer, false, "/v1/event-types", false),
            (&writer, false, "/v1/event-types/import_completed", false),
            (&writer, true, "/v1/event-typesx", false),
            (&writer, true, "/v1/stats", false),
            (&Caller::Operator, false, "/v1/event-types", true),
        ];
        for (caller, safe, path, allowed) in cases {
            assert_eq!(
                authorize(caller, safe, path).is_ok(),
                allowed,
                "{caller:?} safe={safe} {path}"
            );
        }
    }
}
