//! The audit log writer: appends hash-chained records to rotating JSON
//! Lines files with a chosen durability, stops (and later resumes, saying
//! so in the chain) when the disk fails it, and signs checkpoints.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::checkpoint::{Checkpoint, CheckpointOptions, append_to_witness};
use super::mask::Masking;
use super::record::{Body, DecisionRecordRef, ItemRef, decode, encode};
use super::segment::{file_name, io_error, log_files, open_for_append, read_tail, sync_dir};
use handoff_model::{Decision, HandoffEvent, LifecycleEvent, WorkItem};

handoff_model::named_enum! {
    /// When an appended record is on stable storage.
    #[derive(Default)]
    pub enum Durability ("durability") {
        /// `fsync` before `append` returns: an acknowledged record survives a
        /// crash of the process or the machine.
        Sync,
        /// Group commit: records are written at once and synced together every
        /// few milliseconds or every few hundred records, whichever comes first.
        /// A machine crash can lose at most that window; a process crash loses
        /// nothing that was appended.
        #[default]
        Batch,
        /// Written through a buffer and never synced: the operating system
        /// decides. For benchmarks and throwaway runs.
        Off,
    }
}

/// How the log behaves.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// When records reach stable storage.
    pub durability: Durability,
    /// A file is rotated before it would grow past this many bytes.
    pub max_file_bytes: u64,
    /// Batch mode: the longest a record waits for its sync.
    pub batch_interval: Duration,
    /// Batch mode: the most records that wait for a sync; the appender that
    /// reaches it syncs at once.
    pub batch_records: usize,
    /// Which item fields are masked, if any.
    pub masking: Option<Masking>,
    /// Signed checkpoints of the head, if any.
    pub checkpoints: Option<CheckpointOptions>,
    /// After a write fails, how often the log tries to resume.
    pub retry_interval: Duration,
    /// The log is a copy of a chain the store keeps (a fleet node's, whose
    /// records are chained in the same transaction as the state change
    /// they record): it takes only that chain's lines, through
    /// [`AuditLog::copy`], and writes no record of its own, not even a
    /// recovery or an outage record, since the store still holds
    /// whatever the file missed.
    pub copy_of_store: bool,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            durability: Durability::default(),
            max_file_bytes: 64 * 1024 * 1024,
            batch_interval: Duration::from_millis(5),
            batch_records: 256,
            masking: None,
            checkpoints: None,
            retry_interval: Duration::from_secs(1),
            copy_of_store: false,
        }
    }
}

/// Why the audit log failed. The log fails closed: after a write error it
/// refuses every append until the fault clears, rather than leave a gap in
/// the chain, and records the outage when it resumes.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file could not be read or written.
    #[error("audit log {file}: {source}")]
    Io {
        /// The file or directory.
        file: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A record is damaged: that is tampering or disk corruption, not a
    /// torn write, and is not repaired silently.
    #[error(
        "audit log {file} is damaged at line {line} ({reason}); run `handoff audit verify` \
         and restore it from a copy"
    )]
    Damaged {
        /// The file.
        file: String,
        /// The damaged line, from 1.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// An earlier write failed, so the log refuses appends until it can
    /// write again.
    #[error("the audit log has refused appends since {since} ({reason})")]
    Stopped {
        /// When the first write failed.
        since: DateTime<Utc>,
        /// Why, and whether it retries.
        reason: String,
    },
    /// The record could not be serialised.
    #[error("cannot serialise an audit record: {0}")]
    Serialize(#[from] serde_json::Error),
    /// The log copies the store's chain and takes no record of its own.
    #[error(
        "the audit log in {dir} is a copy of this node's chain in the store; records are written there"
    )]
    CopyOnly {
        /// The log's directory.
        dir: String,
    },
    /// A line handed to [`AuditLog::copy`] does not continue the file's
    /// chain: the file holds another chain, or a line is damaged.
    #[error("the audit log in {dir} cannot take record {seq} of the store's chain: {reason}")]
    NotContinued {
        /// The log's directory.
        dir: String,
        /// The record's sequence number, as it claims.
        seq: u64,
        /// What does not match.
        reason: String,
    },
}

/// Whether the log takes appends: what readiness reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditHealth {
    /// Appends are written.
    Writing,
    /// Appends are refused.
    Stopped {
        /// Since the first failed write.
        since: DateTime<Utc>,
        /// Appends refused since then.
        refused: u64,
        /// The log retries by itself (every second) and resumes when the
        /// fault clears. False when its file was replaced or shortened
        /// underneath it: then only a restart, after a look at the files,
        /// resumes it.
        retrying: bool,
    },
}

