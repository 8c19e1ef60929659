//! The `environments` table: named variable sets per tenant (`Production`, `Sandbox`),
//! used to resolve `{{NAME}}` placeholders in webhook URLs.

use std::collections::BTreeMap;

use deadpool_postgres::GenericClient;
use serde::Serialize;
use serde_json::Value;

use hookrelay_model::{Invalid, text};

use super::StoreError;

/// A named variable set of a tenant, used to resolve `{{NAME}}` placeholders in
/// webhook URLs.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Environment {
    pub tenant: String,
    pub name: String,
    /// Values are never shown, since variables often hold tokens: each is `********`,
    /// whatever its length. Set a variable again to change it.
    #[cfg_attr(feature = "openapi", schema(example = json!({"API_TOKEN": "********", "HOST": "********"})))]
    pub variables: BTreeMap<String, String>,
}

/// What is shown for every value: nothing of it, not even its length (a prefix of a
/// token narrows a guess, and many tokens share their first characters).
pub const MASK: &str = "********";

fn to_map(value: Value) -> BTreeMap<String, String> {
    match value {
        Value::Object(map) => map
            .into_iter()
            .filter_map(|(k, v)| v.as_str().map(|s| (k, s.to_owned())))
            .collect(),
        _ => BTreeMap::new(),
    }
}

fn check_name(name: &str) -> Result<(), StoreError> {
    Ok(text::check_text("name", name, text::MAX_KEY_CHARS)?)
}

fn check_variable(key: &str) -> Result<(), StoreError> {
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(Invalid::new(
            "variables",
            format!("variable `{key}`: names may only hold letters, digits and `_`"),
        )
        .into());
    }
    Ok(())
}

/// Sets variables in an environment (created if missing); other variables stay.
pub async fn set(
    db: &impl GenericClient,
    tenant: &str,
    name: &str,
    variables: &BTreeMap<String, String>,
) -> Result<Environment, StoreError> {
    check_name(name)?;
    for (key, value) in variables {
        check_variable(key)?;
        text::check_chars(&format!("variables.{key}"), value, text::MAX_VALUE_CHARS)?;
    }
    let patch = serde_json::to_value(variables).unwrap_or_default();
    let row = db
        .query_one(
            "INSERT INTO environments (tenant, name, variables) VALUES ($1, $2, $3) \
             ON CONFLICT (tenant, name) DO UPDATE \
             SET variables = environments.variables || EXCLUDED.variables, updated_at = now() \
             RETURNING variables",
            &[&tenant, &name, &patch],
        )
        .await?;
    Ok(masked(tenant, name, row.try_get("variables")?))
}

/// Removes variables from an environment.
pub async fn unset(
    db: &impl GenericClient,
    tenant: &str,
    name: &str,
    keys: &[String],
) -> Result<Environment, StoreError> {
    let row = db
        .query_opt(
            "UPDATE environments SET variables = variables - $3::text[], updated_at = now() \
             WHERE tenant = $1 AND name = $2 RETURNING variables",
            &[&tenant, &name, &keys],
        )
        .await?
        .ok_or_else(|| {
            StoreError::not_found(format!("environment `{name}` in tenant `{tenant}`"))
        })?;
    Ok(masked(tenant, name, row.try_get("variables")?))
}

/// A tenant's environments, values masked.
pub async fn list(db: &impl GenericClient, tenant: &str) -> Result<Vec<Environment>, StoreError> {
    let rows = db
        .query(
            "SELECT name, variables FROM environments WHERE tenant = $1 ORDER BY name",
            &[&tenant],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(masked(
                tenant,
                &r.try_get::<_, String>("name")?,
                r.try_get("variables")?,
            ))
        })
        .collect()
}

/// The real values, for resolving a URL. Never returned to an operator.
pub async fn variables(
    db: &impl GenericClient,
    tenant: &str,
    name: &str,
) -> Result<BTreeMap<String, String>, StoreError> {
    let row = db
        .query_opt(
            "SELECT variables FROM environments WHERE tenant = $1 AND name = $2",
            &[&tenant, &name],
        )
        .await?;
    Ok(match row {
        Some(r) => to_map(r.try_get("variables")?),
        None => BTreeMap::new(),
    })
}

fn masked(tenant: &str, name: &str, variables: Value) -> Environment {
    Environment {
        tenant: tenant.to_owned(),
        name: name.to_owned(),
        variables: to_map(variables)
            .into_keys()
            .map(|k| (k, MASK.to_owned()))
            .collect(),
    }
}
