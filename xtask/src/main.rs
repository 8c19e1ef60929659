//! Project commands, in Rust instead of shell scripts:
//!
//! - `cargo xtask test`: make sure RabbitMQ and Postgres run (and promtool is
//!   installed), then the whole test suite, a quick API fuzz and the short `--hosts`
//!   fault run (skipped, saying why, where network namespaces cannot be made).
//! - `cargo xtask demo`: make sure they run, then the whole flow with a demo receiver.
//! - `cargo xtask bench`: the end-to-end benchmark (release build), figures printed.
//! - `cargo xtask chaos`: the fault run (kill -9, broker and database restarts);
//!   `--cluster`: on a 3-node RabbitMQ cluster, the node leading the queues killed;
//!   `--hosts`: every part on a host of its own (network namespaces), network faults.
//! - `cargo xtask fuzz-api`: schemathesis against the served OpenAPI document.
//! - `cargo xtask docs`: regenerate docs/openapi.json and docs/event-envelope.schema.json.

mod cargo;
mod demo;
mod deploy;
mod docs;
mod fuzz;
mod hosts;
mod python;
mod services;

use std::process::ExitCode;

use anyhow::Context;
use cargo::cargo;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("demo") => demo::run(&args[1..]),
        Some("check-deploy") => deploy::check(&demo::workspace_root()),
        Some("docs") => docs::write(&demo::workspace_root()),
        Some("bench") => release_bench("pipeline", &args[1..]),
        Some("chaos") => release_bench("chaos", &args[1..]),
        Some("fuzz-api") => fuzz::run(&args[1..]),
        _ => {
            eprintln!(
                "usage: cargo xtask <test|demo|bench|chaos|fuzz-api|check-deploy|docs>\n\n  test [ARGS]   check services, then run every test (ARGS go to the test runner), a quick API fuzz\n                and the short --hosts fault run (root only; skipped saying why otherwise)\n  demo          check services, then run hookrelay end to end with a demo receiver\n  bench [ARGS]  the end-to-end benchmark (see tests/benches/pipeline.rs)\n  chaos [ARGS]  kill -9 roles and restart RabbitMQ and Postgres mid-run, then check\n                that nothing was lost or doubled (see tests/benches/chaos.rs);\n                --cluster: kill -9 the leading node of a 3-node RabbitMQ cluster instead\n                --hosts [--short]: each part in a network namespace of its own; partition,\n                link cuts, slow lossy links under a steady load (root only)\n  fuzz-api [ARGS] schemathesis against the served /openapi.json (see tests/src/bin/fuzz_api.rs)\n  check-deploy  validate docker-compose.yml and deploy/kubernetes without an engine\n  docs          regenerate docs/openapi.json and docs/event-envelope.schema.json from the code"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The services check, then nextest (or `cargo test` where nextest is not installed).
fn test(extra: &[String]) -> anyhow::Result<()> {
    services::ensure()?;
    services::ensure_tools()?;
    python::ensure_verifiers()?;
    let nextest = cargo()
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut cmd = cargo();
    if nextest {
        cmd.args(["nextest", "run", "--workspace", "--no-fail-fast"]);
    } else {
        eprintln!("xtask: cargo-nextest not found (cargo install cargo-nextest); using cargo test");
        cmd.args(["test", "--workspace", "--no-fail-fast"]);
    }
    let status = cmd.args(extra).status().context("running the tests")?;
    anyhow::ensure!(status.success(), "tests failed");
    if !extra.is_empty() {
        eprintln!(
            "xtask: a filtered run: the API fuzz (cargo xtask fuzz-api) and the --hosts fault run (cargo xtask chaos --hosts --short) run with a full `cargo xtask test`"
        );
        return Ok(());
    }
    // The quick variant of `cargo xtask fuzz-api`: every operation, every check, ten
    // cases each, a fixed seed (about 20 s).
    eprintln!("xtask: fuzzing the API from its OpenAPI document (schemathesis)");
    fuzz::run(&["--max-examples".to_owned(), "10".to_owned()])?;
    // The network faults: a partition, cut and slow links (about 2.5 minutes).
    hosts::run()
}

/// A bench target of the tests package (`pipeline`, `chaos`), built with
/// optimisations, the roles as child processes of the release binary.
fn release_bench(name: &str, extra: &[String]) -> anyhow::Result<()> {
    services::ensure()?;
    if extra.iter().any(|a| a == "--hosts") {
        services::ensure_iptables()?;
    }
    let root = demo::workspace_root();
    let built = cargo()
        .args(["build", "-q", "--release", "-p", "hookrelay-cli"])
        .current_dir(&root)
        .status()
        .context("building hookrelay")?;
    anyhow::ensure!(built.success(), "building hookrelay failed");
    let binary = cargo::binary(&root, "release", "hookrelay")?;
    // cargo runs a bench from its package's folder: make `--json PATH` absolute.
    let here = std::env::current_dir()?;
    let extra: Vec<String> = extra
        .iter()
        .enumerate()
        .map(|(i, a)| {
            match (
                i > 0 && extra[i - 1] == "--json",
                std::path::Path::new(a).is_relative(),
            ) {
                (true, true) => here.join(a).to_string_lossy().into_owned(),
                _ => a.clone(),
            }
        })
        .collect();
    let status = cargo()
        .args([
            "bench",
            "-q",
            "-p",
            "hookrelay-tests",
            "--bench",
            name,
            "--",
        ])
        .arg("--hookrelay")
        .arg(&binary)
        .args(extra)
        .current_dir(&root)
        .status()
        .with_context(|| format!("running the {name} bench"))?;
    anyhow::ensure!(status.success(), "the {name} bench failed");
    Ok(())
}
