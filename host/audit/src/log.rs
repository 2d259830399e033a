//! The audit log writer: appends hash-chained records to rotating JSON
//! Lines files, with a chosen durability, and repairs a torn tail at open.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use chrono::Utc;

use super::mask::Masking;
use super::record::{Body, DecisionRecordRef, GENESIS, ItemRef, decode, encode};
use handoff_model::{Decision, LifecycleEvent, WorkItem};

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
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            durability: Durability::default(),
            max_file_bytes: 64 * 1024 * 1024,
            batch_interval: Duration::from_millis(5),
            batch_records: 256,
            masking: None,
        }
    }
}

/// Why the audit log failed. The log fails closed: after a write error it
/// refuses every further append rather than leave a gap in the chain.
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
    /// A record before the end of the log is damaged: that is tampering or
    /// disk corruption, not a torn write, and is not repaired silently.
    #[error(
        "audit log {file} is damaged at line {line} ({reason}), before its end; \
         run `handoff audit verify` and restore it from a copy"
    )]
    Damaged {
        /// The file.
        file: String,
        /// The damaged line, from 1.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// An earlier write failed, so the log refuses to continue.
    #[error("the audit log stopped after an earlier write error: {0}")]
    Stopped(String),
    /// The record could not be serialised.
    #[error("cannot serialise an audit record: {0}")]
    Serialize(#[from] serde_json::Error),
}

/// An open audit log. Appends from any thread are serialised into one chain.
pub struct AuditLog {
    shared: Arc<Shared>,
    flusher: Option<JoinHandle<()>>,
}

struct Shared {
    dir: PathBuf,
    options: AuditOptions,
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    next_seq: u64,
    prev: String,
    file_index: u32,
    file_path: PathBuf,
    file_bytes: u64,
    out: BufWriter<File>,
    /// A second handle on the same file, synced outside the lock.
    sync_handle: Arc<File>,
    unsynced: usize,
    oldest_unsynced: Option<Instant>,
    stopped: Option<String>,
    closing: bool,
}

/// Where the chain stands at the end of the existing files.
struct Tail {
    next_seq: u64,
    prev: String,
    file_index: u32,
    file_bytes: u64,
    cut: Option<(u64, String)>,
}

impl AuditLog {
    /// Opens the log in `dir`, creating it if needed. A torn last line,
    /// left by a crash mid-write, is cut off and a `recovery` record says
    /// what was cut.
    pub fn open(dir: &Path, options: AuditOptions) -> Result<AuditLog, AuditError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let tail = read_tail(dir)?;
        let file_path = file_name(dir, tail.file_index);
        let (out, sync_handle) = open_for_append(&file_path)?;
        let state = State {
            next_seq: tail.next_seq,
            prev: tail.prev,
            file_index: tail.file_index,
            file_path: file_path.clone(),
            file_bytes: tail.file_bytes,
            out,
            sync_handle,
            unsynced: 0,
            oldest_unsynced: None,
            stopped: None,
            closing: false,
        };
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            options,
            state: Mutex::new(state),
            wake: Condvar::new(),
        });
        let flusher = match shared.options.durability {
            Durability::Sync => None,
            Durability::Batch | Durability::Off => {
                let shared = shared.clone();
                let thread = std::thread::Builder::new()
                    .name("handoff-audit".into())
                    .spawn(move || shared.flush_periodically())
                    .map_err(io_error(dir))?;
                Some(thread)
            }
        };
        let log = AuditLog { shared, flusher };
        if let Some((cut_bytes, cut_preview)) = tail.cut {
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

    /// Records a decision and, for each plugin that faulted, a `fault`
    /// lifecycle event. Returns the decision record's sequence number.
    pub fn record_decision(&self, item: &WorkItem, decision: &Decision) -> Result<u64, AuditError> {
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
            item,
            replayable: masked.is_empty(),
            masked: &masked,
            decision,
        };
        // Records run to a few kilobytes: size the buffer once.
        let mut body = Vec::with_capacity(4096);
        serde_json::to_writer(&mut body, &record)?;
        // serde_json only writes valid UTF-8.
        let body = String::from_utf8(body)
            .map_err(|e| AuditError::Serialize(serde::ser::Error::custom(e)))?;
        let seq = self.append_serialized(body)?;
        for verdict in &decision.verdicts {
            if let Some(fault) = &verdict.fault {
                self.record_lifecycle(&LifecycleEvent::Fault {
                    plugin: verdict.plugin.clone(),
                    digest: verdict.digest.clone(),
                    item: decision.id.clone(),
                    fault: fault.clone(),
                })?;
            }
        }
        Ok(seq)
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
        let options = &self.shared.options;
        let mut state = self.shared.lock();
        if let Some(reason) = &state.stopped {
            return Err(AuditError::Stopped(reason.clone()));
        }
        let seq = state.next_seq;
        let (line, hash) = encode(seq, Utc::now(), &state.prev, &body);
        let written = (|| {
            let needed = line.len() as u64 + 1;
            if state.file_bytes > 0 && state.file_bytes + needed > options.max_file_bytes {
                state.rotate(&self.shared.dir)?;
            }
            let path = state.file_path.clone();
            state
                .out
                .write_all(line.as_bytes())
                .map_err(io_error(&path))?;
            state.out.write_all(b"\n").map_err(io_error(&path))?;
            state.file_bytes += needed;
            match options.durability {
                Durability::Sync => state.sync_now(),
                Durability::Batch => {
                    // Hand the line to the OS now, so that only a machine
                    // crash, never a process crash, can lose it.
                    state.out.flush().map_err(io_error(&path))?;
                    state.unsynced += 1;
                    state.oldest_unsynced.get_or_insert_with(Instant::now);
                    if state.unsynced >= options.batch_records {
                        state.sync_now()
                    } else {
                        Ok(())
                    }
                }
                Durability::Off => Ok(()),
            }
        })();
        if let Err(error) = written {
            state.stopped = Some(error.to_string());
            tracing::error!(%error, "audit log write failed; refusing further appends");
            return Err(error);
        }
        state.next_seq += 1;
        state.prev = hash;
        Ok(seq)
    }

    /// The sequence number the next record will get.
    pub fn next_seq(&self) -> u64 {
        self.shared.lock().next_seq
    }

    /// Writes and syncs everything appended so far.
    pub fn flush(&self) -> Result<(), AuditError> {
        self.shared.lock().sync_now()
    }
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_all();
        if let Some(flusher) = self.flusher.take() {
            let _ = flusher.join();
        }
        if let Err(error) = self.shared.lock().sync_now() {
            tracing::error!(%error, "cannot flush the audit log at close");
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Every mutation of the state completes or marks the log stopped
        // before anything can panic, so a poisoned lock holds a sound state.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The batch committer: syncs whatever has waited `batch_interval`.
    fn flush_periodically(&self) {
        let interval = self.options.batch_interval;
        let mut state = self.lock();
        loop {
            if state.closing {
                return;
            }
            state = self
                .wake
                .wait_timeout(state, interval)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
            let due = state
                .oldest_unsynced
                .is_some_and(|oldest| oldest.elapsed() >= interval);
            if self.options.durability == Durability::Off {
                // Only hand buffered lines to the OS, so readers see them.
                let _ = state.out.flush();
                continue;
            }
            if !due || state.stopped.is_some() {
                continue;
            }
            // Write under the lock, sync outside it: appenders keep going
            // while the disk works.
            let path = state.file_path.clone();
            if let Err(e) = state.out.flush() {
                state.stopped = Some(io_error(&path)(e).to_string());
                continue;
            }
            let handle = state.sync_handle.clone();
            state.unsynced = 0;
            state.oldest_unsynced = None;
            drop(state);
            let synced = handle.sync_data();
            state = self.lock();
            if let Err(e) = synced {
                let error = io_error(&path)(e);
                tracing::error!(%error, "audit log sync failed; refusing further appends");
                state.stopped = Some(error.to_string());
            }
        }
    }
}

