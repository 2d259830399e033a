//! The one wasmtime `Engine` every plugin shares.
//!
//! An engine owns compiled code, the signature registry and (later) the
//! instance pool, so one per process is both the fast and the economical
//! choice; every `Component` and `Linker` must come from the same engine.

use wasmtime::{Config, Engine};

/// Builds the engine with the settings the sandbox relies on.
pub fn new_engine() -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // Synchronous calls only: concurrency support roughly triples the cost of
    // a component call (shared notes, wasmtime#14189) and nothing here needs it.
    config.concurrency_support(false);
    Engine::new(&config)
}
