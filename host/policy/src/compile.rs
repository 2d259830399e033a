//! Turning component bytes into compiled code, within a budget.
//!
//! A Cranelift compile cannot be interrupted from inside the process that
//! runs it: a component crafted to compile slowly (tens of seconds) or
//! greedily (tens of gigabytes, which aborts the process) would stall or
//! kill the host. So a host compiles in a child process of its own binary
//! ([`Compiler::Subprocess`]), under a memory limit (`RLIMIT_DATA`) and a
//! wall-clock timeout, and loads the artifact the child writes back. One
//! compile runs at a time per runtime, so candidates and reloads queue
//! rather than pile up.
//!
//! [`Compiler::InProcess`] compiles in the calling thread with no budget:
//! for tests and embedders that trust their components.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use wasmtime::Engine;
use wasmtime::component::Component;

use crate::engine::{CpuFeatures, EngineOptions, Meters, new_engine};

/// What loading a component may cost. Operator settings, with defaults that
/// fit every reference and test policy with room to spare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadLimits {
    /// The largest component file read or accepted.
    pub max_component_bytes: usize,
    /// The largest manifest file read.
    pub max_manifest_bytes: usize,
    /// The longest one compile may take in a child process.
    pub compile_timeout: Duration,
    /// The most memory a compiling child process may allocate.
    pub compile_memory_bytes: u64,
    /// The most the artifact cache may hold; the least recently used
    /// entries are evicted past it.
    pub cache_quota_bytes: u64,
}

impl Default for LoadLimits {
    fn default() -> Self {
        LoadLimits {
            max_component_bytes: 64 << 20,
            max_manifest_bytes: 1 << 20,
            compile_timeout: Duration::from_secs(60),
            compile_memory_bytes: 2 << 30,
            cache_quota_bytes: 1 << 30,
        }
    }
}

/// Where compiles run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Compiler {
    /// In the calling thread, unbounded.
    #[default]
    InProcess,
    /// In a child process: `program args...` reads a component on stdin and
    /// writes its artifact to stdout ([`compile_request`] is that side).
    Subprocess {
        /// The program, usually the host's own binary.
        program: PathBuf,
        /// Its arguments, selecting the compile entry point.
        args: Vec<String>,
    },
}

/// Why a component did not compile.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The component is invalid, or Cranelift refused it.
    #[error("the component does not compile: {0}")]
    Invalid(String),
    /// The compile took longer than the budget and was stopped.
    #[error("compiling took longer than the compile budget of {0:?}; the compile was stopped")]
    TimedOut(Duration),
    /// The compile needed more memory than the budget.
    #[error(
        "compiling needed more than the compile budget of {0} MiB of memory; the compile was stopped"
    )]
    OutOfMemory(u64),
    /// The child process failed in some other way.
    #[error("the compiler process failed: {0}")]
    Crashed(String),
}

/// Artifacts are a few times the size of their component; more than this is
/// no artifact of ours.
const MAX_ARTIFACT_FACTOR: usize = 32;
/// Diagnostics kept from a compiling child.
const MAX_STDERR: u64 = 16 * 1024;

/// Compiles `bytes` with `compiler` for `engine`.
pub(crate) fn compile(
    engine: &Engine,
    meters: Meters,
    cpu: CpuFeatures,
    compiler: &Compiler,
    limits: &LoadLimits,
    bytes: &[u8],
) -> Result<Component, CompileError> {
    match compiler {
        Compiler::InProcess => {
            Component::new(engine, bytes).map_err(|e| CompileError::Invalid(format!("{e:#}")))
        }
        Compiler::Subprocess { program, args } => {
            let artifact = compile_in_child(program, args, meters, cpu, limits, bytes)?;
            // SAFETY: the artifact comes from this very binary's compile entry
            // point, run with this engine's meters and CPU features (so the
            // same settings), and
            // wasmtime checks its header and compatibility hash before use.
            unsafe { Component::deserialize(engine, &artifact) }
                .map_err(|e| CompileError::Crashed(format!("its artifact does not load: {e:#}")))
        }
    }
}

fn compile_in_child(
    program: &PathBuf,
    args: &[String],
    meters: Meters,
    cpu: CpuFeatures,
    limits: &LoadLimits,
    bytes: &[u8],
) -> Result<Vec<u8>, CompileError> {
    let crashed = |what: &str, e: std::io::Error| CompileError::Crashed(format!("{what}: {e}"));
    let mut command = Command::new(program);
    command
        .args(args)
        .arg(meters_arg(meters))
        .args(cpu_arg(cpu))
        // The child's own logging is noise here, and a debug log could read
        // as a diagnosis: what it prints on failure is what counts.
        .env_remove("HANDOFF_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    limit_memory(&mut command, limits.compile_memory_bytes);
    let mut child = command.spawn().map_err(|e| crashed("cannot start it", e))?;
    let (Some(mut stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(CompileError::Crashed("its pipes were not opened".into()));
    };
    let input = bytes.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let max_artifact = (bytes.len().max(1 << 20) * MAX_ARTIFACT_FACTOR) as u64;
    let reader = std::thread::spawn(move || read_bounded(stdout, max_artifact + 1));
    let errors = std::thread::spawn(move || read_bounded(stderr, MAX_STDERR));

    let deadline = Instant::now() + limits.compile_timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CompileError::TimedOut(limits.compile_timeout));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => {
                let _ = child.kill();
                return Err(crashed("cannot wait for it", e));
            }
        }
    };
    // The child has exited: its pipes are closed, so these end.
    let _ = writer.join();
    let artifact = reader
        .join()
        .map_err(|_| CompileError::Crashed("its output reader panicked".into()))?
        .map_err(|e| crashed("cannot read its output", e))?;
    let diagnostics = errors
        .join()
        .ok()
        .and_then(Result::ok)
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_string())
        .unwrap_or_default();
    if status.success() {
        if artifact.len() as u64 > max_artifact {
            return Err(CompileError::Crashed(
                "its artifact is impossibly large".into(),
            ));
        }
        return Ok(artifact);
    }
    if diagnostics.contains("memory allocation of") || killed_for_memory(&status) {
        return Err(CompileError::OutOfMemory(limits.compile_memory_bytes >> 20));
    }
    match status.code() {
        Some(1) => Err(CompileError::Invalid(diagnostics)),
        _ => Err(CompileError::Crashed(format!("{status}: {diagnostics}"))),
    }
}

