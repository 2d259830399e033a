//! Assembling a running host: the one place that wires policies, the audit
//! trail, the handoff store, the SLA clocks and the pipeline together, for
//! the server and the command line alike.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use handoff_audit::{
    AuditError, AuditLog, AuditOptions, Body, Checkpoint, Durability, ReadError, query,
};
use handoff_dispatch::{
    Commit, DispatchConfig, Dispatcher, EventSink, Generations, Ledger, SlaClock, SlaEvent, Store,
    StoreError, StoreLocation, SystemClock, spawn_sla_clock,
};
use handoff_model::{HandoffEvent, LifecycleEvent};
use handoff_policy::cache::CacheError;
use handoff_policy::reload::{LifecycleSink, LivePolicies, WatchError, WatchOptions, Watcher};
use handoff_policy::{DirError, EvaluatorPool, Policies, PolicySet, Runtime};
use tokio::task::JoinHandle;

use crate::chain_copy::ChainCopy;
use crate::fleet::{self, FleetMember, Follower};
use crate::pipeline::{Pipeline, Placement};
use crate::reference;

/// How often a running host checks SLA deadlines.
const SLA_TICK: Duration = Duration::from_secs(1);

/// Where the policies come from.
pub enum PolicySetup {
    /// A set already loaded, served as it is for the host's life.
    Fixed(Arc<PolicySet>),
    /// A directory, served live: watched and hot-reloaded.
    Watched {
        /// The directory.
        dir: PathBuf,
        /// Quiet interval before a file written in place is reloaded.
        debounce: Duration,
    },
}

/// The audit trail a host keeps.
pub struct AuditSetup {
    /// Its directory.
    pub dir: PathBuf,
    /// Durability, rotation and masking.
    pub options: AuditOptions,
}

/// Everything a host is made of.
pub struct HostConfig {
    /// The policies.
    pub policies: PolicySetup,
    /// Where compiled policies are kept between runs, if anywhere.
    pub cache: Option<PathBuf>,
    /// The audit trail, if any. A long-running host always keeps one.
    pub audit: Option<AuditSetup>,
    /// Where the handoff store is, when decisions are dispatched.
    pub store: Option<StoreLocation>,
    /// How decisions become handoffs.
    pub dispatch: DispatchConfig,
    /// Whether SLA deadlines are enforced in the background.
    pub sla_clock: bool,
    /// Where evaluation runs.
    pub placement: Placement,
    /// This host's name in a fleet: on a shared store, the audit chain it
    /// appends to, and the node `GET /v1/fleet` shows. Keep it across
    /// restarts: a node's audit directory copies its chain.
    pub node: String,
}

/// Hears every policy lifecycle event.
pub type LifecycleObserver = Arc<dyn Fn(&LifecycleEvent) + Send + Sync>;

/// Hears every SLA breach acted on.
pub type SlaObserver = Arc<dyn Fn(&SlaEvent) + Send + Sync>;

/// Who hears about what the host does on its own: policy reloads and SLA
/// breaches. The audit trail records lifecycle events whatever these do.
#[derive(Clone, Default)]
pub struct Observers {
    /// Every policy lifecycle event, after it is recorded.
    pub lifecycle: Option<LifecycleObserver>,
    /// Every breach the SLA clocks acted on.
    pub sla: Option<SlaObserver>,
}

