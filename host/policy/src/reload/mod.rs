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
//! - [`LiveEvaluator`](crate::LiveEvaluator) is the worker-side view: it picks up a new generation
//!   at the start of the next evaluation, keeping warm instances of every
//!   plugin that did not change.
//! - [`LivePolicies::adopt`] takes a fleet's published generation whole, or
//!   refuses it whole; from then on the fleet, not the directory, decides
//!   what serves.
//! - [`Watcher`] turns file-system events in the policy directory into
//!   debounced reloads.
//! - Every load, swap, rejection and unload is a
//!   [`LifecycleEvent`](handoff_model::LifecycleEvent), handed
//!   to a [`LifecycleSink`] (the audit trail, a console, a test).

mod adopt;
mod change;
mod live;
mod sink;
mod watcher;

pub use adopt::GenerationRefused;
pub use change::{ChangeError, Promotion};
pub use live::{LivePolicies, PluginStatus, ReloadFailure, ReloadOutcome, Serving};
pub use sink::LifecycleSink;
pub use watcher::{DEFAULT_DEBOUNCE, DEFAULT_SETTLE, WatchError, WatchOptions, Watcher};