/// An open audit log. Appends from any thread are serialised into one chain.
pub struct AuditLog {
    shared: Arc<Shared>,
    background: Option<JoinHandle<()>>,
}

struct Shared {
    dir: PathBuf,
    options: AuditOptions,
    state: Mutex<State>,
    wake: Condvar,
    /// Held while a checkpoint is signed and written, so that two never
    /// interleave.
    checkpointing: Mutex<()>,
}

/// Acknowledged records not yet handed to the OS, with `off` durability,
/// are written once they reach this size.
const PENDING_LIMIT: usize = 64 * 1024;

struct State {
    next_seq: u64,
    prev: String,
    /// The hash of record 1, once there is one.
    genesis: Option<String>,
    file_index: u32,
    file_path: PathBuf,
    file: Arc<File>,
    /// Which file `file` is, to notice it being replaced while stopped.
    identity: FileIdentity,
    /// Bytes of the current file that hold records, all of them
    /// acknowledged. Anything past it is a write that failed, and is cut
    /// before the log writes again.
    written: u64,
    /// Acknowledged records not yet handed to the OS (`off` only).
    pending: Vec<u8>,
    unsynced: usize,
    oldest_unsynced: Option<Instant>,
    stop: Option<Stop>,
    closing: bool,
    /// The last record a checkpoint vouches for.
    checkpointed: u64,
    /// When the first record after it was appended.
    uncheckpointed_since: Option<Instant>,
    /// No checkpoint is attempted before then (after a failed one).
    next_checkpoint_attempt: Option<Instant>,
}

/// Why and since when appends are refused.
struct Stop {
    reason: String,
    since: DateTime<Utc>,
    refused: u64,
    next_attempt: Instant,
    /// Set when resuming would be unsafe.
    never: Option<String>,
}

