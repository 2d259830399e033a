//! The ground floor of Handoff: the JSON it speaks and the facts it records.
//!
//! Work items come in, decisions go out, every plugin's verdict and fault is
//! recorded, and every change to the policy set is a lifecycle event. These
//! types are shared by every other crate (the runtime that produces them,
//! the audit trail and the handoff queues that keep them, the server that
//! answers with them) and depend on no WebAssembly runtime: the JSON is the
//! public API that agents, logs and replays rely on, and it stays stable
//! when the plugin contract gains a new version. Converting to and from the
//! contract's types is the runtime's job (`handoff-policy`'s versioned
//! bindings).

// `named_enum!` names this crate by its path, from inside it as from outside.
extern crate self as handoff_model;

mod decision;
mod fault;
mod handoff_event;
mod item;
mod lifecycle;
mod names;
mod tier;

pub use decision::{
    Assessment, Classification, Decision, Metering, PluginMetering, PluginVerdict, Signal, Verdict,
    piloted,
};
pub use fault::{FailureMode, Fault, FaultKind};
pub use handoff_event::HandoffEvent;
pub use item::{InputError, Money, WorkItem};
pub use lifecycle::{
    ActivePlugin, CalibrationEvidence, CompileOrigin, LifecycleEvent, SignerRecord,
};
pub use names::{Named, UnknownName, unknown};
pub use tier::{Tier, TriggerKind};
