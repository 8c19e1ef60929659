//! `/v1/tenants/{tenant}`: a tenant's settings, its tokens and its environments.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hookrelay_model::access::Scope;
use hookrelay_model::text;
use hookrelay_store::environments::{self, Environment};
use hookrelay_store::tokens::{self, ApiToken};
use hookrelay_store::{StoreError, tenants};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::error::{Body as BodyErrors, Conflict, Database, NotFound};
use super::extract::{Body, Path, list};
use super::{AdminState, Result, db};

/// A tenant's settings. Every tenant exists implicitly: a tenant never configured
/// has `retention_days: null`.
#[derive(Serialize, ToSchema)]
pub(super) struct Tenant {
    tenant: String,
    /// The tenant's own retention period in days; null means the service-wide
    /// default.
    #[schema(minimum = 1)]
    retention_days: Option<i32>,
    /// The period that applies: `retention_days`, or the service-wide default
    /// (`HOOKRELAY_RETENTION_DAYS`) when that is null.
    effective_retention_days: i32,
}

/// Get a tenant's settings
///
/// Its retention period, own and effective.
#[utoipa::path(get, path = "/", tag = "tenants",
    responses((status = 200, description = "The tenant's settings.", body = Tenant), Database))]
pub(super) async fn get_tenant(
    State(s): State<AdminState>,
    Path(tenant): Path<String>,
) -> Result<Json<Tenant>> {
    let settings = tenants::get(&db(&s).await?, &tenant).await?;
    Ok(Json(Tenant {
        tenant: settings.tenant,
        retention_days: settings.retention_days,
        effective_retention_days: settings.retention_days.unwrap_or(s.default_retention_days),
    }))
}

/// Unknown fields are refused. A missing or null `retention_days` clears the
/// tenant's own period (the service-wide default applies again).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"retention_days": 30}))]
pub(super) struct TenantUpdate {
    /// Days events are kept before retention deletes them (with their deliveries and
    /// attempts): 1 to 36,500 (a hundred years).
    #[schema(value_type = Option<i32>, minimum = 1, maximum = 36500)]
    retention_days: Option<serde_json::Number>,
}

impl TenantUpdate {
    /// JSON has one kind of number: `30.0` is the whole number 30, as JSON Schema's
    /// `integer` says.
    fn retention_days(&self) -> std::result::Result<Option<i32>, hookrelay_model::Invalid> {
        let Some(n) = &self.retention_days else {
            return Ok(None);
        };
        let whole = n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
                .map(|f| f as i64)
        });
        // The range itself is the store's rule; a number no `i32` holds is out of it.
        whole
            .and_then(|d| i32::try_from(d).ok())
            .map(Some)
            .ok_or_else(tenants::retention_out_of_range)
    }
}

/// Set a tenant's settings
///
/// Sets (or, with a missing or null `retention_days`, clears) the tenant's retention
/// period.
#[utoipa::path(put, path = "/", tag = "tenants",
    request_body(content = TenantUpdate, description = "The new settings."),
    responses(
        (status = 200, description = "The tenant's settings after the change.", body = Tenant),
        BodyErrors, Database,
    ))]
pub(super) async fn put_tenant(
    State(s): State<AdminState>,
    Path(tenant): Path<String>,
    body: Body,
) -> Result<Json<Tenant>> {
    let body: TenantUpdate = body.parse()?;
    let days = body.retention_days()?;
    tenants::set_retention(&db(&s).await?, &tenant, days).await?;
    get_tenant(State(s), Path(tenant)).await
}

// ---- tenant tokens (the operator's token only: see the api's auth)

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "embed", "scope": "read"}))]
pub(super) struct CreateTokenRequest {
    /// 1 to 255 bytes without control characters; unique within the tenant (409
    /// otherwise).
    #[schema(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    name: String,
    /// `read` (the default: GET only, events without private fields) or `write`.
    #[serde(default)]
    scope: Scope,
}

/// A new tenant token, with its secret.
#[derive(Serialize, ToSchema)]
pub(super) struct CreatedApiToken {
    id: Uuid,
    tenant: String,
    name: String,
    scope: Scope,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    /// The bearer token in clear: the only time it is shown.
    #[schema(pattern = "^hrt_[0-9a-f]{64}$")]
    token: String,
}

/// Create a tenant token
///
/// A token that opens `/v1/tenants/{tenant}` and below except `tokens`: read-only
/// (`GET`, events without private fields) unless made with `"scope": "write"`.
/// Operator's token only.
#[utoipa::path(post, path = "/tokens", tag = "tokens",
    request_body(content = CreateTokenRequest, description = "The token's name and scope."),
    responses(
        (status = 201, description = "The token, with its secret shown this once.",
            body = CreatedApiToken),
        BodyErrors, Conflict, Database,
    ))]
pub(super) async fn create_token(
    State(s): State<AdminState>,
    Path(tenant): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<CreatedApiToken>)> {
    let body: CreateTokenRequest = body.parse()?;
    let (token, secret) = tokens::create(&db(&s).await?, &tenant, &body.name, body.scope).await?;
    let created = CreatedApiToken {
        id: token.id,
        tenant: token.tenant,
        name: token.name,
        scope: token.scope,
        created_at: token.created_at,
        token: secret.expose().to_owned(),
    };
    Ok((StatusCode::CREATED, Json(created)))
}

