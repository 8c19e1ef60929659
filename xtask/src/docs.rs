//! `cargo xtask docs`: writes docs/openapi.json and docs/event-envelope.schema.json as
//! the code generates them (`hookrelay openapi`). A test fails while the committed
//! files differ, so the documents cannot drift from the routes and types.

use std::path::Path;
use std::process::Command;

use anyhow::Context;

pub fn write(root: &Path) -> anyhow::Result<()> {
    for (file, extra) in [
        ("docs/openapi.json", None),
        ("docs/event-envelope.schema.json", Some("--envelope-schema")),
    ] {
        let out = Command::new("cargo")
            .args(["run", "-q", "-p", "hookrelay-cli", "--", "openapi"])
            .args(extra)
            .current_dir(root)
            .output()
            .context("running hookrelay openapi")?;
        anyhow::ensure!(
            out.status.success(),
            "hookrelay openapi failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::write(root.join(file), &out.stdout).with_context(|| format!("writing {file}"))?;
        eprintln!("xtask: wrote {file}");
    }
    Ok(())
}
