//! `cargo bench -p hookrelay-tests --bench pipeline [-- --events N --fanout F --payload-bytes B]`
//!
//! Runs on the real local RabbitMQ and Postgres with the roles in-process and a local
//! receiver, and prints:
//! - router: events/s routed (de-duplicated, matched, recorded, fanned out, confirmed);
//! - sender: deliveries/s POSTed and recorded, from a full deliveries queue;
//! - end to end: deliveries/s with both roles running while events are published;
//! - lost and duplicate deliveries at the receiver (both must be 0).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use hookrelay_core::Event;
use hookrelay_core::metrics::event as routed;
use hookrelay_tests::stack::{event, webhook};
use hookrelay_tests::{TestStack, wait_until};
use serde_json::json;

struct Args {
    events: usize,
    fanout: usize,
    payload_bytes: usize,
}

fn args() -> Args {
    let mut a = Args {
        events: 2000,
        fanout: 1,
        payload_bytes: 1024,
    };
    let argv: Vec<String> = std::env::args().collect();
    let value = |name: &str| {
        argv.iter()
            .position(|x| x == name)
            .and_then(|i| argv.get(i + 1))
            .and_then(|v| v.parse().ok())
    };
    if let Some(v) = value("--events") {
        a.events = v;
    }
    if let Some(v) = value("--fanout") {
        a.fanout = v;
    }
    if let Some(v) = value("--payload-bytes") {
        a.payload_bytes = v;
    }
    a
}

fn events(n: usize, payload_bytes: usize) -> Vec<Event> {
    let blob = "x".repeat(payload_bytes);
    (0..n)
        .map(|_| {
            event(
                "bench",
                "import_completed",
                json!({"payload": {"event": "import_completed", "data": {"blob": blob}}}),
            )
        })
        .collect()
}

async fn publish_all(stack: &TestStack, events: &[Event]) {
    for chunk in events.chunks(500) {
        stack.publisher.publish_batch(chunk).await.expect("publish");
    }
}

fn per_sec(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// Received deliveries: (distinct webhook-ids, total).
fn received(stack: &TestStack) -> (usize, usize) {
    let all = stack.receiver.all();
    let ids: HashSet<String> = all.iter().filter_map(|r| r.header("webhook-id")).collect();
    (ids.len(), all.len())
}

#[tokio::main]
async fn main() {
    let a = args();
    let mut stack = TestStack::new().await;
    for i in 0..a.fanout {
        stack
            .create_webhook(webhook(
                "bench",
                &format!("w{i}"),
                &stack.receiver.url(&format!("/w{i}")),
            ))
            .await;
    }
    let limit = Duration::from_secs(600);
    println!(
        "hookrelay pipeline bench: {} events, fan-out {}, {} B payload; RabbitMQ, Postgres and receiver on this machine",
        a.events, a.fanout, a.payload_bytes
    );

    // Router alone, from a full events queue.
    let batch = events(a.events, a.payload_bytes);
    publish_all(&stack, &batch).await;
    let started = Instant::now();
    let router = stack.start_router().await;
    wait_until("all events routed", limit, || async {
        router.metrics.events(routed::ROUTED) as usize >= a.events
    })
    .await;
    let route_time = started.elapsed();
    let deliveries = a.events * a.fanout;
    wait_until("all deliveries published", limit, || async {
        router.metrics.published_total() as usize >= deliveries
    })
    .await;

    // Sender alone, from a full deliveries queue.
    let started = Instant::now();
    stack.start_sender().await;
    wait_until("all delivered", limit, || async {
        received(&stack).1 >= deliveries
    })
    .await;
    let send_time = started.elapsed();

    // Both roles running while events arrive.
    let batch = events(a.events, a.payload_bytes);
    let started = Instant::now();
    publish_all(&stack, &batch).await;
    wait_until("all delivered end to end", limit, || async {
        received(&stack).1 >= 2 * deliveries
    })
    .await;
    let e2e_time = started.elapsed();

    // Let stragglers (duplicates) arrive before counting.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (distinct, total) = received(&stack);
    let lost = (2 * deliveries).saturating_sub(distinct);
    let duplicates = total - distinct;
    println!();
    println!("| stage | count | seconds | per second |");
    println!("|---|---|---|---|");
    println!(
        "| router: events routed | {} | {:.2} | {:.0} |",
        a.events,
        route_time.as_secs_f64(),
        per_sec(a.events, route_time)
    );
    println!(
        "| sender: deliveries sent | {} | {:.2} | {:.0} |",
        deliveries,
        send_time.as_secs_f64(),
        per_sec(deliveries, send_time)
    );
    println!(
        "| end to end: deliveries | {} | {:.2} | {:.0} |",
        deliveries,
        e2e_time.as_secs_f64(),
        per_sec(deliveries, e2e_time)
    );
    println!();
    println!("lost: {lost}  duplicates: {duplicates}");
    stack.stop_roles().await;
    assert_eq!(lost, 0, "deliveries lost");
    assert_eq!(duplicates, 0, "duplicate deliveries");
}
