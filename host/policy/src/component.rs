//! What a component is before it becomes a plugin: its identity (a SHA-256
//! digest), whether its bytes are a component at all, and every import with
//! the sandbox's answer to it. Loading and `inspect` both start here.

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use crate::bindings::{Contract, PACKAGE};
use crate::compile::CompileError;
use crate::sandbox::{Grant, grant_for};

/// Why bytes are not a component the host can compile.
#[derive(Debug, thiserror::Error)]
pub enum ComponentError {
    /// The bytes are not WebAssembly at all.
    #[error("not a WebAssembly file (it does not start with the `\\0asm` magic bytes)")]
    NotWasm,
    /// A core module, which cannot implement a WIT world.
    #[error(
        "a core WebAssembly module, not a component; build the policy with \
         `cargo build --target wasm32-wasip2` (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule,
    /// The component failed to compile, or its compile went over budget.
    #[error(transparent)]
    Compile(#[from] CompileError),
}

/// One import and how the sandbox answers it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Import {
    /// The import name, for example `wasi:cli/stdout@0.2.6`.
    pub name: String,
    /// `instance`, `function`, ...
    pub kind: &'static str,
    /// Granted, stubbed, denied or refused.
    pub grant: Grant,
}

/// SHA-256 of `bytes`: the key of everything that identifies a component.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// `sha256:<hex>` of `bytes`: the identity every decision records.
pub fn digest_of(bytes: &[u8]) -> String {
    digest_text(&sha256(bytes))
}

/// `sha256:<hex>` of an already computed SHA-256.
pub(crate) fn digest_text(sha: &[u8; 32]) -> String {
    format!("sha256:{}", hex::encode(sha))
}

/// Tells a core module and a non-wasm file apart from a component before
/// compiling, so the error says what the file actually is.
pub(crate) fn check_header(bytes: &[u8]) -> Result<(), ComponentError> {
    const MAGIC: &[u8] = b"\0asm";
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err(ComponentError::NotWasm);
    }
    // Bytes 4..8: version and layer. Layer 0 is a core module, 1 a component.
    if bytes[6..8] == [0, 0] {
        return Err(ComponentError::CoreModule);
    }
    Ok(())
}

/// Every import of a compiled component, with the sandbox's answer: what a
/// loaded plugin reports to compliance without being compiled again.
pub(crate) fn imports_of(component: &Component, engine: &Engine) -> Vec<Import> {
    component
        .component_type()
        .imports(engine)
        .map(|(name, item)| Import {
            name: name.to_string(),
            kind: kind_of(&item.ty),
            grant: grant_for(name),
        })
        .collect()
}

/// The contract version the component was built for, from the
/// `handoff:policy` interfaces it imports (every component of the world
/// imports at least `types`), when it is one version and one this host
/// serves. A component of another version is refused however closely its
/// exports match: the meaning of its verdicts may differ.
pub(crate) fn check_contract(imports: &[Import]) -> Result<Contract, String> {
    let prefix = format!("{PACKAGE}/");
    let versions: BTreeSet<&str> = imports
        .iter()
        .filter_map(|i| i.name.strip_prefix(&prefix))
        .map(|rest| rest.split_once('@').map_or("(none)", |(_, v)| v))
        .collect();
    if versions.is_empty() {
        return Err(format!(
            "it imports nothing of {PACKAGE}, so it was not built for this contract; \
             this host serves {}",
            Contract::served()
        ));
    }
    let only = match versions.iter().collect::<Vec<_>>().as_slice() {
        [version] => Contract::of_version(version),
        _ => None,
    };
    only.ok_or_else(|| {
        let found: Vec<String> = versions.iter().map(|v| format!("{PACKAGE}@{v}")).collect();
        format!(
            "it was built for {}; this host serves {}",
            found.join(" and "),
            Contract::served()
        )
    })
}

/// The imports in `imports` that the sandbox refuses, by name.
pub(crate) fn refused(imports: &[Import]) -> impl Iterator<Item = &Import> {
    imports.iter().filter(|i| i.grant == Grant::Refused)
}

/// The kind of a component item, as a reviewer reads it.
pub(crate) fn kind_of(item: &ComponentItem) -> &'static str {
    match item {
        ComponentItem::ComponentFunc(_) => "function",
        ComponentItem::CoreFunc(_) => "core function",
        ComponentItem::Module(_) => "module",
        ComponentItem::Component(_) => "component",
        ComponentItem::ComponentInstance(_) => "instance",
        ComponentItem::Type(_) => "type",
        ComponentItem::Resource(_) => "resource",
    }
}
