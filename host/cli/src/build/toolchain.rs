//! Finding and running the Python and JavaScript toolchains, and the one
//! contract they all build against: the host's own `wit/policy.wit`,
//! embedded in this binary so a component can never be built against a
//! contract the host does not serve.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

/// The contract this host implements, as the toolchains read it.
const POLICY_WIT: &str = include_str!("../../../../wit/policy.wit");

/// The world every policy component targets.
pub const WORLD: &str = "policy";

/// Writes the contract into `scratch` and returns its path.
pub fn write_wit(scratch: &Path) -> anyhow::Result<PathBuf> {
    let wit = scratch.join("policy.wit");
    std::fs::write(&wit, POLICY_WIT).with_context(|| format!("cannot write {}", wit.display()))?;
    Ok(wit)
}

/// One external tool: its name on PATH, the variable that overrides where
/// it is, and how to install it.
pub struct Tool {
    pub name: &'static str,
    pub env: &'static str,
    pub install: &'static str,
}

/// The checkout this binary was built from: where the SDKs are, if it is
/// still there.
pub fn built_from() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A command for `tool`: from its variable, else from `node_modules/.bin`
/// of the project or any directory above it, else from the SDK's own
/// `node_modules` (where `npm ci` in `sdk/js` puts it), else from PATH.
pub fn command(tool: &Tool, project: &Path) -> anyhow::Result<Command> {
    if let Some(path) = std::env::var_os(tool.env) {
        return Ok(Command::new(path));
    }
    let local = project
        .canonicalize()
        .ok()
        .into_iter()
        .flat_map(|dir| dir.ancestors().map(Path::to_path_buf).collect::<Vec<_>>())
        .chain([built_from().join("sdk/js")])
        .map(|dir| dir.join("node_modules/.bin").join(tool.name))
        .find(|candidate| candidate.is_file());
    if let Some(path) = local {
        return Ok(Command::new(path));
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool.name).is_file()))
        .unwrap_or(false);
    if !on_path {
        bail!(
            "{} is not installed: {} (or point {} at it)",
            tool.name,
            tool.install,
            tool.env
        );
    }
    Ok(Command::new(tool.name))
}

/// Runs `command` with no stdin and the tool's own output passed through,
/// failing with the tool's name and status.
pub fn run(tool: &Tool, mut command: Command) -> anyhow::Result<()> {
    command.stdin(Stdio::null());
    let status = command
        .status()
        .with_context(|| format!("cannot run {}", tool.name))?;
    if !status.success() {
        bail!("{} failed ({status}); its output is above", tool.name);
    }
    Ok(())
}
