//! The router on a 3-node RabbitMQ cluster of its own (tests/src/cluster.rs, as root).

use std::time::{Duration, Instant};

use hookrelay_tests::cluster::Cluster;
use hookrelay_tests::stack::{event, webhook};
use hookrelay_tests::{TestStack, wait_until};
use serde_json::json;

/// The names the node's own clients gave their connections, one a line.
const CONNECTION_NAMES: &str = "lists:foreach(fun(P) -> \
    [{client_properties, C}] = rabbit_reader:info(P, [client_properties]), \
    case lists:keyfind(<<\"connection_name\">>, 1, C) of \
    {_, _, N} -> io:format(\"~s~n\", [N]); false -> ok end end, \
    rabbit_networking:connections_local()).";

/// The node a router's connection is on is killed: the queue keeps listing that
/// consumer (its node unreachable: `suspected_down`) for as long as the node is
/// gone, so a router that waited for the queue to list no consumer before consuming
/// again never routed another event (the `--hosts` run's partition, where it waited
/// for the heal). It must route on the other two nodes within seconds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_router_routes_again_on_the_other_nodes_when_its_node_is_killed() {
    // Ports of this process's own, clear of the machine's broker (5672, 25672).
    let slot = (std::process::id() % 900) as u16 * 4;
    let cluster = tokio::task::spawn_blocking(move || Cluster::start(20_000 + slot, 24_000 + slot))
        .await
        .expect("the cluster starts");
    let mut stack = TestStack::for_processes_on(&cluster.amqp_url()).await;
    let url = stack.receiver.url("/h");
    stack.create_webhook(webhook("acme", "hook", &url)).await;
    stack.start_router().await;
    let router = hookrelay_router::ROLE;
    let node = cluster
        .nodes
        .iter()
        .find(|n| {
            cluster
                .try_ctl(&n.name, &["eval", CONNECTION_NAMES])
                .is_ok_and(|o| o.lines().any(|l| l == format!("hookrelay-{router}")))
        })
        .map(|n| n.name.clone())
        .expect("one node has the router's connection");
    cluster.kill(&node);

    let e = event("acme", "file_uploaded", json!({}));
    // The publisher may have been on that node too: it reconnects on the next try.
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(err) = stack.publisher.publish(&e).await {
        assert!(
            Instant::now() < deadline,
            "publishing after the kill: {err}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let id = e.id.to_string();
    wait_until(
        "the router stores the event's delivery with its node killed",
        Duration::from_secs(30),
        || async { !stack.deliveries_of("acme", &id).await.is_empty() },
    )
    .await;
}
