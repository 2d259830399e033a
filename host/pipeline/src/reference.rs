//! The reference policies, compiled from `plugins/` by the build script and
//! embedded in the binary, so a fresh clone evaluates with no set-up.

use handoff_policy::{PluginSource, PolicySet, Runtime};

/// One embedded reference policy.
pub struct EmbeddedPolicy {
    /// Plugin name.
    pub name: &'static str,
    /// The component.
    pub wasm: &'static [u8],
    /// Its default manifest.
    pub manifest: &'static str,
}

/// The reference policies, in the order they ship.
pub const POLICIES: &[EmbeddedPolicy] = &[
    EmbeddedPolicy {
        name: "compliance-limits",
        wasm: include_bytes!(concat!(env!("OUT_DIR"), "/compliance-limits.wasm")),
        manifest: include_str!("../../../plugins/compliance-limits/policy.toml"),
    },
    EmbeddedPolicy {
        name: "confidence-gate",
        wasm: include_bytes!(concat!(env!("OUT_DIR"), "/confidence-gate.wasm")),
        manifest: include_str!("../../../plugins/confidence-gate/policy.toml"),
    },
];

/// The embedded policies as loadable sources.
pub fn sources() -> Vec<PluginSource> {
    POLICIES
        .iter()
        .map(|p| PluginSource {
            name: p.name.to_string(),
            wasm: p.wasm.to_vec(),
            manifest: Some(p.manifest.to_string()),
            // Built into the binary, and so unsigned: a deployment that
            // requires signatures signs its own copies.
            signatures: None,
        })
        .collect()
}

/// The reference policies as one set, generation 1: what `handoff eval`
/// decides with when no policy directory is named.
pub fn set(runtime: &Runtime) -> PolicySet {
    PolicySet::load(runtime, sources(), 1)
}

/// Writes the embedded policies into `dir` as `NAME.wasm` and `NAME.toml`:
/// the starting point for an operator who wants to edit them.
pub fn write_to(dir: &std::path::Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for policy in POLICIES {
        std::fs::write(dir.join(format!("{}.wasm", policy.name)), policy.wasm)?;
        std::fs::write(dir.join(format!("{}.toml", policy.name)), policy.manifest)?;
    }
    Ok(())
}
