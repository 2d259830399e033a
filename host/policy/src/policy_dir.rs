//! The layout of a policy directory: `NAME.wasm` with an optional sidecar
//! `NAME.toml` and optional signatures `NAME.sig`, together one unit.
//!
//! Hidden files (a leading `.`) and other extensions are never units:
//! editors and atomic writers stage their temporaries under such names, and
//! a half-written temporary must never be mistaken for a policy. Unit files
//! are read only if they are regular files within the load limits
//! ([`LoadLimits`]): a symlink to a device, a FIFO or an oversized file is
//! rejected after reading at most the limit.

use std::collections::BTreeSet;
use std::path::Path;

use handoff_trust::MAX_SIGNATURE_FILE_BYTES;

use crate::compile::LoadLimits;
use crate::files::{FileError, read_regular};
use crate::source::{PluginSource, Rejection};

/// Why a policy directory could not be read at all.
#[derive(Debug, thiserror::Error)]
#[error("cannot read policy directory {dir}: {error}")]
pub struct DirError {
    /// The directory.
    pub dir: String,
    /// The I/O error: in the message, not a separate cause (a field named
    /// `source` would be one), so that it is printed once.
    pub error: std::io::Error,
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
/// visible `.wasm`, `.toml` or `.sig` file.
pub(crate) fn unit_name(path: &Path) -> Option<&str> {
    let stem = path.file_stem()?.to_str()?;
    let ext = path.extension()?.to_str()?;
    (!stem.is_empty() && !stem.starts_with('.') && matches!(ext, "wasm" | "toml" | "sig"))
        .then_some(stem)
}

/// Every unit name in `dir`, sorted.
pub(crate) fn unit_names(dir: &Path) -> Result<BTreeSet<String>, DirError> {
    let dir_error = |error| DirError {
        dir: dir.display().to_string(),
        error,
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

/// Reads unit `name` of `dir`, within `limits`.
pub(crate) fn read_unit(dir: &Path, name: &str, limits: &LoadLimits) -> Unit {
    let unreadable = |file: String, e: FileError| {
        Unit::Unreadable(Rejection {
            file,
            reason: e.to_string(),
        })
    };
    let manifest = match read_text(dir, &format!("{name}.toml"), limits.max_manifest_bytes) {
        Ok(text) => text,
        Err(rejection) => return Unit::Unreadable(rejection),
    };
    let signatures = match read_text(dir, &format!("{name}.sig"), MAX_SIGNATURE_FILE_BYTES) {
        Ok(text) => text,
        Err(rejection) => return Unit::Unreadable(rejection),
    };
    let wasm_file = format!("{name}.wasm");
    match read_regular(&dir.join(&wasm_file), limits.max_component_bytes) {
        Ok(wasm) => Unit::Present(PluginSource {
            name: name.to_string(),
            wasm,
            manifest,
            signatures,
        }),
        Err(FileError::NotFound) => match manifest {
            Some(_) => Unit::ManifestOnly,
            None => Unit::Absent,
        },
        Err(e) => unreadable(wasm_file, e),
    }
}

/// The text of `dir/file` within `cap` bytes; `None` when there is no such
/// file, a rejection naming it when it cannot be read or is not UTF-8.
fn read_text(dir: &Path, file: &str, cap: usize) -> Result<Option<String>, Rejection> {
    let refuse = |reason: String| Rejection {
        file: file.to_string(),
        reason,
    };
    match read_regular(&dir.join(file), cap) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| refuse("not UTF-8 text".into())),
        Err(FileError::NotFound) => Ok(None),
        Err(e) => Err(refuse(e.to_string())),
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
pub fn read_sources(
    dir: &Path,
    limits: &LoadLimits,
) -> Result<(Vec<PluginSource>, Vec<Rejection>), DirError> {
    let mut sources = Vec::new();
    let mut rejected = Vec::new();
    for name in unit_names(dir)? {
        match read_unit(dir, &name, limits) {
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
        assert_eq!(unit_name(Path::new("/p/gate.sig")), Some("gate"));
        assert_eq!(unit_name(Path::new("/p/.gate.wasm")), None);
        assert_eq!(unit_name(Path::new("/p/gate.wasm.tmp")), None);
        assert_eq!(unit_name(Path::new("/p/gate")), None);
        assert_eq!(unit_name(Path::new("/p/.wasm")), None);
    }
}
