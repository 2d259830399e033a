//! The process-wide runtime: one engine, one sandbox linker, and the way
//! components get compiled: through the artifact cache when there is one,
//! within the load limits, one compile at a time.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use handoff_model::CompileOrigin;
use handoff_trust::Trust;

use crate::cache::{ArtifactCache, CacheError, Lookup};
use crate::compile::{CompileError, Compiler, LoadLimits, compile};
use crate::engine::{CpuFeatures, EngineOptions, Meters, new_engine};
use crate::sandbox::{PluginState, new_linker};

/// The engine and linker every plugin of a process shares.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    meters: Meters,
    cpu: CpuFeatures,
    linker: Arc<Linker<PluginState>>,
    cache: Option<ArtifactCache>,
    compiler: Compiler,
    limits: LoadLimits,
    /// Held for the length of a compile: one at a time.
    lane: Arc<Mutex<()>>,
    compilations: Arc<AtomicU64>,
    snapshots: bool,
    trust: Arc<Trust>,
}

impl Runtime {
    /// Creates the process-wide engine and sandbox linker, with every meter
    /// on and no artifact cache.
    pub fn new() -> wasmtime::Result<Self> {
        Runtime::with_meters(Meters::default())
    }

    /// A runtime with chosen meters: only benchmarks measuring what metering
    /// costs should turn any off.
    pub fn with_meters(meters: Meters) -> wasmtime::Result<Self> {
        Runtime::with_options(EngineOptions {
            meters,
            ..EngineOptions::default()
        })
    }

    /// A runtime whose engine is built with `options`: chosen meters, or a
    /// smaller instance pool for tools that cannot reserve the default's
    /// address space.
    pub fn with_options(options: EngineOptions) -> wasmtime::Result<Self> {
        let meters = options.meters;
        let cpu = options.cpu;
        let engine = new_engine(options)?;
        let linker = Arc::new(new_linker(&engine)?);
        Ok(Runtime {
            engine,
            meters,
            cpu,
            linker,
            cache: None,
            compiler: Compiler::default(),
            limits: LoadLimits::default(),
            lane: Arc::new(Mutex::new(())),
            compilations: Arc::new(AtomicU64::new(0)),
            snapshots: true,
            trust: Arc::new(Trust::off()),
        })
    }

    /// This runtime, compiling with `compiler`.
    pub fn with_compiler(mut self, compiler: Compiler) -> Self {
        self.compiler = compiler;
        self
    }

    /// This runtime, loading within `limits`.
    pub fn with_limits(mut self, limits: LoadLimits) -> Self {
        self.limits = limits;
        self
    }

    /// This runtime, snapshotting each plugin after `configure` at load
    /// (the default) or not: a runtime without snapshots runs `configure`
    /// in every new instance, which is what the snapshots are measured and
    /// tested against.
    pub fn with_snapshots(mut self, snapshots: bool) -> Self {
        self.snapshots = snapshots;
        self
    }

    /// This runtime, admitting only versions `trust` admits: its
    /// activation policy and lock apply to every load, whatever the path
    /// into the host.
    pub fn with_trust(mut self, trust: Trust) -> Self {
        self.trust = Arc::new(trust);
        self
    }

    /// The trust gate every load passes first.
    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// Whether plugins are snapshotted after `configure` at load.
    pub fn snapshots(&self) -> bool {
        self.snapshots
    }

    /// What loading a component may cost.
    pub fn limits(&self) -> &LoadLimits {
        &self.limits
    }

    /// This runtime, keeping compiled components in `dir`.
    pub fn with_cache(mut self, dir: &Path) -> Result<Self, CacheError> {
        self.cache = Some(ArtifactCache::open(
            dir,
            &self.engine,
            self.limits.cache_quota_bytes,
        )?);
        Ok(self)
    }

    /// Which meters are compiled in.
    pub fn meters(&self) -> Meters {
        self.meters
    }

    /// The shared engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The sandbox linker.
    pub(crate) fn linker(&self) -> &Linker<PluginState> {
        &self.linker
    }

    /// The artifact cache, when there is one.
    pub fn cache(&self) -> Option<&ArtifactCache> {
        self.cache.as_ref()
    }

    /// How many components this runtime (and its clones) compiled with
    /// Cranelift rather than loading from the cache.
    pub fn compilations(&self) -> u64 {
        self.compilations.load(Ordering::Relaxed)
    }

    /// Compiles `bytes`, or loads the verified artifact from the cache.
    /// `sha256` is the SHA-256 of `bytes`. A compiled component is not
    /// cached here: only a version that passes validation is
    /// ([`Runtime::remember`]).
    pub fn compile(
        &self,
        bytes: &[u8],
        sha256: &[u8; 32],
    ) -> Result<(Component, CompileOrigin), CompileError> {
        let origin = match self.cache.as_ref().map(|c| c.lookup(&self.engine, sha256)) {
            Some(Lookup::Hit(component)) => return Ok((component, CompileOrigin::Cached)),
            Some(Lookup::Corrupt(reason)) => CompileOrigin::Recompiled { reason },
            Some(Lookup::Miss) | None => CompileOrigin::Compiled,
        };
        if bytes.len() > self.limits.max_component_bytes {
            return Err(CompileError::Invalid(format!(
                "the component is {} bytes, over the limit of {}",
                bytes.len(),
                self.limits.max_component_bytes
            )));
        }
        let _lane = self.lane.lock().unwrap_or_else(PoisonError::into_inner);
        self.compilations.fetch_add(1, Ordering::Relaxed);
        let component = compile(
            &self.engine,
            self.meters,
            self.cpu,
            &self.compiler,
            &self.limits,
            bytes,
        )?;
        Ok((component, origin))
    }

    /// Keeps the compiled `component` (of the bytes with SHA-256 `sha256`)
    /// in the artifact cache, if there is one: for versions that passed
    /// validation, so that a rejected component never takes cache space.
    pub fn remember(&self, sha256: &[u8; 32], component: &Component) {
        if let Some(cache) = &self.cache {
            cache.store(sha256, component);
        }
    }
}
