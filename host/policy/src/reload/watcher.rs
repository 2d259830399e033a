//! Watches a policy directory and reloads the units that changed.
//!
//! The directory is watched, not the files: an atomic rename replaces the
//! inode a file watch would hold (notify#247). Events are grouped in bursts,
//! and a burst is reloaded once the directory has been quiet for long
//! enough:
//! - after an in-place write, for the debounce interval, so that a copy in
//!   progress is read once, after it ends. A writer still writing when the
//!   burst ends produces a version that fails validation (and is
//!   reported); its next write triggers a retry;
//! - after only atomic arrivals (a rename into place, a deletion), for the
//!   much shorter settle interval: the file is already complete, and the
//!   short wait only lets a component and its manifest renamed together
//!   land in one generation.
//!
//! The directory itself may go away: deleted, renamed, or swapped for
//! another with `mv`. Every [`IDENTITY_CHECK`] the watcher checks which
//! directory the path names; while there is none the serving set keeps
//! serving, and when one appears (or another replaces it) the watch moves
//! to it and the whole directory is reloaded.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher as _};

use super::live::LivePolicies;
use crate::policy_dir;

/// Default quiet interval after an in-place write: long enough to coalesce
/// a copy, short enough that an operator sees the swap at once.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_millis(100);

/// Default quiet interval after atomic renames and deletions only.
pub const DEFAULT_SETTLE: Duration = Duration::from_millis(10);

/// A burst of events never delays a reload by more than this many debounce
/// intervals, so a file rewritten continuously is still picked up.
const MAX_DELAY_INTERVALS: u32 = 20;

/// How often the watcher checks that the path still names the directory it
/// watches.
pub const IDENTITY_CHECK: Duration = Duration::from_millis(500);

/// How the watcher behaves.
#[derive(Debug, Clone, Copy)]
pub struct WatchOptions {
    /// Quiet interval before a burst with an in-place write is reloaded.
    pub debounce: Duration,
    /// Quiet interval before a burst of only renames into place and
    /// deletions is reloaded. Never longer than `debounce`.
    pub settle: Duration,
}

impl WatchOptions {
    /// Options with this debounce, and the default settle interval (or
    /// the debounce, if shorter).
    pub fn with_debounce(debounce: Duration) -> Self {
        WatchOptions {
            debounce,
            settle: DEFAULT_SETTLE.min(debounce),
        }
    }
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions::with_debounce(DEFAULT_DEBOUNCE)
    }
}

/// Why watching could not start.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// The operating system refused the watch.
    #[error("cannot watch policy directory {dir}: {source}")]
    Notify {
        /// The directory.
        dir: String,
        /// What the OS said.
        #[source]
        source: notify::Error,
    },
    /// The reload thread could not start.
    #[error("cannot start the reload thread: {0}")]
    Thread(#[source] std::io::Error),
}

enum Message {
    Fs(notify::Result<Event>),
    Stop,
}

/// A running watch. Dropping it stops watching and waits for a reload in
/// progress to finish.
pub struct Watcher {
    stop: Sender<Message>,
    thread: Option<JoinHandle<()>>,
}

impl Watcher {
    /// Starts watching `live`'s directory.
    pub fn start(live: Arc<LivePolicies>, options: WatchOptions) -> Result<Watcher, WatchError> {
        let dir = live.dir().to_path_buf();
        let notify_error = |source| WatchError::Notify {
            dir: dir.display().to_string(),
            source,
        };
        let (tx, rx) = mpsc::channel();
        let events = tx.clone();
        let mut watcher = notify::recommended_watcher(move |event| {
            // The receiver only goes away when the watcher is being dropped.
            let _ = events.send(Message::Fs(event));
        })
        .map_err(notify_error)?;
        watcher
            .watch(&dir, RecursiveMode::NonRecursive)
            .map_err(notify_error)?;
        let watched = Watched {
            identity: identity(&dir),
            dir,
            watcher,
        };
        let thread = std::thread::Builder::new()
            .name("handoff-reload".into())
            .spawn(move || run(&live, watched, &rx, options))
            .map_err(WatchError::Thread)?;
        Ok(Watcher {
            stop: tx,
            thread: Some(thread),
        })
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.stop.send(Message::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What a burst of events asks for.
#[derive(Default)]
struct Pending {
    names: BTreeSet<String>,
    rescan: bool,
    /// Whether a unit file was written in place, so may still be growing.
    written_in_place: bool,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.names.is_empty() && !self.rescan
    }

    fn add(&mut self, event: notify::Result<Event>) {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                tracing::warn!(%error, "file watch error; rescanning the policy directory");
                self.rescan = true;
                return;
            }
        };
        if event.need_rescan() {
            self.rescan = true;
            return;
        }
        // Reads (including the loader's own) change nothing.
        if let EventKind::Access(access) = event.kind
            && access != AccessKind::Close(AccessMode::Write)
        {
            return;
        }
        // The watch is not recursive: every path is in the directory (or is
        // the directory itself, which is no unit).
        let complete_on_arrival = matches!(
            event.kind,
            EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
                | EventKind::Remove(_)
        );
        for path in &event.paths {
            if let Some(name) = policy_dir::unit_name(path) {
                self.names.insert(name.to_string());
                self.written_in_place |= !complete_on_arrival;
            }
        }
    }