/// Why a host could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The artifact cache directory cannot be used.
    #[error("cannot open the artifact cache: {0}")]
    Cache(#[from] CacheError),
    /// The audit log cannot be opened (or repaired).
    #[error("cannot open the audit log in {dir}")]
    Audit {
        /// Its directory.
        dir: String,
        /// Why.
        #[source]
        source: AuditError,
    },
    /// The audit log cannot be read back.
    #[error(transparent)]
    AuditRead(#[from] ReadError),
    /// The policy directory cannot be read.
    #[error(transparent)]
    Policies(#[from] DirError),
    /// The policy directory cannot be watched.
    #[error(transparent)]
    Watch(#[from] WatchError),
    /// The evaluator threads cannot be started (the system refused a
    /// thread).
    #[error("cannot start the evaluator threads: {0}")]
    Evaluators(#[source] std::io::Error),
    /// The handoff store cannot be opened.
    #[error("cannot open the handoff store {location}")]
    Store {
        /// Where it is, without any password.
        location: String,
        /// Why.
        #[source]
        source: StoreError,
    },
}

/// A running host.
pub struct Host {
    pipeline: Arc<Pipeline>,
    policies: Policies,
    audit: Option<Arc<AuditLog>>,
    dispatcher: Option<Arc<Dispatcher<Store>>>,
    /// The SLA clock, and the task handing its breaches to the observer.
    sla: Option<(SlaClock, JoinHandle<()>)>,
    /// Copies each audit checkpoint into the store.
    checkpoint_copier: Option<JoinHandle<()>>,
    /// Keeps the policy directory watched while the host lives.
    _watcher: Option<Watcher>,
    /// Follows the fleet's policy generations, once asked to.
    follower: Option<Follower>,
    /// Keeps the audit file a copy of this node's chain in a shared store.
    chain_copy: Option<ChainCopy>,
}

impl Host {
    /// Starts a host: opens the store and the audit log (on a shared store,
    /// a copy of this node's chain there), loads (and watches) the
    /// policies and starts the SLA clocks. Must run inside
    /// a tokio runtime, which the SLA clocks and the store live on.
    pub async fn open(
        runtime: &Runtime,
        config: HostConfig,
        observers: Observers,
    ) -> Result<Host, HostError> {
        let mut runtime = runtime.clone();
        if let Some(cache) = &config.cache {
            runtime = runtime.with_cache(cache)?;
        }
        let durability = config
            .audit
            .as_ref()
            .map_or(Durability::default(), |audit| audit.options.durability);
        // Checkpoints go to their witness file and, once the store is
        // open, to the store too: a second witness a forger must also find.
        let (checkpoint_tx, checkpoint_rx) = tokio::sync::mpsc::channel::<Checkpoint>(64);
        // The store opens first: on a shared one, every record (the
        // policies' lifecycle events included) is chained there.
        let store = match &config.store {
            Some(location) => {
                // The store is as durable as the audit log it sits beside.
                let commit = match durability {
                    Durability::Sync => Commit::Synced,
                    Durability::Batch | Durability::Off => Commit::Written,
                };
                Some(
                    Store::open(location, commit, &config.node)
                        .await
                        .map_err(|source| HostError::Store {
                            location: location.to_string(),
                            source,
                        })?,
                )
            }
            None => None,
        };
        let ledger = store.as_ref().and_then(|store| store.ledger()).cloned();
        let mut config = config;
        if let (Some(setup), Some(_)) = (&mut config.audit, &ledger) {
            setup.options.copy_of_store = true;
        }
        let audit = match config.audit {
            Some(mut setup) => {
                if let Some(checkpoints) = &mut setup.options.checkpoints
                    && config.store.is_some()
                {
                    let previous = checkpoints.observer.take();
                    checkpoints.observer = Some(Arc::new(move |checkpoint: &Checkpoint| {
                        if let Some(previous) = &previous {
                            previous(checkpoint);
                        }
                        if checkpoint_tx.try_send(checkpoint.clone()).is_err() {
                            tracing::warn!(
                                seq = checkpoint.seq,
                                "the store's checkpoint copy is behind; the witness file has it"
                            );
                        }
                    }));
                }
                Some(Arc::new(
                    AuditLog::open(&setup.dir, setup.options).map_err(|source| {
                        HostError::Audit {
                            dir: setup.dir.display().to_string(),
                            source,
                        }
                    })?,
                ))
            }
            None => None,
        };
        let chain_copy = match (&audit, &ledger) {
            (Some(audit), Some(ledger)) => {
                Some(ChainCopy::start(audit.clone(), ledger.clone()).await?)
            }
            _ => None,
        };
        let record = lifecycle_recorder(
            Recorder::of(audit.clone(), ledger.as_ref().zip(chain_copy.as_ref())),
            observers.lifecycle.clone(),
        );
        let (policies, watcher) = match config.policies {
            PolicySetup::Fixed(set) => {
                for event in set.lifecycle_events() {
                    record(&event);
                }
                (Policies::Fixed(set), None)
            }
            PolicySetup::Watched { dir, debounce } => {
                let live = LivePolicies::open(runtime, &dir, Arc::new(record))?;
                let watcher = Watcher::start(live.clone(), WatchOptions::with_debounce(debounce))?;
                (Policies::Live(live), Some(watcher))
            }
        };
        let dispatcher = match store {
            Some(store) => {
                let mut dispatcher = Dispatcher::new(store, Arc::new(SystemClock), config.dispatch);
                // A shared store chains handoff events itself.
                if let (Some(audit), None) = (&audit, &ledger) {
                    dispatcher = with_audited_events(dispatcher, audit)?;
                }
                Some(Arc::new(dispatcher))
            }
            None => None,
        };
        if let Some(dispatcher) = &dispatcher {
            // Events the store has and the audit log does not: a crash
            // between the two writes, or changes `handoff queue` made while
            // no host ran.
            match dispatcher.forward_events().await {
                Ok(0) => {}
                Ok(caught_up) => {
                    tracing::info!(caught_up, "handoff events recorded in the audit log")
                }
                Err(error) => tracing::warn!(%error, "handoff events wait for the audit log"),
            }
        }
        let checkpoint_copier = dispatcher
            .clone()
            .map(|dispatcher| tokio::spawn(copy_checkpoints(dispatcher, checkpoint_rx)));
        let sla = match (&dispatcher, config.sla_clock) {
            (Some(dispatcher), true) => Some(start_sla_clock(dispatcher.clone(), observers.sla)),
            _ => None,
        };
        let pipeline = Arc::new(
            Pipeline::new(
                EvaluatorPool::new(policies.clone()),
                config.placement,
                audit.clone(),
                dispatcher.clone(),
            )
            .map_err(HostError::Evaluators)?,
        );
        Ok(Host {
            pipeline,
            policies,
            audit,
            dispatcher,
            sla,
            checkpoint_copier,
            _watcher: watcher,
            follower: None,
            chain_copy,
        })
    }

    /// Makes this host a node of the fleet sharing its store: it serves the
    /// newest published policy generation from now on (adopted before this
    /// returns, when there is one) and follows the ones published later.
    /// Says whether it joined: only a live host on a shared store can.
    pub async fn join_fleet(&mut self, member: FleetMember) -> bool {
        let (Some(live), Some(generations)) = (self.policies.live(), self.generations()) else {
            return false;
        };
        let follower = fleet::follow(live.clone(), generations.clone(), member).await;
        self.follower = Some(follower);
        true
    }

    /// The fleet's published generations, when the store is shared.
    pub fn generations(&self) -> Option<&Generations> {
        self.dispatcher
            .as_ref()
            .and_then(|dispatcher| dispatcher.store().generations())
    }

    /// Where work items go.
    pub fn pipeline(&self) -> &Arc<Pipeline> {
        &self.pipeline
    }

    /// The policies served.
    pub fn policies(&self) -> &Policies {
        &self.policies
    }

    /// The audit trail, when the host keeps one.
    pub fn audit(&self) -> Option<&Arc<AuditLog>> {
        self.audit.as_ref()
    }

    /// Tier dispatch, when the host dispatches.
    pub fn dispatcher(&self) -> Option<&Arc<Dispatcher<Store>>> {
        self.dispatcher.as_ref()
    }

    /// Stops the SLA clocks, writes out the audit log, signs a closing
    /// checkpoint (when checkpoints are configured) and closes the store.
    /// Call it after the last submission has been answered.
    pub async fn close(self) -> Result<(), AuditError> {
        drop(self.follower);
        if let Some((clock, forward)) = self.sla {
            clock.stop().await;
            forward.abort();
        }
        if let Some(copy) = self.chain_copy {
            copy.finish().await;
        }
        let flushed = self.audit.as_ref().map_or(Ok(()), |audit| audit.flush());
        let closing = match (&self.audit, &flushed) {
            (Some(audit), Ok(())) => audit.checkpoint(),
            _ => Ok(None),
        };
        if let Some(copier) = &self.checkpoint_copier {
            copier.abort();
        }
        if let Some(dispatcher) = &self.dispatcher {
            if let Ok(Some(checkpoint)) = &closing {
                record_checkpoint(dispatcher, checkpoint).await;
            }
            dispatcher.store().close().await;
        }
        flushed?;
        closing.map(|_| ())
    }
}

/// `dispatcher`, forwarding every handoff event into `audit`, after the
/// newest one the log already holds.
fn with_audited_events(
    dispatcher: Dispatcher<Store>,
    audit: &Arc<AuditLog>,
) -> Result<Dispatcher<Store>, HostError> {
    let files = audit.files().map_err(|source| HostError::Audit {
        dir: audit.dir().display().to_string(),
        source,
    })?;
    let through = query::last_handoff_event(&files)?.unwrap_or(0);
    let audit = audit.clone();
    let sink: EventSink = Arc::new(move |event: &HandoffEvent| {
        audit
            .record_handoff_event(event)
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    Ok(dispatcher.with_event_sink(sink, through))
}

/// Keeps a copy of each checkpoint in the store, as it is written.
async fn copy_checkpoints(
    dispatcher: Arc<Dispatcher<Store>>,
    mut checkpoints: tokio::sync::mpsc::Receiver<Checkpoint>,
) {
    while let Some(checkpoint) = checkpoints.recv().await {
        record_checkpoint(&dispatcher, &checkpoint).await;
    }
}

async fn record_checkpoint(dispatcher: &Dispatcher<Store>, checkpoint: &Checkpoint) {
    let line = checkpoint.to_line();
    if let Err(error) = dispatcher
        .store()
        .record_checkpoint(checkpoint.seq, &line)
        .await
    {
        tracing::error!(%error, seq = checkpoint.seq, "cannot copy an audit checkpoint into the store");
    }
}

/// Where a host's lifecycle events are recorded.
enum Recorder {
    /// Nowhere: the host keeps no audit trail.
    Nothing,
    /// Its audit log.
    File(Arc<AuditLog>),
    /// This node's chain in the shared store, which its audit file copies.
    Chain {
        ledger: Ledger,
        copy: Arc<tokio::sync::Notify>,
        runtime: tokio::runtime::Handle,
    },
}

impl Recorder {
    fn of(audit: Option<Arc<AuditLog>>, copy: Option<(&Ledger, &ChainCopy)>) -> Recorder {
        match (audit, copy) {
            (Some(_), Some((ledger, copy))) => Recorder::Chain {
                ledger: ledger.clone(),
                copy: copy.waker(),
                runtime: tokio::runtime::Handle::current(),
            },
            (Some(audit), None) => Recorder::File(audit),
            (None, _) => Recorder::Nothing,
        }
    }

    fn record(&self, event: &LifecycleEvent) -> Result<(), String> {
        match self {
            Recorder::Nothing => Ok(()),
            Recorder::File(audit) => audit
                .record_lifecycle(event)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Recorder::Chain {
                ledger,
                copy,
                runtime,
            } => {
                let body = serde_json::to_string(&Body::Lifecycle {
                    event: event.clone(),
                })
                .map_err(|e| e.to_string())?;
                // Events come from any thread, an async worker's included,
                // and the append is async: it runs on a thread of its own.
                // A worker waiting for it hands its other work on first,
                // so that the runtime still drives the append's I/O.
                let wait = || {
                    std::thread::scope(|scope| {
                        scope
                            .spawn(|| runtime.block_on(ledger.append_alone(&[body])))
                            .join()
                    })
                };
                let appended = match tokio::runtime::Handle::try_current() {
                    Ok(current)
                        if current.runtime_flavor()
                            == tokio::runtime::RuntimeFlavor::MultiThread =>
                    {
                        tokio::task::block_in_place(wait)
                    }
                    _ => wait(),
                };
                match appended {
                    Ok(Ok(())) => {
                        copy.notify_one();
                        Ok(())
                    }
                    Ok(Err(error)) => Err(error.to_string()),
                    Err(_) => Err("the append panicked".into()),
                }
            }
        }
    }
}

/// Records each lifecycle event in the audit trail (if any) and tells the
/// observer. A failure to record is logged: a reload must not stop because
/// the log did, and every decision after it fails closed anyway.
fn lifecycle_recorder(
    recorder: Recorder,
    observer: Option<LifecycleObserver>,
) -> impl Fn(&LifecycleEvent) + Send + Sync + 'static {
    move |event: &LifecycleEvent| {
        if let Err(error) = recorder.record(event) {
            tracing::error!(%error, %event, "cannot record a lifecycle event in the audit log");
        }
        if let Some(observer) = &observer {
            observer(event);
        }
    }
}

/// A lifecycle sink that records every event in `audit`: what a host wires
/// into its live policies, for callers assembling one by hand.
pub fn audit_sink(audit: Arc<AuditLog>) -> Arc<dyn LifecycleSink> {
    Arc::new(lifecycle_recorder(Recorder::File(audit), None))
}

/// Starts the SLA clocks on the current tokio runtime, handing every breach
/// acted on to `observer`. Returns the clock and the forwarding task.
fn start_sla_clock(
    dispatcher: Arc<Dispatcher<Store>>,
    observer: Option<SlaObserver>,
) -> (SlaClock, JoinHandle<()>) {
    let (sender, mut events) = tokio::sync::broadcast::channel(256);
    let clock = spawn_sla_clock(dispatcher, SLA_TICK, sender);
    let forward = tokio::spawn(async move {
        while let Ok(event) = events.recv().await {
            if let Some(observer) = &observer {
                observer(&event);
            }
        }
    });
    (clock, forward)
}

/// The directory a long-running host serves: the one named, or `policies/`
/// in the data directory, seeded with the reference policies on first use so
/// that an operator can edit them live. Says whether it was seeded now.
pub fn policy_dir(named: Option<&Path>, data: &Path) -> std::io::Result<(PathBuf, bool)> {
    if let Some(dir) = named {
        return Ok((dir.to_path_buf(), false));
    }
    let dir = data.join("policies");
    if dir.exists() {
        return Ok((dir, false));
    }
    reference::write_to(&dir)?;
    Ok((dir, true))
}
