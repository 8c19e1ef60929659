//! `cargo xtask fuzz-api [--max-examples N] [-- SCHEMATHESIS ARGS]`: schemathesis
//! against the served OpenAPI document (tests/src/bin/fuzz_api.rs runs it on a stack
//! of its own). Installs the pinned schemathesis from PyPI when it is missing.

use std::process::{Command, Stdio};

use anyhow::Context;

use crate::cargo::cargo;
use crate::services;

/// The version the recorded runs (docs/reliability.md) used.
const SCHEMATHESIS: &str = "schemathesis==4.32.5";

pub fn run(args: &[String]) -> anyhow::Result<()> {
    services::ensure()?;
    ensure_schemathesis()?;
    let root = crate::demo::workspace_root();
    let status = cargo()
        .args([
            "run",
            "-q",
            "-p",
            "hookrelay-tests",
            "--bin",
            "fuzz-api",
            "--",
        ])
        .args(args)
        .current_dir(&root)
        .status()
        .context("running the API fuzzer")?;
    anyhow::ensure!(
        status.success(),
        "schemathesis found failures (above; reports in target/fuzz-api)"
    );
    Ok(())
}

fn installed() -> bool {
    Command::new("schemathesis")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn ensure_schemathesis() -> anyhow::Result<()> {
    if installed() {
        return Ok(());
    }
    eprintln!("xtask: schemathesis not found; installing {SCHEMATHESIS} with pip");
    let ok = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", SCHEMATHESIS])
        .status()
        .is_ok_and(|s| s.success());
    anyhow::ensure!(
        ok && installed(),
        "schemathesis is needed: install it with `python3 -m pip install {SCHEMATHESIS}` \
         (Python 3.9 or later), and make sure `schemathesis` is on PATH"
    );
    Ok(())
}
