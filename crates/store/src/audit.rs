//! The `audit_log` table: every change made through the admin API, the console or
//! the portal (who, through what, what, when). Written after the change succeeded.

use deadpool_postgres::GenericClient;
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::StoreError;

/// One change, as recorded.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// The tenant of the route; null for routes of no tenant.
    pub tenant: Option<String>,
    /// `operator`, `tenant token (write)` or `portal session <id>`.
    pub actor: String,
    /// `api`, `console` or `portal`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^(api|console|portal)$"))]
    pub via: String,
    pub method: String,
    /// The route called, with its target (`/v1/tenants/acme/webhooks/orders/pause`).
    pub path: String,
    pub status: i16,
}

/// What to record.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    pub tenant: Option<&'a str>,
    pub actor: &'a str,
    pub via: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
}

pub async fn record(db: &impl GenericClient, e: &NewEntry<'_>) -> Result<(), StoreError> {
    let status = i16::try_from(e.status).unwrap_or(i16::MAX);
    db.execute(
        "INSERT INTO audit_log (id, tenant, actor, via, method, path, status) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[
            &Uuid::now_v7(),
            &e.tenant,
            &e.actor,
            &e.via,
            &e.method,
            &e.path,
            &status,
        ],
    )
    .await?;
    Ok(())
}

/// Which entries: every filter narrows.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub tenant: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

/// A page of entries, newest first, after the cursor (the last id of the previous
/// page).
pub async fn list(
    db: &impl GenericClient,
    filter: &AuditFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AuditEntry>, StoreError> {
    let rows = db
        .query(
            "SELECT id, at, tenant, actor, via, method, path, status FROM audit_log \
             WHERE ($1::text IS NULL OR tenant = $1) AND ($2::timestamptz IS NULL OR at >= $2) \
             AND ($3::timestamptz IS NULL OR at < $3) AND ($4::uuid IS NULL OR id < $4) \
             ORDER BY id DESC LIMIT $5",
            &[&filter.tenant, &filter.since, &filter.until, &after, &limit],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(AuditEntry {
                id: r.try_get("id")?,
                at: r.try_get("at")?,
                tenant: r.try_get("tenant")?,
                actor: r.try_get("actor")?,
                via: r.try_get("via")?,
                method: r.try_get("method")?,
                path: r.try_get("path")?,
                status: r.try_get("status")?,
            })
        })
        .collect()
}
