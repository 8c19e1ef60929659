//! A real HTTP receiver on 127.0.0.1 that answers as told and records what it got:
//! every request (for tests that inspect them) or, for runs of thousands, only a
//! tally of the requests it answered 2xx.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    /// Status after a pause.
    Slow(Duration, u16),
    /// Closes the connection without an answer: the client sees it cut mid-request.
    DropConnection,
    /// Answers from the list in turn; the last one repeats.
    Sequence(Vec<Behaviour>),
    /// Chosen for each request from what it carries (headers, body).
    PerRequest(fn(&Received) -> Behaviour),
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

/// What a tallying receiver keeps per key: how many requests it answered 2xx, when
/// it answered the first, and when the first and the latest of those requests came
/// in (what an order is read from: a request answered after a pause comes in before
/// its answer).
#[derive(Debug, Clone, Copy)]
pub struct Tally {
    pub answered: u32,
    pub first_at: Instant,
    /// The same moment in microseconds since the Unix epoch, to set against a time
    /// another process stamped.
    pub first_unix_us: u64,
    pub first_arrived_at: Instant,
    pub last_arrived_at: Instant,
}

/// Microseconds since the Unix epoch, now.
pub fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

enum Keep {
    Everything(Vec<Received>),
    /// Requests answered 2xx, counted under the key the function gives each.
    Tally(fn(&Received) -> String, HashMap<String, Tally>),
}

struct Inner {
    keep: Keep,
    behaviours: HashMap<String, Behaviour>,
    counts: HashMap<String, usize>,
}

#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl Receiver {
    /// A receiver that keeps every request.
    pub async fn start() -> Self {
        Self::serve(Keep::Everything(Vec::new()), "127.0.0.1").await
    }

    /// A receiver that keeps every request, on another loopback address (`127.0.0.2`):
    /// for guard tests that allow one address and refuse another.
    pub async fn start_on(ip: &str) -> Self {
        Self::serve(Keep::Everything(Vec::new()), ip).await
    }

    /// A receiver that keeps only a [`Tally`] per `key` of what it answered 2xx:
    /// cheap enough for the thousands of requests of a benchmark or a fault run, so
    /// [`Self::received_on`] and [`Self::all`] stay empty.
    pub async fn tallying(key: fn(&Received) -> String) -> Self {
        Self::serve(Keep::Tally(key, HashMap::new()), "127.0.0.1").await
    }

    /// A tallying receiver on a socket made elsewhere: one bound in a network
    /// namespace of its own, for the `--hosts` fault run.
    pub fn tallying_on(key: fn(&Received) -> String, socket: std::net::TcpListener) -> Self {
        socket.set_nonblocking(true).expect("non-blocking socket");
        let listener = tokio::net::TcpListener::from_std(socket).expect("receiver socket");
        Self::serve_on(Keep::Tally(key, HashMap::new()), listener)
    }

    async fn serve(keep: Keep, ip: &str) -> Self {
        let listener = tokio::net::TcpListener::bind((ip, 0))
            .await
            .expect("bind receiver");
        Self::serve_on(keep, listener)
    }

    fn serve_on(keep: Keep, listener: tokio::net::TcpListener) -> Self {
        silence_dropped_connections();
        let addr = listener.local_addr().expect("addr");
        let inner = Arc::new(Mutex::new(Inner {
            keep,
            behaviours: HashMap::new(),
            counts: HashMap::new(),
        }));
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
        match &self.inner.lock().unwrap().keep {
            Keep::Everything(received) => received
                .iter()
                .filter(|r| r.path == path)
                .cloned()
                .collect(),
            Keep::Tally(..) => Vec::new(),
        }
    }

    pub fn all(&self) -> Vec<Received> {
        match &self.inner.lock().unwrap().keep {
            Keep::Everything(received) => received.clone(),
            Keep::Tally(..) => Vec::new(),
        }
    }

    /// How many keys a tallying receiver has answered 2xx at least once.
    pub fn tallied(&self) -> usize {
        match &self.inner.lock().unwrap().keep {
            Keep::Tally(_, tallies) => tallies.len(),
            Keep::Everything(_) => 0,
        }
    }

    /// A tallying receiver's tally per key.
    pub fn tallies(&self) -> HashMap<String, Tally> {
        match &self.inner.lock().unwrap().keep {
            Keep::Tally(_, tallies) => tallies.clone(),
            Keep::Everything(_) => HashMap::new(),
        }
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

/// What a handler panics with to drop its connection: hyper ends the connection of
/// a handler that panics, before any byte of an answer.
const DROP_CONNECTION: &str = "test receiver: dropping the connection";

/// The deliberate panics of [`Behaviour::DropConnection`] are not news; any other
/// panic still reaches the hook that was there before.
fn silence_dropped_connections() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&DROP_CONNECTION) {
                previous(info);
            }
        }));
    });
}

