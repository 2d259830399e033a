//! The one wasmtime `Engine` every plugin shares, and the epoch ticker that
//! enforces deadlines.
//!
//! An engine owns compiled code, the signature registry and the instance
//! allocator, so one per process is both the fast and the economical choice;
//! every `Component` and `Linker` must come from the same engine.

use std::time::Duration;

use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

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

/// Instances the pooling allocator keeps slots for, by default. Each slot
/// reserves virtual address space, not memory: pages are committed only
/// while used. Enough for 64 worker threads with 4 warm plugins each, or
/// many fresh instances in flight.
pub const POOL_INSTANCES: u32 = 256;

/// Bytes of a linear memory (and of a table) kept resident when a slot is
/// freed, so that the next instance in it takes no page faults on the pages
/// a plugin's `configure` and first evaluation touch. With `pagemap_scan`
/// only the pages actually written are reset, so keeping them costs a
/// `memset` of what was dirtied rather than a `madvise` of everything.
const KEEP_RESIDENT_BYTES: usize = 4 << 20;
const TABLE_KEEP_RESIDENT_BYTES: usize = 64 << 10;

/// How the engine is built: what a process chooses once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineOptions {
    /// Which meters are compiled in.
    pub meters: Meters,
    /// Instance slots in the pool. Every slot reserves its largest memory's
    /// address space up front (4 GiB and guards, twice), so 256 slots
    /// reserve about 2 TiB: free on Linux, but more than tools such as
    /// valgrind can map. Lower it for them (`--pool-instances`); a host
    /// with fewer slots than warm instances in use refuses new instances
    /// with a recorded fault, never by crashing.
    pub pool_instances: u32,
    /// Which CPU features compiled code may use.
    pub cpu: CpuFeatures,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            meters: Meters::default(),
            pool_instances: POOL_INSTANCES,
            cpu: CpuFeatures::default(),
        }
    }
}

/// Which instruction-set extensions Cranelift may emit.
///
/// They are part of an artifact's compatibility hash, so they decide which
/// cached artifacts an engine can load. Valgrind's CPUID hides the
/// extensions it cannot emulate: an engine started under callgrind detects
/// fewer than the same binary natively, misses every artifact compiled
/// natively, and compiles under valgrind, minutes per component.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CpuFeatures {
    /// Everything this CPU has: production.
    #[default]
    Detected,
    /// What this CPU has, less what valgrind 3 cannot emulate (AVX-512 and
    /// AVX-VNNI): the same code natively and under callgrind, so the
    /// instruction-count benchmarks load what was compiled natively.
    ValgrindCompatible,
}

impl CpuFeatures {
    /// The Cranelift ISA flags turned off, on x86-64; none elsewhere.
    fn disabled_flags(self) -> &'static [&'static str] {
        match self {
            CpuFeatures::Detected => &[],
            CpuFeatures::ValgrindCompatible if cfg!(target_arch = "x86_64") => &[
                "has_avx512f",
                "has_avx512dq",
                "has_avx512vl",
                "has_avx512vbmi",
                "has_avx512bitalg",
                "has_avx512vnni",
                "has_avx_vnni",
            ],
            CpuFeatures::ValgrindCompatible => &[],
        }
    }
}

/// Builds the engine with the settings the sandbox relies on, and starts the
/// epoch ticker when deadlines are on.
///
/// Instances come from the pooling allocator: with copy-on-write memory
/// images, instantiation is a few microseconds instead of an `mmap` per
/// memory, which is what makes a fresh instance per item affordable.
pub(crate) fn new_engine(options: EngineOptions) -> wasmtime::Result<Engine> {
    let EngineOptions {
        meters,
        pool_instances,
        cpu,
    } = options;
    let mut config = Config::new();
    for flag in cpu.disabled_flags() {
        // SAFETY: turning an ISA extension off only narrows the instructions
        // Cranelift may emit to ones this CPU also runs.
        unsafe {
            config.cranelift_flag_set(flag, "false");
        }
    }
    config.wasm_component_model(true);
    // Synchronous calls only: concurrency support roughly triples the cost of
    // a component call (shared notes, wasmtime#14189) and nothing here needs it.
    config.concurrency_support(false);
    config.consume_fuel(meters.fuel);
    config.epoch_interruption(meters.epoch);
    let mut pool = PoolingAllocationConfig::new();
    let slots = pool_instances.max(1);
    pool.total_component_instances(slots)
        // A Rust guest component is a few core instances with one memory
        // and a few tables.
        .total_core_instances(slots * 8)
        .total_memories(slots * 2)
        .total_tables(slots * 8)
        .total_stacks(0)
        .table_elements(MAX_TABLE_ELEMENTS)
        .max_memory_size(MAX_MEMORY_MIB as usize * 1024 * 1024)
        // A fresh instance per item reuses a slot another just left: keep
        // its pages mapped and reset only what was written (Linux 6.7+;
        // elsewhere `Auto` leaves the `madvise` path in place).
        .linear_memory_keep_resident(KEEP_RESIDENT_BYTES)
        .table_keep_resident(TABLE_KEEP_RESIDENT_BYTES)
        .pagemap_scan(Enabled::Auto);
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
