//! The event catalog's writes, shared by `/v1/event-types` and `hookrelay
//! event-types`: every entry is checked by the model's rule
//! (`EventTypeFields::check`: a schema that compiles, an example that satisfies it)
//! before the store writes it.

use deadpool_postgres::GenericClient;
use hookrelay_model::catalog::{EventTypeFields, EventTypeUpdate};
use hookrelay_store::event_types::{self, EventType};

use crate::AdminError;

pub async fn create(
    db: &impl GenericClient,
    fields: &EventTypeFields,
) -> Result<EventType, AdminError> {
    fields.check()?;
    Ok(event_types::create(db, fields).await?)
}

/// Changes what `change` names; the result is checked whole (a new schema must still
/// accept the kept example).
pub async fn update(
    db: &impl GenericClient,
    name: &str,
    change: EventTypeUpdate,
) -> Result<EventType, AdminError> {
    let current = event_types::get(db, name).await?;
    let next = change.apply(current.into());
    next.check()?;
    Ok(event_types::update(db, name, &next).await?)
}
