//! Changes the host makes to its own policy directory: promoting a shadow
//! version, and applying an approved configuration change. Each is one
//! validated, atomic step: every new version is loaded and tested before a
//! file is touched, the files are written and the set swapped under the
//! reload lock (so a watcher event in between sees either the old files or
//! the new, never a mix), one generation covers the whole change, and a
//! refusal puts the old files back.

use std::path::Path;

use handoff_model::{LifecycleEvent, piloted};

use super::live::LivePolicies;
use crate::loader;
use crate::manifest::Mode;
use crate::policy_dir::{self, Unit};
use crate::source::PluginSource;

/// Why a change to the policy directory was not made. Nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// The request names something that cannot be changed that way.
    #[error("{0}")]
    Invalid(String),
    /// The plugin named does not serve.
    #[error("no plugin `{0}` serves")]
    NotServing(String),
    /// A new version failed validation; the old one keeps serving.
    #[error("the new version of {file} was refused, and the serving version kept: {reason}")]
    Refused {
        /// The file at fault.
        file: String,
        /// Why.
        reason: String,
    },
    /// The directory could not be written.
    #[error("cannot write the policy directory: {0}")]
    Io(#[from] std::io::Error),
}

/// One unit's files after a change: `None` removes the unit.
struct Write {
    name: String,
    files: Option<PluginSource>,
}

/// What a promotion did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Promotion {
    /// The enforcing plugin.
    pub plugin: String,
    /// The shadow name the replaced version now runs under.
    pub shadow: String,
    /// The generation the promoted version first enforces in.
    pub generation: u64,
}

impl LivePolicies {
    /// Promotes shadow version `shadow` (`NAME@LABEL`) to enforce as
    /// `NAME`, in one generation; the version that enforced goes on in
    /// shadow as `NAME@LABEL`, so a pilot now compares the other way and
    /// promoting `NAME@LABEL` again is the rollback. The change is recorded
    /// with `by`.
    pub fn promote(&self, shadow: &str, by: &str) -> Result<Promotion, ChangeError> {
        let base = piloted(shadow);
        if base == shadow {
            return Err(ChangeError::Invalid(format!(
                "`{shadow}` is not a pilot version: promote NAME@LABEL, the shadow version"
            )));
        }
        // The lock first: what serves cannot change while it is examined.
        let mut registry = self.registry();
        let current = self.current();
        let candidate = current
            .shadows()
            .iter()
            .chain(current.disabled())
            .find(|p| &*p.name == shadow && p.manifest.mode == Mode::Shadow)
            .ok_or_else(|| ChangeError::NotServing(shadow.to_string()))?;
        let previous_digest = current.get(base).map(|p| p.digest.clone());
        let candidate_digest = candidate.digest.clone();
        let promoted = self
            .unit_files(shadow)?
            .ok_or_else(|| ChangeError::NotServing(shadow.to_string()))?;
        if crate::component::digest_of(&promoted.wasm) != candidate_digest {
            return Err(ChangeError::Invalid(format!(
                "{shadow}.wasm changed on disk since it started serving in shadow; let the \
                 reload finish and pilot the new version first"
            )));
        }
        let demoted = self.unit_files(base)?;
        let mut writes = vec![Write {
            name: base.to_string(),
            files: Some(PluginSource {
                name: base.to_string(),
                manifest: Some(with_mode(promoted.manifest.as_deref(), Mode::Enforce)?),
                wasm: promoted.wasm,
                // The manifest is rewritten, which voids its signatures.
                signatures: None,
            }),
        }];
        writes.push(Write {
            name: shadow.to_string(),
            files: match demoted {
                Some(old) => Some(PluginSource {
                    name: shadow.to_string(),
                    manifest: Some(with_mode(old.manifest.as_deref(), Mode::Shadow)?),
                    wasm: old.wasm,
                    signatures: None,
                }),
                None => None,
            },
        });
        let generation = self.apply(&mut registry, writes)?;
        let event = LifecycleEvent::Promoted {
            plugin: base.to_string(),
            shadow: shadow.to_string(),
            digest: candidate_digest,
            previous_digest,
            generation,
            by: by.to_string(),
        };
        tracing::info!(%event, "policy promotion");
        self.sink().record(&event);
        Ok(Promotion {
            plugin: base.to_string(),
            shadow: shadow.to_string(),
            generation,
        })
    }

    /// Sets `[config] key = value` in serving plugin `plugin`'s manifest
    /// (its comments and layout kept) and serves the result as a new
    /// version, validated like any reload; with `shadow`, writes it as the
    /// shadow version `plugin@calibrated` instead, to pilot before it
    /// enforces. Returns the name that carries the change and its first
    /// generation.
    pub fn set_config(
        &self,
        plugin: &str,
        key: &str,
        value: f64,
        shadow: bool,
    ) -> Result<(String, u64), ChangeError> {
        let mut registry = self.registry();
        let source = self
            .unit_files(plugin)?
            .ok_or_else(|| ChangeError::NotServing(plugin.to_string()))?;
        let mut document = parse(source.manifest.as_deref().unwrap_or_default())?;
        let config = document
            .entry("config")
            .or_insert_with(toml_edit::table)
            .as_table_like_mut()
            .ok_or_else(|| {
                ChangeError::Invalid(format!("{plugin}.toml: `config` is not a table"))
            })?;
        config.insert(key, toml_edit::value(value));
        let (name, mode) = if shadow {
            (format!("{plugin}@calibrated"), Mode::Shadow)
        } else {
            (plugin.to_string(), Mode::Enforce)
        };
        let manifest = with_mode(Some(&document.to_string()), mode)?;
        let writes = vec![Write {
            name: name.clone(),
            files: Some(PluginSource {
                name: name.clone(),
                wasm: source.wasm,
                manifest: Some(manifest),
                signatures: None,
            }),
        }];
        let generation = self.apply(&mut registry, writes)?;
        Ok((name, generation))
    }

