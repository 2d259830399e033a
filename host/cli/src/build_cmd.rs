//! `handoff build [DIR]`: build a policy crate into an installable unit,
//! `NAME.wasm` and `NAME.toml`, named after the policy's own metadata name.
//!
//! Cargo names the component after the crate (`pii_guard.wasm`); a policy
//! directory names plugins by file. Reading the name from the component
//! itself means what is installed is called what the policy says it is.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use handoff_policy::testing::policy_info;
use handoff_policy::{PluginSource, Runtime, read_regular};

use super::output::terminal;

/// The target policies are built for.
const TARGET: &str = "wasm32-wasip2";

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The policy crate (the directory with its Cargo.toml).
    #[arg(value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// Where to write NAME.wasm and NAME.toml. Defaults to DIR/dist.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

pub fn run(runtime: &Runtime, args: BuildArgs) -> anyhow::Result<()> {
    let manifest_path = args.dir.join("Cargo.toml");
    if !manifest_path.is_file() {
        bail!(
            "{}: no Cargo.toml; `handoff build` builds a policy crate (see `handoff new`)",
            args.dir.display()
        );
    }
    let components = cargo_build(&manifest_path)?;
    if components.is_empty() {
        bail!(
            "{}: cargo built no component; the crate needs `crate-type = [\"cdylib\"]` in [lib]",
            args.dir.display()
        );
    }
    let policy_toml = args.dir.join("policy.toml");
    let manifest = match read_regular(&policy_toml, runtime.limits().max_manifest_bytes) {
        Ok(bytes) => Some(
            String::from_utf8(bytes)
                .map_err(|_| anyhow::anyhow!("{}: not UTF-8 text", policy_toml.display()))?,
        ),
        Err(handoff_policy::FileError::NotFound) => None,
        Err(e) => bail!("{}: {e}", policy_toml.display()),
    };
    let out = args.out.unwrap_or_else(|| args.dir.join("dist"));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    for component in components {
        let wasm = read_regular(&component, runtime.limits().max_component_bytes)
            .with_context(|| format!("cannot read {}", component.display()))?;
        let stem = component
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("policy")
            .to_string();
        let source = PluginSource {
            name: stem,
            wasm,
            manifest: manifest.clone(),
        };
        let info = policy_info(runtime, &source).map_err(|e| anyhow::anyhow!("{e}"))?;
        if !is_file_name(&info.name) {
            bail!(
                "the policy calls itself {:?}, which cannot be a file name",
                terminal(&info.name)
            );
        }
        // The manifest first: a host watching `out` loads the unit when its
        // component arrives, already with its configuration and fixtures.
        if let Some(text) = &source.manifest {
            write_atomically(&out.join(format!("{}.toml", info.name)), text.as_bytes())?;
        }
        let wasm_out = out.join(format!("{}.wasm", info.name));
        write_atomically(&wasm_out, &source.wasm)?;
        println!(
            "built {} ({}@{}, {} KiB{})",
            wasm_out.display(),
            terminal(&info.name),
            terminal(&info.version),
            source.wasm.len().div_ceil(1024),
            if source.manifest.is_some() {
                format!(", manifest {}.toml", terminal(&info.name))
            } else {
                ", no policy.toml: it will run with defaults and no fixtures".into()
            }
        );
    }
    Ok(())
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

fn is_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.')
}

/// Writes beside the target and renames over it, so that a host watching
/// the output directory never loads half a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .context("an output file name")?;
    let temporary = path.with_file_name(format!(".{name}.partial"));
    std::fs::write(&temporary, bytes)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    std::fs::rename(&temporary, path).with_context(|| format!("cannot write {}", path.display()))
}
