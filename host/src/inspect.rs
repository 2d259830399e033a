//! What a component is, for the people who must approve it: its digest, the
//! world it implements, every import with the sandbox's answer to it, and
//! its exports.

use std::fmt;

use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use crate::plugin::{LoadError, check_header, digest_of};
use crate::runtime::Runtime;
use crate::sandbox::{Grant, grant_for};

/// A component's capability and shape report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// SHA-256 of the bytes, as `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: usize,
    /// Whether the component fits the `handoff:policy@0.1.0` world, and if
    /// not, why.
    pub world: Result<(), String>,
    /// Every import, with the sandbox's answer.
    pub imports: Vec<Import>,
    /// Every export: name and kind.
    pub exports: Vec<(String, &'static str)>,
}

/// One import and how the sandbox answers it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Import {
    /// The import name, for example `wasi:cli/stdout@0.2.6`.
    pub name: String,
    /// `instance`, `function`, ...
    pub kind: &'static str,
    /// Granted, stubbed or refused.
    pub grant: Grant,
}

impl Report {
    /// The imports the sandbox refuses.
    pub fn refused(&self) -> impl Iterator<Item = &Import> {
        self.imports.iter().filter(|i| i.grant == Grant::Refused)
    }
}

/// Inspects `bytes` without running any of it.
pub fn inspect(runtime: &Runtime, bytes: &[u8]) -> Result<Report, LoadError> {
    check_header(bytes)?;
    let component = Component::new(runtime.engine(), bytes).map_err(LoadError::Compile)?;
    let engine = runtime.engine();
    let imports = imports_of(&component, engine);
    let ty = component.component_type();
    let exports = ty
        .exports(engine)
        .map(|(name, item)| (name.to_string(), kind_of(&item.ty)))
        .collect();
    let world = runtime
        .linker()
        .instantiate_pre(&component)
        .and_then(crate::bindings::PolicyPre::new)
        .map(|_| ())
        .map_err(|e| format!("{e:#}"));
    Ok(Report {
        digest: digest_of(bytes),
        size: bytes.len(),
        world,
        imports,
        exports,
    })
}

/// Every import of a compiled component, with the sandbox's answer: what a
/// loaded plugin reports to compliance without being compiled again.
pub fn imports_of(component: &Component, engine: &wasmtime::Engine) -> Vec<Import> {
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

fn kind_of(item: &ComponentItem) -> &'static str {
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

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "digest:  {}", self.digest)?;
        writeln!(f, "size:    {} bytes", self.size)?;
        match &self.world {
            Ok(()) => writeln!(f, "world:   handoff:policy/policy@0.1.0 (fits)")?,
            Err(why) => writeln!(
                f,
                "world:   does NOT fit handoff:policy/policy@0.1.0: {why}"
            )?,
        }
        writeln!(f, "imports: {}", self.imports.len())?;
        for import in &self.imports {
            let (verdict, note) = match import.grant {
                Grant::Granted(note) => ("granted", note),
                Grant::Stubbed(note) => ("stubbed", note),
                Grant::Refused => ("REFUSED", "not provided; the component is rejected at load"),
            };
            writeln!(
                f,
                "  {verdict:<8} {:<40} {:<9} {note}",
                import.name, import.kind
            )?;
        }
        writeln!(f, "exports: {}", self.exports.len())?;
        for (name, kind) in &self.exports {
            writeln!(f, "  {name:<40} {kind}")?;
        }
        Ok(())
    }
}
