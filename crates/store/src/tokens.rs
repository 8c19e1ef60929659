//! The `api_tokens` table: tokens that open one tenant's admin routes only. The token
//! is shown once when created; only its SHA-256 is stored.

use deadpool_postgres::GenericClient;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;
use crate::crypto::sha256;
use hookrelay_model::access::Scope;
use hookrelay_model::webhook::Secret;

/// Every tenant token starts so, which tells it from the operator's token at a glance.
pub const PREFIX: &str = "hrt_";

/// A tenant token, without its secret (only a SHA-256 of it is stored).
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiToken {
    pub id: Uuid,
    pub tenant: String,
    pub name: String,
    pub scope: Scope,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Creates a token for `tenant`; returns it with the only copy of its secret.
pub async fn create(
    db: &impl GenericClient,
    tenant: &str,
    name: &str,
    scope: Scope,
) -> Result<(ApiToken, Secret), StoreError> {
    use hookrelay_model::text;
    text::check_text("name", name, text::MAX_KEY_CHARS)?;
    // 244 random bits from two v4 UUIDs (the OS generator).
    let token = format!(
        "{PREFIX}{}{}",
        Uuid::new_v4().simple(),
        Uuid::new_v4().simple()
    );
    let row = db
        .query_one(
            "INSERT INTO api_tokens (id, tenant, name, token_sha256, scope) \
             VALUES ($1, $2, $3, $4, $5) RETURNING id, tenant, name, scope, created_at",
            &[
                &Uuid::now_v7(),
                &tenant,
                &name,
                &sha256(&token),
                &scope.as_str(),
            ],
        )
        .await
        .map_err(|e| {
            if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
                StoreError::Conflict(format!(
                    "a token named `{name}` already exists in tenant `{tenant}`"
                ))
            } else {
                StoreError::from(e)
            }
        })?;
    Ok((from_row(&row)?, Secret::new(token)))
}

fn from_row(r: &tokio_postgres::Row) -> Result<ApiToken, StoreError> {
    Ok(ApiToken {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        name: r.try_get("name")?,
        scope: scope_of(r)?,
        created_at: r.try_get("created_at")?,
    })
}

pub async fn list(db: &impl GenericClient, tenant: &str) -> Result<Vec<ApiToken>, StoreError> {
    let rows = db
        .query(
            "SELECT id, tenant, name, scope, created_at FROM api_tokens WHERE tenant = $1 \
             ORDER BY name",
            &[&tenant],
        )
        .await?;
    rows.iter().map(from_row).collect()
}

/// Revokes a tenant's token by name.
pub async fn revoke(db: &impl GenericClient, tenant: &str, name: &str) -> Result<(), StoreError> {
    let n = db
        .execute(
            "DELETE FROM api_tokens WHERE tenant = $1 AND name = $2",
            &[&tenant, &name],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::not_found(format!(
            "token `{name}` in tenant `{tenant}`"
        )));
    }
    Ok(())
}

/// The column's CHECK allows only the two names.
pub(crate) fn scope_of(r: &tokio_postgres::Row) -> Result<Scope, StoreError> {
    let name: String = r.try_get("scope")?;
    name.parse()
        .map_err(|e: hookrelay_model::Invalid| StoreError::Corrupt {
            what: "token scope".into(),
            problem: e.problem,
        })
}

/// The live tenant token `token` is, if it is one.
pub async fn find(db: &impl GenericClient, token: &str) -> Result<Option<ApiToken>, StoreError> {
    if !token.starts_with(PREFIX) {
        return Ok(None);
    }
    let row = db
        .query_opt(
            "SELECT id, tenant, name, scope, created_at FROM api_tokens WHERE token_sha256 = $1",
            &[&sha256(token)],
        )
        .await?;
    row.as_ref().map(from_row).transpose()
}
