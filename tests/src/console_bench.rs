//! `cargo xtask bench --scenario console [--history N]`: how long each console page,
//! and each customer portal page beside them, takes to render, served in this process (release build) from a database holding
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
        out.push(time_page(&http, &base, &cookie, &page).await);
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
        let mut times = time_page(&http, &base, "", &format!("{session}{page}")).await;
        times.page = format!("/portal/s/…{page}");
        out.push(times);
    }
    out
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

async fn time_page(http: &reqwest::Client, base: &str, cookie: &str, page: &str) -> PageTimes {
    let mut times = Vec::with_capacity(RUNS);
    let mut bytes = 0;
    // Three to warm up (prepared statements, the admin connection), then timed.
    for i in 0..RUNS + 3 {
        let started = Instant::now();
        let answer = http
            .get(format!("{base}{page}"))
            .header(reqwest::header::COOKIE, cookie)
            .send()
            .await
            .expect("page");
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
        "{:<58} {:>9} {:>9} {:>9} {:>9}\n",
        "page", "p50 ms", "p99 ms", "max ms", "bytes"
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for t in times {
        out.push_str(&format!(
            "{:<58} {:>9.1} {:>9.1} {:>9.1} {:>9}\n",
            t.page.chars().take(58).collect::<String>(),
            ms(t.p50),
            ms(t.p99),
            ms(t.max),
            t.bytes
        ));
    }
    out
}
