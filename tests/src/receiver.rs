//! A real HTTP receiver on 127.0.0.1 that records every request and answers as told.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

/// How a path answers.
#[derive(Debug, Clone)]
pub enum Behaviour {
    Status(u16),
    /// Status with a `Retry-After` value.
    RetryAfter(u16, String),
    /// Never answers (until the client gives up).
    Hang,
    /// Status with this body.
    Body(u16, Vec<u8>),
    /// Answers from the list in turn; the last one repeats.
    Sequence(Vec<Behaviour>),
}

#[derive(Debug, Clone)]
pub struct Received {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("body is JSON")
    }
}

#[derive(Default)]
struct Inner {
    received: Vec<Received>,
    behaviours: HashMap<String, Behaviour>,
    counts: HashMap<String, usize>,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind receiver");
        let addr = listener.local_addr().expect("addr");
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&inner));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { addr, inner }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn respond(&self, path: &str, behaviour: Behaviour) {
        self.inner
            .lock()
            .unwrap()
            .behaviours
            .insert(path.to_owned(), behaviour);
    }

    pub fn received_on(&self, path: &str) -> Vec<Received> {
        self.inner
            .lock()
            .unwrap()
            .received
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    pub fn all(&self) -> Vec<Received> {
        self.inner.lock().unwrap().received.clone()
    }

    /// Waits until at least `n` requests arrived, on any path.
    pub async fn wait_for_total(&self, n: usize, timeout: Duration) {
        let what = format!("{n} requests received");
        crate::wait_until(&what, timeout, || async { self.all().len() >= n }).await;
    }

    /// Waits until `path` has received at least `n` requests.
    pub async fn wait_for(&self, path: &str, n: usize, timeout: Duration) -> Vec<Received> {
        let what = format!("{path} received {n} requests");
        crate::wait_until(&what, timeout, || async {
            self.received_on(path).len() >= n
        })
        .await;
        self.received_on(path)
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path().to_owned();
    let behaviour = {
        let mut inner = inner.lock().unwrap();
        inner.received.push(Received {
            path: path.clone(),
            headers,
            body,
            at: Instant::now(),
        });
        let n = inner.counts.entry(path.clone()).or_default();
        let index = *n;
        *n += 1;
        match inner
            .behaviours
            .get(&path)
            .cloned()
            .unwrap_or(Behaviour::Status(200))
        {
            Behaviour::Sequence(list) => list
                .get(index)
                .or(list.last())
                .cloned()
                .unwrap_or(Behaviour::Status(200)),
            other => other,
        }
    };
    match behaviour {
        // A redirect points back at this receiver, so following it would show.
        Behaviour::Status(code) if (300..400).contains(&code) => (
            StatusCode::from_u16(code).unwrap(),
            [("location", "/followed")],
        )
            .into_response(),
        Behaviour::Status(code) => StatusCode::from_u16(code).unwrap().into_response(),
        Behaviour::RetryAfter(code, after) => (
            StatusCode::from_u16(code).unwrap(),
            [("retry-after", after)],
            "slow down",
        )
            .into_response(),
        Behaviour::Body(code, body) => (StatusCode::from_u16(code).unwrap(), body).into_response(),
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
        // A sequence inside a sequence is not supported: answer 200.
        Behaviour::Sequence(_) => StatusCode::OK.into_response(),
    }
}
