//! Hot reload: policies change in a running host without dropping or
//! corrupting a single evaluation.
//!
//! - [`LivePolicies`] owns the live [`PolicySet`](crate::PolicySet) behind
//!   an atomic pointer. A reload validates the new version completely
//!   (compiles, checks imports, trial-runs it, runs its manifest's fixtures)
//!   off the evaluation path, then publishes a new generation in one atomic
//!   store. Evaluations in flight finish on the generation they started on;
//!   a version that fails validation never serves, and the previous one
//!   keeps serving.
//! - [`LiveEvaluator`] is the worker-side view: it picks up a new generation
//!   at the start of the next evaluation, keeping warm instances of every
//!   plugin that did not change.
//! - [`Watcher`] turns file-system events in the policy directory into
//!   debounced reloads.
//! - Every load, swap, rejection and unload is a [`LifecycleEvent`], handed
//!   to a [`LifecycleSink`] (the audit trail, a console, a test).

mod events;
mod live;
mod watcher;

pub use events::{LifecycleEvent, LifecycleSink};
pub use live::{LiveEvaluator, LivePolicies, PluginStatus, ReloadFailure, ReloadOutcome, Serving};
pub use watcher::{DEFAULT_DEBOUNCE, DEFAULT_SETTLE, WatchError, WatchOptions, Watcher};
