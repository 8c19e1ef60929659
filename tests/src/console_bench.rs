//! `cargo xtask bench --scenario console [--history N]`: how long each console page,
//! each customer portal page and each of the events API's reads a customer's
//! dashboard makes (`/v1/tenants/{t}/events` and `/deliveries` with a filter and a
//! second page by cursor, one event, one delivery and its attempts, with the API
//! token) takes, served in this process (release build) from a database holding
//! N events (100,000 unless given) with their deliveries and attempts, read by a
//! client on loopback: the time includes one HTTP round trip on 127.0.0.1.

use std::time::{Duration, Instant};

use crate::TestStack;
use crate::stack::webhook;

const TOKEN: &str = "console-bench-token";
const RUNS: usize = 40;

/// One page's render times.
pub struct PageTimes {
    pub page: String,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
    pub bytes: usize,
}

pub async fn run(history: usize) -> Vec<PageTimes> {
    let stack = TestStack::new().await;
    let hook = stack
        .create_webhook(webhook("bench", "history", "http://127.0.0.1:9/history"))
        .await;
    let filled = crate::capacity::fill_history(&stack, history, hook.id).await;
    println!("filled {history} events with their deliveries and attempts in {filled:.1} s");
    let base = stack.serve_portal(Some(TOKEN), &[]).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let cookie = sign_in(&http, &base).await;
    let newest = newest_delivery(&stack).await;
    let pages = [
        "/console".to_owned(),
        "/console/webhooks?tenant=bench".to_owned(),
        "/console/tenants/bench/webhooks/history".to_owned(),
        "/console/deliveries?tenant=bench".to_owned(),
        "/console/deliveries?tenant=bench&status=failed".to_owned(),
        "/console/deliveries?tenant=bench&session=session-42".to_owned(),
        format!("/console/tenants/bench/deliveries/{}", newest.0),
        format!("/console/tenants/bench/events/{}", newest.1),
        "/console/dead-letters".to_owned(),
        "/console/settings?tenant=bench".to_owned(),
    ];
    let mut out = Vec::new();
    for page in pages {
        out.push(time_page(&http, &base, Auth::Cookie(&cookie), &page).await);
    }
    // The portal: a session of the same tenant, carried in the URL (no cookie).
    let session = portal_session(&http, &base).await;
    let portal = [
        "/".to_owned(),
        "/endpoints/history".to_owned(),
        "/messages".to_owned(),
        "/messages?status=failed".to_owned(),
        "/messages?endpoint=history".to_owned(),
        format!("/deliveries/{}", newest.0),
        format!("/events/{}", newest.1),
    ];
    for page in portal {
        let mut times = time_page(&http, &base, Auth::None, &format!("{session}{page}")).await;
        times.page = format!("/portal/s/…{page}");
        out.push(times);
    }
    for (label, request) in api_requests(&http, &base, hook.id, &newest).await {
        let mut times = time_page(&http, &base, Auth::Bearer(TOKEN), &request).await;
        times.page = label;
        out.push(times);
    }
    out
}

/// The events API's reads a customer's dashboard makes, labelled for the table (a
/// cursor or a time stands for itself): the newest events and deliveries with a
/// second page by the first page's cursor, a session's and a type's of the last
/// week, the failed ones, one event and its deliveries, one delivery and its
/// attempts.
async fn api_requests(
    http: &reqwest::Client,
    base: &str,
    hook: uuid::Uuid,
    newest: &(uuid::Uuid, String),
) -> Vec<(String, String)> {
    let v1 = "/v1/tenants/bench";
    let week_ago = (time::OffsetDateTime::now_utc() - time::Duration::days(7))
        .format(&time::format_description::well_known::Rfc3339)
        .expect("a time");
    let (delivery, event) = newest;
    let mut out = Vec::new();
    for (label, first) in [
        ("events", "/events?limit=50".to_owned()),
        (
            "events?session_id=session-42",
            "/events?session_id=session-42&limit=50".to_owned(),
        ),
        (
            "events?type=…&since=(a week ago)",
            format!("/events?type=import_completed&since={week_ago}&limit=50"),
        ),
        (
            "deliveries?order=newest",
            "/deliveries?order=newest&limit=50".to_owned(),
        ),
        (
            "deliveries?webhook_id=…&order=newest",
            format!("/deliveries?webhook_id={hook}&order=newest&limit=50"),
        ),
        (
            "deliveries?status=failed&order=newest",
            "/deliveries?status=failed&order=newest&limit=50".to_owned(),
        ),
    ] {
        let first = format!("{v1}{first}");
        let cursor = next_cursor(http, base, &first).await;
        out.push((format!("GET /v1/…/{label}"), first.clone()));
        if let Some(cursor) = cursor {
            out.push((
                format!("GET /v1/…/{label} (page 2)"),
                format!("{first}&cursor={}", query_value(&cursor)),
            ));
        }
    }
    out.extend([
        (
            "GET /v1/…/events/{id}".to_owned(),
            format!("{v1}/events/{event}"),
        ),
        (
            "GET /v1/…/deliveries?event_id={id}".to_owned(),
            format!("{v1}/deliveries?event_id={event}"),
        ),
        (
            "GET /v1/…/deliveries/{id}".to_owned(),
            format!("{v1}/deliveries/{delivery}"),
        ),
        (
            "GET /v1/…/deliveries/{id}/attempts".to_owned(),
            format!("{v1}/deliveries/{delivery}/attempts"),
        ),
    ]);
    out
}

