//! Logging through the host, attributed to the plugin.
//!
//! Natively (in unit tests and benchmarks) there is no host, so lines go
//! nowhere; policy logic must never depend on logging anyway.

#[cfg(target_family = "wasm")]
fn write(level: crate::bindings::handoff::policy::host::LogLevel, message: &str) {
    crate::bindings::handoff::policy::host::log(level, message);
}

#[cfg(not(target_family = "wasm"))]
fn write(_level: crate::bindings::handoff::policy::host::LogLevel, _message: &str) {}

use crate::bindings::handoff::policy::host::LogLevel;

/// Logs at debug level.
pub fn debug(message: &str) {
    write(LogLevel::Debug, message);
}

/// Logs at info level.
pub fn info(message: &str) {
    write(LogLevel::Info, message);
}

/// Logs at warn level.
pub fn warn(message: &str) {
    write(LogLevel::Warn, message);
}

/// Logs at error level.
pub fn error(message: &str) {
    write(LogLevel::Error, message);
}
