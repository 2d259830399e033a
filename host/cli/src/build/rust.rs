//! Rust: cargo, for the guest target, reading cargo's JSON messages for the
//! components it wrote.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// The target policies are built for.
const TARGET: &str = "wasm32-wasip2";

/// Builds the crate in `dir` and returns the components cargo wrote.
pub fn build(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let components = cargo_build(&dir.join("Cargo.toml"))?;
    if components.is_empty() {
        bail!(
            "{}: cargo built no component; the crate needs `crate-type = [\"cdylib\"]` in [lib]",
            dir.display()
        );
    }
    Ok(components)
}

/// Runs cargo for the policy target and returns the components it wrote.
fn cargo_build(manifest_path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--release", "--target", TARGET, "--manifest-path"])
        .arg(manifest_path)
        .arg("--message-format=json-render-diagnostics")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    // Flags meant for a host build (or an outer cargo's) are not the guest's.
    for var in ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS", "CARGO_BUILD_TARGET"] {
        command.env_remove(var);
    }
    let mut child = command
        .spawn()
        .context("cannot run cargo; is Rust installed (https://rustup.rs)?")?;
    let stdout = child.stdout.take().context("cargo's output")?;
    let mut components = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.context("reading cargo's output")?;
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        let is_cdylib = message["target"]["kind"]
            .as_array()
            .is_some_and(|kinds| kinds.iter().any(|k| k == "cdylib"));
        if !is_cdylib {
            continue;
        }
        for file in message["filenames"].as_array().into_iter().flatten() {
            if let Some(file) = file.as_str().filter(|f| f.ends_with(".wasm")) {
                components.push(PathBuf::from(file));
            }
        }
    }
    let status = child.wait().context("waiting for cargo")?;
    if !status.success() {
        bail!(
            "cargo build failed ({status}); if it says the target is missing, run \
             `rustup target add {TARGET}`"
        );
    }
    Ok(components)
}
