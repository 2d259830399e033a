//! The audit trail: a tamper-evident log of every decision and every
//! policy lifecycle event.
//!
//! It depends on the data model only: what it records is JSON, and nothing
//! here runs a plugin.
//!
//! - [`record`]: the record and its hash-chained line format;
//! - [`log`]: appending, durability modes, rotation, outages;
//! - [`segment`]: the files on disk, and crash repair of a torn tail;
//! - [`checkpoint`]: signed checkpoints that anchor the chain;
//! - [`mask`]: keyed hashing of fields that must not be stored in clear;
//! - [`verify`]: checking the chain and naming where it breaks;
//! - [`query`]: reading records back, filtered.

pub mod checkpoint;
mod log;
mod mask;
pub mod query;
pub mod record;
mod segment;
mod verify;

pub use checkpoint::{Checkpoint, CheckpointKey, CheckpointOptions, PublicKey};
pub use handoff_trust::keyfile::KeyFileError;
pub use log::{AuditError, AuditHealth, AuditLog, AuditOptions, Durability};
pub use mask::Masking;
pub use query::{Entry, Filter, ReadError};
pub use record::{Body, DecisionRecord, Record};
pub use segment::log_files;
pub use verify::{
    Anchor, Break, BreakKind, Verified, VerifyError, verify, verify_anchored, verify_node_chain,
    verify_segment,
};
