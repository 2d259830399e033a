//! Python: componentize-py, with the SDK on the module path.
//!
//! The default build imports `wasi:sockets`, which the sandbox links with
//! every call failing (see `handoff inspect`), so output and tracebacks
//! reach the plugin log; `--stub-wasi` would turn them into bare traps.

use std::path::{Path, PathBuf};

use anyhow::Context;

use super::toolchain::{self, Tool};

const COMPONENTIZE_PY: Tool = Tool {
    name: "componentize-py",
    env: "HANDOFF_COMPONENTIZE_PY",
    install: "pip install componentize-py==0.25.1",
};

/// Builds the policy whose entry module is `dir/app.py`.
pub fn build(dir: &Path, scratch: &Path) -> anyhow::Result<PathBuf> {
    let wit = toolchain::write_wit(scratch)?;
    let out = scratch.join("policy.wasm");
    let mut command = toolchain::command(&COMPONENTIZE_PY, dir)?;
    command
        .arg("-d")
        .arg(&wit)
        .args(["-w", toolchain::WORLD, "componentize", "app", "-p"])
        .arg(dir);
    if let Some(sdk) = sdk(dir)? {
        command.arg("-p").arg(sdk);
    }
    command.arg("-o").arg(&out);
    toolchain::run(&COMPONENTIZE_PY, command)?;
    Ok(out)
}

/// Where `handoff_policy` is: `[tool.handoff] sdk` in the project's
/// pyproject.toml (relative to it), else `$HANDOFF_SDK/python`, else the
/// checkout this binary was built from; none means it is installed.
fn sdk(dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    let pyproject = dir.join("pyproject.toml");
    let text = std::fs::read_to_string(&pyproject)
        .with_context(|| format!("cannot read {}", pyproject.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("{}", pyproject.display()))?;
    let declared = table
        .get("tool")
        .and_then(|tool| tool.get("handoff"))
        .and_then(|handoff| handoff.get("sdk"))
        .and_then(toml::Value::as_str);
    let candidates = declared
        .map(|path| dir.join(path))
        .into_iter()
        .chain(std::env::var_os("HANDOFF_SDK").map(|sdk| PathBuf::from(sdk).join("python")))
        .chain([toolchain::built_from().join("sdk/python")]);
    for candidate in candidates {
        if candidate.join("handoff_policy/__init__.py").is_file() {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}
