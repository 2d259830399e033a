//! What a component is, for the people who must approve it: its digest, the
//! world it implements, every import with the sandbox's answer to it, and
//! its exports.

use std::fmt;

use crate::bindings::{Contract, Exports};
use crate::component::{
    ComponentError, Import, check_contract, check_header, digest_of, imports_of, kind_of, refused,
    sha256,
};
use crate::runtime::Runtime;
use crate::sandbox::Grant;

/// A component's capability and shape report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ComponentReport {
    /// SHA-256 of the bytes, as `sha256:<hex>`.
    pub digest: String,
    /// Size in bytes.
    pub size: usize,
    /// The contract version whose world the component fits, or why it
    /// fits none this host serves.
    pub world: Result<Contract, String>,
    /// Every import, with the sandbox's answer.
    pub imports: Vec<Import>,
    /// Every export: name and kind.
    pub exports: Vec<(String, &'static str)>,
}

impl ComponentReport {
    /// The imports the sandbox refuses.
    pub fn refused(&self) -> impl Iterator<Item = &Import> {
        refused(&self.imports)
    }
}

/// Inspects `bytes` without running any of it.
pub fn inspect(runtime: &Runtime, bytes: &[u8]) -> Result<ComponentReport, ComponentError> {
    check_header(bytes)?;
    let (component, _) = runtime.compile(bytes, &sha256(bytes))?;
    let engine = runtime.engine();
    let imports = imports_of(&component, engine);
    let ty = component.component_type();
    let exports = ty
        .exports(engine)
        .map(|(name, item)| (name.to_string(), kind_of(&item.ty)))
        .collect();
    let world = check_contract(&imports).and_then(|contract| {
        runtime
            .linker()
            .instantiate_pre(&component)
            .and_then(Exports::new)
            .map(|_| contract)
            .map_err(|e| format!("{e:#}"))
    });
    Ok(ComponentReport {
        digest: digest_of(bytes),
        size: bytes.len(),
        world,
        imports,
        exports,
    })
}

impl fmt::Display for ComponentReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "digest:  {}", self.digest)?;
        writeln!(f, "size:    {} bytes", self.size)?;
        match &self.world {
            Ok(contract) => writeln!(
                f,
                "world:   handoff:policy/policy@{} (fits)",
                contract.version()
            )?,
            Err(why) => writeln!(f, "world:   does NOT fit {}: {why}", Contract::served())?,
        }
        writeln!(f, "imports: {}", self.imports.len())?;
        for import in &self.imports {
            let (verdict, note) = match import.grant {
                Grant::Granted(note) => ("granted", note),
                Grant::Stubbed(note) => ("stubbed", note),
                Grant::Denied(note) => ("denied", note),
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
