//! The one way the console's and the portal's pages read and change things: a
//! request to the admin API's router, in process, as the page's caller, marked with
//! the surface it came through (`Via`, for the audit log). The API's rules on who may
//! call what (`hookrelay_admin::access::authorize`) are checked first, as its own
//! authentication layer does.

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{Method, Request, StatusCode, header};
use hookrelay_admin::access;
use hookrelay_model::access::{Caller, Via};
use serde_json::Value;
use tower::ServiceExt;

/// Answers larger than this are refused (listings are bounded well below it).
const MAX_ANSWER_BYTES: usize = 32 * 1024 * 1024;

/// What the API refused, as its JSON error says: shown beside the form field it names.
#[derive(Debug, Clone)]
pub struct Refused {
    pub status: StatusCode,
    pub error: String,
    pub field: Option<String>,
}

impl Refused {
    pub fn new(status: StatusCode, error: impl Into<String>) -> Self {
        Self {
            status,
            error: error.into(),
            field: None,
        }
    }

    /// A refusal naming the form field that was wrong.
    pub fn of_field(status: StatusCode, error: impl Into<String>, field: &str) -> Self {
        Self {
            status,
            error: error.into(),
            field: Some(field.to_owned()),
        }
    }
}

/// The `/v1` routes with their state, below authentication: their callers check who
/// may call what here.
#[derive(Clone)]
pub struct V1 {
    routes: Router,
}

impl V1 {
    pub fn new(routes: Router) -> Self {
        Self { routes }
    }

    pub async fn get(&self, caller: &Caller, via: &Via, path: &str) -> Result<Value, Refused> {
        self.call(caller, via, Method::GET, path, None).await
    }

    /// A request to `/v1...` (path and query) as `caller`; the answer's JSON (null for
    /// an empty answer) or the API's refusal.
    pub async fn call(
        &self,
        caller: &Caller,
        via: &Via,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Refused> {
        let safe = matches!(method, Method::GET | Method::HEAD);
        let route = path.split('?').next().unwrap_or(path);
        access::authorize(caller, safe, route)
            .map_err(|e| Refused::new(StatusCode::FORBIDDEN, e))?;
        let mut request = Request::builder().method(method).uri(path);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.map(|b| Body::from(b.to_string())).unwrap_or_default();
        let mut request = request
            .body(body)
            .map_err(|e| Refused::new(StatusCode::BAD_REQUEST, format!("bad request: {e}")))?;
        request.extensions_mut().insert(caller.clone());
        request.extensions_mut().insert(via.clone());
        let answer = match self.routes.clone().oneshot(request).await {
            Ok(answer) => answer,
            Err(never) => match never {},
        };
        let status = answer.status();
        let bytes = to_bytes(answer.into_body(), MAX_ANSWER_BYTES)
            .await
            .map_err(|e| Refused::new(StatusCode::BAD_GATEWAY, format!("answer: {e}")))?;
        let json: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).map_err(|e| {
                Refused::new(StatusCode::BAD_GATEWAY, format!("answer is not JSON: {e}"))
            })?
        };
        if status.is_success() {
            return Ok(json);
        }
        Err(Refused {
            status,
            error: json["error"].as_str().unwrap_or("refused").to_owned(),
            field: json["field"].as_str().map(str::to_owned),
        })
    }
}

/// A path segment or query value, percent-encoded (a space as `%20`, which both
/// read as a space; a literal `+` is `%2B`).
pub fn enc(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}
