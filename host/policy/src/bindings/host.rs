//! The `handoff:policy/host` interface a plugin imports, linked by hand so
//! that its string arguments are read in place in the plugin's memory: a
//! log line of any length costs the host no more than the plugin's log cap,
//! and a configuration key is looked up without a copy.

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, WasmStr};

use super::PACKAGE;
// Every version's `log-level` has the same cases, and wasmtime checks an
// enum by its cases, so 0.1.0's serves them all.
use super::since_v0_1_0::handoff::policy::host::LogLevel;
use crate::sandbox::PluginState;

/// Links `handoff:policy/host@{version}`: the same functions at every
/// version.
pub(super) fn link(linker: &mut Linker<PluginState>, version: &str) -> wasmtime::Result<()> {
    let mut host = linker.instance(&format!("{PACKAGE}/host@{version}"))?;
    // Log lines join stdout and stderr in the bounded capture, so a plugin
    // cannot flood the host's log through this door either.
    host.func_wrap(
        "log",
        |store: StoreContextMut<'_, PluginState>, (level, message): (LogLevel, WasmStr)| {
            let capture = store.data().capture().clone();
            let message = message.to_str(&store)?;
            capture.append_line(level_name(level), &message);
            Ok(())
        },
    )?;
    host.func_wrap(
        "config-get",
        |store: StoreContextMut<'_, PluginState>, (key,): (WasmStr,)| {
            let key = key.to_str(&store)?;
            Ok((store.data().config().get(&*key).cloned(),))
        },
    )?;
    host.func_wrap(
        "config-keys",
        |store: StoreContextMut<'_, PluginState>, (): ()| {
            Ok((store
                .data()
                .config()
                .keys()
                .cloned()
                .collect::<Vec<String>>(),))
        },
    )?;
    Ok(())
}

fn level_name(level: LogLevel) -> &'static str {
    match level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}
