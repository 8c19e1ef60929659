//! Running cargo, and finding what it built: in cargo's own target directory, which
//! `CARGO_TARGET_DIR` or a config file can move away from `./target`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

/// The cargo that runs xtask (cargo sets `CARGO`), else the one on `PATH`.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Where `cargo build` run in `root` puts binary `name` of `profile` (`debug`,
/// `release`).
pub fn binary(root: &Path, profile: &str, name: &str) -> anyhow::Result<PathBuf> {
    let dir = target_dir(
        std::env::var_os("CARGO_TARGET_DIR"),
        root,
        metadata_target_dir,
    )?;
    Ok(dir.join(profile).join(name))
}

/// `CARGO_TARGET_DIR` if set, else what `cargo metadata` says (which also knows
/// `build.target-dir` in config files). A relative `CARGO_TARGET_DIR` is taken from
/// `root`, as the cargo that xtask runs there takes it.
fn target_dir(
    from_env: Option<OsString>,
    root: &Path,
    metadata: impl FnOnce(&Path) -> anyhow::Result<PathBuf>,
) -> anyhow::Result<PathBuf> {
    match from_env.filter(|dir| !dir.is_empty()) {
        Some(dir) => Ok(root.join(dir)),
        None => metadata(root),
    }
}

fn metadata_target_dir(root: &Path) -> anyhow::Result<PathBuf> {
    let out = cargo()
        .args(["metadata", "--format-version", "1", "--no-deps"])
        .current_dir(root)
        .output()
        .context("running cargo metadata")?;
    anyhow::ensure!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("parsing cargo metadata")?;
    metadata["target_directory"]
        .as_str()
        .map(PathBuf::from)
        .context("cargo metadata names no target_directory")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_metadata(_: &Path) -> anyhow::Result<PathBuf> {
        panic!("CARGO_TARGET_DIR is set: cargo metadata is not needed")
    }

    #[test]
    fn cargo_target_dir_is_where_binaries_are_found() {
        let root = Path::new("/work/repo");
        let dir = target_dir(Some("/elsewhere/build".into()), root, no_metadata).unwrap();
        assert_eq!(
            dir.join("release").join("hookrelay"),
            Path::new("/elsewhere/build/release/hookrelay")
        );
        let relative = target_dir(Some("out".into()), root, no_metadata).unwrap();
        assert_eq!(relative, Path::new("/work/repo/out"));
    }

    #[test]
    fn without_cargo_target_dir_cargo_metadata_decides() {
        let root = Path::new("/work/repo");
        let from_metadata = |_: &Path| Ok(PathBuf::from("/configured/target"));
        for unset in [None, Some(OsString::new())] {
            let dir = target_dir(unset, root, from_metadata).unwrap();
            assert_eq!(dir, Path::new("/configured/target"));
        }
    }

    /// What xtask resolves is where cargo builds, in this very environment.
    #[test]
    fn the_resolved_target_dir_is_cargos_own() {
        let root = crate::demo::workspace_root();
        let cargos = metadata_target_dir(&root).unwrap();
        assert!(cargos.is_absolute(), "{}", cargos.display());
        let resolved = target_dir(
            std::env::var_os("CARGO_TARGET_DIR"),
            &root,
            metadata_target_dir,
        );
        assert_eq!(resolved.unwrap(), cargos);
    }
}