impl Stop {
    fn error(&self) -> AuditError {
        let reason = match &self.never {
            Some(never) => format!("{}; it cannot resume: {never}", self.reason),
            None => format!("{}; it retries every second", self.reason),
        };
        AuditError::Stopped {
            since: self.since,
            reason,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileIdentity(u64, u64);

impl FileIdentity {
    fn of(metadata: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            FileIdentity(metadata.dev(), metadata.ino())
        }
        #[cfg(not(unix))]
        {
            let _ = metadata;
            FileIdentity(0, 0)
        }
    }
}

impl AuditLog {
    /// Opens the log in `dir`, creating it if needed. A torn last line,
    /// left by a crash mid-write, is cut off and a `recovery` record says
    /// what was cut.
    pub fn open(dir: &Path, options: AuditOptions) -> Result<AuditLog, AuditError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let tail = read_tail(dir)?;
        let file_path = file_name(dir, tail.file_index);
        let file = open_for_append(&file_path)?;
        let identity = FileIdentity::of(&file.metadata().map_err(io_error(&file_path))?);
        let state = State {
            next_seq: tail.next_seq,
            prev: tail.prev,
            genesis: tail.genesis,
            file_index: tail.file_index,
            file_path: file_path.clone(),
            file: Arc::new(file),
            identity,
            written: tail.file_bytes,
            pending: Vec::new(),
            unsynced: 0,
            oldest_unsynced: None,
            stop: None,
            closing: false,
            checkpointed: tail.next_seq - 1,
            uncheckpointed_since: None,
            next_checkpoint_attempt: None,
        };
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            options,
            state: Mutex::new(state),
            wake: Condvar::new(),
            checkpointing: Mutex::new(()),
        });
        let background = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("handoff-audit".into())
                .spawn(move || shared.run_background())
                .map_err(io_error(dir))?
        };
        let log = AuditLog {
            shared,
            background: Some(background),
        };
        if let Some((cut_bytes, _)) = &tail.cut
            && log.shared.options.copy_of_store
        {
            // The store still holds the cut record: copying resumes there.
            tracing::warn!(file = %file_path.display(), cut_bytes, "repaired a torn tail of the audit log's copy");
        } else if let Some((cut_bytes, cut_preview)) = tail.cut {
            tracing::warn!(file = %file_path.display(), cut_bytes, "repaired a torn audit log tail");
            log.append(&Body::Recovery {
                file: file_path.display().to_string(),
                cut_bytes,
                cut_preview,
            })?;
            log.flush()?;
        }
        Ok(log)
    }

    /// The directory of the log.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// The log's files, oldest first.
    pub fn files(&self) -> Result<Vec<PathBuf>, AuditError> {
        log_files(&self.shared.dir)
    }

    /// The hash of the first record: the log's identity in checkpoints.
    pub fn genesis(&self) -> Option<String> {
        self.shared.lock().genesis.clone()
    }

    /// Records a decision (with who submitted it, when known) and, for each
    /// plugin that faulted, a `fault` lifecycle event. Returns the decision
    /// record's sequence number.
    pub fn record_decision(
        &self,
        item: &WorkItem,
        decision: &Decision,
        principal: Option<&str>,
    ) -> Result<u64, AuditError> {
        let seq = self.append_serialized(self.decision_body(item, decision, principal)?)?;
        self.record_faults(decision)?;
        Ok(seq)
    }

    /// Records decisions made together (a batch's), in order, as
    /// [`AuditLog::record_decision`] records each, but handed to the OS in
    /// one write (and, with `sync` durability, made stable by one sync): a
    /// write per record was most of a batch's cost. Returns their sequence
    /// numbers. On error none of them is acknowledged, though those a file
    /// rotation made stable before the failure stay in the chain.
    pub fn record_decisions(
        &self,
        decisions: &[(&WorkItem, &Decision)],
        principal: Option<&str>,
    ) -> Result<Vec<u64>, AuditError> {
        let bodies = decisions
            .iter()
            .map(|(item, decision)| self.decision_body(item, decision, principal))
            .collect::<Result<Vec<_>, _>>()?;
        let first = self.append_serialized_many(&bodies)?;
        for (_, decision) in decisions {
            self.record_faults(decision)?;
        }
        Ok((first..first + bodies.len() as u64).collect())
    }

    /// The records of decisions, serialized but not appended, each with
    /// the `fault` records that follow it: for a store that appends them
    /// to its chain in the same transaction as the decisions' rows.
    pub fn decision_bodies(
        &self,
        decisions: &[(&WorkItem, &Decision)],
        principal: Option<&str>,
    ) -> Result<Vec<Vec<String>>, AuditError> {
        decisions
            .iter()
            .map(|(item, decision)| {
                let mut bodies = vec![self.decision_body(item, decision, principal)?];
                for event in faults(decision) {
                    bodies.push(serde_json::to_string(&Body::Lifecycle { event })?);
                }
                Ok(bodies)
            })
            .collect()
    }

    /// Whether records are written to the store's chain, and this log only
    /// copies them.
    pub fn is_copy_of_store(&self) -> bool {
        self.shared.options.copy_of_store
    }

    /// The last record's sequence number (0 when empty) and hash.
    pub fn head(&self) -> (u64, String) {
        let state = self.shared.lock();
        (state.next_seq - 1, state.prev.clone())
    }

    /// Appends lines of the store's chain verbatim, in order: each must be
    /// a sound record continuing the file's chain (its `seq` next, its
    /// `prev` the head's hash), or nothing from it on is written.
    pub fn copy(&self, lines: &[String]) -> Result<(), AuditError> {
        let mut state = self.shared.lock();
        if state.stop.is_some() {
            self.shared.resume_if_due(&mut state);
        }
        if let Some(stop) = &state.stop {
            return Err(stop.error());
        }
        let mut chained = Vec::with_capacity(lines.len());
        let (mut seq, mut prev) = (state.next_seq, state.prev.clone());
        for line in lines {
            let not_continued = |claimed: u64, reason: String| AuditError::NotContinued {
                dir: self.shared.dir.display().to_string(),
                seq: claimed,
                reason,
            };
            let record = decode(line).map_err(|e| not_continued(seq, e.to_string()))?;
            if record.seq != seq {
                return Err(not_continued(
                    record.seq,
                    format!("the file's next record is {seq}"),
                ));
            }
            if record.prev != prev {
                return Err(not_continued(
                    record.seq,
                    "it does not follow the file's last record (another chain?)".into(),
                ));
            }
            seq += 1;
            prev.clone_from(&record.hash);
            chained.push((line.clone(), record.hash));
        }
        let first = state.next_seq;
        let result = state.write_lines(&chained, &self.shared.dir, &self.shared.options);
        if first == 1 && state.next_seq > 1 {
            state.genesis = chained.first().map(|(_, hash)| hash.clone());
        }
        if state.next_seq > first {
            state.uncheckpointed_since.get_or_insert_with(Instant::now);
        }
        result.inspect_err(|error| state.stop_with(error))
    }

    /// A decision record's body, serialized: the work is done before any
    /// lock is taken.
    fn decision_body(
        &self,
        item: &WorkItem,
        decision: &Decision,
        principal: Option<&str>,
    ) -> Result<String, AuditError> {
        let (item, masked) = match &self.shared.options.masking {
            Some(masking) if masking.is_active() => {
                let (value, masked) = masking.apply(item);
                (ItemRef::Masked(value), masked)
            }
            _ => (ItemRef::Submitted(item), Vec::new()),
        };
        let record = DecisionRecordRef {
            generation: decision.generation,
            digests: decision
                .verdicts
                .iter()
                .map(|v| (v.plugin.as_str(), v.digest.as_str()))
                .collect(),
            principal,
            item,
            replayable: masked.is_empty(),
            masked: &masked,
            decision,
        };
        // Records run to a few kilobytes: size the buffer once.
        let mut body = Vec::with_capacity(4096);
        serde_json::to_writer(&mut body, &record)?;
        // serde_json only writes valid UTF-8.
        String::from_utf8(body).map_err(|e| AuditError::Serialize(serde::ser::Error::custom(e)))
    }

    /// A shadow's fault is recorded too: a pilot must show how often the
    /// candidate misbehaves, though its faults never touch the item.
    fn record_faults(&self, decision: &Decision) -> Result<(), AuditError> {
        for event in faults(decision) {
            self.record_lifecycle(&event)?;
        }
        Ok(())
    }

    /// Records a change to a handoff: a human action or an SLA clock's.
    pub fn record_handoff_event(&self, event: &HandoffEvent) -> Result<u64, AuditError> {
        self.append(&Body::Handoff {
            event: event.clone(),
        })
    }

    /// Records a change to the policy set (or a plugin fault).
    pub fn record_lifecycle(&self, event: &LifecycleEvent) -> Result<u64, AuditError> {
        self.append(&Body::Lifecycle {
            event: event.clone(),
        })
    }

    /// Appends one record and returns its sequence number. With `sync`
    /// durability it is on stable storage when this returns.
    pub fn append(&self, body: &Body) -> Result<u64, AuditError> {
        self.append_serialized(serde_json::to_string(body)?)
    }

    /// Appends a body already serialized as a JSON object. Serializing is
    /// most of the work, so it happens before the lock is taken.
    fn append_serialized(&self, body: String) -> Result<u64, AuditError> {
        self.append_serialized_many(std::slice::from_ref(&body))
    }

    /// Appends bodies already serialized, in order and together; returns
    /// the first one's sequence number.
    fn append_serialized_many(&self, bodies: &[String]) -> Result<u64, AuditError> {
        if self.shared.options.copy_of_store {
            return Err(AuditError::CopyOnly {
                dir: self.shared.dir.display().to_string(),
            });
        }
        let mut state = self.shared.lock();
        if state.stop.is_some() {
            self.shared.resume_if_due(&mut state);
        }
        if let Some(stop) = &mut state.stop {
            stop.refused += bodies.len() as u64;
            return Err(stop.error());
        }
        let seq = self.shared.write_records(&mut state, bodies)?;
        let count_due =
            self.shared.options.checkpoints.as_ref().is_some_and(|cp| {
                state.next_seq - 1 - state.checkpointed >= cp.every_records.max(1)
            });
        drop(state);
        if count_due {
            self.shared.wake.notify_all();
        }
        Ok(seq)
    }

    /// The sequence number the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.shared.lock().next_seq
    }

    /// Whether appends are taken, trying to resume first if the log is
    /// stopped and a retry is due.
    pub fn health(&self) -> AuditHealth {
        let mut state = self.shared.lock();
        self.shared.resume_if_due(&mut state);
        match &state.stop {
            None => AuditHealth::Writing,
            Some(stop) => AuditHealth::Stopped {
                since: stop.since,
                refused: stop.refused,
                retrying: stop.never.is_none(),
            },
        }
    }

    /// Writes and syncs everything appended so far.
    pub fn flush(&self) -> Result<(), AuditError> {
        let mut state = self.shared.lock();
        if let Some(stop) = &state.stop {
            return Err(stop.error());
        }
        state.sync_now().inspect_err(|error| state.stop_with(error))
    }

    /// Signs the head now, if it moved since the last checkpoint (and
    /// checkpoints are configured). Hosts call it at shutdown.
    pub fn checkpoint(&self) -> Result<Option<Checkpoint>, AuditError> {
        self.shared.checkpoint(true)
    }
}

