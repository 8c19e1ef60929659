//! The day partitions of the history (V23): `events` by `received_at`, `deliveries`
//! by id (UUIDv7, so by creation time) and `delivery_attempts` by their delivery's
//! id, one UTC day each, named `{table}_pYYYYMMDD`; the tables as they were before
//! V23 are the partition `{table}_history`, everything before the migration.
//!
//! The service creates the days ahead ([`ensure`]: every migrate, every retention
//! round) and retention drops whole days older than the longest retention period
//! ([`expired`], [`drop_day`]). A day is dropped in steps that each leave a state the
//! next round finishes: detach the three partitions (`DETACH ... CONCURRENTLY`: the
//! tables take only SHARE UPDATE EXCLUSIVE, reads and writes go on), delete their
//! rows' keys from `event_keys` and `delivery_targets` in batches, drop the detached
//! tables.

use deadpool_postgres::GenericClient;
use time::{Duration, OffsetDateTime};

use super::StoreError;

/// The migration that partitions the history.
pub const MIGRATION: i32 = 23;

/// Days of partitions kept ready beyond today. A role that could not create them
/// for this long (no migrate, no retention round) finds its inserts refused as
/// unavailable (see [`is_missing`]) and waits.
pub const DAYS_AHEAD: i64 = 7;

/// Keys deleted per statement when a dropped day's keys are trimmed.
pub const KEY_BATCH: i64 = 5_000;

/// The three partitioned tables, in the order a day is detached and dropped (an
/// attempt before its delivery, a delivery before its event).
const TABLES: [&str; 3] = ["delivery_attempts", "deliveries", "events"];

/// Whether a database error is an insert of a row no partition holds: raised by
/// the server's `ExecFindPartition` (the message's text as a fallback, for a
/// server that does not name the routine).
pub(crate) fn is_missing(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        db.routine() == Some("ExecFindPartition")
            || db.message().starts_with("no partition of relation")
    })
}

/// Creates the partitions of today and of the [`DAYS_AHEAD`] days after `now`, those
/// missing; returns how many days were created. Attaching a new, empty table locks
/// the parent SHARE UPDATE EXCLUSIVE only: inserts and queries go on.
pub async fn ensure(db: &tokio_postgres::Client, now: OffsetDateTime) -> Result<i32, StoreError> {
    create(db, now, now + Duration::days(DAYS_AHEAD)).await
}

/// Creates the day partitions from `from`'s day through `through`'s, those missing.
pub async fn create(
    db: &tokio_postgres::Client,
    from: OffsetDateTime,
    through: OffsetDateTime,
) -> Result<i32, StoreError> {
    let made: i32 = db
        .query_one(
            "SELECT hookrelay_add_partitions($1, $2)",
            &[&from, &through],
        )
        .await?
        .try_get(0)?;
    if made > 0 {
        tracing::info!(days = made, "created partitions of the history");
    }
    Ok(made)
}

/// One day of the history (or the converted history), in the three tables.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Day {
    /// `pYYYYMMDD` or `history`: the tables are `events_{suffix}` and so on.
    pub suffix: String,
    /// Every event in it was received before this (`None`: a day detached
    /// before, whose bound is gone with it).
    #[serde(with = "time::serde::rfc3339::option")]
    pub ends: Option<OffsetDateTime>,
}

/// The end of the converted history (`events_history`, everything before V23 ran),
/// while it is still a partition.
pub async fn history_end(db: &impl GenericClient) -> Result<Option<OffsetDateTime>, StoreError> {
    let rows = db
        .query(&format!("{BOUNDS} AND c.relname = 'events_history'"), &[])
        .await?;
    Ok(match rows.first() {
        Some(r) => r.try_get("ends")?,
        None => None,
    })
}

/// The partitions of `events` with their upper bounds (text of the bound cast back).
const BOUNDS: &str = "SELECT c.relname::text AS name, \
       substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \\(''([^'']+)''\\)')::timestamptz AS ends \
     FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
     WHERE i.inhparent = 'events'::regclass";

