//! Tier dispatch: what happens after the verdict.
//!
//! It depends on the data model, and on the audit trail's record format
//! (a fleet's store chains audit records itself): a decision arrives as
//! JSON-shaped data, and nothing here runs a plugin.
//!
//! - [`dispatcher`]: `none` proceeds, `self-correct` retries with guidance
//!   (up to a limit per item id), `operator` and `executive` become
//!   handoffs in a durable queue with acknowledge and resolve deadlines;
//! - [`handoff`]: the handoff, its states, its transfer payload and the
//!   human's resolution;
//! - [`store`]: the storage contract; [`sqlite`]: the embedded store;
//!   [`postgres`]: the store a fleet shares; [`backend`]: which of the two
//!   a host runs on; `rows`: what both read back the same way;
//!   `group_commit`: routine decision rows from many requests committed
//!   together, by a writer each store supplies (`sqlite_writer`, or the
//!   PostgreSQL store's, which chains the rows' audit records with them);
//! - [`Generations`]: policy generations published to a fleet, and what
//!   each node serves (bytes and reports: nothing here runs a plugin);
//! - [`Ledger`]: every fleet node's audit chain, appended in the same
//!   transaction as the change each record records;
//! - [`health`]: whether the store takes work, for readiness;
//! - [`forward`]: handoff events into the audit trail, exactly once;
//! - [`clock`]: where time comes from, so SLA clocks can be tested;
//! - [`sla`]: the background task that escalates on a missed deadline;
//! - [`report`]: figures measured on pieces of work, and the calibration
//!   of probabilistic triggers.

mod backend;
mod clock;
mod dispatcher;
mod forward;
mod generations;
mod group_commit;
mod handoff;
mod health;
mod ledger;
mod postgres;
pub mod report;
mod rows;
mod sla;
mod sqlite;
mod sqlite_writer;
mod store;
mod wal_checkpoint;

pub use backend::{Store, StoreLocation};
pub use clock::{Clock, ManualClock, SystemClock};
pub use dispatcher::{
    DispatchConfig, Dispatched, Dispatcher, EXHAUSTED, Remembered, ReviewSampling, Settled,
    SlaEvent, TierPolicy, idempotency_key,
};
pub use forward::{EventSink, ForwardError};
pub use generations::{
    GenerationSummary, Generations, NodeReport, Oversized, PUBLISHED, PublishedUnit,
    RejectedGeneration, UnitDigest,
};
pub use handoff::{
    AttemptRecord, DrivingReason, Handoff, HandoffState, Outcome, OutcomeError, PriorHandoff,
    Resolution, ReviewSample, TransferPayload,
};
pub use health::StoreHealth;
pub use ledger::{ChainHead, Ledger};
pub use postgres::{HeldKeys, POOL_SIZE as POSTGRES_POOL_SIZE, PgStore, redacted};
pub use report::{
    CalibrationTarget, FeedbackReport, History, ReportOptions, ThresholdStep, feedback_report,
};
pub use sla::{SlaClock, spawn_sla_clock};
pub use sqlite::{Commit, SqliteStore};
pub use store::{
    Breach, DecisionRow, Escalation, Event, HandoffStore, ListFilter, NewHandoff, QueueDepth,
    StoreError,
};
