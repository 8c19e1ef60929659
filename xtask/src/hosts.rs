//! The short `--hosts` fault run as the last step of `cargo xtask test`: every part
//! on a host of its own (network namespaces), a partition, link cuts and slow links
//! under a steady load (tests/src/chaos_hosts.rs), on the suite's debug build. A
//! release build would run the same faults, but building it from cold takes longer
//! than the whole suite on a 2-core machine; the debug one shares the suite's
//! dependencies and carries 100 events a second.

use std::time::Instant;

use anyhow::Context;

use crate::cargo::{self, cargo};
use crate::services;

/// Builds the debug binary and the chaos bench, runs `--hosts --short`, prints how
/// long each took; prints why and returns if this machine cannot make namespaces or
/// `HOOKRELAY_SKIP_HOSTS` is set.
pub fn run() -> anyhow::Result<()> {
    // The suite alone takes 8 to 11 minutes here; a CI with less time may leave it out.
    if std::env::var_os("HOOKRELAY_SKIP_HOSTS").is_some_and(|v| !v.is_empty()) {
        eprintln!("xtask: skipping the --hosts fault run: HOOKRELAY_SKIP_HOSTS is set");
        return Ok(());
    }
    services::ensure_iptables()?;
    if let Some(why) = services::namespaces_unavailable() {
        eprintln!("xtask: skipping the --hosts fault run: {why}");
        return Ok(());
    }
    eprintln!("xtask: the short --hosts fault run (network namespaces, debug build)");
    let root = crate::demo::workspace_root();
    let started = Instant::now();
    let built = cargo()
        .args(["build", "-q", "-p", "hookrelay-cli"])
        .current_dir(&root)
        .status()
        .context("building hookrelay")?;
    anyhow::ensure!(built.success(), "building hookrelay failed");
    let bench = || {
        let mut c = cargo();
        c.args(["test", "-q", "-p", "hookrelay-tests", "--bench", "chaos"])
            .current_dir(&root);
        c
    };
    let built = bench()
        .arg("--no-run")
        .status()
        .context("building the chaos bench")?;
    anyhow::ensure!(built.success(), "building the chaos bench failed");
    let build_seconds = started.elapsed().as_secs_f64();
    let binary = cargo::binary(&root, "debug", "hookrelay")?;
    let running = Instant::now();
    let status = bench()
        .args(["--", "--hosts", "--short", "--hookrelay"])
        .arg(&binary)
        .status()
        .context("running the --hosts fault run")?;
    eprintln!(
        "xtask: the --hosts fault run took {:.0} s, after {build_seconds:.0} s of building",
        running.elapsed().as_secs_f64()
    );
    anyhow::ensure!(status.success(), "the --hosts fault run failed");
    Ok(())
}