impl State {
    fn sync_now(&mut self) -> Result<(), AuditError> {
        let path = self.file_path.clone();
        self.out.flush().map_err(io_error(&path))?;
        self.sync_handle.sync_data().map_err(io_error(&path))?;
        self.unsynced = 0;
        self.oldest_unsynced = None;
        Ok(())
    }

    /// Finishes the current file and continues the chain in the next.
    fn rotate(&mut self, dir: &Path) -> Result<(), AuditError> {
        self.sync_now()?;
        self.file_index += 1;
        let path = file_name(dir, self.file_index);
        let (out, sync_handle) = open_for_append(&path)?;
        // Make the new file's directory entry durable too.
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io_error(dir))?;
        self.out = out;
        self.sync_handle = sync_handle;
        self.file_path = path;
        self.file_bytes = 0;
        Ok(())
    }
}

/// `audit-000001.jsonl`, ...: names that sort in chain order.
fn file_name(dir: &Path, index: u32) -> PathBuf {
    dir.join(format!("audit-{index:06}.jsonl"))
}

/// The log files in `dir`, in chain order.
pub fn log_files(dir: &Path) -> Result<Vec<PathBuf>, AuditError> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_error(dir))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| file_index(path).is_some())
        .collect();
    files.sort();
    Ok(files)
}

