//! The accept loop and every connection's life: how long a client may take
//! to send its headers and its body, how long a connection may sit idle,
//! how many may be open, and how long shutdown waits for them.
//!
//! `axum::serve` sets none of these (hyper applies its header timeout only
//! with a timer, and axum gives it none), so a thousand idle sockets or one
//! slowloris client could hold the server. Here:
//! - hyper's header read timeout runs from when a connection starts waiting
//!   for a request (its opening, or the end of the previous response) to
//!   the end of the headers: it closes slowloris clients and idle
//!   keep-alive connections alike;
//! - a request body must arrive whole within the body timeout, however it
//!   trickles in;
//! - a connection that moves no byte for the idle timeout while no handler
//!   works for it (a client that stopped reading its response) is closed;
//! - at most `max_connections` are open (kept below the process's file
//!   descriptor limit). At the limit the longest-idle connection is closed
//!   to make room, so that a new caller (a health check) is served even
//!   while idle sockets fill the table; when every connection is busy, the
//!   loop stops accepting until one finishes, and the kernel's backlog
//!   holds the rest;
//! - at shutdown, idle connections close at once and busy ones finish
//!   their request, up to the shutdown deadline; then whatever is left,
//!   half-sent requests included, is closed.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http_body::Frame;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, watch};
use tower::ServiceExt;

/// The connection limits and timeouts, resolved from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// From waiting for a request to the end of its headers.
    pub header_timeout: Duration,
    /// From the end of the headers to the end of the body.
    pub body_timeout: Duration,
    /// No bytes moved, and no handler at work.
    pub idle_timeout: Duration,
    /// Connections open at once.
    pub max_connections: usize,
    /// How long shutdown waits for requests in flight.
    pub shutdown_timeout: Duration,
}

/// File descriptors kept free for everything but client connections: the
/// store, the audit log, the watcher, compiles, the runtime.
const RESERVED_DESCRIPTORS: u64 = 64;

/// The fewest connections the server takes, whatever the descriptor limit.
const MIN_CONNECTIONS: usize = 16;

/// `configured`, lowered to fit the process's open-file limit: accepting
/// past it fails with `EMFILE`, and then nothing else can open a file
/// either.
pub fn fit_to_descriptor_limit(configured: usize) -> usize {
    let limit = open_file_limit().map_or(configured as u64, |soft| {
        soft.saturating_sub(RESERVED_DESCRIPTORS)
    });
    configured
        .min(usize::try_from(limit).unwrap_or(usize::MAX))
        .max(MIN_CONNECTIONS)
}

#[cfg(unix)]
fn open_file_limit() -> Option<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given and nothing else.
    let status = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    (status == 0 && limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

#[cfg(not(unix))]
fn open_file_limit() -> Option<u64> {
    None
}

/// Serves `router` on `listener` under `limits` until `shutdown` resolves,
/// then drains as the module documentation says. Returns once every
/// connection is closed.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let table = Arc::new(Table::new(limits.max_connections));
    let (stopping_tx, stopping) = watch::channel(false);
    let idle_watch = tokio::spawn(table.clone().close_idle(limits.idle_timeout));
    tokio::pin!(shutdown);
    let mut accept_errors = ErrorThrottle::default();
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                if is_out_of_descriptors(&error) {
                    // Make room, and do not spin while there is none.
                    table.evict_idlest();
                }
                accept_errors.log(&error);
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = table.slot() => permit,
        };
        let _ = stream.set_nodelay(true);
        let connection = table.register();
        tokio::spawn(run_connection(
            stream,
            router.clone(),
            limits,
            connection,
            table.clone(),
            stopping.clone(),
            permit,
        ));
    }
    drop(listener);
    let _ = stopping_tx.send(true);
    let open = table.open();
    if open > 0 {
        tracing::info!(open, "draining connections");
    }
    if tokio::time::timeout(limits.shutdown_timeout, table.all_closed())
        .await
        .is_err()
    {
        let cut = table.open();
        tracing::warn!(
            cut,
            deadline_secs = limits.shutdown_timeout.as_secs_f64(),
            "closing connections still open at the shutdown deadline"
        );
        eprintln!(
            "handoff: closed {cut} connection(s) still open {:.0} s after the stop request",
            limits.shutdown_timeout.as_secs_f64()
        );
        table.close_all();
        table.all_closed().await;
    }
    idle_watch.abort();
}

