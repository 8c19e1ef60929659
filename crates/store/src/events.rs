//! The `events` table: every event accepted by the router, once per (tenant, id).
//! `event_keys`' primary key is where de-duplication is decided (V23: `events` is
//! partitioned by day; the key table is not, and leads a look-up by (tenant, id) to
//! the event's day).

use std::collections::HashSet;

use deadpool_postgres::GenericClient;
use time::OffsetDateTime;

use hookrelay_model::Invalid;

use super::StoreError;
use hookrelay_model::envelope::Event;

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
    let statement = super::prepared(
        db,
        // `received_at` rises by a microsecond per event in the batch's order (the
        // order the router took them), so that it orders the events of one batch as
        // it orders batches: a backfill of an ordered webhook numbers them so.
        // De-duplication is decided by `event_keys`' primary key (V23: `events` is
        // partitioned by day and can hold no unique key on (tenant, id) across
        // days): the keys inserted are the events that are new, and only those go
        // into `events`, each with the `received_at` of its key. A key repeated in
        // the batch is inserted once, for its first copy (the insert goes in the
        // batch's order), and the join on `received_at` picks that copy.
        "WITH u AS ( \
           SELECT t, id, ty, s, o, e, i, now() + make_interval(secs => (i - 1) / 1e6) AS r \
           FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], \
                       $5::timestamptz[], $6::json[]) WITH ORDINALITY AS u(t, id, ty, s, o, e, i)), \
         k AS ( \
           INSERT INTO event_keys (tenant, id, received_at) SELECT t, id, r FROM u ORDER BY i \
           ON CONFLICT (tenant, id) DO NOTHING RETURNING tenant, id, received_at) \
         INSERT INTO events (tenant, id, type, session_id, occurred_at, envelope, received_at) \
         SELECT u.t, u.id, u.ty, u.s, u.o, u.e, u.r \
         FROM u JOIN k ON k.tenant = u.t AND k.id = u.id AND k.received_at = u.r \
         ORDER BY u.i RETURNING tenant, id",
    )
    .await?;
    let rows = db
        .query(
            &statement,
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
            // Through the key: one probe into the event's day, not one into every day.
            "SELECT envelope FROM events WHERE (tenant, id, received_at) = \
               (SELECT tenant, id, received_at FROM event_keys WHERE tenant = $1 AND id = $2)",
            &[&tenant, &id],
        )
        .await?;
    row.map(|r| {
        let envelope: serde_json::Value = r.try_get("envelope")?;
        serde_json::from_value(envelope)
            .map_err(|e| StoreError::corrupt(format!("envelope of event `{id}`"), e))
    })
    .transpose()
}

/// An event the router recorded, as operators and the events API see it.
#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredEvent {
    pub id: String,
    pub tenant: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub session_id: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub occurred_at: OffsetDateTime,
    /// When the router recorded it; the order of the list.
    #[serde(with = "time::serde::rfc3339")]
    pub received_at: OffsetDateTime,
    /// The envelope as published (optional fields that were absent or null are left
    /// out; `private_fields` is left out when empty).
    #[cfg_attr(feature = "openapi", schema(value_type = hookrelay_model::Event))]
    pub envelope: serde_json::Value,
}

/// Which events of a tenant to list; every field narrows. The time range is on
/// `received_at`, the order of the list. `received_at` is stamped when the routing
/// transaction starts: with several routers an event can become visible a moment
/// (one transaction) after events stamped later, so a poller should overlap its
/// `since` by a few seconds and drop ids it has seen.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    pub session_id: Option<String>,
    pub event_type: Option<String>,
    pub since: Option<OffsetDateTime>,
    pub until: Option<OffsetDateTime>,
}

/// Where a page ends: the last event's (received_at, id). Pages run newest first, so
/// events arriving while a client pages land before its first page, and a page never
/// repeats or skips an event that was visible when paging began.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub received_at: OffsetDateTime,
    pub id: String,
}

impl Cursor {
    /// `<unix nanos>.<id>`: any such text is a position in the list (the page starts
    /// after it), so a client may also build one, e.g. to resume after an event it
    /// saw. The admin API documents it as `^[0-9]{1,19}\.` and an id: 19 digits of
    /// nanoseconds reach the year 2286, well within what `decode` takes.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.received_at.unix_timestamp_nanos(), self.id)
    }

    pub fn decode(token: &str) -> Result<Self, StoreError> {
        let invalid = || StoreError::from(Invalid::new("cursor", "not a cursor from this API"));
        let (nanos, id) = match token.split_once('.') {
            Some((nanos, id)) if !nanos.is_empty() && nanos.bytes().all(|b| b.is_ascii_digit()) => {
                (nanos.to_owned(), id.to_owned())
            }
            _ => Self::legacy(token).ok_or_else(invalid)?,
        };
        let nanos: i128 = nanos.parse().map_err(|_| invalid())?;
        let received_at =
            OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| invalid())?;
        Ok(Self { received_at, id })
    }

    /// Cursors of earlier versions: the same text in base64url, still accepted so a
    /// client paging through an upgrade goes on.
    fn legacy(token: &str) -> Option<(String, String)> {
        use base64::Engine;
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()?;
        let raw = String::from_utf8(raw).ok()?;
        let (nanos, id) = raw.split_once('.')?;
        Some((nanos.to_owned(), id.to_owned()))
    }

    pub fn of(event: &StoredEvent) -> Self {
        Self {
            received_at: event.received_at,
            id: event.id.clone(),
        }
    }
}