/// The days whose every event was received before `cutoff` (their upper bound is at
/// or before it), oldest first; and any day a previous round began to drop and did
/// not finish (a table detached or left behind).
pub async fn expired(
    db: &impl GenericClient,
    cutoff: OffsetDateTime,
) -> Result<Vec<Day>, StoreError> {
    let attached = db.query(&format!("{BOUNDS} ORDER BY 2"), &[]).await?;
    let mut days = Vec::new();
    for r in &attached {
        let name: String = r.try_get("name")?;
        let ends: Option<OffsetDateTime> = r.try_get("ends")?;
        if ends.is_some_and(|e| e <= cutoff)
            && let Some(suffix) = name.strip_prefix("events_")
        {
            days.push(Day {
                suffix: suffix.to_owned(),
                ends,
            });
        }
    }
    // Left behind: a table of a day that is no longer (or not only) attached.
    let left = db
        .query(
            "SELECT DISTINCT substring(c.relname FROM '^(?:events|deliveries|delivery_attempts)_(p[0-9]{8}|history)$') AS suffix \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relkind = 'r' \
               AND c.relname ~ '^(events|deliveries|delivery_attempts)_(p[0-9]{8}|history)$' \
               AND (NOT c.relispartition OR EXISTS ( \
                 SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid AND i.inhdetachpending)) \
             ORDER BY 1",
            &[],
        )
        .await?;
    for r in &left {
        let suffix: String = r.try_get("suffix")?;
        if !days.iter().any(|d| d.suffix == suffix) {
            days.push(Day { suffix, ends: None });
        }
    }
    Ok(days)
}

/// Advisory lock key held while a retention round drops days, so that api replicas
/// running retention at once do not detach the same day twice.
const DROPPING: i64 = 0x6472_6f70_6461_7973; // "dropdays"

/// Drops `days` ([`drop_day`]) unless another session is dropping days now (then
/// nothing, and the next round tries again); returns what was dropped. The
/// session-level lock is released whether or not a drop failed.
pub async fn drop_days(
    db: &tokio_postgres::Client,
    days: &[Day],
) -> Result<Vec<Dropped>, StoreError> {
    if days.is_empty() {
        return Ok(Vec::new());
    }
    let mine: bool = db
        .query_one("SELECT pg_try_advisory_lock($1)", &[&DROPPING])
        .await?
        .try_get(0)?;
    if !mine {
        tracing::info!("another session is dropping days of history; leaving them to it");
        return Ok(Vec::new());
    }
    let mut dropped = Vec::new();
    let mut result = Ok(());
    for day in days {
        match drop_day(db, &day.suffix).await {
            Ok(d) => dropped.push(d),
            Err(e) => {
                result = Err(e);
                break;
            }
        }
    }
    db.execute("SELECT pg_advisory_unlock($1)", &[&DROPPING])
        .await?;
    result.map(|()| dropped)
}

/// What is dropped of one day.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Dropped {
    pub suffix: String,
    /// Rows of each table as the statistics estimated them when the day was
    /// detached (counting a day about to go would read all of it).
    pub events: i64,
    pub deliveries: i64,
    pub attempts: i64,
}

/// Detaches the day's three partitions (concurrently: reads and writes of the tables
/// go on; it waits for transactions that use them to end), deletes their rows' keys
/// from `event_keys` and `delivery_targets` in batches of [`KEY_BATCH`], and drops
/// them. Each step can be interrupted: the day is then found again by [`expired`]
/// and finished. Not inside a transaction (`DETACH ... CONCURRENTLY` refuses one).
pub async fn drop_day(db: &tokio_postgres::Client, suffix: &str) -> Result<Dropped, StoreError> {
    if !valid_suffix(suffix) {
        return Err(StoreError::Invalid(hookrelay_model::Invalid::new(
            "partition",
            format!("`{suffix}` is not a day of the history (pYYYYMMDD or history)"),
        )));
    }
    let mut dropped = Dropped {
        suffix: suffix.to_owned(),
        ..Dropped::default()
    };
    for table in TABLES {
        let part = format!("{table}_{suffix}");
        let row = db
            .query_opt(
                "SELECT c.reltuples::int8 AS rows, c.relispartition AS attached, \
                   coalesce((SELECT i.inhdetachpending FROM pg_inherits i WHERE i.inhrelid = c.oid), false) AS pending \
                 FROM pg_class c WHERE c.oid = to_regclass($1)",
                &[&part],
            )
            .await?;
        let Some(row) = row else { continue };
        let rows: i64 = row.try_get::<_, i64>("rows")?.max(0);
        match table {
            "events" => dropped.events = rows,
            "deliveries" => dropped.deliveries = rows,
            _ => dropped.attempts = rows,
        }
        if row.try_get("pending")? {
            db.batch_execute(&format!(
                "ALTER TABLE {table} DETACH PARTITION {part} FINALIZE"
            ))
            .await?;
        } else if row.try_get("attached")? {
            db.batch_execute(&format!(
                "ALTER TABLE {table} DETACH PARTITION {part} CONCURRENTLY"
            ))
            .await?;
        }
    }
    trim_targets(db, &format!("deliveries_{suffix}")).await?;
    trim_keys(db, &format!("events_{suffix}")).await?;
    for table in TABLES {
        db.batch_execute(&format!("DROP TABLE IF EXISTS {table}_{suffix}"))
            .await?;
    }
    tracing::info!(
        day = suffix,
        events = dropped.events,
        deliveries = dropped.deliveries,
        attempts = dropped.attempts,
        "retention dropped a day of history (row counts estimated)"
    );
    Ok(dropped)
}

