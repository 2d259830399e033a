//! Which store a host runs on, chosen at start: the embedded SQLite file in
//! the data directory, or a PostgreSQL database that several hosts share.
//! Everything above the store (the dispatcher, the pipeline, the server)
//! holds a [`Store`] and never asks which it is.

use std::fmt;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Duration, Utc};

use super::generations::Generations;
use super::handoff::{AttemptRecord, Handoff, PriorHandoff, Resolution};
use super::ledger::Ledger;
use super::postgres::{self, HeldKeys, PgStore};
use super::sqlite::{Commit, SqliteStore};
use super::store::{
    Breach, DecisionRow, Escalation, Event, HandoffStore, ListFilter, NewHandoff, QueueDepth,
    StoreError,
};
use handoff_model::{HandoffEvent, Tier};

/// Where the handoff store is.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// `handoffs.db` in this directory.
    Embedded(PathBuf),
    /// A PostgreSQL database, by its `postgres://` URL.
    Postgres(String),
}

impl StoreLocation {
    /// The store `spec` names: a `postgres://` (or `postgresql://`) URL, or
    /// `sqlite` for the embedded store in `data`.
    pub fn parse(spec: &str, data: &Path) -> Result<StoreLocation, String> {
        let spec = spec.trim();
        if spec.starts_with("postgres://") || spec.starts_with("postgresql://") {
            return Ok(StoreLocation::Postgres(spec.to_string()));
        }
        if spec == "sqlite" {
            return Ok(StoreLocation::Embedded(data.to_path_buf()));
        }
        // A mistyped URL may still carry a password: never echo one.
        let shown = match url::Url::parse(spec) {
            Ok(_) => postgres::redacted(spec),
            Err(_) => format!("{spec:?}"),
        };
        Err(format!(
            "{shown} is not a store: expected `sqlite` (the embedded store in the data \
             directory) or a `postgres://user@host:port/database` URL"
        ))
    }
}

/// Shown without any password.
impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Embedded(dir) => write!(f, "{}", dir.join("handoffs.db").display()),
            StoreLocation::Postgres(url) => f.write_str(&postgres::redacted(url)),
        }
    }
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreLocation({self})")
    }
}

/// The store a host runs on.
#[derive(Debug, Clone)]
pub enum Store {
    /// The embedded store.
    Sqlite(SqliteStore),
    /// The shared store of a fleet.
    Postgres(PgStore),
}

impl Store {
    /// Opens the store at `location`, creating or upgrading its schema,
    /// with `commit` deciding when a commit is on stable storage.
    /// On a shared store, `node` names the audit chain this host appends
    /// to; the embedded store has one host, and no chain of its own.
    pub async fn open(
        location: &StoreLocation,
        commit: Commit,
        node: &str,
    ) -> Result<Store, StoreError> {
        Ok(match location {
            StoreLocation::Embedded(dir) => {
                Store::Sqlite(SqliteStore::open_with(dir, commit).await?)
            }
            StoreLocation::Postgres(url) => {
                Store::Postgres(PgStore::connect(url, commit, node).await?)
            }
        })
    }

    /// The fleet's published policy generations: only a shared store has
    /// a fleet.
    pub fn generations(&self) -> Option<&Generations> {
        match self {
            Store::Sqlite(_) => None,
            Store::Postgres(store) => Some(store.generations()),
        }
    }

    /// Every node's audit chain: only a shared store keeps them.
    pub fn ledger(&self) -> Option<&Ledger> {
        match self {
            Store::Sqlite(_) => None,
            Store::Postgres(store) => Some(store.ledger()),
        }
    }

    /// Holds idempotency keys against every other host sharing the store
    /// until the result is released (see [`PgStore::hold_keys`]); the
    /// embedded store has no other host, and holds nothing.
    pub async fn hold_keys(&self, keys: &[String]) -> Result<HeldKeys, StoreError> {
        match self {
            Store::Sqlite(_) => Ok(HeldKeys::default()),
            Store::Postgres(store) => store.hold_keys(keys).await,
        }
    }

