//! What every console handler shares: the console's state, and its ways to the
//! `/v1` routes and the database. Pages reach it here, not through the crate root.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::Method;
use deadpool_postgres::Pool;
use hookrelay_admin::http::AdminState;
use hookrelay_model::access::{Caller, Via};
use serde_json::Value;

use crate::jobs;
use crate::kit;
use crate::kit::api::{Refused, V1};

/// How long a console session lasts after sign-in.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

/// What every console handler needs.
#[derive(Clone)]
pub struct Console {
    /// The admin routes with their state, below authentication: the console checks
    /// who may call what ([`kit::api`]).
    v1: V1,
    pub(crate) admin: AdminState,
    pub(crate) pool: Pool,
    /// `HOOKRELAY_API_TOKEN`; none: the API is open on loopback and signing in
    /// takes no token.
    pub(crate) operator_token: Option<Arc<str>>,
    pub(crate) jobs: jobs::Jobs,
}

impl Console {
    pub fn new(api: Router, admin: AdminState, operator_token: Option<Arc<str>>) -> Self {
        Self {
            v1: V1::new(api),
            pool: admin.pool.clone(),
            admin,
            operator_token,
            jobs: jobs::Jobs::default(),
        }
    }
}

impl Console {
    pub(crate) async fn get(&self, caller: &Caller, path: &str) -> Result<Value, Refused> {
        self.v1.get(caller, &Via::Console, path).await
    }

    /// A request to `/v1...` as `caller`, marked as the console's (audit log).
    pub(crate) async fn call(
        &self,
        caller: &Caller,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Refused> {
        self.v1
            .call(caller, &Via::Console, method, path, body)
            .await
    }

    /// A pooled connection for the console's own store calls.
    pub(crate) async fn db(&self) -> Result<deadpool_postgres::Object, kit::failure::Failure> {
        self.pool
            .get()
            .await
            .map_err(|e| hookrelay_store::StoreError::from(e).into())
    }
}
