//! Pre-initialised instances: a plugin's component snapshotted after its
//! `configure` ran, so that a new instance starts configured.
//!
//! A fresh instance of a policy is mostly its `configure`: building its
//! rule automaton and reading its configuration through host calls. The
//! configuration cannot change within a loaded version, so the host runs
//! `configure` once, at load, on an instrumented copy of the component
//! (wasmtime-wizer), and writes the instance's memories and globals back
//! into a new component. New instances, warm or fresh, are instantiated
//! from that snapshot and skip `configure` entirely.
//!
//! The snapshot runs through the host's own sandbox linker, under the
//! plugin's limits, with the same deterministic clock and randomness as a
//! live instance, so a snapshot instance is the same state a live
//! `configure` leaves. Only wizer's instrumentation and rewriting are used:
//! its wasmtime driver would bring async, GC and threads into the engine.
//! A component wizer cannot snapshot (several memories, say) is served
//! with live `configure`; the reason is kept on the plugin.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use wasmtime::Store;
use wasmtime::component::{Component, ComponentExportIndex, Instance, WasmList};
use wasmtime_wizer::{ComponentInstanceState, Wizer};

use crate::bindings::Exports;
use crate::component::{digest_text, sha256};
use crate::limits::Limits;
use crate::runtime::Runtime;
use crate::sandbox::PluginState;
use crate::trap::{classify, panic_message};

/// The instance wizer's instrumentation exports to read state through.
const ACCESS: &str = "wasmtime:wizer/access";

/// A configured snapshot of a plugin, ready to instantiate.
pub(crate) struct Snapshot {
    /// Where the snapshot's exports are.
    pub(crate) exports: Exports,
    /// SHA-256 of the snapshot component, as `sha256:<hex>`: recorded with
    /// every evaluation it served, and the same on every load of the same
    /// component and configuration.
    pub(crate) digest: String,
    /// The compiled instrumented copy and the snapshot, by SHA-256, for the
    /// artifact cache: the next load of this version compiles neither.
    artifacts: [([u8; 32], Component); 2],
}

impl Snapshot {
    /// Keeps both compiled components in the runtime's artifact cache.
    pub(crate) fn remember(&self, runtime: &Runtime) {
        for (sha, component) in &self.artifacts {
            runtime.remember(sha, component);
        }
    }
}

/// Why a snapshot could not be made. Never fatal: the plugin serves with
/// live `configure`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SnapshotError {
    #[error("wizer cannot instrument the component: {0:#}")]
    Instrument(wasmtime::Error),
    #[error("the instrumented component does not compile: {0}")]
    Compile(String),
    #[error("the instrumented component does not link: {0:#}")]
    Link(wasmtime::Error),
    #[error("configure failed in the snapshot instance: {0}")]
    Configure(String),
    #[error("reading the configured state failed: {0}")]
    Read(String),
    #[error("the snapshot does not link: {0:#}")]
    Relink(wasmtime::Error),
    #[error("wizer failed on the component: {0}")]
    Panicked(String),
}

/// Snapshots `wasm` after `configure` with `config`, under `limits`.
/// `arm` gives a store the plugin's budget, as for any call.
pub(crate) fn snapshot(
    runtime: &Runtime,
    wasm: &[u8],
    config: &Arc<BTreeMap<String, String>>,
    limits: Limits,
    arm: impl Fn(&mut Store<PluginState>),
) -> Result<Snapshot, SnapshotError> {
    // Wizer reads a hostile component's structure and state: a panic in
    // it is a component it cannot snapshot, never a crashed host. The
    // store and everything else touched are local and dropped with it.
    let attempt = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        snapshot_unguarded(runtime, wasm, config, limits, &arm)
    }));
    attempt.unwrap_or_else(|panic| Err(SnapshotError::Panicked(panic_message(panic.as_ref()))))
}