const EVENT_COLUMNS: &str = "id, tenant, type, session_id, occurred_at, received_at, envelope";

fn event_from_row(r: &tokio_postgres::Row) -> Result<StoredEvent, StoreError> {
    Ok(StoredEvent {
        id: r.try_get("id")?,
        tenant: r.try_get("tenant")?,
        event_type: r.try_get("type")?,
        session_id: r.try_get("session_id")?,
        occurred_at: r.try_get("occurred_at")?,
        received_at: r.try_get("received_at")?,
        envelope: r.try_get("envelope")?,
    })
}

/// Which end of the list a page starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    NewestFirst,
    /// The order the router recorded them: what a backfill of an ordered webhook
    /// numbers by.
    OldestFirst,
}

/// One page of a tenant's events, newest first, after `after`.
pub async fn list(
    db: &impl GenericClient,
    tenant: &str,
    filter: &EventFilter,
    after: Option<&Cursor>,
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    list_from(db, tenant, filter, (after, Direction::NewestFirst), limit).await
}

/// One page of a tenant's events from either end, after `after`.
pub async fn list_from(
    db: &impl GenericClient,
    tenant: &str,
    filter: &EventFilter,
    (after, direction): (Option<&Cursor>, Direction),
    limit: i64,
) -> Result<Vec<StoredEvent>, StoreError> {
    let (beyond, order) = match direction {
        Direction::NewestFirst => ("<", "DESC"),
        Direction::OldestFirst => (">", "ASC"),
    };
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE tenant = $1 \
         AND ($2::text IS NULL OR session_id = $2) AND ($3::text IS NULL OR type = $3) \
         AND ($4::timestamptz IS NULL OR received_at >= $4) \
         AND ($5::timestamptz IS NULL OR received_at < $5) \
         AND ($6::timestamptz IS NULL OR (received_at, id) {beyond} ($6, $7::text)) \
         ORDER BY received_at {order}, id {order} LIMIT $8"
    );
    let rows = db
        .query(
            &sql,
            &[
                &tenant,
                &filter.session_id,
                &filter.event_type,
                &filter.since,
                &filter.until,
                &after.map(|c| c.received_at),
                &after.map(|c| c.id.as_str()),
                &limit,
            ],
        )
        .await?;
    rows.iter().map(event_from_row).collect()
}

/// One stored event with its metadata.
/// Of these events of the tenant, the ones still stored, locked `FOR KEY SHARE` until
/// the transaction ends, so that retention (which skips locked events) cannot delete
/// one while deliveries are created for it: what a foreign key's check did. Call
/// inside the transaction that creates them.
pub async fn lock_present(
    db: &impl GenericClient,
    tenant: &str,
    ids: &[&str],
) -> Result<HashSet<String>, StoreError> {
    let rows = db
        .query(
            "SELECT id FROM events WHERE tenant = $1 AND id = ANY($2) FOR KEY SHARE",
            &[&tenant, &ids],
        )
        .await?;
    rows.iter().map(|r| Ok(r.try_get(0)?)).collect()
}

pub async fn find(
    db: &impl GenericClient,
    tenant: &str,
    id: &str,
) -> Result<StoredEvent, StoreError> {
    // Through the key: one probe into the event's day, not one into every day.
    let sql = format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE (tenant, id, received_at) = \
           (SELECT tenant, id, received_at FROM event_keys WHERE tenant = $1 AND id = $2)"
    );
    db.query_opt(&sql, &[&tenant, &id])
        .await?
        .map(|r| event_from_row(&r))
        .transpose()?
        .ok_or_else(|| StoreError::not_found(format!("event `{id}` in tenant `{tenant}`")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_and_any_text_of_its_documented_shape_is_one() {
        let at = Cursor {
            received_at: OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789)
                .unwrap(),
            id: "evt.with.dots".into(),
        };
        let back = Cursor::decode(&at.encode()).unwrap();
        assert_eq!(
            (back.received_at, back.id.as_str()),
            (at.received_at, "evt.with.dots")
        );
        for shaped in ["0.", "9999999999999999999.x", "1.é"] {
            assert!(Cursor::decode(shaped).is_ok(), "{shaped}");
        }
        for bad in ["", ".x", "abc", "-1.x", "1x.y"] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
        // What earlier versions handed out still works.
        let legacy = {
            use base64::Engine;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("1700000000123456789.e-1")
        };
        assert_eq!(Cursor::decode(&legacy).unwrap().id, "e-1");
    }
}
