use std::time::Duration;

use hookrelay_metrics::event;
use hookrelay_model::wire::{self, DeliveryMessage};
use hookrelay_router::Fault;
use hookrelay_store::deliveries::DeliveryStatus;
use hookrelay_tests::stack::{event, webhook};
use hookrelay_tests::{TestStack, wait_until};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(15);

/// Waits until the event is stored and its deliveries all published.
/// Waits until the event has its `count` deliveries and every delivery row of the
/// stack has had its message confirmed (the router counts each once confirmed).
async fn wait_routed(stack: &TestStack, tenant: &str, id: &str, count: usize) {
    wait_until(&format!("{id} routed to {count}"), WAIT, || async {
        let d = stack.deliveries_of(tenant, id).await;
        let rows: i64 = stack
            .db
            .client()
            .await
            .query_one("SELECT count(*) FROM deliveries WHERE published", &[])
            .await
            .unwrap()
            .get(0);
        d.len() == count
            && d.iter().all(|d| d.published)
            && stack.metrics.published_total() >= u64::try_from(rows).unwrap_or(u64::MAX)
    })
    .await;
}

async fn event_stored(stack: &TestStack, tenant: &str, id: &str) -> bool {
    hookrelay_store::events::get(&stack.db.client().await, tenant, id)
        .await
        .unwrap()
        .is_some()
}

/// An event this test's own database refuses, as it would refuse any row it cannot
/// store: a real, non-transient error.
async fn refused_by_the_database(stack: &TestStack) -> hookrelay_model::Event {
    stack
        .db
        .client()
        .await
        .batch_execute("ALTER TABLE events ADD CONSTRAINT refuse_poison CHECK (id <> 'poison')")
        .await
        .unwrap();
    let mut poison = event("acme", "x", json!({}));
    poison.id = "poison".parse().unwrap();
    poison
}

/// The deliveries the messages carry: one each, or several in a batch message.
fn delivery_messages(messages: &[hookrelay_tests::stack::Message]) -> Vec<DeliveryMessage> {
    messages
        .iter()
        .flat_map(|m| match wire::read_batch(&m.body) {
            Some(parts) => parts
                .expect("a readable batch")
                .into_iter()
                .map(|p| p.message)
                .collect(),
            None => vec![DeliveryMessage::from_json(&m.body).expect("delivery message")],
        })
        .collect()
}

#[tokio::test]
async fn managed_webhooks_match_by_type_mode_and_triggers() {
    let mut stack = TestStack::new().await;
    let url = stack.receiver.url("/h");
    let mut all = webhook("acme", "all", &url);
    all.event_types = vec!["import_completed".into()];
    let all = stack.create_webhook(all).await;
    let mut contacts = webhook("acme", "contacts", &url);
    contacts.import_identifiers = vec!["contacts".into()];
    let contacts = stack.create_webhook(contacts).await;
    let mut schema = webhook("acme", "schema", &url);
    schema.schema_ids = vec!["schema-9".into()];
    let schema = stack.create_webhook(schema).await;
    let mut dev = webhook("acme", "dev", &url);
    dev.development_mode = true;
    stack.create_webhook(dev).await;
    let mut other_type = webhook("acme", "other-type", &url);
    other_type.event_types = vec!["file_uploaded".into()];
    stack.create_webhook(other_type).await;
    stack.start_router().await;

    let e = event(
        "acme",
        "import_completed",
        json!({"import_identifier": "contacts", "schema_id": "s-0"}),
    );
    stack.publish(&e).await;
    wait_routed(&stack, "acme", &e.id, 2).await;
    let mut got: Vec<_> = stack
        .deliveries_of("acme", &e.id)
        .await
        .iter()
        .map(|d| d.webhook_id.unwrap())
        .collect();
    let mut want = vec![all.id, contacts.id];
    got.sort();
    want.sort();
    assert_eq!(got, want);

    let by_schema = event("acme", "import_completed", json!({"schema_id": "schema-9"}));
    stack.publish(&by_schema).await;
    wait_routed(&stack, "acme", &by_schema.id, 2).await;
    let mut got: Vec<_> = stack
        .deliveries_of("acme", &by_schema.id)
        .await
        .iter()
        .map(|d| d.webhook_id.unwrap())
        .collect();
    let mut want = vec![all.id, schema.id];
    got.sort();
    want.sort();
    assert_eq!(got, want);

    let dev_event = event(
        "acme",
        "import_completed",
        json!({"development_mode": true}),
    );
    stack.publish(&dev_event).await;
    wait_routed(&stack, "acme", &dev_event.id, 1).await;

    let messages = delivery_messages(&stack.drain_queue(&stack.topology.deliveries_queue()).await);
    assert_eq!(messages.len(), 5, "one message per delivery");
    assert!(
        messages
            .iter()
            .all(|m| m.attempt == 1 && m.tenant == "acme")
    );
}

