//! The one wasmtime `Engine` every plugin shares, and the epoch ticker that
//! enforces deadlines.
//!
//! An engine owns compiled code, the signature registry and the instance
//! allocator, so one per process is both the fast and the economical choice;
//! every `Component` and `Linker` must come from the same engine.

use std::time::Duration;

use wasmtime::{Config, Engine};

/// How often the epoch advances: the resolution of every deadline.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Which meters the engine compiles in. Both are on in production; turning
/// them off exists only to measure what they cost (fuel changes the compiled
/// code, so this is an engine setting, not a per-call one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meters {
    /// Count instructions against each evaluation's fuel budget.
    pub fuel: bool,
    /// Interrupt an evaluation at its wall-clock deadline.
    pub epoch: bool,
}

impl Default for Meters {
    fn default() -> Self {
        Meters {
            fuel: true,
            epoch: true,
        }
    }
}

/// Builds the engine with the settings the sandbox relies on, and starts the
/// epoch ticker when deadlines are on.
pub fn new_engine(meters: Meters) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // Synchronous calls only: concurrency support roughly triples the cost of
    // a component call (shared notes, wasmtime#14189) and nothing here needs it.
    config.concurrency_support(false);
    config.consume_fuel(meters.fuel);
    config.epoch_interruption(meters.epoch);
    let engine = Engine::new(&config)?;
    if meters.epoch {
        start_epoch_ticker(&engine);
    }
    Ok(engine)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] on a thread of its own.
/// The thread holds only a weak reference and ends with the engine.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    let spawned = std::thread::Builder::new()
        .name("handoff-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        });
    if let Err(error) = spawned {
        // Without the ticker a deadline would never fire; say so loudly.
        tracing::error!(%error, "cannot start the epoch ticker; deadlines will not be enforced");
    }
}
