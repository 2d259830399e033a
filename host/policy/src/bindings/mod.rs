//! The plugin contract as the host sees it, one module per contract version.
//!
//! Each `since_vX_Y_Z` module binds one version of the `handoff:policy`
//! world with `wasmtime::component::bindgen!` and converts between its types
//! and the version-free [`handoff_model`] types, so that everything above
//! this module (checks, decisions, the audit trail) is written once. A new
//! contract version adds a sibling module; a plugin then records which one
//! it was linked against (as Zed's extension host does with its
//! `since_vX.Y.Z` snapshots).

pub(crate) mod capped;
pub(crate) mod since_v0_1_0;

pub(crate) use capped::OverCap;
