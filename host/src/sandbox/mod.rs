//! What a plugin's sandbox contains: the host interface and the minimum WASI
//! a `wasm32-wasip2` guest links against, and nothing else.
//!
//! A store's data is a [`PluginState`]. It carries the plugin's configuration
//! (for `config-get`), its limits (enforced through [`ResourceLimiter`]),
//! the bounded [`Capture`] of everything it writes, and a WASI context with
//! no arguments, no environment, no preopened directories, no network and an
//! empty stdin.

mod capture;

pub use capture::{Capture, Captured};

use std::collections::BTreeMap;
use std::sync::Arc;

use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime::{Engine, ResourceLimiter};
use wasmtime_wasi::{
    Deterministic, HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView,
};

use crate::bindings::{self, LogLevel};
use crate::limits::Limits;

/// The bytes every plugin's "random" source cycles through.
const RANDOM_SEED: [u8; 16] = *b"handoff-replay-1";

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

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1
    }
    fn now(&self) -> u64 {
        0
    }
}

/// How the sandbox answers one import of a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "grant", content = "note")]
pub enum Grant {
    /// Provided as specified.
    Granted(&'static str),
    /// Linked, but answers with nothing real (empty, frozen or seeded).
    Stubbed(&'static str),
    /// Not provided: a component importing it is rejected at load.
    Refused,
}

/// The capability policy: every interface the sandbox links, and how. The
/// single source of truth for both linking and `handoff inspect`.
const GRANTS: &[(&str, Grant)] = &[
    (
        "handoff:policy/host",
        Grant::Granted("log lines and this plugin's configuration"),
    ),
    (
        "handoff:policy/types",
        Grant::Granted("type definitions only"),
    ),
    (
        "wasi:io/error",
        Grant::Granted("error values for the streams below"),
    ),
    (
        "wasi:io/poll",
        Grant::Granted("polling the streams below; nothing ever blocks"),
    ),
    (
        "wasi:io/streams",
        Grant::Granted("only the stdio streams below"),
    ),
    (
        "wasi:cli/exit",
        Grant::Granted("exit ends the call as a trap"),
    ),
    (
        "wasi:cli/environment",
        Grant::Stubbed("no arguments, no environment variables, no cwd"),
    ),
    ("wasi:cli/stdin", Grant::Stubbed("empty")),
    (
        "wasi:cli/stdout",
        Grant::Stubbed("captured into the plugin's log, bounded"),
    ),
    (
        "wasi:cli/stderr",
        Grant::Stubbed("captured into the plugin's log, bounded"),
    ),
    ("wasi:cli/terminal-input", Grant::Stubbed("not a terminal")),
    ("wasi:cli/terminal-output", Grant::Stubbed("not a terminal")),
    ("wasi:cli/terminal-stdin", Grant::Stubbed("not a terminal")),
    ("wasi:cli/terminal-stdout", Grant::Stubbed("not a terminal")),
    ("wasi:cli/terminal-stderr", Grant::Stubbed("not a terminal")),
    (
        "wasi:clocks/wall-clock",
        Grant::Stubbed("frozen at the Unix epoch"),
    ),
    (
        "wasi:clocks/monotonic-clock",
        Grant::Stubbed("frozen at zero"),
    ),
    (
        "wasi:random/random",
        Grant::Stubbed("a fixed, seeded sequence"),
    ),
    (
        "wasi:random/insecure",
        Grant::Stubbed("a fixed, seeded sequence"),
    ),
    ("wasi:random/insecure-seed", Grant::Stubbed("a fixed seed")),
    (
        "wasi:filesystem/preopens",
        Grant::Stubbed("no preopened directories"),
    ),
    (
        "wasi:filesystem/types",
        Grant::Stubbed("no file can be reached without a preopen"),
    ),
];

/// How the sandbox answers an import named `name` (`wasi:cli/stdout@0.2.6`).
/// Versions do not matter: the linker serves any 0.2.x of an interface.
pub fn grant_for(name: &str) -> Grant {
    let unversioned = name.split('@').next().unwrap_or(name);
    GRANTS
        .iter()
        .find(|(interface, _)| *interface == unversioned)
        .map_or(Grant::Refused, |(_, grant)| *grant)
}

/// Core-instance tables and memories a component may create: a Rust guest
/// needs one memory and a handful of tables.
const MAX_TABLES: usize = 64;
const MAX_MEMORIES: usize = 8;

/// The data of one plugin's store.
pub struct PluginState {
    config: Arc<BTreeMap<String, String>>,
    limits: Limits,
    capture: Capture,
    /// Largest linear memory granted so far, in bytes.
    peak_memory: usize,
    /// Set when a growth past the limits was refused: the trap that follows
    /// is then a `memory-limit` fault.
    limit_refused: Option<String>,
    wasi: WasiCtx,
    table: ResourceTable,
}

impl PluginState {
    /// A fresh sandbox with a plugin's configuration and limits.
    pub fn new(config: Arc<BTreeMap<String, String>>, limits: Limits) -> Self {
        let capture = Capture::new(limits.log_bytes);
        // The builder starts empty: no args, env or preopens, and stdin reads
        // as closed. Clocks are frozen and randomness is a fixed sequence, so
        // a plugin that reaches for either still decides deterministically.
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .stdout(capture.clone())
            .stderr(capture.clone())
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .secure_random(Deterministic::new(RANDOM_SEED.to_vec()))
            .insecure_random(Deterministic::new(RANDOM_SEED.to_vec()))
            .insecure_random_seed(u128::from_le_bytes(RANDOM_SEED))
            .build();
        PluginState {
            config,
            limits,
            capture,
            peak_memory: 0,
            limit_refused: None,
            wasi,
            table: ResourceTable::new(),
        }
    }

    /// The plugin's limits.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Everything the plugin wrote, bounded.
    pub fn capture(&self) -> &Capture {
        &self.capture
    }

    /// Largest linear memory this instance has had, in bytes.
    pub fn peak_memory(&self) -> usize {
        self.peak_memory
    }

    /// Why a growth was refused, if one was.
    pub fn limit_refused(&self) -> Option<&str> {
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

impl bindings::handoff::policy::types::Host for PluginState {}

impl bindings::handoff::policy::host::Host for PluginState {
    /// Log lines join stdout and stderr in the bounded capture, so a
    /// plugin cannot flood the host's log through this door either.
    fn log(&mut self, level: LogLevel, message: String) {
        let level = match level {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        };
        self.capture
            .append(format!("[{level}] {message}\n").as_bytes());
    }

    fn config_get(&mut self, key: String) -> Option<String> {
        self.config.get(&key).cloned()
    }

    fn config_keys(&mut self) -> Vec<String> {
        self.config.keys().cloned().collect()
    }
}

/// Builds the linker every plugin is instantiated against: the contract's
/// host interface plus the granted WASI interfaces. Anything a component
/// imports beyond these fails to link.
pub fn new_linker(engine: &Engine) -> wasmtime::Result<Linker<PluginState>> {
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sync};
    use wasmtime_wasi::random::WasiRandom;

    let mut linker = Linker::new(engine);
    bindings::Policy::add_to_linker::<PluginState, HasSelf<PluginState>>(&mut linker, |s| s)?;

    let l = &mut linker;
    sync::io::error::add_to_linker::<PluginState, HasSelf<ResourceTable>>(l, |s| &mut s.table)?;
    sync::io::poll::add_to_linker::<PluginState, HasSelf<ResourceTable>>(l, |s| &mut s.table)?;
    sync::io::streams::add_to_linker::<PluginState, HasSelf<ResourceTable>>(l, |s| &mut s.table)?;
    cli::exit::add_to_linker::<PluginState, WasiCli>(l, PluginState::cli)?;
    cli::environment::add_to_linker::<PluginState, WasiCli>(l, PluginState::cli)?;
    cli::stdin::add_to_linker::<PluginState, WasiCli>(l, PluginState::cli)?;
    cli::stdout::add_to_linker::<PluginState, WasiCli>(l, PluginState::cli)?;
    cli::stderr::add_to_linker::<PluginState, WasiCli>(l, PluginState::cli)?;
    cli::terminal_input::add_to_linker::<PluginState, WasiCli>(l, PluginState::cli)?;
    cli::terminal_output::add_to_linker::<PluginState, WasiCli>(l, PluginState::cli)?;
    cli::terminal_stdin::add_to_linker::<PluginState, WasiCli>(l, PluginState::cli)?;
    cli::terminal_stdout::add_to_linker::<PluginState, WasiCli>(l, PluginState::cli)?;
    cli::terminal_stderr::add_to_linker::<PluginState, WasiCli>(l, PluginState::cli)?;
    clocks::wall_clock::add_to_linker::<PluginState, WasiClocks>(l, PluginState::clocks)?;
    clocks::monotonic_clock::add_to_linker::<PluginState, WasiClocks>(l, PluginState::clocks)?;
    random::random::add_to_linker::<PluginState, WasiRandom>(l, |s| s.wasi.random())?;
    random::insecure::add_to_linker::<PluginState, WasiRandom>(l, |s| s.wasi.random())?;
    random::insecure_seed::add_to_linker::<PluginState, WasiRandom>(l, |s| s.wasi.random())?;
    filesystem::preopens::add_to_linker::<PluginState, WasiFilesystem>(l, PluginState::filesystem)?;
    sync::filesystem::types::add_to_linker::<PluginState, WasiFilesystem>(
        l,
        PluginState::filesystem,
    )?;
    Ok(linker)
}
