//! Tier dispatch: what happens after the verdict.
//!
//! It depends on the data model only: a decision arrives as JSON-shaped
//! data, and nothing here runs a plugin.
//!
//! - [`dispatcher`]: `none` proceeds, `self-correct` retries with guidance
//!   (up to a limit per item id), `operator` and `executive` become
//!   handoffs in a durable queue with acknowledge and resolve deadlines;
//! - [`handoff`]: the handoff, its states, its transfer payload and the
//!   human's resolution;
//! - [`store`]: the storage contract; [`sqlite`]: the embedded store;
//! - [`health`]: whether the store takes work, for readiness;
//! - [`forward`]: handoff events into the audit trail, exactly once;
//! - [`clock`]: where time comes from, so SLA clocks can be tested;
//! - [`sla`]: the background task that escalates on a missed deadline;
//! - [`report`]: figures measured on pieces of work, and the calibration
//!   of probabilistic triggers.

mod clock;
mod dispatcher;
mod forward;
mod group_commit;
mod handoff;
mod health;
pub mod report;
mod sla;
mod sqlite;
mod store;
mod wal_checkpoint;

pub use clock::{Clock, ManualClock, SystemClock};
pub use dispatcher::{
    DispatchConfig, Dispatched, Dispatcher, EXHAUSTED, Remembered, ReviewSampling, Settled,
    SlaEvent, TierPolicy, idempotency_key,
};
pub use forward::{EventSink, ForwardError};
pub use handoff::{
    AttemptRecord, DrivingReason, Handoff, HandoffState, Outcome, OutcomeError, PriorHandoff,
    Resolution, ReviewSample, TransferPayload,
};
pub use health::StoreHealth;
pub use report::{
    CalibrationTarget, FeedbackReport, History, ReportOptions, ThresholdStep, feedback_report,
};
pub use sla::{SlaClock, spawn_sla_clock};
pub use sqlite::{Commit, SqliteStore};
pub use store::{
    Breach, DecisionRow, Escalation, Event, HandoffStore, ListFilter, NewHandoff, QueueDepth,
    StoreError,
};