#[tokio::test]
async fn an_event_without_a_match_is_stored_and_acked_with_no_delivery() {
    let mut stack = TestStack::new().await;
    let mut w = webhook("acme", "typed", &stack.receiver.url("/h"));
    w.event_types = vec!["file_uploaded".into()];
    stack.create_webhook(w).await;
    let router = stack.start_router().await;
    let e = event("acme", "embed_closed", json!({}));
    stack.publish(&e).await;
    wait_until("event stored", WAIT, || event_stored(&stack, "acme", &e.id)).await;
    wait_until("event acked", WAIT, || async {
        router.metrics.events(event::ROUTED) == 1
    })
    .await;
    assert!(stack.deliveries_of("acme", &e.id).await.is_empty());
    assert!(
        stack
            .drain_queue(&stack.topology.deliveries_queue())
            .await
            .is_empty()
    );
}

#[tokio::test]
async fn a_webhook_url_gives_one_basic_delivery_and_keys_select_webhooks() {
    let mut stack = TestStack::new().await;
    let url = stack.receiver.url("/h");
    let named = stack
        .create_webhook(webhook("acme", "event_webhook", &url))
        .await;
    stack.create_webhook(webhook("acme", "unnamed", &url)).await;
    stack.start_router().await;

    let basic = event(
        "acme",
        "import_completed",
        json!({"webhook_url": "https://example.test/basic"}),
    );
    stack.publish(&basic).await;
    wait_routed(&stack, "acme", &basic.id, 1).await;
    let d = stack.deliveries_of("acme", &basic.id).await;
    assert_eq!(d[0].url.as_deref(), Some("https://example.test/basic"));
    assert_eq!(d[0].webhook_id, None);

    let keyed = event(
        "acme",
        "embed_initialized",
        json!({"webhook_keys": ["event_webhook", "no-such-key"]}),
    );
    stack.publish(&keyed).await;
    wait_routed(&stack, "acme", &keyed.id, 1).await;
    assert_eq!(
        stack.deliveries_of("acme", &keyed.id).await[0].webhook_id,
        Some(named.id)
    );
}

#[tokio::test]
async fn tenants_never_receive_each_others_events_even_with_colliding_keys() {
    let mut stack = TestStack::new().await;
    let url = stack.receiver.url("/h");
    let acme = stack.create_webhook(webhook("acme", "shared", &url)).await;
    let globex = stack
        .create_webhook(webhook("globex", "shared", &url))
        .await;
    stack.start_router().await;
    // The same event id in both tenants is two different events.
    let a = event("acme", "x", json!({"webhook_keys": ["shared"]}));
    let mut g = a.clone();
    g.tenant = "globex".into();
    stack.publish(&a).await;
    stack.publish(&g).await;
    let plain = event("acme", "x", json!({}));
    stack.publish(&plain).await;
    wait_routed(&stack, "acme", &a.id, 1).await;
    wait_routed(&stack, "globex", &g.id, 1).await;
    wait_routed(&stack, "acme", &plain.id, 1).await;
    assert_eq!(
        stack.deliveries_of("acme", &a.id).await[0].webhook_id,
        Some(acme.id)
    );
    assert_eq!(
        stack.deliveries_of("globex", &g.id).await[0].webhook_id,
        Some(globex.id)
    );
    assert_eq!(
        stack.deliveries_of("acme", &plain.id).await[0].webhook_id,
        Some(acme.id)
    );
}

