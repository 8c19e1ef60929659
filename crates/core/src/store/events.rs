//! The `events` table: every event accepted by the router, once per (tenant, id).
//! Its primary key is where de-duplication is decided.

use std::collections::HashSet;

use deadpool_postgres::GenericClient;
use time::OffsetDateTime;

use super::StoreError;
use crate::envelope::Event;

/// Inserts the events that are new and returns the (tenant, id) of those inserted;
/// the rest were seen before. Duplicates inside `events` count once.
pub async fn insert_new(
    db: &impl GenericClient,
    events: &[Event],
) -> Result<HashSet<(String, String)>, StoreError> {
    let tenants: Vec<&str> = events.iter().map(|e| e.tenant.as_str()).collect();
    let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
    let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
    let sessions: Vec<Option<&str>> = events.iter().map(|e| e.session_id.as_deref()).collect();
    let occurred: Vec<OffsetDateTime> = events.iter().map(|e| e.occurred_at).collect();
    let envelopes: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::to_value(e).unwrap_or_default())
        .collect();
    let rows = db
        .query(
            "INSERT INTO events (tenant, id, type, session_id, occurred_at, envelope) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], \
                                  $5::timestamptz[], $6::json[]) \
             ON CONFLICT (tenant, id) DO NOTHING RETURNING tenant, id",
            &[&tenants, &ids, &types, &sessions, &occurred, &envelopes],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get("tenant")?, r.try_get("id")?)))
        .collect()
}

/// The stored envelope of one event.
pub async fn get(
    db: &impl GenericClient,
    tenant: &str,
    id: &str,
) -> Result<Option<Event>, StoreError> {
    let row = db
        .query_opt(
            "SELECT envelope FROM events WHERE tenant = $1 AND id = $2",
            &[&tenant, &id],
        )
        .await?;
    row.map(|r| {
        let envelope: serde_json::Value = r.try_get("envelope")?;
        serde_json::from_value(envelope)
            .map_err(|e| StoreError::Invalid(format!("stored envelope of event `{id}`: {e}")))
    })
    .transpose()
}
