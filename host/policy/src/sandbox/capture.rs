//! Bounded capture of everything a plugin writes: stdout, stderr and host
//! log lines share one buffer per store, capped per evaluation.
//!
//! Output past the cap is counted and dropped rather than refused: logging
//! too much must not change a verdict, and a refused write would make Rust's
//! `println!` panic inside the guest.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// A cloneable handle to one plugin's capture buffer.
#[derive(Clone)]
pub(crate) struct Capture {
    inner: Arc<Mutex<Buffer>>,
}

struct Buffer {
    bytes: Vec<u8>,
    cap: usize,
    dropped: u64,
}

impl Buffer {
    /// Keeps what of `data` fits under the cap and counts the rest.
    fn keep(&mut self, data: &[u8]) {
        let room = self.cap.saturating_sub(self.bytes.len());
        let kept = room.min(data.len());
        self.bytes.extend_from_slice(&data[..kept]);
        self.dropped += (data.len() - kept) as u64;
    }
}

/// What one evaluation wrote.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Captured {
    /// The output kept, up to the cap, lossily decoded.
    pub(crate) text: String,
    /// Bytes written past the cap and dropped.
    pub(crate) dropped: u64,
}

impl Capture {
    /// A capture keeping at most `cap` bytes per evaluation.
    pub(crate) fn new(cap: usize) -> Self {
        Capture {
            inner: Arc::new(Mutex::new(Buffer {
                bytes: Vec::new(),
                cap,
                dropped: 0,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Buffer> {
        // The buffer holds plain bytes; a panic elsewhere cannot leave it
        // inconsistent, so a poisoned lock is still safe to use.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends `data`, keeping what fits under the cap.
    pub(crate) fn append(&self, data: &[u8]) {
        self.lock().keep(data);
    }

    /// Appends a log line `[level] text`, keeping what fits under the cap:
    /// the text is never copied whole.
    pub(crate) fn append_line(&self, level: &str, text: &str) {
        let mut buffer = self.lock();
        for part in [
            b"[".as_slice(),
            level.as_bytes(),
            b"] ",
            text.as_bytes(),
            b"\n",
        ] {
            buffer.keep(part);
        }
    }

    /// Drains the buffer for the next evaluation.
    pub(crate) fn take(&self) -> Captured {
        let mut buffer = self.lock();
        let captured = Captured {
            text: String::from_utf8_lossy(&buffer.bytes).into_owned(),
            dropped: buffer.dropped,
        };
        buffer.bytes.clear();
        buffer.dropped = 0;
        captured
    }
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.append(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        // Always ready: whatever does not fit is dropped, not refused.
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.append(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_up_to_the_cap_and_counts_the_rest() {
        let capture = Capture::new(5);
        capture.append(b"abc");
        capture.append(b"defgh");
        assert_eq!(
            capture.take(),
            Captured {
                text: "abcde".into(),
                dropped: 3
            }
        );
        assert_eq!(capture.take(), Captured::default());
        capture.append(b"xy");
        assert_eq!(capture.take().text, "xy");
    }
}