#[tokio::test]
async fn the_same_event_published_five_times_is_fanned_out_once() {
    let mut stack = TestStack::new().await;
    let url = stack.receiver.url("/h");
    stack.create_webhook(webhook("acme", "a", &url)).await;
    stack.create_webhook(webhook("acme", "b", &url)).await;
    let router = stack.start_router().await;
    let e = event("acme", "import_completed", json!({}));
    for _ in 0..5 {
        stack.publish(&e).await;
    }
    // Routed is counted once the event's deliveries are confirmed.
    wait_until(
        "five copies handled and the deliveries published",
        WAIT,
        || async {
            router.metrics.events(event::ROUTED) + router.metrics.events(event::DUPLICATE) == 5
                && stack
                    .deliveries_of("acme", &e.id)
                    .await
                    .iter()
                    .all(|d| d.published)
        },
    )
    .await;
    assert_eq!(router.metrics.events(event::DUPLICATE), 4);
    assert_eq!(stack.deliveries_of("acme", &e.id).await.len(), 2);
    let messages = delivery_messages(&stack.drain_queue(&stack.topology.deliveries_queue()).await);
    assert_eq!(messages.len(), 2, "each delivery published once");
}

#[tokio::test]
async fn a_router_killed_between_commit_and_publish_leaves_nothing_missing_or_doubled() {
    let mut stack = TestStack::new().await;
    let url = stack.receiver.url("/h");
    for key in ["a", "b", "c"] {
        stack.create_webhook(webhook("acme", key, &url)).await;
    }
    let mut crashing = stack.router_config();
    crashing.fault = Some(Fault::CrashAfterCommit);
    stack.start_router_with(crashing).await;
    let e = event("acme", "import_completed", json!({}));
    stack.publish(&e).await;

    wait_until("rows committed by the crashing router", WAIT, || async {
        stack.deliveries_of("acme", &e.id).await.len() == 3
    })
    .await;
    stack.stop_roles().await;
    let rows = stack.deliveries_of("acme", &e.id).await;
    assert!(
        stack
            .drain_queue(&stack.topology.deliveries_queue())
            .await
            .is_empty(),
        "crashed before publishing"
    );

    // The unacked event returns to the queue; a healthy router finishes the job.
    stack.start_router().await;
    wait_routed(&stack, "acme", &e.id, 3).await;
    let after = stack.deliveries_of("acme", &e.id).await;
    let mut ids_before: Vec<_> = rows.iter().map(|d| d.id).collect();
    let mut ids_after: Vec<_> = after.iter().map(|d| d.id).collect();
    ids_before.sort();
    ids_after.sort();
    assert_eq!(ids_before, ids_after, "no new deliveries were created");
    let messages = delivery_messages(&stack.drain_queue(&stack.topology.deliveries_queue()).await);
    let mut published: Vec<_> = messages.iter().map(|m| m.delivery_id).collect();
    published.sort();
    assert_eq!(published, ids_after, "each delivery published exactly once");
}

/// A commit whose answer is lost (the connection dropped as it committed) looks like
/// a failure: the router tries the batch again, finds its events stored, and must
/// still send their deliveries, once each, although the events are not redelivered.
#[tokio::test]
async fn a_batch_tried_again_after_its_commit_sends_each_delivery_once() {
    let mut stack = TestStack::new().await;
    let url = stack.receiver.url("/h");
    for key in ["a", "b"] {
        stack.create_webhook(webhook("acme", key, &url)).await;
    }
    let mut losing = stack.router_config();
    losing.fault = Some(Fault::LoseCommitAnswer);
    let router = stack.start_router_with(losing).await;
    let events: Vec<_> = (0..3)
        .map(|_| event("acme", "import_completed", json!({})))
        .collect();
    for e in &events {
        stack.publish(e).await;
    }
    // The second try finds the three events stored by the first.
    wait_until("the batch tried again", WAIT, || async {
        router.metrics.events(event::DUPLICATE) >= 3
    })
    .await;
    let mut ids = Vec::new();
    for e in &events {
        wait_routed(&stack, "acme", &e.id, 2).await;
        ids.extend(
            stack
                .deliveries_of("acme", &e.id)
                .await
                .iter()
                .map(|d| d.id),
        );
    }
    ids.sort();
    let messages = delivery_messages(&stack.drain_queue(&stack.topology.deliveries_queue()).await);
    let mut published: Vec<_> = messages.iter().map(|m| m.delivery_id).collect();
    published.sort();
    assert_eq!(published, ids, "each delivery published exactly once");
}

