//! `cargo xtask fuzz-api [--max-examples N] [-- SCHEMATHESIS ARGS]`
//!
//! schemathesis (from PyPI) against the served `/openapi.json`, every check and every
//! phase (examples, coverage, fuzzing, stateful): no 5xx, no undocumented status, no
//! schema-valid request refused, no schema-violating one accepted, no response off
//! its schema. The api role runs on a test stack of its own (own database, own AMQP
//! prefix, removed afterwards) with the operator's token. No router or sender runs,
//! so no webhook the fuzzer creates is ever called. Exits as schemathesis does.

use std::process::{Command, ExitCode};

use hookrelay_tests::TestStack;

const TOKEN: &str = "fuzz-operator-token";

fn value(argv: &[String], name: &str) -> Option<String> {
    argv.iter()
        .position(|a| a == name)
        .and_then(|i| argv.get(i + 1))
        .cloned()
}

#[tokio::main]
async fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    let max_examples = value(&argv, "--max-examples").unwrap_or_else(|| "50".into());
    let report_dir = value(&argv, "--report-dir").unwrap_or_else(|| "target/fuzz-api".into());
    let passed: Vec<String> = argv
        .iter()
        .position(|a| a == "--")
        .map(|i| argv[i + 1..].to_vec())
        .unwrap_or_default();

    let stack = TestStack::new().await;
    let base = stack.serve_api(Some(TOKEN), 1 << 20).await;
    eprintln!("fuzz-api: the api role at {base}; report in {report_dir}");
    let status = tokio::task::spawn_blocking(move || {
        Command::new("schemathesis")
            .arg("--config-file")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz-api.toml"))
            .arg("run")
            .arg(format!("{base}/openapi.json"))
            // Every check runs: schemathesis's default, which tests/fuzz-api.toml
            // narrows for one check on two operations (`--checks all` here would
            // override that file).
            .args(["--phases", "examples,coverage,fuzzing,stateful"])
            .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
            .args(["--max-examples", &max_examples])
            // One worker: schemathesis's generator is not reliably thread-safe here
            // (a CPython AST recursion error under several workers).
            .args(["--workers", "1"])
            .args(["--seed", "1"])
            .args(["--report", "junit,json", "--report-dir", &report_dir])
            .args(&passed)
            .status()
    })
    .await;
    drop(stack);
    match status {
        Ok(Ok(s)) if s.success() => ExitCode::SUCCESS,
        Ok(Ok(s)) => ExitCode::from(u8::try_from(s.code().unwrap_or(1)).unwrap_or(1)),
        Ok(Err(e)) => {
            eprintln!(
                "fuzz-api: cannot run schemathesis ({e}); install it: python3 -m pip install schemathesis==4.32.5"
            );
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("fuzz-api: {e}");
            ExitCode::FAILURE
        }
    }
}
