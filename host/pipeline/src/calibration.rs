//! What the feedback report's calibration may change: every `[calibrate]`
//! entry of the policies, with the threshold the manifest sets now.

use handoff_dispatch::CalibrationTarget;
use handoff_policy::manifest::Manifest;
use handoff_policy::{LoadLimits, PolicySet, read_sources};

/// The calibration targets of `manifests`, each a plugin name and its
/// manifest.
pub fn targets<'a>(
    manifests: impl IntoIterator<Item = (&'a str, &'a Manifest)>,
) -> Vec<CalibrationTarget> {
    manifests
        .into_iter()
        .flat_map(|(plugin, manifest)| {
            manifest
                .calibrate
                .iter()
                .map(move |(trigger, key)| CalibrationTarget {
                    plugin: plugin.to_string(),
                    trigger: trigger.clone(),
                    config_key: key.clone(),
                    current: manifest.config.get(key).and_then(|v| v.parse().ok()),
                })
        })
        .collect()
}

/// The targets of the policies serving in `set`.
pub fn targets_of_set(set: &PolicySet) -> Vec<CalibrationTarget> {
    targets(set.plugins().iter().map(|p| (&*p.name, &p.manifest)))
}

/// The targets of the manifests in a policy directory, read without
/// compiling anything: how `handoff report` names keys without a running
/// host. A manifest that does not parse is skipped with a warning; the
/// report is still worth having.
pub fn targets_in_dir(dir: &std::path::Path) -> Vec<CalibrationTarget> {
    let sources = match read_sources(dir, &LoadLimits::default()) {
        Ok((sources, _)) => sources,
        Err(error) => {
            tracing::warn!(%error, "cannot read the policies for calibration keys");
            return Vec::new();
        }
    };
    let parsed: Vec<(String, Manifest)> = sources
        .into_iter()
        .filter_map(|source| {
            let text = source.manifest?;
            match Manifest::parse(&text) {
                Ok(manifest) => Some((source.name, manifest)),
                Err(error) => {
                    tracing::warn!(plugin = source.name, %error, "manifest skipped for calibration");
                    None
                }
            }
        })
        .collect();
    targets(
        parsed
            .iter()
            .map(|(name, manifest)| (name.as_str(), manifest)),
    )
}