fn snapshot_unguarded(
    runtime: &Runtime,
    wasm: &[u8],
    config: &Arc<BTreeMap<String, String>>,
    limits: Limits,
    arm: &impl Fn(&mut Store<PluginState>),
) -> Result<Snapshot, SnapshotError> {
    let mut wizer = Wizer::new();
    // The init function is the contract's `configure`, which the host calls
    // itself; wizer must leave the exports as they are.
    wizer.keep_init_func(true);
    let (context, instrumented) = wizer
        .instrument_component(wasm)
        .map_err(SnapshotError::Instrument)?;
    let instrumented_sha = sha256(&instrumented);
    let (instrumented_component, _) = runtime
        .compile(&instrumented, &instrumented_sha)
        .map_err(|e| SnapshotError::Compile(e.to_string()))?;
    let pre = runtime
        .linker()
        .instantiate_pre(&instrumented_component)
        .map_err(SnapshotError::Link)?;
    let exports = Exports::new(pre).map_err(SnapshotError::Link)?;

    let mut store = Store::new(runtime.engine(), PluginState::new(config.clone(), limits));
    store.limiter(|state| state);
    arm(&mut store);
    let calls = exports
        .instantiate(&mut store)
        .map_err(|e| SnapshotError::Configure(describe(&store, &e)))?;
    calls
        .check_types(&store)
        .map_err(|e| SnapshotError::Configure(format!("{e:#}")))?;
    match calls.configure(&mut store) {
        Ok(Ok(())) => {}
        Ok(Err(refusal)) => return Err(SnapshotError::Configure(refusal)),
        Err(error) => return Err(SnapshotError::Configure(describe(&store, &error))),
    }
    let mut state = Reader {
        store: &mut store,
        instance: *calls.instance(),
        failed: None,
    };
    let bytes = complete(wizer.snapshot_component(&context, &mut state))
        .ok_or_else(|| SnapshotError::Read("wizer waited on something".into()))?;
    if let Some(failure) = state.failed {
        return Err(SnapshotError::Read(failure));
    }
    let bytes = bytes.map_err(|e| SnapshotError::Read(format!("{e:#}")))?;
    let sha = sha256(&bytes);
    let (component, _) = runtime
        .compile(&bytes, &sha)
        .map_err(|e| SnapshotError::Compile(e.to_string()))?;
    let pre = runtime
        .linker()
        .instantiate_pre(&component)
        .map_err(SnapshotError::Relink)?;
    Ok(Snapshot {
        exports: Exports::new(pre).map_err(SnapshotError::Relink)?,
        digest: digest_text(&sha),
        artifacts: [(instrumented_sha, instrumented_component), (sha, component)],
    })
}

fn describe(store: &Store<PluginState>, error: &wasmtime::Error) -> String {
    let (kind, detail) = classify(error, store.data().limit_refused());
    format!("{kind}: {detail}")
}

/// Drives a future that never waits: every call below answers at once.
fn complete<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}

/// Answers wizer's questions about the configured instance by calling the
/// accessors its instrumentation exported. A failed call is remembered
/// (the trait cannot return it) and voids the snapshot.
struct Reader<'a> {
    store: &'a mut Store<PluginState>,
    instance: Instance,
    failed: Option<String>,
}

impl Reader<'_> {
    fn call<R>(&mut self, func: &str, read: impl FnOnce(&mut Self) -> wasmtime::Result<R>) -> R
    where
        R: Default,
    {
        if self.failed.is_some() {
            return R::default();
        }
        match read(self) {
            Ok(value) => value,
            Err(error) => {
                self.failed = Some(format!("{ACCESS}#{func}: {error:#}"));
                R::default()
            }
        }
    }

    fn export(&mut self, instance: &str, func: &str) -> wasmtime::Result<ComponentExportIndex> {
        let parent = self
            .instance
            .get_export_index(&mut *self.store, None, instance)
            .ok_or_else(|| wasmtime::format_err!("no export `{instance}`"))?;
        self.instance
            .get_export_index(&mut *self.store, Some(&parent), func)
            .ok_or_else(|| wasmtime::format_err!("no export `{func}` in `{instance}`"))
    }

    fn scalar<T>(&mut self, instance: &str, func: &str) -> T
    where
        T: wasmtime::component::ComponentType + wasmtime::component::Lift + Default + 'static,
    {
        self.call(func, |this| {
            let index = this.export(instance, func)?;
            let typed = this
                .instance
                .get_typed_func::<(), (T,)>(&mut *this.store, &index)?;
            Ok(typed.call(&mut *this.store, ())?.0)
        })
    }
}

impl ComponentInstanceState for Reader<'_> {
    fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) -> impl Future<Output = ()> + Send {
        let bytes: Vec<u8> = self.call(func, |this| {
            let index = this.export(instance, func)?;
            let typed = this
                .instance
                .get_typed_func::<(), (WasmList<u8>,)>(&mut *this.store, &index)?;
            let list = typed.call(&mut *this.store, ())?.0;
            Ok(list.as_le_slice(&*this.store).to_vec())
        });
        contents(&bytes);
        std::future::ready(())
    }

    fn call_func_ret_s32(
        &mut self,
        instance: &str,
        func: &str,
    ) -> impl Future<Output = i32> + Send {
        std::future::ready(self.scalar::<i32>(instance, func))
    }

    fn call_func_ret_s64(
        &mut self,
        instance: &str,
        func: &str,
    ) -> impl Future<Output = i64> + Send {
        std::future::ready(self.scalar::<i64>(instance, func))
    }

    fn call_func_ret_f32(
        &mut self,
        instance: &str,
        func: &str,
    ) -> impl Future<Output = u32> + Send {
        std::future::ready(self.scalar::<f32>(instance, func).to_bits())
    }

    fn call_func_ret_f64(
        &mut self,
        instance: &str,
        func: &str,
    ) -> impl Future<Output = u64> + Send {
        std::future::ready(self.scalar::<f64>(instance, func).to_bits())
    }
}