/// Follows sequences and per-request choices down to one answer.
fn resolve(mut behaviour: Behaviour, index: usize, request: &Received) -> Behaviour {
    loop {
        behaviour = match behaviour {
            Behaviour::Sequence(list) => list
                .get(index)
                .or(list.last())
                .cloned()
                .unwrap_or(Behaviour::Status(200)),
            Behaviour::PerRequest(choose) => choose(request),
            answer => return answer,
        };
    }
}

async fn handle(
    State(inner): State<Arc<Mutex<Inner>>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = Received {
        path: uri.path().to_owned(),
        headers,
        body,
        at: Instant::now(),
    };
    let arrived_at = request.at;
    let (behaviour, tally_key) = {
        let mut inner = inner.lock().unwrap();
        let n = inner.counts.entry(request.path.clone()).or_default();
        let index = *n;
        *n += 1;
        let configured = inner
            .behaviours
            .get(&request.path)
            .cloned()
            .unwrap_or(Behaviour::Status(200));
        let behaviour = resolve(configured, index, &request);
        let key = match &mut inner.keep {
            Keep::Everything(received) => {
                received.push(request);
                None
            }
            Keep::Tally(key, _) => Some(key(&request)),
        };
        (behaviour, key)
    };
    let response = answer(behaviour).await;
    // Tallied once answered, so a request the client gave up on meanwhile still
    // counts as what the receiver did.
    if let Some(key) = tally_key
        && response.status().is_success()
        && let Keep::Tally(_, tallies) = &mut inner.lock().unwrap().keep
    {
        tallies
            .entry(key)
            .and_modify(|t| {
                t.answered += 1;
                t.first_arrived_at = t.first_arrived_at.min(arrived_at);
                t.last_arrived_at = t.last_arrived_at.max(arrived_at);
            })
            .or_insert_with(|| Tally {
                answered: 1,
                first_at: Instant::now(),
                first_unix_us: unix_micros(),
                first_arrived_at: arrived_at,
                last_arrived_at: arrived_at,
            });
    }
    response
}

async fn answer(behaviour: Behaviour) -> Response {
    let status = |code| StatusCode::from_u16(code).unwrap();
    match behaviour {
        // A redirect points back at this receiver, so following it would show.
        Behaviour::Status(code) if (300..400).contains(&code) => {
            (status(code), [("location", "/followed")]).into_response()
        }
        Behaviour::Status(code) => status(code).into_response(),
        Behaviour::RetryAfter(code, after) => {
            (status(code), [("retry-after", after)], "slow down").into_response()
        }
        Behaviour::Body(code, body) => (status(code), body).into_response(),
        Behaviour::Slow(pause, code) => {
            tokio::time::sleep(pause).await;
            status(code).into_response()
        }
        Behaviour::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            StatusCode::OK.into_response()
        }
        Behaviour::DropConnection => std::panic::panic_any(DROP_CONNECTION),
        // `resolve` never hands these on.
        Behaviour::Sequence(_) | Behaviour::PerRequest(_) => StatusCode::OK.into_response(),
    }
}
