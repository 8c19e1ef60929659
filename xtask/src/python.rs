//! The Python packages the end-to-end tests verify signatures with
//! (tests/verify_signatures.py, driven by tests/e2e/signatures.rs): the Standard
//! Webhooks reference library for `v1` and `cryptography` for `v1a` (ed25519), which
//! that library does not verify. Installed with pip when missing, so the tests never
//! run without them.

use std::process::{Command, Stdio};

/// The pinned reference library and the ed25519 verifier.
const PACKAGES: [(&str, &str); 2] = [
    ("standardwebhooks", "standardwebhooks==1.3.0"),
    ("cryptography", "cryptography>=42"),
];

fn importable(module: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Every package of [`PACKAGES`] importable by `python3`, installed with pip if not.
pub fn ensure_verifiers() -> anyhow::Result<()> {
    let missing: Vec<&str> = PACKAGES
        .iter()
        .filter(|(module, _)| !importable(module))
        .map(|(_, requirement)| *requirement)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let command = format!("python3 -m pip install {}", missing.join(" "));
    eprintln!("xtask: the signature verifiers are missing; running `{command}`");
    let ok = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet"])
        .args(&missing)
        .status()
        .is_ok_and(|s| s.success());
    anyhow::ensure!(
        ok && PACKAGES.iter().all(|(module, _)| importable(module)),
        "the signature tests need Python 3 with {}: run `{command}`",
        missing.join(" and ")
    );
    Ok(())
}
