//! `handoff build [DIR]`: build a policy project into an installable unit,
//! `NAME.wasm` and `NAME.toml`, named after the policy's own metadata name.
//!
//! The project's language is read from what is in DIR: a `Cargo.toml` is a
//! Rust crate, a `pyproject.toml` with `app.py` a Python policy, a
//! `package.json` with `component.js` a JavaScript one. Each toolchain names
//! its output its own way (cargo after the crate, `pii_guard.wasm`); a
//! policy directory names plugins by file. Reading the name from the
//! component itself means what is installed is called what the policy says
//! it is.

mod js;
mod python;
mod rust;
mod toolchain;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use handoff_policy::testing::policy_info;
use handoff_policy::{PluginSource, Runtime, read_regular};

use super::output::terminal;

/// The languages a policy can be written in: what `handoff new --lang`
/// writes, and what `handoff build` tells apart by what a project holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

impl Lang {
    /// The language of the project in `dir`, or why there is none.
    fn of(dir: &Path) -> anyhow::Result<Lang> {
        let has = |file: &str| dir.join(file).is_file();
        if has("Cargo.toml") {
            Ok(Lang::Rust)
        } else if has("pyproject.toml") && has("app.py") {
            Ok(Lang::Python)
        } else if has("package.json") && has("component.js") {
            Ok(Lang::Js)
        } else {
            bail!(
                "{}: not a policy project; `handoff build` builds a directory with a Cargo.toml \
                 (Rust), a pyproject.toml and app.py (Python), or a package.json and component.js \
                 (JavaScript); `handoff new` writes one",
                dir.display()
            )
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// The policy project: a Rust crate, or a Python or JavaScript policy
    /// written by `handoff new`.
    #[arg(value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// Where to write NAME.wasm and NAME.toml. Defaults to DIR/dist.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

pub fn run(runtime: &Runtime, args: BuildArgs) -> anyhow::Result<()> {
    let lang = Lang::of(&args.dir)?;
    // Python and JavaScript toolchains write into a scratch directory that
    // lives until the unit is installed.
    let scratch = tempfile::Builder::new()
        .prefix("handoff-build-")
        .tempdir()
        .context("cannot create a scratch directory")?;
    let components = match lang {
        Lang::Rust => rust::build(&args.dir)?,
        Lang::Python => vec![python::build(&args.dir, scratch.path())?],
        Lang::Js => vec![js::build(&args.dir, scratch.path())?],
    };
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
            signatures: None,
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