fn is_out_of_descriptors(error: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(error.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
    }
    #[cfg(not(unix))]
    {
        let _ = error;
        false
    }
}

/// Logs accept errors at most once a second, with how many were skipped.
#[derive(Default)]
struct ErrorThrottle {
    last: Option<Instant>,
    skipped: u64,
}

impl ErrorThrottle {
    fn log(&mut self, error: &io::Error) {
        if self
            .last
            .is_some_and(|at| at.elapsed() < Duration::from_secs(1))
        {
            self.skipped += 1;
            return;
        }
        tracing::warn!(%error, skipped = self.skipped, "cannot accept a connection");
        self.last = Some(Instant::now());
        self.skipped = 0;
    }
}

/// One connection's life: served by hyper under the header timeout, with
/// each request's body under the body timeout; closed at once when the
/// table says so, gracefully when the server stops.
async fn run_connection(
    stream: TcpStream,
    router: Router,
    limits: ConnectionLimits,
    connection: Arc<Connection>,
    table: Arc<Table>,
    mut stopping: watch::Receiver<bool>,
    _permit: OwnedSemaphorePermit,
) {
    let io = TokioIo::new(Tracked {
        inner: stream,
        connection: connection.clone(),
    });
    let service = {
        let connection = connection.clone();
        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
            let router = router.clone();
            let busy = Busy::start(&connection);
            let request = request.map(|body| Body::new(Deadline::new(body, limits.body_timeout)));
            async move {
                let response = router.oneshot(request).await;
                drop(busy);
                response
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let served = builder.serve_connection(io, service);
    tokio::pin!(served);
    let mut draining = *stopping.borrow();
    if draining {
        served.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            result = served.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%error, "connection ended with an error");
                }
                break;
            }
            () = connection.closed() => break,
            changed = stopping.changed(), if !draining => {
                if changed.is_err() || *stopping.borrow() {
                    draining = true;
                    served.as_mut().graceful_shutdown();
                }
            }
        }
    }
    table.deregister(connection.id);
}

/// What the server knows of one open connection.
struct Connection {
    id: u64,
    /// Handlers at work for it.
    busy: AtomicUsize,
    /// When it last moved a byte, in milliseconds since the table began.
    last_active: AtomicU64,
    started: Instant,
    close: Notify,
    closing: AtomicBool,
}

