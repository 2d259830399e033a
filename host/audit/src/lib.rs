//! The audit trail: a tamper-evident log of every decision and every
//! policy lifecycle event.
//!
//! It depends on the data model only: what it records is JSON, and nothing
//! here runs a plugin.
//!
//! - [`record`]: the record and its hash-chained line format;
//! - [`log`]: appending, durability modes, rotation, crash repair;
//! - [`mask`]: keyed hashing of fields that must not be stored in clear;
//! - [`verify`]: checking the chain and naming where it breaks;
//! - [`query`]: reading records back, filtered.

mod log;
mod mask;
pub mod query;
pub mod record;
mod verify;

pub use log::{AuditError, AuditLog, AuditOptions, Durability, log_files};
pub use mask::{MaskKeyError, Masking};
pub use query::{Entry, Filter, ReadError};
pub use record::{Body, DecisionRecord, Record};
pub use verify::{Break, BreakKind, Verified, VerifyError, verify};