/// The `fault` lifecycle events of a decision, its shadows' included.
fn faults(decision: &Decision) -> impl Iterator<Item = LifecycleEvent> + '_ {
    decision
        .verdicts
        .iter()
        .chain(&decision.shadow)
        .filter_map(|verdict| {
            verdict.fault.as_ref().map(|fault| LifecycleEvent::Fault {
                plugin: verdict.plugin.clone(),
                digest: verdict.digest.clone(),
                item: decision.id.clone(),
                fault: fault.clone(),
            })
        })
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_all();
        if let Some(background) = self.background.take() {
            let _ = background.join();
        }
        let mut state = self.shared.lock();
        if state.stop.is_some() {
            // Whatever a failed write left is not a record anybody was
            // told about: cut it, so it cannot be read as one.
            state.cut_unacknowledged();
            return;
        }
        if let Err(error) = state.sync_now() {
            tracing::error!(%error, "cannot flush the audit log at close");
            return;
        }
        drop(state);
        if let Err(error) = self.shared.checkpoint(true) {
            tracing::error!(%error, "cannot write the closing audit checkpoint");
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation of the state completes or marks the log stopped
        // before anything can panic, so a poisoned lock holds a sound state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Chains and writes one record; a failure stops the log.
    fn write_record(&self, state: &mut State, body: &str) -> Result<u64, AuditError> {
        self.write_records(state, &[body])
    }

    /// Chains records and writes them together; returns the first one's
    /// sequence number. A failure stops the log; records written before it
    /// (up to a file rotation, which syncs) stay, chained and counted.
    fn write_records<B: AsRef<str>>(
        &self,
        state: &mut State,
        bodies: &[B],
    ) -> Result<u64, AuditError> {
        let first = state.next_seq;
        let now = Utc::now();
        let mut lines: Vec<(String, String)> = Vec::with_capacity(bodies.len());
        for (offset, body) in bodies.iter().enumerate() {
            let prev = lines.last().map_or(state.prev.as_str(), |(_, hash)| hash);
            lines.push(encode(first + offset as u64, now, prev, body.as_ref()));
        }
        let result = state.write_lines(&lines, &self.dir, &self.options);
        if first == 1 && state.next_seq > 1 {
            state.genesis = lines.first().map(|(_, hash)| hash.clone());
        }
        if state.next_seq > first {
            state.uncheckpointed_since.get_or_insert_with(Instant::now);
        }
        if let Err(error) = result {
            state.stop_with(&error);
            // The caller hears that these were not recorded: the outage
            // record counts them with the appends refused after.
            let unwritten = bodies.len() as u64 - (state.next_seq - first);
            if let Some(stop) = &mut state.stop {
                stop.refused += unwritten;
            }
            return Err(error);
        }
        Ok(first)
    }

    /// When a retry is due, reopens the current file, cuts what failed
    /// writes left, and records the outage: the chain says when appends
    /// were refused, and how many.
    fn resume_if_due(&self, state: &mut State) {
        let Some(stop) = &mut state.stop else {
            return;
        };
        if stop.never.is_some() || Instant::now() < stop.next_attempt {
            return;
        }
        stop.next_attempt = Instant::now() + self.options.retry_interval;
        match state.reopen() {
            Ok(()) => {}
            Err(Reopen::Later(error)) => {
                tracing::debug!(%error, "the audit log cannot resume yet");
                return;
            }
            Err(Reopen::Never(why)) => {
                tracing::error!(reason = %why, "the audit log cannot resume");
                if let Some(stop) = &mut state.stop {
                    stop.never = Some(why);
                }
                return;
            }
        }
        let Some(stop) = state.stop.take() else {
            return;
        };
        if self.options.copy_of_store {
            // What the copy missed is still in the store: copying resumes.
            tracing::warn!(since = %stop.since, "the audit log's copy resumed");
            return;
        }
        let outage = Body::Outage {
            since: stop.since,
            until: Utc::now(),
            reason: stop.reason.clone(),
            refused: stop.refused,
        };
        let body = match serde_json::to_string(&outage) {
            Ok(body) => body,
            Err(error) => {
                state.stop = Some(stop);
                tracing::error!(%error, "cannot serialise an outage record");
                return;
            }
        };
        match self.write_record(state, &body) {
            Ok(seq) => {
                tracing::warn!(
                    seq,
                    since = %stop.since,
                    refused = stop.refused,
                    "the audit log resumed; the outage is recorded"
                );
            }
            Err(_) => {
                // Still failing: the outage goes on from when it began.
                if let Some(again) = &mut state.stop {
                    // The outage record is nobody's append: not refused.
                    again.since = stop.since;
                    again.refused = stop.refused;
                    again.reason = stop.reason;
                }
            }
        }
    }

    /// The background work: batch syncs, `off` writes, retries while
    /// stopped, and checkpoints when due.
    fn run_background(&self) {
        let tick = match self.options.durability {
            Durability::Sync => Duration::from_millis(100),
            Durability::Batch | Durability::Off => self.options.batch_interval,
        };
        let mut state = self.lock();
        loop {
            if state.closing {
                return;
            }
            state = self
                .wake
                .wait_timeout(state, tick)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
            if state.closing {
                return;
            }
            if state.stop.is_some() {
                self.resume_if_due(&mut state);
                continue;
            }
            match self.options.durability {
                Durability::Off => {
                    // Hand buffered lines to the OS, so readers see them.
                    if let Err(error) = state.write_pending() {
                        state.stop_with(&error);
                        continue;
                    }
                }
                Durability::Batch => {
                    let due = state
                        .oldest_unsynced
                        .is_some_and(|oldest| oldest.elapsed() >= self.options.batch_interval);
                    if due {
                        state = self.sync_outside_lock(state);
                    }
                }
                Durability::Sync => {}
            }
            if state.checkpoint_due(&self.options) {
                drop(state);
                if let Err(error) = self.checkpoint(false) {
                    tracing::error!(%error, "cannot write an audit checkpoint");
                }
                state = self.lock();
            }
        }
    }

    /// Syncs what is written, with the lock released while the disk works,
    /// so that appenders keep going.
    fn sync_outside_lock<'a>(&'a self, mut state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        let path = state.file_path.clone();
        let file = state.file.clone();
        let covered = state.written;
        state.unsynced = 0;
        state.oldest_unsynced = None;
        drop(state);
        let synced = file.sync_data();
        let mut state = self.lock();
        if let Err(e) = synced {
            let error = io_error(&path)(e);
            tracing::error!(%error, covered, "audit log sync failed; refusing appends until it works");
            state.stop_with(&error);
        }
        state
    }

    /// Signs the head and writes the checkpoint to the witness (and tells
    /// the observer). The head is synced first: a checkpoint never vouches
    /// for a record a machine crash could still take back. Unless `force`d,
    /// only when one is due.
    fn checkpoint(&self, force: bool) -> Result<Option<Checkpoint>, AuditError> {
        let Some(options) = &self.options.checkpoints else {
            return Ok(None);
        };
        let _lane = self.checkpointing.lock().unwrap_or_else(|p| p.into_inner());
        let mut state = self.lock();
        let head = state.next_seq - 1;
        if head == 0 || head <= state.checkpointed || state.stop.is_some() {
            return Ok(None);
        }
        if !force && !state.checkpoint_due(&self.options) {
            return Ok(None);
        }
        let Some(genesis) = state.genesis.clone() else {
            return Ok(None);
        };
        state
            .sync_now()
            .inspect_err(|error| state.stop_with(error))?;
        let hash = state.prev.clone();
        drop(state);
        let checkpoint = options.key.sign(&genesis, head, &hash, Utc::now());
        let written = append_to_witness(&options.witness, &checkpoint);
        let mut state = self.lock();
        if let Err(source) = written {
            state.next_checkpoint_attempt = Some(Instant::now() + self.options.retry_interval);
            return Err(AuditError::Io {
                file: options.witness.display().to_string(),
                source,
            });
        }
        state.checkpointed = head;
        state.next_checkpoint_attempt = None;
        state.uncheckpointed_since = (state.next_seq - 1 > head).then(Instant::now);
        drop(state);
        if let Some(observer) = &options.observer {
            observer(&checkpoint);
        }
        Ok(Some(checkpoint))
    }
}

