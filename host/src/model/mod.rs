//! The JSON shapes Handoff speaks: work items in, decisions out.
//!
//! These are deliberately separate from the WIT types: the JSON is the public
//! API that agents, logs and replays depend on, and it must stay stable even
//! when the contract gains a new version.

mod decision;
mod item;
mod tier;

pub use decision::{
    Assessment, Classification, Decision, Metering, PluginMetering, PluginVerdict, Signal, Verdict,
};
pub use item::{InputError, Money, WorkItem};
pub use tier::{Tier, TriggerKind};