fn valid_suffix(suffix: &str) -> bool {
    suffix == "history"
        || (suffix.len() == 9
            && suffix.starts_with('p')
            && suffix[1..].bytes().all(|b| b.is_ascii_digit()))
}

/// Deletes from `delivery_targets` the keys of the deliveries of a detached day.
async fn trim_targets(db: &tokio_postgres::Client, detached: &str) -> Result<(), StoreError> {
    if !exists(db, detached).await? {
        return Ok(());
    }
    let sql = format!(
        "WITH b AS (SELECT id, tenant, event_id, \
             coalesce(webhook_id, '00000000-0000-0000-0000-000000000000'::uuid) AS target \
           FROM {detached} WHERE id > $1 ORDER BY id LIMIT $2), \
         gone AS (DELETE FROM delivery_targets k USING b \
           WHERE k.tenant = b.tenant AND k.event_id = b.event_id AND k.target = b.target \
             AND k.delivery_id = b.id) \
         SELECT (SELECT id FROM b ORDER BY id DESC LIMIT 1)"
    );
    let mut after = uuid::Uuid::nil();
    loop {
        let last: Option<uuid::Uuid> = db
            .query_one(&sql, &[&after, &KEY_BATCH])
            .await?
            .try_get(0)?;
        match last {
            Some(last) => after = last,
            None => return Ok(()),
        }
    }
}

/// Deletes from `event_keys` the keys of the events of a detached day.
async fn trim_keys(db: &tokio_postgres::Client, detached: &str) -> Result<(), StoreError> {
    if !exists(db, detached).await? {
        return Ok(());
    }
    let sql = format!(
        "WITH b AS (SELECT tenant, id, received_at FROM {detached} \
           WHERE (tenant, id) > ($1, $2) ORDER BY tenant, id LIMIT $3), \
         gone AS (DELETE FROM event_keys k USING b \
           WHERE k.tenant = b.tenant AND k.id = b.id AND k.received_at = b.received_at), \
         last AS (SELECT tenant, id FROM b ORDER BY tenant DESC, id DESC LIMIT 1) \
         SELECT tenant, id FROM last"
    );
    let (mut tenant, mut id) = (String::new(), String::new());
    loop {
        match db.query_opt(&sql, &[&tenant, &id, &KEY_BATCH]).await? {
            Some(r) => (tenant, id) = (r.try_get(0)?, r.try_get(1)?),
            None => return Ok(()),
        }
    }
}

async fn exists(db: &tokio_postgres::Client, table: &str) -> Result<bool, StoreError> {
    Ok(db
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&table])
        .await?
        .try_get(0)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_days_of_the_history_are_named() {
        for ok in ["p20261207", "history"] {
            assert!(valid_suffix(ok), "{ok}");
        }
        for bad in [
            "",
            "p2026120",
            "p2026120x",
            "history; DROP TABLE x",
            "q20261207",
        ] {
            assert!(!valid_suffix(bad), "{bad}");
        }
    }
}
