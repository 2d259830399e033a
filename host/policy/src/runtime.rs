//! The process-wide runtime: one engine, one sandbox linker, and the way
//! components get compiled (through the artifact cache when there is one).

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use handoff_model::CompileOrigin;

use crate::cache::{ArtifactCache, CacheError, Lookup};
use crate::engine::{Meters, new_engine};
use crate::sandbox::{PluginState, new_linker};

/// The engine and linker every plugin of a process shares.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    meters: Meters,
    linker: Arc<Linker<PluginState>>,
    cache: Option<ArtifactCache>,
    compilations: Arc<AtomicU64>,
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
        let engine = new_engine(meters)?;
        let linker = Arc::new(new_linker(&engine)?);
        Ok(Runtime {
            engine,
            meters,
            linker,
            cache: None,
            compilations: Arc::new(AtomicU64::new(0)),
        })
    }

    /// This runtime, keeping compiled components in `dir`.
    pub fn with_cache(mut self, dir: &Path) -> Result<Self, CacheError> {
        self.cache = Some(ArtifactCache::open(dir, &self.engine)?);
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
    /// `sha256` is the SHA-256 of `bytes`.
    pub fn compile(
        &self,
        bytes: &[u8],
        sha256: &[u8; 32],
    ) -> wasmtime::Result<(Component, CompileOrigin)> {
        let Some(cache) = &self.cache else {
            return Ok((self.compile_now(bytes)?, CompileOrigin::Compiled));
        };
        let origin = match cache.lookup(&self.engine, sha256) {
            Lookup::Hit(component) => return Ok((component, CompileOrigin::Cached)),
            Lookup::Miss => CompileOrigin::Compiled,
            Lookup::Corrupt(reason) => CompileOrigin::Recompiled { reason },
        };
        let component = self.compile_now(bytes)?;
        cache.store(sha256, &component);
        Ok((component, origin))
    }

    fn compile_now(&self, bytes: &[u8]) -> wasmtime::Result<Component> {
        self.compilations.fetch_add(1, Ordering::Relaxed);
        Component::new(&self.engine, bytes)
    }
}
