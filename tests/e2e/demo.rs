//! `cargo xtask demo`, the README's first command, walks the whole flow: run here
//! on a database and prefix of its own, as a new user would see it.

use std::time::Duration;

use hookrelay_amqp::{self as amqp, ConnectRetry};
use hookrelay_model::Topology;
use hookrelay_tests::TestStack;

/// Removes the delay queues the demo declares with its own retry delays (the stack
/// removes the rest), even when the test fails.
struct DemoQueues(String);

impl Drop for DemoQueues {
    fn drop(&mut self) {
        let topology = Topology::new(
            &self.0,
            &[Duration::from_secs(1), Duration::from_secs(2)],
            Duration::from_secs(5),
        );
        hookrelay_tests::block_on_fresh(async move {
            if let Ok(conn) = amqp::connect(
                hookrelay_tests::AMQP_URL,
                "hookrelay-test-cleanup",
                ConnectRetry::default(),
            )
            .await
                && let Ok(ch) = conn.create_channel().await
            {
                let _ = hookrelay_amqp::topology::delete(&topology, &ch).await;
            }
        });
    }
}

#[test]
fn the_demo_delivers_both_seeds_and_dead_letters_the_unreachable_webhook() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let stack = runtime.block_on(TestStack::for_processes());
    let _queues = DemoQueues(stack.prefix.clone());
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let out = std::process::Command::new(env!("CARGO"))
        .args(["run", "-q", "-p", "xtask", "--", "demo", "--database-url"])
        .arg(&stack.db.url)
        .args(["--prefix", &stack.prefix])
        .current_dir(root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the demo failed:\n{stdout}\n{stderr}");
    // Six seed examples: every delivery but the unreachable one's arrives.
    let delivered = stdout.lines().filter(|l| l.contains(" delivered ")).count();
    assert_eq!(delivered, 6, "{stdout}");
    let failed: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" failed ") && !l.starts_with("==>"))
        .collect();
    assert_eq!(failed.len(), 1, "{stdout}");
    assert!(
        failed[0].contains("error,error,error"),
        "three attempts: {}",
        failed[0]
    );
    let dead_letters = stdout
        .split("==> the dead-letter queue")
        .nth(1)
        .expect("the demo shows the dead-letter queue");
    assert!(dead_letters.contains("retries exhausted"), "{dead_letters}");
    // The receiver logged the basic webhook's form post and the secret's Basic auth.
    assert!(
        stderr.contains("body=uploadId=7df3a66d-b7bb-4da6-9244-b4e22c7d7ab0"),
        "{stderr}"
    );
    assert!(
        stderr.contains("path=/oneschema/events") && stderr.contains("authorization=\"present\""),
        "{stderr}"
    );
    drop(stack);
}