/// Why the log could not reopen its file.
enum Reopen {
    /// Not yet: try again later.
    Later(AuditError),
    /// Never without a person looking: the file was replaced or shortened.
    Never(String),
}

impl State {
    /// Writes chained lines (each with its hash) where and when the
    /// durability says, as few writes as the file's size limit allows, and
    /// advances the chain past each group written. On error, `written`
    /// still ends at the last acknowledged record, and the chain at it.
    fn write_lines(
        &mut self,
        lines: &[(String, String)],
        dir: &Path,
        options: &AuditOptions,
    ) -> Result<(), AuditError> {
        let mut rest = lines;
        while !rest.is_empty() {
            let size = self.written + self.pending.len() as u64;
            let mut bytes = Vec::new();
            let mut count = 0;
            for (line, _) in rest {
                let needed = line.len() as u64 + 1;
                if size + (bytes.len() as u64) + needed > options.max_file_bytes
                    && size + (bytes.len() as u64) > 0
                {
                    break;
                }
                bytes.extend_from_slice(line.as_bytes());
                bytes.push(b'\n');
                count += 1;
            }
            if count == 0 {
                // The file is full: this line starts the next one.
                self.rotate(dir)?;
                continue;
            }
            self.write_group(&bytes, count, options)?;
            let (group, after) = rest.split_at(count);
            self.next_seq += count as u64;
            if let Some((_, hash)) = group.last() {
                self.prev = hash.clone();
            }
            rest = after;
        }
        Ok(())
    }

