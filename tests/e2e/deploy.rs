//! The deployment files agree with the code: no engine needed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// Every `HOOKRELAY_*` name in a text.
fn variables(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("HOOKRELAY_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        found.insert(name.trim_end_matches('_').to_owned());
        rest = &rest[i + 10..];
    }
    found
}

fn files_under(rel: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(root().join(rel)) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(
                &path.strip_prefix(root()).unwrap().to_string_lossy(),
            ));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn every_variable_the_cli_reads_is_documented_and_nothing_else_is_used() {
    let code = variables(&read("crates/cli/src/config.rs"))
        .into_iter()
        .chain(variables(&read("crates/cli/src/cli.rs")))
        .chain(variables(&read("crates/cli/src/commands/webhooks.rs")))
        .collect::<BTreeSet<_>>();
    let documented = variables(&read("docs/configuration.md"));
    assert_eq!(
        code, documented,
        "docs/configuration.md lists exactly the variables the CLI reads"
    );

    let mut used = variables(&read("docker-compose.yml"));
    used.extend(variables(&read("Dockerfile")));
    for path in files_under("deploy") {
        used.extend(variables(
            &std::fs::read_to_string(&path).unwrap_or_default(),
        ));
    }
    let unknown: Vec<_> = used.difference(&code).collect();
    assert!(
        unknown.is_empty(),
        "deployment files set variables hookrelay does not read: {unknown:?}"
    );
}

