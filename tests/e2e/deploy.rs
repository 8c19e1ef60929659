//! The deployment files agree with the code: no engine needed.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

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

#[test]
fn the_dockerfile_dependency_stage_copies_every_workspace_member() {
    let dockerfile = read("Dockerfile");
    let manifest = read("Cargo.toml");
    let members_line = manifest
        .lines()
        .find(|l| l.starts_with("members"))
        .expect("members");
    let members: Vec<&str> = members_line.split('"').skip(1).step_by(2).collect();
    assert!(members.len() >= 7, "{members:?}");
    for member in members {
        let copy = format!("COPY {member}/Cargo.toml");
        assert!(
            dockerfile.contains(&copy),
            "Dockerfile lacks `{copy}`: the dependency stage would not resolve"
        );
    }
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let sources: Vec<&str> = line.split_whitespace().skip(1).collect();
        for source in &sources[..sources.len() - 1] {
            assert!(
                root().join(source).exists(),
                "Dockerfile copies `{source}`, which does not exist"
            );
        }
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
