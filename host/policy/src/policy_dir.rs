//! The layout of a policy directory: `NAME.wasm` with an optional sidecar
//! `NAME.toml`, the two together one unit.
//!
//! Hidden files (a leading `.`) and other extensions are never units:
//! editors and atomic writers stage their temporaries under such names, and
//! a half-written temporary must never be mistaken for a policy.

use std::collections::BTreeSet;
use std::path::Path;

use crate::source::{PluginSource, Rejection};

/// Why a policy directory could not be read at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot read policy directory {dir}: {source}")]
pub struct DirError {
    /// The directory.
    pub dir: String,
    /// The I/O error.
    #[source]
    pub source: std::io::Error,
}

/// What the directory holds for one plugin name.
#[derive(Debug)]
pub(crate) enum Unit {
    /// A component, with its manifest if there is one.
    Present(PluginSource),
    /// A manifest whose component is missing.
    ManifestOnly,
    /// Neither file.
    Absent,
    /// A file exists but cannot be read.
    Unreadable(Rejection),
}

/// The unit name `path` belongs to, if it is a unit file: the stem of a
/// visible `.wasm` or `.toml` file.
pub(crate) fn unit_name(path: &Path) -> Option<&str> {
    let stem = path.file_stem()?.to_str()?;
    let ext = path.extension()?.to_str()?;
    (!stem.is_empty() && !stem.starts_with('.') && matches!(ext, "wasm" | "toml")).then_some(stem)
}

/// Every unit name in `dir`, sorted.
pub(crate) fn unit_names(dir: &Path) -> Result<BTreeSet<String>, DirError> {
    let dir_error = |source| DirError {
        dir: dir.display().to_string(),
        source,
    };
    let mut names = BTreeSet::new();
    for entry in std::fs::read_dir(dir).map_err(dir_error)? {
        let path = entry.map_err(dir_error)?.path();
        if let Some(name) = unit_name(&path) {
            names.insert(name.to_string());
        }
    }
    Ok(names)
}

/// Reads unit `name` of `dir`.
pub(crate) fn read_unit(dir: &Path, name: &str) -> Unit {
    let wasm_path = dir.join(format!("{name}.wasm"));
    let manifest_path = dir.join(format!("{name}.toml"));
    let unreadable = |file: String, e: std::io::Error| {
        Unit::Unreadable(Rejection {
            file,
            reason: format!("cannot read: {e}"),
        })
    };
    let manifest = match std::fs::read_to_string(&manifest_path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return unreadable(format!("{name}.toml"), e),
    };
    match std::fs::read(&wasm_path) {
        Ok(wasm) => Unit::Present(PluginSource {
            name: name.to_string(),
            wasm,
            manifest,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => match manifest {
            Some(_) => Unit::ManifestOnly,
            None => Unit::Absent,
        },
        Err(e) => unreadable(format!("{name}.wasm"), e),
    }
}

/// The rejection of a manifest without a component.
pub(crate) fn orphan_manifest(name: &str) -> Rejection {
    Rejection {
        file: format!("{name}.toml"),
        reason: format!("a manifest without a component: expected {name}.wasm beside it"),
    }
}

/// Reads every unit of `dir`. Manifests without a component come back as
/// rejections: an operator who dropped one in expects it to do something.
pub fn read_sources(dir: &Path) -> Result<(Vec<PluginSource>, Vec<Rejection>), DirError> {
    let mut sources = Vec::new();
    let mut rejected = Vec::new();
    for name in unit_names(dir)? {
        match read_unit(dir, &name) {
            Unit::Present(source) => sources.push(source),
            Unit::Unreadable(rejection) => rejected.push(rejection),
            Unit::ManifestOnly => rejected.push(orphan_manifest(&name)),
            Unit::Absent => {}
        }
    }
    Ok((sources, rejected))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_visible_wasm_and_toml_files_are_units() {
        assert_eq!(unit_name(Path::new("/p/gate.wasm")), Some("gate"));
        assert_eq!(unit_name(Path::new("/p/gate.toml")), Some("gate"));
        assert_eq!(unit_name(Path::new("/p/.gate.wasm")), None);
        assert_eq!(unit_name(Path::new("/p/gate.wasm.tmp")), None);
        assert_eq!(unit_name(Path::new("/p/gate")), None);
        assert_eq!(unit_name(Path::new("/p/.wasm")), None);
    }
}
