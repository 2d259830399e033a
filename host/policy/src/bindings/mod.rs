//! The plugin contract as the host sees it, one module per contract version.
//!
//! Each `since_vX_Y_Z` module binds one version of the `handoff:policy`
//! world with `wasmtime::component::bindgen!` and builds the item in that
//! version's form; `exports` calls a plugin in the version it was built
//! for, `lifted` reads what every version returns, and `host` serves the
//! host interface at every version. Everything above this module (checks,
//! decisions, the audit trail) is written once, against the model's types.
//! A new contract version adds a sibling module and a [`Contract`] variant;
//! a plugin records which one it was linked against (as Zed's extension
//! host does with its `since_vX.Y.Z` snapshots).

pub(crate) mod capped;
mod exports;
mod host;
mod lifted;
pub(crate) mod since_v0_1_0;
pub(crate) mod since_v0_2_0;

pub(crate) use capped::OverCap;
pub use exports::Contract;
pub(crate) use exports::{Calls, ContractItem, Exports, PACKAGE};
pub(crate) use lifted::Stages;

use wasmtime::component::Linker;

use crate::sandbox::PluginState;

/// Links the `host` interface at every version this host serves.
pub(crate) fn link_host(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    Contract::ALL
        .into_iter()
        .try_for_each(|contract| host::link(linker, contract.version()))
}

/// Links the `types` instance a component of any served version imports
/// for its type definitions, and nothing else.
pub(crate) fn link_types(linker: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    Contract::ALL.into_iter().try_for_each(|contract| {
        linker.instance(&format!("{PACKAGE}/types@{}", contract.version()))?;
        Ok(())
    })
}
