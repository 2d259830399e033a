//! Handoff: a host for sandboxed routing policies that decide when an AI
//! agent's work must be handed to humans.
//!
//! Every unit of agent work ([`model::WorkItem`]) runs through the enabled
//! policy plugins of a [`PolicySet`]: WebAssembly components implementing
//! the `handoff:policy` WIT world with three stages, `classify`, `score` and
//! `escalate`. The highest tier any plugin returns becomes the
//! [`model::Decision`]: `none`, `self-correct`, `operator` or `executive`.
//!
//! The modules follow the path of a decision:
//! - [`manifest`]: the operator's per-plugin settings;
//! - [`sandbox`]: what a plugin may touch (almost nothing), and
//!   [`limits`]: how much it may consume;
//! - [`fault`] and [`output_check`]: what counts as misbehaviour, and what
//!   it turns into;
//! - [`runtime`] and [`cache`]: one engine, and compiled code kept on disk;
//! - [`plugin`], [`fixtures`], [`policy_dir`] and [`policy_set`]: loading
//!   and validating components;
//! - [`reload`]: swapping policies in a running host;
//! - [`audit`] and [`replay`]: the tamper-evident record of every decision
//!   and policy change, and what a candidate policy would have decided;
//! - [`evaluator`]: running items through the set;
//! - [`model`]: the JSON in and out;
//! - [`dispatch`]: what each tier does, the durable handoff queues, SLA
//!   clocks and the feedback report;
//! - [`server`]: the HTTP API of `handoff serve`;
//! - [`inspect`]: what a component imports and exports, for review.

pub mod audit;
pub mod bindings;
pub mod cache;
pub mod dispatch;
pub mod embedded;
pub mod engine;
pub mod evaluator;
pub mod fault;
pub mod fixtures;
pub mod inspect;
pub mod limits;
pub mod manifest;
pub mod model;
pub mod output_check;
pub mod plugin;
pub mod policy_dir;
pub mod policy_set;
pub mod reload;
pub mod replay;
pub mod runtime;
pub mod sandbox;
pub mod server;
pub mod stats;

pub use evaluator::{EvalError, Evaluator};
pub use policy_set::{PluginSource, PolicySet, Rejection};
pub use runtime::{CompileOrigin, Runtime};
