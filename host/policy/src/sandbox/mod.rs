//! What a plugin's sandbox contains: the host interface and the minimum WASI
//! a `wasm32-wasip2` guest links against, and nothing else.
//!
//! A store's data is a [`PluginState`]. It carries the plugin's configuration
//! (for `config-get`), its limits (enforced through [`ResourceLimiter`]),
//! the bounded [`Capture`] of everything it writes, and a WASI context with
//! no arguments, no environment, no preopened directories, no network and an
//! empty stdin.

mod capture;
mod grants;
mod stubs;

pub(crate) use capture::Captured;
pub use grants::Grant;
pub(crate) use grants::{grant_for, new_linker};
pub(crate) use stubs::{Entropy, seed_for};

use capture::Capture;

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{HostWallClock, WasiCtx, WasiCtxView, WasiView};

use crate::limits::Limits;

/// A clock stopped at the Unix epoch. Verdicts must not depend on time;
/// a plugin that reads the clock anyway gets the same answer on replay.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> std::time::Duration {
        std::time::Duration::from_nanos(1)
    }
    fn now(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
}

/// Core-instance tables and memories a component may create: a Rust guest
/// needs one memory and a handful of tables.
const MAX_TABLES: usize = 64;
const MAX_MEMORIES: usize = 8;

/// The data of one plugin's store.
pub(crate) struct PluginState {
    config: Arc<BTreeMap<String, String>>,
    limits: Limits,
    capture: Capture,
    /// Largest linear memory granted so far, in bytes.
    peak_memory: usize,
    /// Set when a growth past the limits was refused: the trap that follows
    /// is then a `memory-limit` fault.
    limit_refused: Option<String>,
    /// What `wasi:random` draws from; reseeded from each item.
    entropy: Entropy,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl PluginState {
    /// A fresh sandbox with a plugin's configuration and limits.
    pub(crate) fn new(config: Arc<BTreeMap<String, String>>, limits: Limits) -> Self {
        let capture = Capture::new(limits.log_bytes);
        // The builder starts empty: no args, env or preopens, and stdin reads
        // as closed. The wall clock is frozen; the monotonic clock and
        // randomness are the sandbox's own (`stubs`), so a plugin that
        // reaches for either still decides deterministically.
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stdout(capture.clone())
            .stderr(capture.clone())
            .wall_clock(FrozenClock)
            .build();
        PluginState {
            config,
            limits,
            capture,
            peak_memory: 0,
            limit_refused: None,
            entropy: Entropy::seeded(0),
            wasi,
            table: ResourceTable::new(),
        }
    }

    /// Starts the random sequence for the item about to be decided.
    pub(crate) fn reseed(&mut self, seed: u64) {
        self.entropy = Entropy::seeded(seed);
    }

    /// Everything the plugin wrote, bounded.
    pub(crate) fn capture(&self) -> &Capture {
        &self.capture
    }

    /// The plugin's configuration, as `config-get` serves it.
    pub(crate) fn config(&self) -> &BTreeMap<String, String> {
        &self.config
    }

    /// Largest linear memory this instance has had, in bytes.
    pub(crate) fn peak_memory(&self) -> usize {
        self.peak_memory
    }

    /// Why a growth was refused, if one was.
    pub(crate) fn limit_refused(&self) -> Option<&str> {
        self.limit_refused.as_deref()
    }

    fn refuse(&mut self, what: String) -> wasmtime::Result<bool> {
        let message = format!("{what}; the plugin is stopped");
        self.limit_refused = Some(what);
        Err(wasmtime::format_err!("{message}"))
    }
}

/// Refusing growth by trapping, rather than letting `memory.grow` return -1,
/// stops a memory bomb at the exact allocation that crossed the limit and
/// makes the fault a `memory-limit` rather than a generic abort.
impl ResourceLimiter for PluginState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let limit = self.limits.memory_bytes();
        if desired > limit {
            return self.refuse(format!(
                "linear memory of {desired} bytes requested, over the limit of {limit} bytes"
            ));
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let limit = self.limits.table_elements;
        if desired > limit {
            return self.refuse(format!(
                "table of {desired} elements requested, over the limit of {limit}"
            ));
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.limits.instances
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

impl WasiView for PluginState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}
