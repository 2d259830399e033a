//! The one wasmtime `Engine` every plugin shares, and the epoch ticker that
//! enforces deadlines.
//!
//! An engine owns compiled code, the signature registry and the instance
//! allocator, so one per process is both the fast and the economical choice;
//! every `Component` and `Linker` must come from the same engine.

use std::time::Duration;

use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::limits::{MAX_MEMORY_MIB, MAX_TABLE_ELEMENTS};

/// How often the epoch advances: the resolution of every deadline.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

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

/// Instances the pooling allocator keeps slots for. Each slot reserves
/// virtual address space, not memory: pages are committed only while used.
/// Enough for 64 worker threads with 4 warm plugins each, or many fresh
/// instances in flight.
pub const POOL_INSTANCES: u32 = 256;

/// Builds the engine with the settings the sandbox relies on, and starts the
/// epoch ticker when deadlines are on.
///
/// Instances come from the pooling allocator: with copy-on-write memory
/// images, instantiation is a few microseconds instead of an `mmap` per
/// memory, which is what makes a fresh instance per item affordable.
pub(crate) fn new_engine(meters: Meters) -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config.wasm_component_model(true);
    // Synchronous calls only: concurrency support roughly triples the cost of
    // a component call (shared notes, wasmtime#14189) and nothing here needs it.
    config.concurrency_support(false);
    config.consume_fuel(meters.fuel);
    config.epoch_interruption(meters.epoch);
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(POOL_INSTANCES)
        // A Rust guest component is a few core instances with one memory
        // and a few tables.
        .total_core_instances(POOL_INSTANCES * 8)
        .total_memories(POOL_INSTANCES * 2)
        .total_tables(POOL_INSTANCES * 8)
        .total_stacks(0)
        .table_elements(MAX_TABLE_ELEMENTS)
        .max_memory_size(MAX_MEMORY_MIB as usize * 1024 * 1024);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
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
