//! The path of one work item, and the host it runs in.
//!
//! - [`Pipeline`]: decide → audit → dispatch, with the rule that a decision
//!   is answered only once it is in the audit trail. Every way in (the HTTP
//!   API, `handoff watch`, `handoff eval`) submits here.
//! - [`Host`]: the one way a running host is assembled from its parts
//!   (policies, fixed or live; the audit trail; the handoff store and its SLA
//!   clocks; the pipeline), for the server and the command line alike.
//! - `chain_copy`: on a shared store, the node's audit file kept as a copy
//!   of its chain there.
//! - [`fleet`]: a node of a fleet following the policy generations
//!   published to the shared store, and `handoff publish`'s validation.
//! - [`fleet_audit`]: every node's audit chain in the shared store,
//!   verified, and read as one trail for compliance queries.
//! - [`replay`]: what a candidate policy set would have decided for the
//!   items in the audit trail.
//! - [`reference`]: the reference policies built into the binary.
//! - [`calibration`]: the configuration keys the feedback report may
//!   suggest values for.

pub mod calibration;
mod chain_copy;
mod evaluator_threads;
pub mod fleet;
pub mod fleet_audit;
mod host;
pub mod pilot;
mod pipeline;
pub mod reference;
pub mod replay;

pub use host::{
    AuditSetup, Host, HostConfig, HostError, Observers, PolicySetup, audit_sink, policy_dir,
};
pub use pipeline::{Answer, Pipeline, PipelineError, Placement};
