//! What the instruction-count benchmarks run: the same evaluations as the
//! criterion groups, set up so that callgrind can run them.

use std::hint::black_box;
use std::path::{Path, PathBuf};

use handoff_model::{Decision, WorkItem};
use handoff_policy::{CpuFeatures, EngineOptions, Evaluator, Meters, PluginSource, Runtime};
use handoff_sdk::Policy;

use crate::{Native, POLICIES, representative_item, set_of, source, to_sdk};

/// Items each benchmark decides: enough that the per-run constant (the
/// first call's lazy work, the loop) is noise in the count.
pub const EVALUATIONS: usize = 10;

/// Instance slots for an engine under valgrind: a few warm instances and
/// the fresh ones load needs. The default pool's 2 TiB of address space is
/// more than valgrind can map.
pub const VALGRIND_POOL_INSTANCES: u32 = 3;

/// Where compiled components are cached between the native preparation
/// and the runs under valgrind.
pub const CACHE_ENV: &str = "HANDOFF_BENCH_CACHE";

/// Which policies an evaluation runs.
#[derive(Debug, Clone, Copy)]
pub enum Workload {
    /// Both reference policies: the default set.
    Both,
    ComplianceLimits,
    ConfidenceGate,
    /// A policy that does almost nothing: what the host path itself costs.
    Trivial,
}

impl Workload {
    fn sources(self, extra: &str) -> Vec<PluginSource> {
        match self {
            Workload::Both => POLICIES.iter().map(|name| source(name, extra)).collect(),
            Workload::ComplianceLimits => vec![source("compliance-limits", extra)],
            Workload::ConfidenceGate => vec![source("confidence-gate", extra)],
            Workload::Trivial => vec![trivial(extra)],
        }
    }
}

/// The hostile test guest in its healthy mode: one label, a fixed
/// assessment, a `none` verdict.
pub fn trivial(extra: &str) -> PluginSource {
    PluginSource {
        signatures: None,
        name: "trivial".into(),
        wasm: handoff_test_fixtures::HOSTILE.to_vec(),
        manifest: Some(format!(
            "{extra}\npolicy = \"hostile\"\n[config]\nmode = \"healthy\"\n"
        )),
    }
}

/// The engine a benchmark uses, natively and under valgrind alike: a small
/// pool, and code for the CPU features valgrind emulates, so that the
/// artifacts compiled natively are the ones callgrind loads.
fn engine_options(meters: Meters) -> EngineOptions {
    EngineOptions {
        meters,
        pool_instances: VALGRIND_POOL_INSTANCES,
        cpu: CpuFeatures::ValgrindCompatible,
    }
}

/// The runtime a benchmark uses: small pool, cached artifacts.
pub fn runtime(meters: Meters) -> Runtime {
    let runtime = Runtime::with_options(engine_options(meters)).expect("the runtime starts");
    match std::env::var_os(CACHE_ENV) {
        Some(dir) => runtime
            .with_cache(Path::new(&dir))
            .expect("the artifact cache opens"),
        None => runtime,
    }
}

/// Compiles every workload into the artifact cache at `dir`, for every
/// meter setting the benchmarks use, natively and once.
pub fn prepare_cache(dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    for meters in [
        Meters::default(),
        Meters {
            fuel: false,
            epoch: false,
        },
        Meters {
            fuel: false,
            epoch: true,
        },
        Meters {
            fuel: true,
            epoch: false,
        },
    ] {
        let runtime = Runtime::with_options(engine_options(meters))?.with_cache(dir)?;
        for workload in [Workload::Both, Workload::Trivial] {
            set_of(&runtime, workload.sources(""));
        }
    }
    Ok(dir.to_path_buf())
}

/// An evaluator with warm (or fresh-per-item) instances and its item.
pub struct Hosted {
    evaluator: Evaluator,
    item: WorkItem,
    // Dropped last: the engine outlives the instances.
    _runtime: Runtime,
}

impl Hosted {
    fn build(workload: Workload, meters: Meters, extra: &str) -> Self {
        Hosted::on(runtime(meters), workload, extra)
    }

    fn on(runtime: Runtime, workload: Workload, extra: &str) -> Self {
        let mut evaluator = Evaluator::new(set_of(&runtime, workload.sources(extra)));
        let item = representative_item();
        // The first evaluation instantiates: setup, not what is counted.
        evaluator.evaluate(&item).expect("evaluates");
        Hosted {
            evaluator,
            item,
            _runtime: runtime,
        }
    }

    /// Warm instances, every meter on: the production path.
    pub fn warm(workload: Workload) -> Self {
        Hosted::build(workload, Meters::default(), "")
    }

    /// A fresh instance for every item.
    pub fn fresh(workload: Workload) -> Self {
        Hosted::build(workload, Meters::default(), "instance-reuse = \"fresh\"")
    }

    /// A fresh instance for every item, running `configure` live: no
    /// snapshot.
    pub fn fresh_live(workload: Workload) -> Self {
        let live = runtime(Meters::default()).with_snapshots(false);
        Hosted::on(live, workload, "instance-reuse = \"fresh\"")
    }

    /// Both reference policies, warm, with the chosen meters compiled in.
    pub fn unmetered(fuel: bool, epoch: bool) -> Self {
        Hosted::build(Workload::Both, Meters { fuel, epoch }, "")
    }

    /// Decides the item once.
    pub fn evaluate(&mut self) -> Decision {
        self.evaluator
            .evaluate(black_box(&self.item))
            .expect("evaluates")
    }
}

/// The same policies natively, configured as their manifests say.
pub struct NativeBench {
    native: Native,
    item: handoff_sdk::WorkItem,
    workload: Workload,
}

impl NativeBench {
    pub fn new(workload: Workload) -> Self {
        NativeBench {
            native: Native::new(),
            item: to_sdk(&representative_item()),
            workload,
        }
    }

    /// Decides the item once with the workload's policies.
    pub fn evaluate(&self) {
        let item = black_box(&self.item);
        match self.workload {
            Workload::Both => {
                black_box(self.native.compliance.evaluate(item));
                black_box(self.native.gate.evaluate(item));
            }
            Workload::ComplianceLimits => {
                black_box(self.native.compliance.evaluate(item));
            }
            Workload::ConfidenceGate | Workload::Trivial => {
                black_box(self.native.gate.evaluate(item));
            }
        }
    }
}