impl Connection {
    fn touch(&self) {
        let now = self.started.elapsed().as_millis();
        self.last_active
            .store(u64::try_from(now).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn idle_for(&self) -> Duration {
        let now = self.started.elapsed().as_millis();
        let now = u64::try_from(now).unwrap_or(u64::MAX);
        Duration::from_millis(now.saturating_sub(self.last_active.load(Ordering::Relaxed)))
    }

    fn is_idle(&self) -> bool {
        self.busy.load(Ordering::Acquire) == 0
    }

    /// Asks the connection's task to drop it now.
    fn close_now(&self) {
        self.closing.store(true, Ordering::Release);
        self.close.notify_one();
    }

    async fn closed(&self) {
        loop {
            let notified = self.close.notified();
            if self.closing.load(Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

/// Marks a connection busy while a handler works for it.
struct Busy(Arc<Connection>);

impl Busy {
    fn start(connection: &Arc<Connection>) -> Busy {
        connection.busy.fetch_add(1, Ordering::AcqRel);
        connection.touch();
        Busy(connection.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The open connections, and the slots for new ones.
struct Table {
    slots: Arc<Semaphore>,
    open: Mutex<HashMap<u64, Arc<Connection>>>,
    next_id: AtomicU64,
    emptied: Notify,
}

impl Table {
    fn new(max_connections: usize) -> Table {
        Table {
            slots: Arc::new(Semaphore::new(max_connections)),
            open: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            emptied: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Connection>>> {
        self.open.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A slot for a connection just accepted. At the limit, the idlest
    /// connection is closed to make room; if every one is busy, this waits
    /// for one to end (and accepting waits with it).
    async fn slot(&self) -> OwnedSemaphorePermit {
        loop {
            if let Ok(permit) = self.slots.clone().try_acquire_owned() {
                return permit;
            }
            let evicted = self.evict_idlest();
            let wait = if evicted {
                Duration::from_millis(200)
            } else {
                Duration::from_millis(50)
            };
            if let Ok(Ok(permit)) =
                tokio::time::timeout(wait, self.slots.clone().acquire_owned()).await
            {
                return permit;
            }
        }
    }

    fn register(&self) -> Arc<Connection> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let connection = Arc::new(Connection {
            id,
            busy: AtomicUsize::new(0),
            last_active: AtomicU64::new(0),
            started: Instant::now(),
            close: Notify::new(),
            closing: AtomicBool::new(false),
        });
        self.lock().insert(id, connection.clone());
        connection
    }

    fn deregister(&self, id: u64) {
        let mut open = self.lock();
        open.remove(&id);
        if open.is_empty() {
            self.emptied.notify_waiters();
        }
    }

    fn open(&self) -> usize {
        self.lock().len()
    }

    /// Closes the connection idle the longest, if any is idle. Says whether
    /// one was.
    fn evict_idlest(&self) -> bool {
        let open = self.lock();
        let idlest = open
            .values()
            .filter(|c| c.is_idle() && !c.closing.load(Ordering::Acquire))
            .max_by_key(|c| c.idle_for());
        match idlest {
            Some(connection) => {
                tracing::debug!(
                    id = connection.id,
                    idle_ms = connection.idle_for().as_millis() as u64,
                    "closing the idlest connection to make room"
                );
                connection.close_now();
                true
            }
            None => false,
        }
    }

    fn close_all(&self) {
        for connection in self.lock().values() {
            connection.close_now();
        }
    }

    async fn all_closed(&self) {
        loop {
            let emptied = self.emptied.notified();
            if self.open() == 0 {
                return;
            }
            emptied.await;
        }
    }

    /// Closes connections that moved nothing for `idle_timeout` while no
    /// handler worked for them.
    async fn close_idle(self: Arc<Self>, idle_timeout: Duration) {
        let tick = (idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(1));
        loop {
            tokio::time::sleep(tick).await;
            for connection in self.lock().values() {
                if connection.is_idle() && connection.idle_for() >= idle_timeout {
                    connection.close_now();
                }
            }
        }
    }
}

/// The socket, noting every byte moved as activity.
struct Tracked {
    inner: TcpStream,
    connection: Arc<Connection>,
}

impl AsyncRead for Tracked {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.connection.touch();
        }
        polled
    }
}

impl AsyncWrite for Tracked {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.connection.touch();
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A request body that must arrive whole before a deadline: a per-frame
/// timeout (`tower_http::timeout`) would let a client send one byte every
/// few seconds for ever.
struct Deadline {
    body: Incoming,
    timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
}

impl Deadline {
    fn new(body: Incoming, timeout: Duration) -> Deadline {
        Deadline {
            body,
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

/// A request body that did not arrive in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:.0?}")]
pub struct BodyTimedOut(Duration);

impl http_body::Body for Deadline {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut(this.timeout))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_connection_limit_stays_under_the_descriptor_limit() {
        let fitted = fit_to_descriptor_limit(usize::MAX);
        if let Some(soft) = open_file_limit() {
            assert!(fitted as u64 <= soft.saturating_sub(RESERVED_DESCRIPTORS).max(16));
        }
        assert_eq!(fit_to_descriptor_limit(3), MIN_CONNECTIONS);
    }

    #[tokio::test]
    async fn the_idlest_connection_is_evicted_and_a_busy_one_never() {
        let table = Table::new(2);
        let old = table.register();
        let busy = table.register();
        let _working = Busy::start(&busy);
        tokio::time::sleep(Duration::from_millis(5)).await;
        let fresh = table.register();
        fresh.touch();
        assert!(table.evict_idlest());
        assert!(old.closing.load(Ordering::Acquire));
        assert!(!busy.closing.load(Ordering::Acquire));
        assert!(!fresh.closing.load(Ordering::Acquire));
        // `old` is already closing: the next idlest is `fresh`, never `busy`.
        assert!(table.evict_idlest());
        assert!(fresh.closing.load(Ordering::Acquire));
        assert!(!table.evict_idlest());
        assert!(!busy.closing.load(Ordering::Acquire));
    }
}
