//! Loading one plugin from its source, the way every path into a running
//! host does it (start, reload, replay candidates): parse the manifest,
//! compile and trial-run the component, then pass every fixture. Only a
//! plugin that does all of that may serve.

use std::time::Instant;

use crate::fixtures::{self, FixtureFailure};
use crate::manifest::{Manifest, ManifestError};
use crate::plugin::{Plugin, PluginError};
use crate::runtime::Runtime;
use crate::source::{PluginSource, Rejection};

/// Why a plugin did not load. Each message says what to fix.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The component could not become a plugin.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// The manifest was refused.
    #[error("invalid manifest: {0}")]
    Manifest(#[from] ManifestError),
    /// A self-test case in the manifest did not get its expected verdict.
    #[error(transparent)]
    Fixture(#[from] FixtureFailure),
}

impl LoadError {
    /// Whether the manifest, rather than the component, is at fault: a
    /// refused configuration or a failing fixture is the manifest's doing.
    fn blames_manifest(&self) -> bool {
        matches!(
            self,
            LoadError::Manifest(_)
                | LoadError::Fixture(_)
                | LoadError::Plugin(PluginError::Config(_))
        )
    }
}

/// Loads one source; on failure, names the file at fault and why.
pub(crate) fn load(runtime: &Runtime, source: &PluginSource) -> Result<Plugin, Rejection> {
    let started = Instant::now();
    let loaded = (|| {
        let manifest = match &source.manifest {
            Some(text) => Manifest::parse(text)?,
            None => Manifest::default(),
        };
        let mut plugin = Plugin::compile(runtime, &source.name, &source.wasm, manifest)?;
        fixtures::check(&plugin)?;
        plugin.reset_stats();
        Ok::<_, LoadError>(plugin)
    })();
    match loaded {
        Ok(mut plugin) => {
            plugin.load_ms = started.elapsed().as_secs_f64() * 1000.0;
            Ok(plugin)
        }
        Err(error) => {
            let extension = if error.blames_manifest() {
                "toml"
            } else {
                "wasm"
            };
            Err(Rejection {
                file: format!("{}.{extension}", source.name),
                reason: error.to_string(),
            })
        }
    }
}
