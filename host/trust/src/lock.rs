//! The lock file: the exact versions allowed to serve, unit by unit, as
//! `handoff lock DIR` writes them from a directory that was reviewed. With
//! a lock, a version whose component or manifest digest is not the one
//! pinned for its name never serves, however it is signed.
//!
//! ```toml
//! version = 1
//! [units.confidence-gate]
//! component = "sha256:…"
//! manifest = "sha256:…"      # absent for a unit without a manifest
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::statement::UnitDigests;

/// The largest lock file read.
const MAX_LOCK_BYTES: u64 = 1024 * 1024;

/// Why a lock file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// It could not be read.
    #[error("cannot read lock file {file}: {source}")]
    Io {
        /// The file.
        file: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// It is not a lock file.
    #[error("lock file {file}: {reason}")]
    Invalid {
        /// The file.
        file: String,
        /// What is wrong.
        reason: String,
    },
}

/// One pinned unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedUnit {
    /// The component's digest.
    pub component: String,
    /// The manifest's digest, absent for a unit without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
}

/// Every pinned unit, by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockFile {
    /// The format version, 1.
    pub version: u32,
    /// The units, by name.
    #[serde(default)]
    pub units: BTreeMap<String, LockedUnit>,
}

impl LockFile {
    /// A lock pinning exactly `units`.
    pub fn of(units: impl IntoIterator<Item = (String, UnitDigests)>) -> LockFile {
        LockFile {
            version: 1,
            units: units
                .into_iter()
                .map(|(name, d)| {
                    (
                        name,
                        LockedUnit {
                            component: d.component,
                            manifest: d.manifest,
                        },
                    )
                })
                .collect(),
        }
    }

    /// Reads the lock file `file`.
    pub fn from_file(file: &Path) -> Result<LockFile, LockError> {
        use std::io::Read;
        let name = file.display().to_string();
        let mut text = String::new();
        std::fs::File::open(file)
            .and_then(|f| f.take(MAX_LOCK_BYTES + 1).read_to_string(&mut text))
            .map_err(|source| LockError::Io {
                file: name.clone(),
                source,
            })?;
        let invalid = |reason: String| LockError::Invalid {
            file: name.clone(),
            reason,
        };
        if text.len() as u64 > MAX_LOCK_BYTES {
            return Err(invalid(format!("over {MAX_LOCK_BYTES} bytes")));
        }
        let lock: LockFile = toml::from_str(&text).map_err(|e| invalid(e.message().to_string()))?;
        if lock.version != 1 {
            return Err(invalid(format!(
                "format version {} is not known here (expected 1)",
                lock.version
            )));
        }
        Ok(lock)
    }

    /// The file's text.
    pub fn to_text(&self) -> String {
        let body = toml::to_string(self).unwrap_or_default();
        format!(
            "# Written by `handoff lock`: the exact versions allowed to serve. A unit\n\
             # not listed here, or whose digests differ, is refused.\n{body}"
        )
    }

    /// Why unit `name` with `digests` may not serve, if it may not.
    pub fn refuses(&self, name: &str, digests: &UnitDigests) -> Option<String> {
        let Some(pinned) = self.units.get(name) else {
            return Some(format!("`{name}` is not in the lock file"));
        };
        if pinned.component != digests.component {
            return Some(format!(
                "{name}.wasm is {}, but the lock file pins {}",
                digests.component, pinned.component
            ));
        }
        if pinned.manifest != digests.manifest {
            return Some(format!(
                "{name}.toml is {}, but the lock file pins {}",
                digests.manifest_text(),
                pinned.manifest.as_deref().unwrap_or("none")
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lock_pins_names_and_both_digests() {
        let gate = UnitDigests::of(b"gate", Some("m"));
        let lock = LockFile::of([("gate".to_string(), gate.clone())]);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.lock");
        std::fs::write(&file, lock.to_text()).unwrap();
        let back = LockFile::from_file(&file).unwrap();
        assert_eq!(back, lock);
        assert_eq!(back.refuses("gate", &gate), None);
        assert!(
            back.refuses("other", &gate)
                .unwrap()
                .contains("not in the lock file")
        );
        let edited = UnitDigests::of(b"gate", Some("m2"));
        assert!(
            back.refuses("gate", &edited)
                .unwrap()
                .contains("gate.toml is")
        );
        let rebuilt = UnitDigests::of(b"gate2", Some("m"));
        assert!(
            back.refuses("gate", &rebuilt)
                .unwrap()
                .contains("gate.wasm is")
        );
        std::fs::write(&file, "version = 2\n").unwrap();
        assert!(LockFile::from_file(&file).is_err());
    }
}