    /// How long the directory must stay quiet before this burst reloads.
    fn quiet_interval(&self, options: &WatchOptions) -> Duration {
        if self.written_in_place || self.rescan {
            options.debounce
        } else {
            options.settle.min(options.debounce)
        }
    }
}

/// The watch on the policy directory, and which directory it is on.
struct Watched {
    dir: PathBuf,
    watcher: RecommendedWatcher,
    /// The watched directory's device and inode; `None` while there is none.
    identity: Option<(u64, u64)>,
}

impl Watched {
    /// Moves the watch to whatever directory the path names now. Returns
    /// whether that changed anything, in which case the caller reloads the
    /// whole directory.
    fn follow(&mut self) -> bool {
        let now = identity(&self.dir);
        if now == self.identity {
            return false;
        }
        let _ = self.watcher.unwatch(&self.dir);
        match now {
            None => tracing::warn!(
                dir = %self.dir.display(),
                "the policy directory is gone; the serving policies keep serving"
            ),
            Some(_) => {
                if let Err(error) = self.watcher.watch(&self.dir, RecursiveMode::NonRecursive) {
                    tracing::error!(dir = %self.dir.display(), %error, "cannot watch the policy directory");
                    return false;
                }
                tracing::info!(dir = %self.dir.display(), "watching the policy directory again");
            }
        }
        self.identity = now;
        now.is_some()
    }
}

/// The device and inode of the directory at `path`, if there is one.
#[cfg(unix)]
fn identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path)
        .ok()
        .filter(|m| m.is_dir())
        .map(|m| (m.dev(), m.ino()))
}

#[cfg(not(unix))]
fn identity(path: &Path) -> Option<(u64, u64)> {
    path.is_dir().then_some((0, 0))
}

fn run(live: &LivePolicies, mut watched: Watched, rx: &Receiver<Message>, options: WatchOptions) {
    let max_delay = options.debounce * MAX_DELAY_INTERVALS;
    let mut pending = Pending::default();
    let mut burst_started = Instant::now();
    let mut checked = Instant::now();
    loop {
        // Idle: wait for anything, checking the directory now and then. In
        // a burst: wait for quiet.
        let wait = if pending.is_empty() {
            IDENTITY_CHECK
        } else {
            pending.quiet_interval(&options)
        };
        let message = rx.recv_timeout(wait);
        if matches!(
            message,
            Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected)
        ) {
            return;
        }
        if checked.elapsed() >= IDENTITY_CHECK {
            checked = Instant::now();
            if watched.follow() {
                // Whatever the message was, the whole directory is read.
                pending.rescan = true;
                burst_started = Instant::now();
                continue;
            }
        }
        match message {
            Ok(Message::Fs(event)) => {
                if pending.is_empty() {
                    burst_started = Instant::now();
                }
                pending.add(event);
                if pending.is_empty() || burst_started.elapsed() < max_delay {
                    continue;
                }
            }
            Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => return,
            Err(RecvTimeoutError::Timeout) if pending.is_empty() => continue,
            Err(RecvTimeoutError::Timeout) => {}
        }
        if watched.identity.is_none() {
            // No directory: nothing to read; keep serving what serves.
            pending = Pending::default();
            continue;
        }
        let burst = std::mem::take(&mut pending);
        if burst.rescan {
            if let Err(error) = live.reload_all() {
                tracing::error!(%error, "cannot rescan the policy directory");
            }
        } else {
            live.reload(burst.names);
        }
    }
}