#[tokio::test]
async fn a_poison_message_is_dead_lettered_with_its_reason_and_routing_goes_on() {
    let mut stack = TestStack::new().await;
    stack
        .create_webhook(webhook("acme", "a", &stack.receiver.url("/h")))
        .await;
    stack.start_router().await;
    stack.publish_raw("acme.broken", b"{this is not json").await;
    let mut missing_field = serde_json::to_value(event("acme", "x", json!({}))).unwrap();
    missing_field.as_object_mut().unwrap().remove("occurred_at");
    stack
        .publish_raw("acme.x", &serde_json::to_vec(&missing_field).unwrap())
        .await;
    let good = event("acme", "import_completed", json!({}));
    stack.publish(&good).await;

    let letters = stack.dead_letters(2, WAIT).await;
    assert_eq!(
        letters[0].header(wire::HEADER_REASON).as_deref(),
        Some("invalid event")
    );
    assert!(
        letters[0]
            .header(wire::HEADER_ERROR)
            .unwrap()
            .contains("not valid JSON")
    );
    assert_eq!(
        letters[0].header(wire::HEADER_ROUTING_KEY).as_deref(),
        Some("acme.broken")
    );
    assert_eq!(
        letters[0].body, b"{this is not json",
        "the original body is kept"
    );
    assert!(
        letters[1]
            .header(wire::HEADER_ERROR)
            .unwrap()
            .contains("`occurred_at`")
    );
    wait_routed(&stack, "acme", &good.id, 1).await;
    assert_eq!(
        stack.deliveries_of("acme", &good.id).await[0].status,
        DeliveryStatus::Pending
    );
}

#[tokio::test]
async fn an_event_the_database_refuses_is_dead_lettered_and_its_batch_still_routes() {
    let mut stack = TestStack::new().await;
    stack
        .create_webhook(webhook("acme", "a", &stack.receiver.url("/h")))
        .await;
    let poison = refused_by_the_database(&stack).await;
    let before = event("acme", "x", json!({}));
    let after = event("acme", "x", json!({}));
    stack
        .publisher
        .publish_batch(&[before.clone(), poison, after.clone()])
        .await
        .unwrap();
    let mut config = stack.router_config();
    config.batch_wait = Duration::from_millis(200); // the three arrive as one batch
    stack.start_router_with(config).await;

    let letters = stack.dead_letters(1, WAIT).await;
    assert_eq!(
        letters[0].header(wire::HEADER_REASON).as_deref(),
        Some("event cannot be stored")
    );
    assert!(
        letters[0]
            .header(wire::HEADER_ERROR)
            .unwrap()
            .contains("refuse_poison")
    );
    assert_eq!(
        letters[0]
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str()),
        Some("poison")
    );
    wait_routed(&stack, "acme", &before.id, 1).await;
    wait_routed(&stack, "acme", &after.id, 1).await;
}

/// The refused event last in its batch is acked at once, not left for the next
/// batch's ack: after the router stops, nothing returns to its queue.
#[tokio::test]
async fn an_event_the_database_refuses_last_in_its_batch_is_acked() {
    let mut stack = TestStack::new().await;
    let poison = refused_by_the_database(&stack).await;
    let first = event("acme", "x", json!({}));
    stack
        .publisher
        .publish_batch(&[first.clone(), poison])
        .await
        .unwrap();
    let mut config = stack.router_config();
    config.batch_wait = Duration::from_millis(200);
    stack.start_router_with(config).await;
    stack.dead_letters(1, WAIT).await;
    wait_until("the first event stored", WAIT, || {
        event_stored(&stack, "acme", &first.id)
    })
    .await;
    stack.stop_roles().await;
    let queue = stack.topology.router_queue();
    assert_eq!(
        stack.queue_len(&queue).await,
        0,
        "an unacked event went back"
    );
}

/// The router matches without secrets: a webhook secret or custom header value it
/// could not decrypt (here: sealed under a key this process does not have) does not
/// stop routing.
#[tokio::test]
async fn the_router_routes_without_reading_webhook_secrets() {
    let mut stack = TestStack::new().await;
    let w = stack
        .create_webhook(webhook("acme", "a", &stack.receiver.url("/h")))
        .await;
    stack
        .db
        .client()
        .await
        .execute(
            "UPDATE webhooks SET secret = 'enc:v1:c2VhbGVkIGVsc2V3aGVyZQ==', \
               headers = '{\"x-api-key\": \"enc:v1:c2VhbGVkIGVsc2V3aGVyZQ==\"}' WHERE id = $1",
            &[&w.id],
        )
        .await
        .unwrap();
    stack.start_router().await;
    let e = event("acme", "x", json!({}));
    stack.publish(&e).await;
    wait_routed(&stack, "acme", &e.id, 1).await;
}