/// The `next_cursor` of a list's first page (none when it is the only page).
async fn next_cursor(http: &reqwest::Client, base: &str, request: &str) -> Option<String> {
    let page: serde_json::Value = http
        .get(format!("{base}{request}"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("a first page")
        .error_for_status()
        .expect("a first page")
        .json()
        .await
        .expect("a page of JSON");
    page["next_cursor"].as_str().map(str::to_owned)
}

/// A cursor as a query value (an event cursor holds its id, which may hold anything).
fn query_value(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// How a request is signed in.
#[derive(Clone, Copy)]
enum Auth<'a> {
    /// The console's session cookie.
    Cookie(&'a str),
    /// The API token, as a customer's backend sends it.
    Bearer(&'a str),
    /// A portal session, carried in the path.
    None,
}

/// Mints a portal link for the bench's tenant and opens it: the session's path.
async fn portal_session(http: &reqwest::Client, base: &str) -> String {
    let minted: serde_json::Value = http
        .post(format!("{base}/v1/tenants/bench/portal-sessions"))
        .bearer_auth(TOKEN)
        .json(&serde_json::json!({}))
        .send()
        .await
        .expect("mint a portal link")
        .json()
        .await
        .expect("the link");
    let link = minted["url"].as_str().expect("a link url");
    let opened = http.get(link).send().await.expect("open the link");
    opened
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .expect("the session's address")
        .trim_end_matches('/')
        .to_owned()
}

async fn sign_in(http: &reqwest::Client, base: &str) -> String {
    let answer = http
        .post(format!("{base}/console/sign-in"))
        .form(&[("token", TOKEN)])
        .send()
        .await
        .expect("sign in");
    answer
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_owned()
}

async fn newest_delivery(stack: &TestStack) -> (uuid::Uuid, String) {
    let row = stack
        .db
        .client()
        .await
        .query_one(
            "SELECT id, event_id FROM deliveries ORDER BY id DESC LIMIT 1",
            &[],
        )
        .await
        .expect("a delivery");
    (row.get(0), row.get(1))
}

async fn time_page(http: &reqwest::Client, base: &str, auth: Auth<'_>, page: &str) -> PageTimes {
    let mut times = Vec::with_capacity(RUNS);
    let mut bytes = 0;
    // Three to warm up (prepared statements, the admin connection), then timed.
    for i in 0..RUNS + 3 {
        let started = Instant::now();
        let request = http.get(format!("{base}{page}"));
        let request = match auth {
            Auth::Cookie(cookie) => request.header(reqwest::header::COOKIE, cookie),
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::None => request,
        };
        let answer = request.send().await.expect("page");
        assert!(answer.status().is_success(), "{page}: {}", answer.status());
        bytes = answer.bytes().await.expect("body").len();
        if i >= 3 {
            times.push(started.elapsed());
        }
    }
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    PageTimes {
        page: page.to_owned(),
        p50: at(0.5),
        p99: at(0.99),
        max: times[times.len() - 1],
        bytes,
    }
}

pub fn table(times: &[PageTimes]) -> String {
    let mut out = format!(
        "{:<64} {:>9} {:>9} {:>9} {:>9}\n",
        "page", "p50 ms", "p99 ms", "max ms", "bytes"
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for t in times {
        out.push_str(&format!(
            "{:<64} {:>9.1} {:>9.1} {:>9.1} {:>9}\n",
            t.page.chars().take(64).collect::<String>(),
            ms(t.p50),
            ms(t.p99),
            ms(t.max),
            t.bytes
        ));
    }
    out
}