list! {
    /// Every token of the tenant, by name; not paged.
    ApiTokenList of ApiToken
}

/// List tenant tokens
///
/// Every token of the tenant, by name, without secrets; operator's token only.
#[utoipa::path(get, path = "/tokens", tag = "tokens",
    responses(
        (status = 200, description = "The tenant's tokens, without secrets.",
            body = ApiTokenList),
        Database,
    ))]
pub(super) async fn list_tokens(
    State(s): State<AdminState>,
    Path(tenant): Path<String>,
) -> Result<Json<ApiTokenList>> {
    Ok(ApiTokenList::of(
        tokens::list(&db(&s).await?, &tenant).await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct TokenPath {
    #[param(ignore)]
    tenant: String,
    /// The token's name.
    name: String,
}

/// Revoke a tenant token
///
/// It stops working at once. Operator's token only.
#[utoipa::path(delete, path = "/tokens/{name}", tag = "tokens", params(TokenPath),
    responses((status = 204, description = "Revoked."), NotFound, Database))]
pub(super) async fn revoke_token(
    State(s): State<AdminState>,
    Path(p): Path<TokenPath>,
) -> Result<StatusCode> {
    tokens::revoke(&db(&s).await?, &p.tenant, &p.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

// ---- environments

list! {
    /// Every environment of the tenant, by name; not paged.
    EnvironmentList of Environment
}

/// List environments
///
/// Every environment of the tenant, by name, values masked.
#[utoipa::path(get, path = "/environments", tag = "environments",
    responses(
        (status = 200, description = "The environments.", body = EnvironmentList),
        Database,
    ))]
pub(super) async fn list_environments(
    State(s): State<AdminState>,
    Path(tenant): Path<String>,
) -> Result<Json<EnvironmentList>> {
    Ok(EnvironmentList::of(
        environments::list(&db(&s).await?, &tenant).await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct EnvironmentPath {
    #[param(ignore)]
    tenant: String,
    /// The environment's name (e.g. `Production`): 1 to 255 bytes, no control
    /// characters.
    #[param(
        min_length = 1,
        max_length = 255,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$"
    )]
    name: String,
}

/// Get an environment
///
/// Values masked.
#[utoipa::path(get, path = "/environments/{name}", tag = "environments",
    params(EnvironmentPath),
    responses(
        (status = 200, description = "The environment.", body = Environment),
        NotFound, Database,
    ))]
pub(super) async fn get_environment(
    State(s): State<AdminState>,
    Path(p): Path<EnvironmentPath>,
) -> Result<Json<Environment>> {
    let all = environments::list(&db(&s).await?, &p.tenant).await?;
    let found = all.into_iter().find(|e| e.name == p.name).ok_or_else(|| {
        StoreError::not_found(format!("environment `{}` in tenant `{}`", p.name, p.tenant))
    })?;
    Ok(Json(found))
}

/// Variables to set. They are merged into the environment (created if missing):
/// variables not named here keep their values. Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"variables": {"HOST": "api.acme.example"}}))]
pub(super) struct EnvironmentUpdate {
    #[schema(schema_with = variables)]
    variables: BTreeMap<String, String>,
}

/// Variable names hold only ASCII letters, digits and `_` (the store refuses others).
fn variables() -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Object)
        .property_names(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[A-Za-z0-9_]+$")),
        ))
        .additional_properties(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .max_length(Some(text::MAX_VALUE_CHARS))
                .pattern(Some(text::NO_CONTROL_PATTERN)),
        ))
        .description(Some(
            "Variable names hold only ASCII letters, digits and `_`; values are strings.",
        ))
        .into()
}

/// Set variables of an environment
///
/// Creates the environment if missing and merges the variables given into it; other
/// variables keep their values. Answers 200 whether the environment was created or
/// changed.
#[utoipa::path(put, path = "/environments/{name}", tag = "environments",
    params(EnvironmentPath),
    request_body(content = EnvironmentUpdate, description = "The variables to set."),
    responses(
        (status = 200, description = "The environment after the change, values masked.",
            body = Environment),
        BodyErrors, Database,
    ))]
pub(super) async fn put_environment(
    State(s): State<AdminState>,
    Path(p): Path<EnvironmentPath>,
    body: Body,
) -> Result<Json<Environment>> {
    let body: EnvironmentUpdate = body.parse()?;
    let environment =
        environments::set(&db(&s).await?, &p.tenant, &p.name, &body.variables).await?;
    Ok(Json(environment))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(super) struct VariablePath {
    #[param(ignore)]
    tenant: String,
    /// The environment's name.
    name: String,
    /// The variable's name.
    variable: String,
}

/// Delete a variable
///
/// Removes one variable from the environment. Answers 200 with the environment (not
/// 204); removing a variable that is not set changes nothing and still answers 200.
#[utoipa::path(delete, path = "/environments/{name}/variables/{variable}",
    tag = "environments", params(VariablePath),
    responses(
        (status = 200, description = "The environment after the change, values masked.",
            body = Environment),
        NotFound, Database,
    ))]
pub(super) async fn delete_variable(
    State(s): State<AdminState>,
    Path(p): Path<VariablePath>,
) -> Result<Json<Environment>> {
    let environment =
        environments::unset(&db(&s).await?, &p.tenant, &p.name, &[p.variable]).await?;
    Ok(Json(environment))
}
