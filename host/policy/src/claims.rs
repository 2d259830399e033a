//! One policy, one file.
//!
//! A plugin is named in decisions and the audit trail by its file name, but
//! it declares its own name in its metadata. Cargo writes `pii_guard.wasm`
//! for a policy that calls itself `pii-guard`; copied beside `pii-guard.wasm`
//! the same policy would decide twice under two names. Two files claiming one
//! policy are therefore refused, and a plugin whose file name or missing
//! manifest will surprise its author loads with a warning that says so.
//!
//! Running one component twice on purpose (a generic phrase gate configured
//! once for PII and once for toxicity) is declared in each extra file's
//! manifest with `policy = "NAME"`: such a file is an instance, not a claim.

/// Whether `plugin` claims its policy's name, rather than being a declared
/// instance of it.
///
/// A shadow never claims: it pilots a version of a policy beside the one
/// that enforces it.
pub(crate) fn claims_name(plugin: &Plugin) -> bool {
    plugin.manifest.policy.is_none() && plugin.manifest.mode == crate::manifest::Mode::Enforce
}

use crate::plugin::Plugin;
use crate::source::Rejection;

/// What an operator should know about a plugin that loaded: nothing wrong
/// enough to refuse it, but likely not what its author meant.
pub(crate) fn warnings(plugin: &Plugin, has_manifest: bool) -> Vec<String> {
    let mut warnings = Vec::new();
    if !has_manifest {
        warnings.push(format!(
            "no manifest ({}.toml): it runs with the default limits and configuration, and no \
             fixture tests it",
            plugin.name
        ));
    }
    if plugin.info.name != *plugin.name && claims_name(plugin) {
        warnings.push(format!(
            "its file is {}.wasm but the policy calls itself `{}`: decisions name it `{}`; \
             `handoff build` names the file after the policy",
            plugin.name, plugin.info.name, plugin.name
        ));
    }
    warnings
}

/// The refusal of `plugin`, whose claimed name `holder` already has.
pub(crate) fn duplicate(plugin: &Plugin, holder: &str) -> Rejection {
    Rejection {
        file: format!("{}.wasm", plugin.name),
        reason: format!(
            "declares policy `{}`, which {holder}.wasm also declares: one policy, one file; \
             remove one of them (cargo writes `{}.wasm` with underscores, `handoff build` \
             names the file after the policy), or declare a deliberate second instance with \
             `policy = \"{}\"` in its manifest",
            plugin.info.name,
            plugin.info.name.replace('-', "_"),
            plugin.info.name
        ),
    }
}

/// Whether `challenger` should take a claimed name from `holder` when
/// neither serves yet: the file named after the policy wins, then the first
/// file name.
pub(crate) fn prefers(challenger: &Plugin, holder: &Plugin) -> bool {
    let exact = |p: &Plugin| *p.name == *p.info.name;
    exact(challenger) && !exact(holder)
}

/// Keeps one plugin per claimed policy name, refusing the others.
pub(crate) fn refuse_duplicates(loaded: Vec<Plugin>) -> (Vec<Plugin>, Vec<Rejection>) {
    let mut kept: Vec<Plugin> = Vec::with_capacity(loaded.len());
    let mut refused = Vec::new();
    for plugin in loaded {
        let holder = kept
            .iter()
            .position(|k| claims_name(k) && k.info.name == plugin.info.name);
        match holder.filter(|_| claims_name(&plugin)) {
            None => kept.push(plugin),
            Some(at) if prefers(&plugin, &kept[at]) => {
                let displaced = std::mem::replace(&mut kept[at], plugin);
                refused.push(duplicate(&displaced, &kept[at].name));
            }
            Some(at) => refused.push(duplicate(&plugin, &kept[at].name)),
        }
    }
    (kept, refused)
}