fn file_index(path: &Path) -> Option<u32> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix("audit-")?
        .strip_suffix(".jsonl")?
        .parse()
        .ok()
}

fn open_for_append(path: &Path) -> Result<(BufWriter<File>, Arc<File>), AuditError> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(io_error(path))?;
    let sync_handle = Arc::new(file.try_clone().map_err(io_error(path))?);
    Ok((BufWriter::with_capacity(64 * 1024, file), sync_handle))
}

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> AuditError + '_ {
    move |source| AuditError::Io {
        file: path.display().to_string(),
        source,
    }
}

/// Finds where the chain ends, repairing a torn last line of the last file.
fn read_tail(dir: &Path) -> Result<Tail, AuditError> {
    let files = log_files(dir)?;
    let Some(last) = files.last() else {
        return Ok(Tail {
            next_seq: 1,
            prev: GENESIS.to_string(),
            file_index: 1,
            file_bytes: 0,
            cut: None,
        });
    };
    let file_index = file_index(last).unwrap_or(1);
    let scan = scan_file(last, true)?;
    if let Some((good_bytes, _)) = &scan.cut {
        let file = OpenOptions::new()
            .write(true)
            .open(last)
            .map_err(io_error(last))?;
        file.set_len(*good_bytes).map_err(io_error(last))?;
        file.sync_all().map_err(io_error(last))?;
    }
    let cut = scan
        .cut
        .map(|(good_bytes, preview)| (scan.total_bytes - good_bytes, preview));
    let file_bytes = scan.good_bytes;
    // An empty last file (just rotated) continues the chain of the one
    // before it.
    let mut end = scan.last;
    for earlier in files.iter().rev().skip(1) {
        if end.is_some() {
            break;
        }
        end = scan_file(earlier, false)?.last;
    }
    let (next_seq, prev) = match end {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_string()),
    };
    Ok(Tail {
        next_seq,
        prev,
        file_index,
        file_bytes,
        cut,
    })
}

struct Scan {
    /// `(seq, hash)` of the last sound record.
    last: Option<(u64, String)>,
    /// Bytes up to the end of the last sound line.
    good_bytes: u64,
    total_bytes: u64,
    /// `(good_bytes, preview of what follows)` when the tail is torn.
    cut: Option<(u64, String)>,
}

/// Reads a log file. A bad line is only acceptable as the very last one,
/// and only when `repairable`: that is what a crash mid-write leaves.
fn scan_file(path: &Path, repairable: bool) -> Result<Scan, AuditError> {
    let mut file = File::open(path).map_err(io_error(path))?;
    let total_bytes = file.seek(SeekFrom::End(0)).map_err(io_error(path))?;
    file.seek(SeekFrom::Start(0)).map_err(io_error(path))?;
    let mut reader = BufReader::new(file);
    let mut scan = Scan {
        last: None,
        good_bytes: 0,
        total_bytes,
        cut: None,
    };
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(io_error(path))?;
        if read == 0 {
            return Ok(scan);
        }
        number += 1;
        let complete = line.last() == Some(&b'\n');
        let text = std::str::from_utf8(&line).map(|t| t.trim_end_matches('\n'));
        let verdict = match text {
            Ok(text) if complete => decode(text).map_err(|e| e.to_string()),
            Ok(_) => Err("the line has no newline: a write was cut short".to_string()),
            Err(e) => Err(format!("not UTF-8: {e}")),
        };
        match verdict {
            Ok(record) => {
                scan.last = Some((record.seq, record.hash));
                scan.good_bytes += read as u64;
            }
            Err(reason) => {
                let at_end = scan.good_bytes + read as u64 == total_bytes;
                if !(repairable && at_end) {
                    return Err(AuditError::Damaged {
                        file: path.display().to_string(),
                        line: number,
                        reason,
                    });
                }
                let preview = String::from_utf8_lossy(&line[..line.len().min(120)]).into_owned();
                scan.cut = Some((scan.good_bytes, preview));
                return Ok(scan);
            }
        }
    }
}
