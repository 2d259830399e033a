//! `handoff serve` under hostile connections: idle sockets past the
//! descriptor limit, slowloris headers, trickled bodies, and a stop with
//! half-sent requests. Each runs the real binary on a loopback port.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::thread;
use std::time::Duration;

use serde_json::Value;

use crate::serve::{Server, item};

fn config(dir: &Path, text: &str) -> String {
    let path = dir.join("serve.toml");
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// Runs the server with a soft and hard open-file limit of `limit`.
fn with_descriptor_limit(command: &mut std::process::Command, limit: u64) {
    // SAFETY: setrlimit is async-signal-safe, and the closure touches
    // nothing else between fork and exec.
    unsafe {
        command.pre_exec(move || {
            let rlimit = libc::rlimit {
                rlim_cur: limit,
                rlim_max: limit,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &rlimit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Reads until the server closes the connection or `patience` passes;
/// answers what was read and whether it closed.
fn read_until_closed(stream: &mut TcpStream, patience: Duration) -> (String, bool) {
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    let start = std::time::Instant::now();
    while start.elapsed() < patience {
        match stream.read(&mut buffer) {
            Ok(0) => return (String::from_utf8_lossy(&seen).into_owned(), true),
            Ok(n) => seen.extend_from_slice(&buffer[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return (String::from_utf8_lossy(&seen).into_owned(), true),
        }
    }
    (String::from_utf8_lossy(&seen).into_owned(), false)
}

/// Whether the peer has closed `stream`, without waiting.
fn is_closed(stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).unwrap();
    let mut byte = [0u8; 1];
    let closed = match (&*stream).read(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    };
    stream.set_nonblocking(false).unwrap();
    closed
}

#[test]
fn idle_connections_past_the_descriptor_limit_leave_the_server_answering() {
    let dir = tempfile::tempdir().unwrap();
    // A header timeout far beyond the test: only making room for new
    // callers can keep the server answering.
    let config = config(dir.path(), "header-timeout-secs = 600\n");
    let server = Server::start_with(
        &dir.path().join("data"),
        &["--config", &config],
        |command| with_descriptor_limit(command, 1024),
    );
    let stderr = server.stderr();
    let limit: usize = stderr
        .lines()
        .find_map(|l| l.strip_prefix("handoff: accepting at most "))
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("the server states its connection limit:\n{stderr}"));
    assert!(limit < 1024, "the limit fits the descriptor limit: {limit}");

    let mut idle = Vec::new();
    for _ in 0..1100 {
        let address = server.address().parse().unwrap();
        if let Ok(stream) = TcpStream::connect_timeout(&address, Duration::from_secs(5)) {
            idle.push(stream);
        }
    }
    assert!(idle.len() > limit, "{} idle connections opened", idle.len());

    let (status, health) = server.get("/healthz", None);
    assert_eq!(status, 200, "{health}");
    let (status, decided) = server.post("/v1/evaluate", None, &item("c-1", "reply", 0.95, None));
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["tier"], "none");

    // The idle connections the server dropped to make room read EOF; the
    // rest are still open.
    let closed = idle.iter().take(200).filter(|s| is_closed(s)).count();
    assert!(closed > 0, "the oldest idle connections were closed");
    drop(idle);
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
}

#[test]
fn a_slowloris_client_is_cut_off_at_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "header-timeout-secs = 1\n");
    let server = Server::start(&dir.path().join("data"), &["--config", &config]);
    let mut slow = TcpStream::connect(server.address()).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut cut = false;
    for n in 0..60 {
        // One header line every 250 ms, for up to 15 s: never complete.
        if slow
            .write_all(format!("X-Slow-{n}: y\r\n").as_bytes())
            .is_err()
        {
            cut = true;
            break;
        }
        let (said, closed) = read_until_closed(&mut slow, Duration::from_millis(250));
        assert!(!said.contains("200 OK"), "{said}");
        if closed {
            cut = true;
            break;
        }
    }
    assert!(
        cut,
        "the server never closed a connection that never finished its headers"
    );
    // Ordinary callers are unaffected.
    assert_eq!(server.get("/healthz", None).0, 200);
}

#[test]
fn a_body_that_trickles_in_is_refused_at_the_body_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "body-timeout-secs = 1\n");
    let server = Server::start(&dir.path().join("data"), &["--config", &config]);
    let mut slow = TcpStream::connect(server.address()).unwrap();
    slow.write_all(
        b"POST /v1/evaluate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 400\r\n\r\n{",
    )
    .unwrap();
    let mut answer = String::new();
    for _ in 0..60 {
        // A byte every 250 ms: each within any per-read timeout.
        if slow.write_all(b" ").is_err() {
            break;
        }
        let (said, closed) = read_until_closed(&mut slow, Duration::from_millis(250));
        answer.push_str(&said);
        if closed || answer.contains("\r\n\r\n") {
            break;
        }
    }
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    let (rest, _) = read_until_closed(&mut slow, Duration::from_secs(2));
    answer.push_str(&rest);
    let body = answer.split("\r\n\r\n").nth(1).unwrap_or_default();
    let error: Value = serde_json::from_str(body.trim()).unwrap_or(Value::Null);
    assert_eq!(error["error"]["code"], "body-timeout", "{answer}");
}

#[test]
fn a_stop_with_half_sent_requests_ends_at_the_shutdown_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(
        dir.path(),
        "header-timeout-secs = 600\nbody-timeout-secs = 600\nshutdown-timeout-secs = 2\n",
    );
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--config", &config]);
    let mut headers = TcpStream::connect(server.address()).unwrap();
    headers
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Never")
        .unwrap();
    let mut body = TcpStream::connect(server.address()).unwrap();
    body.write_all(
        b"POST /v1/evaluate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"id\":",
    )
    .unwrap();
    // Both are being read by the server before it is told to stop.
    let (status, _) = server.get("/healthz", None);
    assert_eq!(status, 200);
    thread::sleep(Duration::from_millis(300));

    // `stop` fails the test if the process has not exited within a minute.
    let (status, stderr) = server.stop();
    assert!(status.success(), "{stderr}");
    assert!(
        stderr.contains("closed 2 connection(s) still open 2 s after the stop request"),
        "{stderr}"
    );
    assert!(stderr.contains("audit log flushed"), "{stderr}");
    let (intact, said) = crate::serve::audit_verify(&data);
    assert!(intact, "{said}");
}