    /// Validates every written unit, then writes them all and reloads
    /// them as one generation; on any refusal, restores what was there.
    fn apply(
        &self,
        registry: &mut super::live::Registry,
        writes: Vec<Write>,
    ) -> Result<u64, ChangeError> {
        if let Some(generation) = registry.fleet() {
            return Err(ChangeError::Invalid(format!(
                "this node serves the fleet's policy generation {generation}, so a change made \
                 here alone would split the fleet: make it in the policy directory you publish \
                 from and run `handoff publish`"
            )));
        }
        for write in &writes {
            if let Some(source) = &write.files
                && let Err(mut rejection) = loader::load(self.runtime(), source)
            {
                if rejection.file.ends_with(".sig") {
                    // The host rewrote the manifest, and no one signed
                    // what it wrote: say so, and what to do instead.
                    rejection.reason = format!(
                        "this change rewrites {}.toml, and a host-made manifest carries no \
                         signature: sign the new files and put them in the policy directory \
                         instead ({})",
                        write.name, rejection.reason
                    );
                }
                // Refused before any file changed, and recorded like any
                // refused version: the audit trail shows the attempt too.
                let event = LifecycleEvent::Rejected {
                    plugin: write.name.clone(),
                    file: rejection.file.clone(),
                    reason: rejection.reason.clone(),
                    digest: Some(crate::component::digest_of(&source.wasm)),
                    still_serving: self.current().get(&write.name).map(|p| p.digest.clone()),
                };
                tracing::warn!(%event, "policy change refused");
                self.sink().record(&event);
                return Err(ChangeError::Refused {
                    file: rejection.file,
                    reason: rejection.reason,
                });
            }
        }
        let dir = self.dir();
        // What was there, to put back on a refusal; a unit that cannot be
        // read stops the change before anything is written.
        let before = writes
            .iter()
            .map(|write| Ok((write.name.clone(), self.unit_files(&write.name)?)))
            .collect::<Result<Vec<_>, ChangeError>>()?;
        let names: std::collections::BTreeSet<String> =
            writes.iter().map(|w| w.name.clone()).collect();
        let applied = match writes
            .iter()
            .try_for_each(|write| put(dir, &write.name, write.files.as_ref()))
        {
            Err(error) => Err(ChangeError::Io(error)),
            Ok(()) => {
                let outcome = self.reload_locked(registry, names.clone());
                match outcome.generation {
                    Some(generation) if outcome.rejected.is_empty() => Ok(generation),
                    _ => Err(ChangeError::Refused {
                        file: outcome.rejected.join(", "),
                        reason: "the reload refused it (see the rejected event in the audit log)"
                            .into(),
                    }),
                }
            }
        };
        if applied.is_err() {
            for (name, files) in &before {
                if let Err(error) = put(dir, name, files.as_ref()) {
                    tracing::error!(plugin = name, %error, "could not restore a unit's files");
                }
            }
            self.reload_locked(registry, names);
        }
        applied
    }

    /// Unit `name`'s files as the directory holds them now: none when the
    /// unit is absent (or only a manifest), a refusal when it is there but
    /// cannot be read.
    fn unit_files(&self, name: &str) -> Result<Option<PluginSource>, ChangeError> {
        match policy_dir::read_unit(self.dir(), name, self.runtime().limits()) {
            Unit::Present(source) => Ok(Some(source)),
            Unit::Absent | Unit::ManifestOnly => Ok(None),
            Unit::Unreadable(rejection) => Err(ChangeError::Refused {
                file: rejection.file,
                reason: rejection.reason,
            }),
        }
    }
}

/// Writes (or, with `None`, removes) unit `name`'s files, each through a
/// hidden temporary renamed into place, so a reader never sees half a file.
/// Signatures the new files do not carry are removed: they covered files
/// that are gone.
fn put(dir: &Path, name: &str, files: Option<&PluginSource>) -> std::io::Result<()> {
    let wasm = dir.join(format!("{name}.wasm"));
    let toml = dir.join(format!("{name}.toml"));
    let sig = dir.join(format!("{name}.sig"));
    let Some(files) = files else {
        for path in [wasm, toml, sig] {
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
        return Ok(());
    };
    let replace = |path: &Path, bytes: &[u8]| -> std::io::Result<()> {
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default();
        let staging = dir.join(format!(".{file_name}.change"));
        std::fs::write(&staging, bytes)?;
        std::fs::File::open(&staging)?.sync_all()?;
        std::fs::rename(&staging, path)
    };
    let remove = |path: &Path| match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    };
    match &files.signatures {
        Some(text) => replace(&sig, text.as_bytes())?,
        None => remove(&sig)?,
    }
    match &files.manifest {
        Some(text) => replace(&toml, text.as_bytes())?,
        None => remove(&toml)?,
    }
    replace(&wasm, &files.wasm)
}

fn parse(text: &str) -> Result<toml_edit::DocumentMut, ChangeError> {
    text.parse::<toml_edit::DocumentMut>()
        .map_err(|e| ChangeError::Invalid(format!("the manifest does not parse: {e}")))
}

/// `manifest` (or an empty one) with its top-level `mode` set, comments
/// and layout kept.
fn with_mode(manifest: Option<&str>, mode: Mode) -> Result<String, ChangeError> {
    let mut document = parse(manifest.unwrap_or_default())?;
    let name = match mode {
        Mode::Enforce => "enforce",
        Mode::Shadow => "shadow",
    };
    document["mode"] = toml_edit::value(name);
    Ok(document.to_string())
}