/// Keeps the first `limit` bytes and drains the rest, so that a child
/// writing more never blocks on a full pipe.
fn read_bounded(mut from: impl Read, limit: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    (&mut from).take(limit).read_to_end(&mut out)?;
    std::io::copy(&mut from, &mut std::io::sink())?;
    Ok(out)
}

/// How the meters travel to the child, which must build the same engine.
fn meters_arg(meters: Meters) -> String {
    format!(
        "--meters={}{}",
        if meters.fuel { "fuel," } else { "" },
        if meters.epoch { "epoch" } else { "" }
    )
}

/// Parses the child's `--meters=` argument.
pub fn parse_meters(arg: &str) -> Option<Meters> {
    let list = arg.strip_prefix("--meters=")?;
    let parts: Vec<&str> = list.split(',').filter(|p| !p.is_empty()).collect();
    if parts.iter().any(|p| !matches!(*p, "fuel" | "epoch")) {
        return None;
    }
    Some(Meters {
        fuel: parts.contains(&"fuel"),
        epoch: parts.contains(&"epoch"),
    })
}

/// How the CPU features travel to the child: nothing for the default.
fn cpu_arg(cpu: CpuFeatures) -> Option<&'static str> {
    match cpu {
        CpuFeatures::Detected => None,
        CpuFeatures::ValgrindCompatible => Some(VALGRIND_COMPATIBLE_ARG),
    }
}

const VALGRIND_COMPATIBLE_ARG: &str = "--cpu=valgrind-compatible";

/// Parses the child's optional `--cpu=` argument.
pub fn parse_cpu(arg: Option<&str>) -> Option<CpuFeatures> {
    match arg {
        None => Some(CpuFeatures::Detected),
        Some(VALGRIND_COMPATIBLE_ARG) => Some(CpuFeatures::ValgrindCompatible),
        Some(_) => None,
    }
}

#[cfg(unix)]
fn limit_memory(command: &mut Command, bytes: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only async-signal-safe calls are made;
    // setrlimit is one.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: bytes,
                rlim_max: bytes,
            };
            if libc::setrlimit(libc::RLIMIT_DATA, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

#[cfg(not(unix))]
fn limit_memory(_command: &mut Command, _bytes: u64) {}

#[cfg(unix)]
fn killed_for_memory(status: &std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    matches!(
        status.signal(),
        Some(libc::SIGABRT | libc::SIGKILL | libc::SIGSEGV)
    )
}

#[cfg(not(unix))]
fn killed_for_memory(_status: &std::process::ExitStatus) -> bool {
    false
}

/// The child's side of [`Compiler::Subprocess`]: reads a component (at most
/// `max_component_bytes`) from stdin, compiles it with an engine built with
/// `meters`, and writes the artifact to stdout. An error is for stderr, and
/// the process should exit with status 1.
pub fn compile_request(
    meters: Meters,
    cpu: CpuFeatures,
    max_component_bytes: usize,
) -> Result<(), String> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .take(max_component_bytes as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the component: {e}"))?;
    if bytes.len() > max_component_bytes {
        return Err(format!("the component is over {max_component_bytes} bytes"));
    }
    // Compiling instantiates nothing: one pool slot reserves the least.
    let options = EngineOptions {
        meters,
        pool_instances: 1,
        cpu,
    };
    let engine = new_engine(options).map_err(|e| format!("cannot start the engine: {e:#}"))?;
    let component = Component::new(&engine, &bytes).map_err(|e| format!("{e:#}"))?;
    let artifact = component
        .serialize()
        .map_err(|e| format!("cannot serialize the artifact: {e:#}"))?;
    let mut out = std::io::stdout().lock();
    out.write_all(&artifact)
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write the artifact: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meters_survive_the_trip_to_the_child() {
        for (fuel, epoch) in [(true, true), (true, false), (false, true), (false, false)] {
            let meters = Meters { fuel, epoch };
            assert_eq!(parse_meters(&meters_arg(meters)), Some(meters));
        }
        assert_eq!(parse_meters("--meters=fuel,gas"), None);
    }

    #[test]
    fn cpu_features_survive_the_trip_to_the_child() {
        for cpu in [CpuFeatures::Detected, CpuFeatures::ValgrindCompatible] {
            assert_eq!(parse_cpu(cpu_arg(cpu)), Some(cpu));
        }
        assert_eq!(parse_cpu(Some("--cpu=native")), None);
    }
}
