//! Running policy plugins: sandboxed WebAssembly components implementing
//! the `handoff:policy` WIT world, each deciding a work item in three
//! stages (`classify`, `score`, `escalate`), combined into one decision.
//!
//! The modules, from the engine up:
//! - [`engine`] and [`runtime`]: one wasmtime engine per process, the
//!   sandbox linker, and compiled code kept in an artifact [`cache`];
//! - `sandbox`, [`limits`]: what a plugin may touch (almost nothing) and
//!   how much it may consume; `bindings`: the contract, one module per
//!   version, converting to and from `handoff_model`;
//! - `component`, [`inspect`]: what a component is and what it imports,
//!   for review, before anything runs;
//! - `plugin`, `run`, `fixtures` and `loader`: compiling and trial-running
//!   one component, running it on one item, and the self-tests a version
//!   must pass before it serves; [`testing`]: every self-test reported on
//!   its own, for `handoff test`;
//! - [`manifest`], `policy_dir` and [`PolicySet`]: the operator's settings,
//!   the directory layout, and the plugins that evaluate together;
//! - [`Evaluator`] and the [`evaluators`](LiveEvaluator) that follow a
//!   served set; [`reload`]: swapping policies in a running host.

mod bindings;
mod busy_machine;
pub mod cache;
mod claims;
mod compile;
mod component;
pub mod engine;
mod evaluator;
mod evaluators;
mod files;
mod fixtures;
pub mod inspect;
pub mod limits;
mod loader;
pub mod manifest;
mod output_check;
mod plugin;
mod policy_dir;
mod policy_set;
mod probe;
pub mod reload;
mod run;
mod runtime;
mod sandbox;
mod snapshot;
mod source;
mod stats;
pub mod testing;
mod trap;

pub use bindings::Contract;
pub use compile::{CompileError, Compiler, LoadLimits, compile_request, parse_cpu, parse_meters};
pub use component::{ComponentError, Import, digest_of, sha256};
pub use engine::{CpuFeatures, EngineOptions, Meters, POOL_INSTANCES};
pub use evaluator::{EvalError, Evaluator};
pub use evaluators::{EvaluatorPool, LiveEvaluator, Policies};
pub use files::{FileError, read_regular};
pub use fixtures::FixtureFailure;
pub use loader::LoadError;
pub use plugin::{Plugin, PluginError, PolicyInfo, StartFailure, TriggerInfo};
pub use policy_dir::{DirError, read_sources};
pub use policy_set::PolicySet;
pub use probe::StageProbe;
pub use runtime::Runtime;
pub use sandbox::Grant;
pub use source::{PluginSource, Rejection, describe_all};
pub use stats::StatsSnapshot;
pub use trap::panic_message;