/// Runs the Dockerfile's dependency stage here, without an engine: its COPY lines into
/// an empty folder, its RUN line up to the build, then `cargo metadata`, which fails
/// exactly where the image build would (a member or a declared target missing).
#[test]
fn the_dockerfile_dependency_stage_resolves_the_workspace() {
    let dockerfile = read("Dockerfile");
    let stage: Vec<&str> = dockerfile
        .split("\nFROM ")
        .nth(1)
        .expect("a build stage")
        .split("\n# The real sources")
        .next()
        .unwrap()
        .lines()
        .collect();
    let dir = std::env::temp_dir().join(format!("hookrelay-docker-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut script = String::new();
    let mut continued = false;
    for line in stage {
        if let Some(args) = line.strip_prefix("COPY ") {
            let parts: Vec<&str> = args.split_whitespace().collect();
            let (dest, sources) = parts.split_last().unwrap();
            for source in sources {
                let from = root().join(source);
                assert!(
                    from.exists(),
                    "Dockerfile copies `{source}`, which does not exist"
                );
                let to = if dest.ends_with('/') {
                    dir.join(dest).join(Path::new(source).file_name().unwrap())
                } else {
                    dir.join(dest)
                };
                copy(&from, &to);
            }
        } else if let Some(command) = line.strip_prefix("RUN ") {
            script.push_str(command);
            continued = command.ends_with('\\');
        } else if continued {
            script.push_str(line);
            continued = line.ends_with('\\');
        }
    }
    let script = script
        .replace('\\', " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let (prepare, build) = script
        .rsplit_once("&& cargo build")
        .expect("the dependency stage ends with `cargo build`");
    assert!(build.contains("-p hookrelay-cli"), "{build}");
    let status = std::process::Command::new("sh")
        .args(["-ec", prepare])
        .current_dir(&dir)
        .status()
        .unwrap();
    assert!(status.success(), "the stage's RUN line failed: {prepare}");
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--offline",
            "--locked",
            "--format-version",
            "1",
            "--no-deps",
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        out.status.success(),
        "the dependency stage would not resolve: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every file the code compiles in (`include_str!`, `include_bytes!`, refinery's
/// `embed_migrations!`) is copied into the build stage before the real build: else
/// the image fails to compile.
#[test]
fn the_dockerfile_copies_every_file_the_code_compiles_in() {
    let dockerfile = read("Dockerfile");
    let build = dockerfile.split("\nFROM ").nth(1).expect("a build stage");
    let copied: Vec<&str> = build
        .lines()
        .filter_map(|l| l.strip_prefix("COPY "))
        .filter(|l| !l.contains("--from"))
        .flat_map(|l| {
            let parts: Vec<&str> = l.split_whitespace().collect();
            parts[..parts.len() - 1].to_vec()
        })
        .collect();
    let mut included = 0;
    for file in files_under("crates")
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
    {
        if file.components().any(|c| c.as_os_str() == "tests") {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        // `include_*!` paths are relative to the file, `embed_migrations!` to the crate.
        let crate_dir = file
            .ancestors()
            .find(|d| d.join("Cargo.toml").is_file())
            .unwrap()
            .to_path_buf();
        let pieces = [
            ("include_str!(\"", file.parent().unwrap().to_path_buf()),
            ("include_bytes!(\"", file.parent().unwrap().to_path_buf()),
            ("embed_migrations!(\"", crate_dir),
        ]
        .into_iter()
        .flat_map(|(m, base)| text.split(m).skip(1).map(move |p| (p, base.clone())));
        for (piece, base) in pieces {
            let Some(rel) = piece.split('"').next() else {
                continue;
            };
            let target = base.join(rel);
            let target = std::fs::canonicalize(&target)
                .unwrap_or_else(|e| panic!("{} includes {rel}: {e}", file.display()));
            let target = target
                .strip_prefix(std::fs::canonicalize(root()).unwrap())
                .unwrap();
            let target = target.to_string_lossy();
            included += 1;
            assert!(
                copied.iter().any(|c| target == *c
                    || target.starts_with(&format!("{}/", c.trim_end_matches('/')))),
                "{} compiles in {target}, which the Dockerfile's build stage does not copy",
                file.display()
            );
        }
    }
    assert!(
        included >= 1,
        "found {included} included files: the scan is off"
    );
}

fn copy(from: &Path, to: &Path) {
    if from.is_dir() {
        for entry in std::fs::read_dir(from).unwrap().flatten() {
            copy(&entry.path(), &to.join(entry.file_name()));
        }
    } else {
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(from, to).unwrap();
    }
}

#[test]
fn compose_runs_every_role_with_probes_on_the_documented_port() {
    let compose = read("docker-compose.yml");
    for needle in [
        "[\"serve\", \"--roles\", \"api\"]",
        "[\"serve\", \"--roles\", \"router\"]",
        "[\"serve\", \"--roles\", \"sender\"]",
        "[\"migrate\"]",
        "http://127.0.0.1:8080/readyz",
        "HOOKRELAY_HTTP_ADDR: 0.0.0.0:8080",
        "OTEL_EXPORTER_OTLP_ENDPOINT: http://jaeger:4318",
        "condition: service_completed_successfully",
    ] {
        assert!(
            compose.contains(needle),
            "docker-compose.yml lacks {needle}"
        );
    }
}

/// How to get `promtool` here; `cargo xtask test` checks for it before the tests.
const PROMTOOL_MISSING: &str = "promtool not found: install it with \
    `apt-get update && apt-get install -y prometheus` (Debian), which gives /usr/bin/promtool";

#[test]
fn the_alert_rules_pass_promtool() {
    let out = Command::new("promtool")
        .args(["check", "rules"])
        .arg(root().join("deploy/prometheus/alerts.yaml"))
        .output();
    let out = match out {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!("{PROMTOOL_MISSING}"),
        Err(e) => panic!("running promtool: {e}"),
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool check rules: {text}");
    assert!(text.contains("SUCCESS: 7 rules found"), "{text}");
}

/// Every `hookrelay_*` name in a text.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("hookrelay_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        found.insert(name);
        rest = &rest[i + "hookrelay_".len()..];
    }
    found
}

/// The series names `/metrics` can hold, from the registry: a labelled family is
/// not rendered before it has a value, so an idle scrape would miss it.
fn exported_series() -> BTreeSet<String> {
    hookrelay_metrics::Metrics::new()
        .series_names()
        .iter()
        .cloned()
        .collect()
}

#[test]
fn the_dashboard_and_the_alerts_name_only_metrics_hookrelay_exports() {
    let exported = exported_series();
    assert!(
        exported.contains("hookrelay_webhook_breaker_open")
            && exported.contains("hookrelay_pending_oldest_age_seconds")
            && exported.contains("hookrelay_delivery_e2e_duration_seconds_bucket"),
        "{exported:?}"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("deploy/grafana/hookrelay.json")).expect("dashboard is JSON");
    let mut exprs = String::new();
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels {
        let targets = panel["targets"]
            .as_array()
            .expect("every panel has targets");
        assert!(!targets.is_empty(), "{}", panel["title"]);
        for target in targets {
            exprs.push_str(target["expr"].as_str().expect("a PromQL expr"));
            exprs.push('\n');
        }
    }
    for (what, text) in [
        ("deploy/grafana/hookrelay.json", exprs),
        (
            "deploy/prometheus/alerts.yaml",
            read("deploy/prometheus/alerts.yaml"),
        ),
    ] {
        let named = metric_names(&text);
        assert!(!named.is_empty(), "{what} names no metric");
        let unknown: Vec<_> = named.difference(&exported).collect();
        assert!(
            unknown.is_empty(),
            "{what} names metrics hookrelay does not export: {unknown:?}"
        );
    }
    // What the dashboard must show.
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for wanted in [
        "Throughput",
        "Attempt latency",
        "End-to-end latency",
        "Dead letters",
        "Failing webhooks",
        "Queue depth",
        "Oldest pending",
    ] {
        assert!(
            titles.iter().any(|t| t.starts_with(wanted)),
            "no `{wanted}` panel in {titles:?}"
        );
    }
}

/// Operators read the dead-letter reasons in docs/topology.md and filter by them:
/// every reason hookrelay writes is documented there, from the one list in code.
#[test]
fn every_dead_letter_reason_is_documented() {
    let topology = read("docs/topology.md");
    let missing: Vec<String> = hookrelay_model::DeadLetterReason::ours()
        .map(|r| r.to_string())
        .filter(|r| !topology.contains(&format!("`{r}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/topology.md does not list the dead-letter reasons {missing:?}"
    );
}

/// The lines of one `[section]` of a TOML text, up to the next section.
fn section<'a>(text: &'a str, name: &str) -> Vec<&'a str> {
    let header = format!("[{name}]");
    text.lines()
        .skip_while(|l| l.trim() != header)
        .skip(1)
        .take_while(|l| !l.trim_start().starts_with('['))
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// The release binary and the image carry no debug info unless asked: the release
/// profile has none and strips what the standard library brings; `release-debug`
/// keeps line tables, and the image builds with the profile its `PROFILE` argument
/// names, `release` by default.
#[test]
fn the_release_binary_and_the_image_carry_no_debug_info_unless_asked() {
    let manifest = read("Cargo.toml");
    let release = section(&manifest, "profile.release");
    assert!(release.contains(&"debug = false"), "{release:?}");
    assert!(release.contains(&"strip = \"debuginfo\""), "{release:?}");
    let asked = section(&manifest, "profile.release-debug");
    assert!(asked.contains(&"inherits = \"release\""), "{asked:?}");
    assert!(asked.contains(&"debug = \"line-tables-only\""), "{asked:?}");

    let dockerfile = read("Dockerfile");
    assert!(
        dockerfile.contains("\nARG PROFILE=release\n"),
        "{dockerfile}"
    );
    let builds: Vec<&str> = dockerfile
        .lines()
        .filter(|l| l.contains("cargo build"))
        .collect();
    assert_eq!(builds.len(), 2, "{builds:?}");
    for build in builds {
        assert!(build.contains("--profile \"$PROFILE\""), "{build}");
        assert!(!build.contains("--release"), "{build}");
    }
    assert!(dockerfile.contains("cp \"target/$PROFILE/hookrelay\""));
    let docs = read("docs/operations.md");
    assert!(docs.contains("PROFILE=release-debug"), "documented");
}

/// The workspace declares Apache-2.0; the repository carries its text.
#[test]
fn the_license_the_workspace_declares_is_in_the_repository() {
    let manifest = read("Cargo.toml");
    assert!(
        section(&manifest, "workspace.package").contains(&"license = \"Apache-2.0\""),
        "the workspace's license"
    );
    let license = read("LICENSE");
    for needle in [
        "Apache License",
        "Version 2.0, January 2004",
        "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION",
        "9. Accepting Warranty or Additional Liability.",
        "END OF TERMS AND CONDITIONS",
    ] {
        assert!(license.contains(needle), "LICENSE lacks `{needle}`");
    }
}
