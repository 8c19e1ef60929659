//! The `event_types` table: the event catalog, global and operator-managed. What an
//! entry may hold is `hookrelay_model::catalog`'s rule, checked before these are called
//! (`hookrelay_admin::catalog`); [`Schemas`] is the compiled schemas' cache the router
//! and the ingest API check payloads with.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::{GenericClient, Pool};
use hookrelay_model::Event;
use hookrelay_model::catalog::{self, CompiledSchema, EventTypeFields as Fields, Violation};
use serde::Serialize;
use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::Mutex;

use super::StoreError;

/// One type of the catalog. `schema` and `example` describe the event's payload (the
/// object JSON webhooks receive), not its envelope.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventType {
    /// The event type as in envelopes (`type`).
    pub name: String,
    pub description: String,
    /// A JSON Schema (draft 2020-12) for the payload; null: payloads are not checked.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub schema: Option<Value>,
    /// An example payload; it satisfies `schema`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub example: Option<Value>,
    /// Still delivered and checked; shown as deprecated so that no one new picks it.
    pub deprecated: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

impl From<EventType> for Fields {
    fn from(t: EventType) -> Self {
        Self {
            name: t.name,
            description: t.description,
            schema: t.schema,
            example: t.example,
            deprecated: t.deprecated,
        }
    }
}

const COLUMNS: &str = "name, description, schema, example, deprecated, created_at, updated_at";

fn from_row(r: &tokio_postgres::Row) -> Result<EventType, StoreError> {
    Ok(EventType {
        name: r.try_get("name")?,
        description: r.try_get("description")?,
        schema: r.try_get("schema")?,
        example: r.try_get("example")?,
        deprecated: r.try_get("deprecated")?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

fn not_found(name: &str) -> StoreError {
    StoreError::not_found(format!("event type `{name}`"))
}

/// A name already in use is a conflict; anything else the database's error.
fn taken(e: tokio_postgres::Error, name: &str) -> StoreError {
    if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) {
        StoreError::Conflict(format!("event type `{name}` already exists"))
    } else {
        StoreError::from(e)
    }
}

/// Every type, by name.
pub async fn list(db: &impl GenericClient) -> Result<Vec<EventType>, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM event_types ORDER BY name");
    db.query(&sql, &[]).await?.iter().map(from_row).collect()
}

pub async fn get(db: &impl GenericClient, name: &str) -> Result<EventType, StoreError> {
    let sql = format!("SELECT {COLUMNS} FROM event_types WHERE name = $1");
    let row = db.query_opt(&sql, &[&name]).await?;
    from_row(&row.ok_or_else(|| not_found(name))?)
}

/// `$1` to `$5` of the statements that write a type.
fn values(f: &Fields) -> [&(dyn tokio_postgres::types::ToSql + Sync); 5] {
    [
        &f.name,
        &f.description,
        &f.schema,
        &f.example,
        &f.deprecated,
    ]
}

/// A new type; a name in use is a conflict.
pub async fn create(db: &impl GenericClient, f: &Fields) -> Result<EventType, StoreError> {
    let sql = format!(
        "INSERT INTO event_types (name, description, schema, example, deprecated) \
         VALUES ($1, $2, $3, $4, $5) RETURNING {COLUMNS}"
    );
    let row = db
        .query_one(&sql, &values(f))
        .await
        .map_err(|e| taken(e, &f.name))?;
    from_row(&row)
}

/// Replaces the type named `name` (which `f.name` may rename).
pub async fn update(
    db: &impl GenericClient,
    name: &str,
    f: &Fields,
) -> Result<EventType, StoreError> {
    let sql = format!(
        "UPDATE event_types SET name = $1, description = $2, schema = $3, example = $4, \
           deprecated = $5, updated_at = now() \
         WHERE name = $6 RETURNING {COLUMNS}"
    );
    let mut params = values(f).to_vec();
    params.push(&name);
    let row = db
        .query_opt(&sql, &params)
        .await
        .map_err(|e| taken(e, &f.name))?;
    from_row(&row.ok_or_else(|| not_found(name))?)
}

pub async fn delete(db: &impl GenericClient, name: &str) -> Result<(), StoreError> {
    let n = db
        .execute("DELETE FROM event_types WHERE name = $1", &[&name])
        .await?;
    if n == 0 {
        return Err(not_found(name));
    }
    Ok(())
}

/// How long [`Schemas`] trusts what it loaded: a change to the catalog takes effect
/// within this time in every process.
pub const SCHEMA_CACHE_TTL: Duration = Duration::from_secs(10);

/// The catalog's schemas, compiled once each and reloaded at most every `ttl`: a
/// type's schema is compiled again only when its `updated_at` changed.
pub struct Schemas {
    pool: Pool,
    ttl: Duration,
    loaded: Mutex<Loaded>,
}

#[derive(Default)]
struct Loaded {
    at: Option<Instant>,
    by_name: HashMap<String, (OffsetDateTime, Arc<CompiledSchema>)>,
}

impl Schemas {
    pub fn new(pool: Pool, ttl: Duration) -> Self {
        Self {
            pool,
            ttl,
            loaded: Mutex::default(),
        }
    }

    /// The compiled schema of `event_type`; none when the type is not in the catalog
    /// or has no schema (its payloads pass).
    pub async fn get(&self, event_type: &str) -> Result<Option<Arc<CompiledSchema>>, StoreError> {
        let mut loaded = self.loaded.lock().await;
        if loaded.at.is_none_or(|at| at.elapsed() >= self.ttl) {
            self.reload(&mut loaded).await?;
        }
        Ok(loaded.by_name.get(event_type).map(|(_, s)| Arc::clone(s)))
    }

    /// Whether `event`'s payload satisfies its type's schema (a type outside the
    /// catalog, or without a schema, passes); `Err` when the catalog cannot be read.
    pub async fn check(&self, event: &Event) -> Result<Result<(), Violation>, StoreError> {
        Ok(match self.get(&event.event_type).await? {
            Some(schema) => catalog::check(&schema, &event.payload),
            None => Ok(()),
        })
    }

    async fn reload(&self, loaded: &mut Loaded) -> Result<(), StoreError> {
        let db = self.pool.get().await?;
        let rows = db
            .query(
                "SELECT name, updated_at, schema FROM event_types WHERE schema IS NOT NULL",
                &[],
            )
            .await?;
        let mut by_name = HashMap::with_capacity(rows.len());
        for r in &rows {
            let name: String = r.try_get("name")?;
            let updated_at: OffsetDateTime = r.try_get("updated_at")?;
            if let Some(kept) = loaded.by_name.remove(&name).filter(|k| k.0 == updated_at) {
                by_name.insert(name, kept);
                continue;
            }
            let schema: Value = r.try_get("schema")?;
            match catalog::compile("schema", &schema) {
                Ok(compiled) => {
                    by_name.insert(name, (updated_at, Arc::new(compiled)));
                }
                // Checked when written; one that no longer compiles checks nothing
                // rather than stopping every event.
                Err(e) => {
                    tracing::warn!(event_type = %name, error = %e, "stored schema does not compile; its payloads are not checked")
                }
            }
        }
        *loaded = Loaded {
            at: Some(Instant::now()),
            by_name,
        };
        Ok(())
    }
}
