//! `cargo xtask check-deploy`: validates the compose file and the Kubernetes manifests
//! without a Docker engine or a cluster.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};

pub fn check(root: &Path) -> anyhow::Result<()> {
    let mut checked = 0;
    if let Some(mut compose) = compose_tool() {
        println!("==> docker compose config");
        let ok = compose
            .args(["-f", "docker-compose.yml", "config", "-q"])
            .current_dir(root)
            .status()?
            .success();
        anyhow::ensure!(ok, "docker-compose.yml is not valid");
        checked += 1;
    } else {
        println!(
            "skipped: compose check (apt-get install docker-compose, or the docker compose plugin)"
        );
    }
    if tool_answers("kubernetes-validate", &["--version"]) {
        println!("==> kubernetes-validate deploy/kubernetes");
        let manifests = manifests(&root.join("deploy/kubernetes"))?;
        let ok = Command::new("kubernetes-validate")
            // Custom resources (KEDA, RabbitMQ, CloudNativePG) only warn: no schema.
            .arg("--strict")
            .args(&manifests)
            .status()?
            .success();
        anyhow::ensure!(ok, "a Kubernetes manifest is not valid");
        checked += 1;
    } else {
        println!("skipped: manifest check (python3 -m pip install kubernetes-validate)");
    }
    println!("==> consistency of deployment files with the code");
    let ok = crate::cargo::cargo()
        .args([
            "test",
            "-q",
            "-p",
            "hookrelay-tests",
            "--test",
            "e2e",
            "deploy::",
        ])
        .current_dir(root)
        .status()
        .context("running the deploy tests")?
        .success();
    if !ok {
        bail!("deployment files disagree with the code");
    }
    println!("deployment checks passed ({checked} external validators ran)");
    Ok(())
}

fn tool_answers(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `docker compose` (plugin) or `docker-compose` (standalone); neither needs an engine
/// for `config`.
fn compose_tool() -> Option<Command> {
    if tool_answers("docker", &["compose", "version"]) {
        let mut c = Command::new("docker");
        c.arg("compose");
        return Some(c);
    }
    tool_answers("docker-compose", &["version"]).then(|| Command::new("docker-compose"))
}

fn manifests(dir: &Path) -> anyhow::Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .filter(|p| p.file_name().is_none_or(|n| n != "kustomization.yaml"))
        .collect();
    files.sort();
    Ok(files)
}
