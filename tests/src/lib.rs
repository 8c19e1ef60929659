//! The test harness: each test gets its own database (from a migrated template), its
//! own AMQP prefix, real HTTP receivers on 127.0.0.1, and the roles in-process.
//! Everything it creates is removed when the stack is dropped, even after a panic.

pub mod bench;
pub mod broker_vhost;
pub mod browser;
pub mod capacity;
pub mod chaos;
pub mod chaos_hosts;
pub mod cluster;
pub mod console_bench;
pub mod db;
pub mod db_work;
pub mod dedup_cost;
pub mod host;
pub mod hosts;
pub mod management;
pub mod ordered;
pub mod proxy;
pub mod receiver;
pub mod retention_bench;
pub mod stack;
pub mod statements;
pub mod timeline;

pub use browser::Browser;
pub use receiver::{Behaviour, Receiver};
pub use stack::TestStack;

use std::time::Duration;

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// A name no other run's can take: `{kind}{sep}{uuid}`, or `{kind}{sep}{tag}{sep}{uuid}`
/// when `HOOKRELAY_TEST_TAG` names the run (its letters and digits, lowercased): engineers
/// sharing a machine's Postgres and RabbitMQ then tell their databases and queues apart.
pub fn unique_name(kind: &str, sep: char) -> String {
    let tag: String = std::env::var("HOOKRELAY_TEST_TAG")
        .unwrap_or_default()
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let id = uuid::Uuid::new_v4().simple();
    if tag.is_empty() {
        format!("{kind}{sep}{id}")
    } else {
        format!("{kind}{sep}{tag}{sep}{id}")
    }
}

/// Waits until `check` holds, polling; panics with `what` after `timeout`.
pub async fn wait_until<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting until {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Runs `future` to completion on a runtime of its own, on another thread: how
/// `Drop` impls clean up, even while a test's runtime is unwinding.
pub fn block_on_fresh<F>(future: F)
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(future);
    })
    .join();
}

/// The `hookrelay` binary of this build (next to the test executable's `deps/`),
/// built first if this run has not built it.
pub fn hookrelay_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/<profile>/deps/<test>");
    let binary = profile_dir.join("hookrelay");
    if !binary.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let built = std::process::Command::new(cargo)
            .args(["build", "-q", "-p", "hookrelay-cli", "--bin", "hookrelay"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            built && binary.exists(),
            "building the hookrelay binary failed"
        );
    }
    binary
}