    /// Writes `count` lines' bytes as the durability says.
    fn write_group(
        &mut self,
        bytes: &[u8],
        count: usize,
        options: &AuditOptions,
    ) -> Result<(), AuditError> {
        let needed = bytes.len() as u64;
        match options.durability {
            Durability::Off => {
                // Write what is held back before taking the group, never
                // after: a failure must leave out only this group, which
                // nobody was told about, not put it where a resume would
                // write it under a sequence number the chain reuses.
                if self.pending.len() + bytes.len() >= PENDING_LIMIT {
                    self.write_pending()?;
                }
                self.pending.extend_from_slice(bytes);
            }
            Durability::Sync => {
                self.write_out(bytes)?;
                self.sync_file()?;
                self.written += needed;
            }
            Durability::Batch => {
                // Hand the lines to the OS now, so that only a machine
                // crash, never a process crash, can lose them.
                self.write_out(bytes)?;
                if self.unsynced + count >= options.batch_records {
                    self.sync_file()?;
                    self.unsynced = 0;
                    self.oldest_unsynced = None;
                } else {
                    self.unsynced += count;
                    self.oldest_unsynced.get_or_insert_with(Instant::now);
                }
                self.written += needed;
            }
        }
        Ok(())
    }

    fn write_out(&self, bytes: &[u8]) -> Result<(), AuditError> {
        (&*self.file)
            .write_all(bytes)
            .map_err(io_error(&self.file_path))
    }