    /// Keeps a copy of an audit checkpoint in the store.
    pub async fn record_checkpoint(&self, seq: u64, line: &str) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(store) => store.record_checkpoint(seq, line).await,
            Store::Postgres(store) => store.record_checkpoint(seq, line).await,
        }
    }

    /// Closes the store, waiting for its writes to finish.
    pub async fn close(&self) {
        match self {
            Store::Sqlite(store) => store.close().await,
            Store::Postgres(store) => store.close().await,
        }
    }
}

impl From<SqliteStore> for Store {
    fn from(store: SqliteStore) -> Self {
        Store::Sqlite(store)
    }
}

impl From<PgStore> for Store {
    fn from(store: PgStore) -> Self {
        Store::Postgres(store)
    }
}

/// Each method goes to the store chosen, unchanged.
macro_rules! delegate {
    ($(fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;)*) => {
        impl HandoffStore for Store {
            $(
                async fn $name(&self $(, $arg: $ty)*) -> Result<$ret, StoreError> {
                    match self {
                        Store::Sqlite(store) => store.$name($($arg),*).await,
                        Store::Postgres(store) => store.$name($($arg),*).await,
                    }
                }
            )*
        }
    };
}

delegate! {
    fn record_autonomous(&self, decision: &DecisionRow) -> ();
    fn record_autonomous_many(&self, decisions: Vec<DecisionRow>) -> ();
    fn count_attempt(&self, item_id: &str, at: DateTime<Utc>) -> u32;
    fn attempts(&self, item_id: &str) -> u32;
    fn prior(&self, item_id: &str) -> Vec<PriorHandoff>;
    fn enqueue(&self, decision: &DecisionRow, handoff: &NewHandoff, at: DateTime<Utc>) -> Handoff;
    fn claim(&self, role: &str, worker: &str, now: DateTime<Utc>, lease: Duration) -> Option<Handoff>;
    fn acknowledge(&self, id: &str, worker: &str, now: DateTime<Utc>, lease: Duration) -> Handoff;
    fn resolve(&self, id: &str, worker: &str, now: DateTime<Utc>, resolution: &Resolution) -> Handoff;
    fn renew(&self, id: &str, worker: &str, now: DateTime<Utc>, lease: Duration) -> Handoff;
    fn expire_leases(&self, now: DateTime<Utc>) -> Vec<(String, String)>;
    fn release(&self, id: &str, worker: &str, now: DateTime<Utc>) -> Handoff;
    fn probe(&self) -> ();
    fn get(&self, id: &str) -> Handoff;
    fn list(&self, filter: &ListFilter, now: DateTime<Utc>) -> Vec<Handoff>;
    fn breached(&self, now: DateTime<Utc>) -> Vec<(Handoff, Breach)>;
    fn escalate(&self, id: &str, from: Tier, breach: Breach, to: &Escalation, now: DateTime<Utc>) -> bool;
    fn alert(&self, id: &str, breach: Breach, now: DateTime<Utc>) -> bool;
    fn record_attempt(&self, item_id: &str, attempt: &AttemptRecord) -> ();
    fn attempt_history(&self, item_id: &str) -> Vec<AttemptRecord>;
    fn answer_of(&self, key: &str) -> Option<String>;
    fn keep_answer(&self, key: &str, item_id: &str, answer: &str, at: DateTime<Utc>) -> ();
    fn events_after(&self, after: i64, limit: u32) -> Vec<HandoffEvent>;
    fn events(&self, handoff: Option<&str>) -> Vec<Event>;
    fn decisions(&self) -> Vec<DecisionRow>;
    fn depth(&self, now: DateTime<Utc>) -> Vec<QueueDepth>;
    fn newest_event(&self) -> i64;
}
