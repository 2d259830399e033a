//! Tier dispatch: what happens after the verdict.
//!
//! - [`dispatcher`]: `none` proceeds, `self-correct` retries with guidance
//!   (up to a limit per item id), `operator` and `executive` become
//!   handoffs in a durable queue with acknowledge and resolve deadlines;
//! - [`handoff`]: the handoff, its states, its transfer payload and the
//!   human's resolution;
//! - [`store`]: the storage contract; [`sqlite`]: the embedded store;
//! - [`clock`]: where time comes from, so SLA clocks can be tested;
//! - [`sla`]: the background task that escalates on a missed deadline;
//! - [`report`]: feedback figures and the threshold suggestion.

pub mod clock;
pub mod dispatcher;
pub mod handoff;
pub mod report;
pub mod sla;
pub mod sqlite;
pub mod store;

pub use clock::{Clock, ManualClock, SystemClock};
pub use dispatcher::{DispatchConfig, Dispatched, Dispatcher, SlaEvent, TierPolicy};
pub use handoff::{Handoff, HandoffState, Outcome, OutcomeError, Resolution, TransferPayload};
pub use report::{Report, ReportOptions, report};
pub use sla::spawn_sla_clock;
pub use sqlite::{Commit, SqliteStore};
pub use store::{Breach, Event, HandoffStore, ListFilter, QueueDepth, StoreError};