    fn sync_file(&self) -> Result<(), AuditError> {
        self.file.sync_data().map_err(io_error(&self.file_path))
    }

    /// Writes the acknowledged records `off` durability holds back, keeping
    /// count of what reached the file, so that a failure loses none.
    fn write_pending(&mut self) -> Result<(), AuditError> {
        let mut done = 0;
        let result = loop {
            if done == self.pending.len() {
                break Ok(());
            }
            match (&*self.file).write(&self.pending[done..]) {
                Ok(0) => break Err(std::io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        self.written += done as u64;
        self.pending.drain(..done);
        result.map_err(io_error(&self.file_path))
    }

    fn sync_now(&mut self) -> Result<(), AuditError> {
        self.write_pending()?;
        self.sync_file()?;
        self.unsynced = 0;
        self.oldest_unsynced = None;
        Ok(())
    }

    fn stop_with(&mut self, error: &AuditError) {
        tracing::error!(%error, "audit log write failed; refusing appends until it works");
        if self.stop.is_none() {
            self.stop = Some(Stop {
                reason: error.to_string(),
                since: Utc::now(),
                refused: 0,
                next_attempt: Instant::now(),
                never: None,
            });
        }
    }

    fn checkpoint_due(&self, options: &AuditOptions) -> bool {
        let Some(checkpoints) = &options.checkpoints else {
            return false;
        };
        let head = self.next_seq - 1;
        if head <= self.checkpointed
            || self
                .next_checkpoint_attempt
                .is_some_and(|at| Instant::now() < at)
        {
            return false;
        }
        head - self.checkpointed >= checkpoints.every_records.max(1)
            || self
                .uncheckpointed_since
                .is_some_and(|since| since.elapsed() >= checkpoints.every)
    }

    /// Finishes the current file and continues the chain in the next. The
    /// state moves to the new file only once it exists and its directory
    /// entry is durable.
    fn rotate(&mut self, dir: &Path) -> Result<(), AuditError> {
        self.sync_now()?;
        let index = self.file_index + 1;
        let path = file_name(dir, index);
        let file = open_for_append(&path)?;
        sync_dir(dir)?;
        let identity = FileIdentity::of(&file.metadata().map_err(io_error(&path))?);
        self.file = Arc::new(file);
        self.identity = identity;
        self.file_index = index;
        self.file_path = path;
        self.written = 0;
        Ok(())
    }

    /// Opens the current file again, cuts whatever failed writes left past
    /// the acknowledged records, writes held-back records, and syncs.
    fn reopen(&mut self) -> Result<(), Reopen> {
        let path = self.file_path.clone();
        let later = |e| Reopen::Later(io_error(&path)(e));
        let metadata = match std::fs::metadata(&path) {
            Ok(metadata) => metadata,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Reopen::Never(format!(
                    "{} was removed while appends were refused",
                    path.display()
                )));
            }
            Err(e) => return Err(later(e)),
        };
        if FileIdentity::of(&metadata) != self.identity {
            return Err(Reopen::Never(format!(
                "{} was replaced by another file while appends were refused",
                path.display()
            )));
        }
        let file = OpenOptions::new().append(true).open(&path).map_err(later)?;
        let length = file.metadata().map_err(later)?.len();
        if length < self.written {
            return Err(Reopen::Never(format!(
                "{} is {length} bytes, shorter than the {} bytes of records written to it",
                path.display(),
                self.written
            )));
        }
        if length > self.written {
            file.set_len(self.written).map_err(later)?;
        }
        self.file = Arc::new(file);
        self.sync_now().map_err(Reopen::Later)
    }

    /// Cuts what failed writes left past the acknowledged records, if the
    /// file can still be opened.
    fn cut_unacknowledged(&mut self) {
        let Ok(file) = OpenOptions::new().write(true).open(&self.file_path) else {
            return;
        };
        let same = file
            .metadata()
            .is_ok_and(|m| FileIdentity::of(&m) == self.identity && m.len() > self.written);
        if same && file.set_len(self.written).is_ok() {
            let _ = file.sync_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{GENESIS, encode_as};
    use crate::verify::verify;

    fn lifecycle(plugin: &str) -> String {
        serde_json::to_string(&Body::Lifecycle {
            event: LifecycleEvent::Unloaded {
                plugin: plugin.into(),
                digest: "sha256:00".into(),
                generation: 1,
            },
        })
        .unwrap()
    }

    /// Three lines of node `a`'s chain, as the store chains them.
    fn chain() -> Vec<String> {
        let mut prev = GENESIS.to_string();
        (1..=3)
            .map(|seq| {
                let (line, hash) = encode_as(
                    Some("a"),
                    seq,
                    Utc::now(),
                    &prev,
                    &lifecycle(&format!("p{seq}")),
                );
                prev = hash;
                line
            })
            .collect()
    }

    #[test]
    fn a_copy_takes_only_lines_continuing_its_chain_and_writes_none_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let options = AuditOptions {
            copy_of_store: true,
            ..AuditOptions::default()
        };
        let log = AuditLog::open(dir.path(), options).unwrap();
        let event = LifecycleEvent::Unloaded {
            plugin: "p".into(),
            digest: "sha256:00".into(),
            generation: 1,
        };
        assert!(matches!(
            log.record_lifecycle(&event),
            Err(AuditError::CopyOnly { .. })
        ));
        let lines = chain();
        log.copy(&lines[..1]).unwrap();
        // A gap, a repeat and another chain's line are all refused.
        let refused = log.copy(&lines[2..]).unwrap_err().to_string();
        assert!(
            refused.contains("record 3") && refused.contains("next record is 2"),
            "{refused}"
        );
        assert!(log.copy(&lines[..1]).is_err());
        let (other, _) = encode_as(Some("b"), 2, Utc::now(), GENESIS, &lifecycle("x"));
        let refused = log.copy(&[other]).unwrap_err().to_string();
        assert!(refused.contains("another chain"), "{refused}");
        log.copy(&lines[1..]).unwrap();
        assert_eq!(log.head().0, 3);
        log.flush().unwrap();
        let files = log.files().unwrap();
        drop(log);
        assert_eq!(verify(&files).unwrap().records, 3);
        let written: Vec<String> = files
            .iter()
            .flat_map(|f| {
                std::fs::read_to_string(f)
                    .unwrap()
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(
            written, lines,
            "the file holds the store's lines, byte for byte"
        );
    }
}
