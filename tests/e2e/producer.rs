use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hookrelay_amqp::ConnectRetry;
use hookrelay_model::{Event, Topology};
use hookrelay_producer::Publisher;
use hookrelay_tests::TestStack;
use hookrelay_tests::stack::event;
use serde_json::json;

#[tokio::test]
async fn publish_puts_a_persistent_message_with_routing_key_and_id() {
    let stack = TestStack::new().await;
    let e = event("acme", "import_completed", json!({"session_id": "s-1"}));
    stack.publish(&e).await;

    let messages = stack.drain_queue(&stack.topology.router_queue()).await;
    assert_eq!(messages.len(), 1);
    let m = &messages[0];
    assert_eq!(m.routing_key, "acme.import_completed");
    assert_eq!(
        m.properties.message_id().as_ref().map(|s| s.as_str()),
        Some(e.id.as_str())
    );
    assert_eq!(*m.properties.delivery_mode(), Some(2), "persistent");
    assert_eq!(
        m.properties.content_type().as_ref().map(|s| s.as_str()),
        Some("application/json")
    );
    assert!(m.properties.timestamp().is_some());
    let back = Event::from_slice(&m.body, 1 << 20).expect("body is the envelope");
    assert_eq!(back, e);
}

#[tokio::test]
async fn a_batch_is_confirmed_whole_and_keeps_order() {
    let stack = TestStack::new().await;
    let events: Vec<Event> = (0..20)
        .map(|_| event("acme", "file_uploaded", json!({})))
        .collect();
    stack.publisher.publish_batch(&events).await.expect("batch");
    let messages = stack.drain_queue(&stack.topology.router_queue()).await;
    let ids: Vec<String> = messages
        .iter()
        .map(|m| {
            m.properties
                .message_id()
                .as_ref()
                .unwrap()
                .as_str()
                .to_owned()
        })
        .collect();
    let expected: Vec<String> = events.iter().map(|e| e.id.to_string()).collect();
    assert_eq!(ids, expected);
}

#[tokio::test]
async fn publishing_to_a_down_broker_retries_with_backoff_then_errors_clearly() {
    // A port that accepts TCP and hangs up at once: every AMQP handshake fails.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    let url = format!("amqp://guest:secret-pw@{addr}/%2f");
    let topology = Topology::new("t.down", &[], Duration::from_secs(1));
    let retry = ConnectRetry {
        attempts: 3,
        max_delay: Duration::from_millis(50),
    };
    let err = Publisher::connect(&url, topology, retry)
        .await
        .err()
        .expect("must fail");
    let text = err.to_string();
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        3,
        "three connection attempts"
    );
    assert!(text.contains("after 3 attempts"), "{text}");
    assert!(text.contains(&addr.to_string()), "names the broker: {text}");
    assert!(
        !text.contains("secret-pw"),
        "never shows the password: {text}"
    );
}

#[tokio::test]
async fn the_seed_examples_in_docs_are_valid_envelopes() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/examples");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).expect("docs/examples exists") {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let body = std::fs::read(&path).unwrap();
            Event::from_slice(&body, 1 << 20).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            count += 1;
        }
    }
    assert!(count >= 6, "both seeds' examples are there ({count})");
}

/// An event no queue would take (here: the router's queue is gone) is an error that
/// says so, never a silent drop: publishing is mandatory.
#[tokio::test]
async fn an_unroutable_event_is_an_error_not_a_silent_drop() {
    let stack = TestStack::new().await;
    stack
        .channel
        .queue_delete(
            stack.topology.router_queue().as_str().into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
    let e = event("acme", "import_completed", json!({}));
    let err = stack.publisher.publish(&e).await.unwrap_err();
    assert!(err.to_string().contains("unroutable"), "{err}");
    assert!(err.to_string().contains("acme.import_completed"), "{err}");
}
