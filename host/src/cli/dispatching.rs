//! Tier dispatch for the commands that decide: `eval --dispatch` and
//! `watch`, which own no async runtime of their own.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use handoff_host::dispatch::{
    DispatchConfig, Dispatched, Dispatcher, SlaEvent, SqliteStore, SystemClock, spawn_sla_clock,
};
use handoff_host::model::{Decision, WorkItem};
use tokio::task::JoinHandle;

/// How often a running host checks SLA deadlines.
const SLA_TICK: Duration = Duration::from_secs(1);

/// A dispatcher on the embedded store, with the runtime it runs on.
pub struct Dispatching {
    runtime: tokio::runtime::Runtime,
    dispatcher: Arc<Dispatcher<SqliteStore>>,
}

impl Dispatching {
    /// Opens the store in `data`. With `sla_clock`, the SLA clocks run in
    /// the background and print what they do.
    pub fn open(data: &Path, sla_clock: bool) -> anyhow::Result<Dispatching> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("handoff-dispatch")
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let store = runtime
            .block_on(SqliteStore::open(data))
            .with_context(|| format!("cannot open the handoff store in {}", data.display()))?;
        let dispatcher = Arc::new(Dispatcher::new(
            store,
            Arc::new(SystemClock),
            DispatchConfig::default(),
        ));
        if sla_clock {
            let _guard = runtime.enter();
            start_sla_clock(dispatcher.clone(), |_| {});
        }
        Ok(Dispatching {
            runtime,
            dispatcher,
        })
    }

    /// Acts on `decision`.
    pub fn dispatch(&self, item: &WorkItem, decision: &Decision) -> anyhow::Result<Dispatched> {
        self.runtime
            .block_on(self.dispatcher.dispatch(item, decision))
            .with_context(|| format!("cannot dispatch the decision on {}", item.id))
    }
}

/// Starts the SLA clocks on the current tokio runtime. Every breach acted
/// on is printed to stderr as `handoff: sla {json}` and handed to `observe`.
/// Returns the clock and the printer tasks.
pub fn start_sla_clock(
    dispatcher: Arc<Dispatcher<SqliteStore>>,
    observe: impl Fn(&SlaEvent) + Send + 'static,
) -> [JoinHandle<()>; 2] {
    let (sender, mut events) = tokio::sync::broadcast::channel(256);
    let clock = spawn_sla_clock(dispatcher, SLA_TICK, sender);
    let printer = tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            observe(&event);
            match serde_json::to_string(&event) {
                Ok(json) => eprintln!("handoff: sla {json}"),
                Err(error) => tracing::error!(%error, "cannot print an SLA event"),
            }
        }
    });
    [clock, printer]
}

/// The decision as printed when it was dispatched: its own fields plus a
/// `dispatch` field saying what happened (`proceed`, `retry`, `handoff`).
pub fn annotated(decision: &Decision, dispatched: &Dispatched) -> serde_json::Value {
    let mut value = serde_json::to_value(decision).unwrap_or(serde_json::Value::Null);
    if let Some(object) = value.as_object_mut() {
        object.insert(
            "dispatch".into(),
            serde_json::to_value(dispatched).unwrap_or(serde_json::Value::Null),
        );
    }
    value
}
