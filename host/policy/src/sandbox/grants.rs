//! The capability policy: every interface the sandbox links, what it gives a
//! plugin, and the code that links it, in one table.
//!
//! The table is the single source of truth: [`new_linker`] links exactly its
//! rows, and [`grant_for`] (what `handoff inspect`, the load check and
//! `GET /v1/policies` report) reads the same rows. An interface not in the
//! table is refused, and a component importing it is rejected at load.

use wasmtime::Engine;
use wasmtime::component::{HasSelf, Linker, ResourceTable};
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sockets, sync};
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};

use super::PluginState;
use crate::bindings::{self, Contract, PACKAGE};

/// How the sandbox answers one import of a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case", tag = "grant", content = "note")]
pub enum Grant {
    /// Provided as specified.
    Granted(&'static str),
    /// Linked, but answers with nothing real (empty, frozen or seeded).
    Stubbed(&'static str),
    /// Linked only so that a standard toolchain's component loads: every
    /// call fails, so the plugin gets nothing from it. Python's runtime
    /// imports the sockets interfaces whether or not a policy uses them.
    Denied(&'static str),
    /// Not provided: a component importing it is rejected at load.
    Refused,
}

type Link = fn(&mut Linker<PluginState>) -> wasmtime::Result<()>;

/// One interface the sandbox provides.
struct Row {
    /// The interface, without a version: any 0.2.x of a WASI interface is
    /// served by the linker's semver matching.
    interface: &'static str,
    /// What a plugin gets from it.
    grant: Grant,
    /// Adds it to the linker.
    link: Link,
}

const fn row(interface: &'static str, grant: Grant, link: Link) -> Row {
    Row {
        interface,
        grant,
        link,
    }
}

use Grant::{Denied, Granted, Stubbed};

/// What a plugin gets from every sockets interface.
const NO_NETWORK: &str = "no network: every call fails with `access-denied`";

/// Every interface the sandbox links, and how.
static TABLE: &[Row] = &[
    row(
        "handoff:policy/host",
        Granted("log lines (bounded) and this plugin's configuration"),
        bindings::link_host,
    ),
    row(
        "handoff:policy/types",
        Granted("type definitions only"),
        bindings::link_types,
    ),
    row(
        "wasi:io/error",
        Granted("error values for the streams below"),
        |l| sync::io::error::add_to_linker::<_, HasSelf<ResourceTable>>(l, |s| &mut s.table),
    ),
    row(
        "wasi:io/poll",
        Granted("polling the streams and timers here, all ready at once: nothing ever blocks"),
        |l| sync::io::poll::add_to_linker::<_, HasSelf<ResourceTable>>(l, |s| &mut s.table),
    ),
    row(
        "wasi:io/streams",
        Granted("only the stdio streams below"),
        |l| sync::io::streams::add_to_linker::<_, HasSelf<ResourceTable>>(l, |s| &mut s.table),
    ),
    row(
        "wasi:cli/exit",
        Granted("exit ends the call as a trap"),
        |l| cli::exit::add_to_linker::<_, WasiCli>(l, PluginState::cli),
    ),
    row(
        "wasi:cli/environment",
        Stubbed("no arguments, no environment variables, no cwd"),
        |l| cli::environment::add_to_linker::<_, WasiCli>(l, PluginState::cli),
    ),
    row("wasi:cli/stdin", Stubbed("empty"), |l| {
        cli::stdin::add_to_linker::<_, WasiCli>(l, PluginState::cli)
    }),
    row(
        "wasi:cli/stdout",
        Stubbed("captured into the plugin's log, bounded"),
        |l| cli::stdout::add_to_linker::<_, WasiCli>(l, PluginState::cli),
    ),
    row(
        "wasi:cli/stderr",
        Stubbed("captured into the plugin's log, bounded"),
        |l| cli::stderr::add_to_linker::<_, WasiCli>(l, PluginState::cli),
    ),
    row("wasi:cli/terminal-input", Stubbed("not a terminal"), |l| {
        cli::terminal_input::add_to_linker::<_, WasiCli>(l, PluginState::cli)
    }),
    row("wasi:cli/terminal-output", Stubbed("not a terminal"), |l| {
        cli::terminal_output::add_to_linker::<_, WasiCli>(l, PluginState::cli)
    }),
    row("wasi:cli/terminal-stdin", Stubbed("not a terminal"), |l| {
        cli::terminal_stdin::add_to_linker::<_, WasiCli>(l, PluginState::cli)
    }),
    row("wasi:cli/terminal-stdout", Stubbed("not a terminal"), |l| {
        cli::terminal_stdout::add_to_linker::<_, WasiCli>(l, PluginState::cli)
    }),
    row("wasi:cli/terminal-stderr", Stubbed("not a terminal"), |l| {
        cli::terminal_stderr::add_to_linker::<_, WasiCli>(l, PluginState::cli)
    }),
    row(
        "wasi:clocks/wall-clock",
        Stubbed("frozen at the Unix epoch"),
        |l| clocks::wall_clock::add_to_linker::<_, WasiClocks>(l, PluginState::clocks),
    ),
    row(
        "wasi:clocks/monotonic-clock",
        Stubbed("frozen at zero; every timer is ready at once, so nothing waits"),
        |l| clocks::monotonic_clock::add_to_linker::<_, HasSelf<PluginState>>(l, |s| s),
    ),
    row(
        "wasi:random/random",
        Stubbed("a fixed sequence seeded from the item; at most 64 KiB per call"),
        |l| random::random::add_to_linker::<_, HasSelf<PluginState>>(l, |s| s),
    ),
    row(
        "wasi:random/insecure",
        Stubbed("a fixed sequence seeded from the item; at most 64 KiB per call"),
        |l| random::insecure::add_to_linker::<_, HasSelf<PluginState>>(l, |s| s),
    ),
    row(
        "wasi:random/insecure-seed",
        Stubbed("a seed drawn from the item's sequence"),
        |l| random::insecure_seed::add_to_linker::<_, HasSelf<PluginState>>(l, |s| s),
    ),
    row(
        "wasi:filesystem/preopens",
        Stubbed("no preopened directories"),
        |l| filesystem::preopens::add_to_linker::<_, WasiFilesystem>(l, PluginState::filesystem),
    ),
    row(
        "wasi:filesystem/types",
        Stubbed("no file can be reached without a preopen"),
        |l| sync::filesystem::types::add_to_linker::<_, WasiFilesystem>(l, PluginState::filesystem),
    ),
    // The network: linked with every use disallowed in the WASI context
    // (`PluginState::new`), so creating a socket or resolving a name fails,
    // and without a socket nothing else in these interfaces can be reached.
    row("wasi:sockets/network", Denied(NO_NETWORK), |l| {
        sockets::network::add_to_linker::<_, WasiSockets>(
            l,
            &Default::default(),
            PluginState::sockets,
        )
    }),
    row("wasi:sockets/instance-network", Denied(NO_NETWORK), |l| {
        sockets::instance_network::add_to_linker::<_, WasiSockets>(l, PluginState::sockets)
    }),
    row("wasi:sockets/tcp-create-socket", Denied(NO_NETWORK), |l| {
        sockets::tcp_create_socket::add_to_linker::<_, WasiSockets>(l, PluginState::sockets)
    }),
    row("wasi:sockets/tcp", Denied(NO_NETWORK), |l| {
        sync::sockets::tcp::add_to_linker::<_, WasiSockets>(l, PluginState::sockets)
    }),
    row("wasi:sockets/udp-create-socket", Denied(NO_NETWORK), |l| {
        sync::sockets::udp_create_socket::add_to_linker::<_, WasiSockets>(l, PluginState::sockets)
    }),
    row("wasi:sockets/udp", Denied(NO_NETWORK), |l| {
        sync::sockets::udp::add_to_linker::<_, WasiSockets>(l, PluginState::sockets)
    }),
    row("wasi:sockets/ip-name-lookup", Denied(NO_NETWORK), |l| {
        sockets::ip_name_lookup::add_to_linker::<_, WasiSockets>(l, PluginState::sockets)
    }),
];

/// How the sandbox answers an import named `name` (`wasi:cli/stdout@0.2.6`).
/// WASI versions do not matter (the linker serves any 0.2.x of an
/// interface); the contract's do: another version of `handoff:policy` is
/// refused.
pub(crate) fn grant_for(name: &str) -> Grant {
    let (unversioned, version) = name.split_once('@').unwrap_or((name, ""));
    // The contract's own interfaces are served at exactly one version.
    if unversioned.starts_with(PACKAGE) && Contract::of_version(version).is_none() {
        return Grant::Refused;
    }
    TABLE
        .iter()
        .find(|row| row.interface == unversioned)
        .map_or(Grant::Refused, |row| row.grant)
}

/// Builds the linker every plugin is instantiated against: every row of the
/// table, and nothing else, so anything a component imports beyond them
/// fails to link.
pub(crate) fn new_linker(engine: &Engine) -> wasmtime::Result<Linker<PluginState>> {
    let mut linker = Linker::new(engine);
    for row in TABLE {
        (row.link)(&mut linker)?;
    }
    Ok(linker)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether `linker` defines `interface` at some version its package
    /// could have (`handoff:policy` is 0.1.0; WASI is whichever 0.2.x
    /// wasmtime-wasi ships). A name is defined when defining it again is
    /// refused: the linker does not allow shadowing. Each probe defines a
    /// name the linker lacked, so no name is probed twice.
    fn defines(linker: &mut Linker<PluginState>, interface: &str) -> bool {
        let versions: Vec<String> = if interface.starts_with("handoff:") {
            vec!["0.1.0".into()]
        } else {
            (0..=64).map(|patch| format!("0.2.{patch}")).collect()
        };
        versions.iter().any(|version| {
            let name = format!("{interface}@{version}");
            linker.root().func_wrap(&name, |_, (): ()| Ok(())).is_err()
        })
    }

    /// Each row links its own interface and no other row's, so the table
    /// that `inspect` reports is exactly what the linker provides.
    #[test]
    fn every_row_links_its_interface_and_only_it() {
        let engine = Engine::default();
        for row in TABLE {
            let mut linker = Linker::new(&engine);
            (row.link)(&mut linker).unwrap();
            for other in TABLE {
                let defined = defines(&mut linker, other.interface);
                assert_eq!(
                    defined,
                    std::ptr::eq(row, other),
                    "linking `{}` {} `{}`",
                    row.interface,
                    if defined {
                        "also defines"
                    } else {
                        "does not define"
                    },
                    other.interface
                );
            }
        }
    }

    #[test]
    fn interfaces_outside_the_table_are_refused_whatever_their_version() {
        assert_eq!(
            grant_for("wasi:sockets/tcp@0.2.6"),
            Grant::Denied(NO_NETWORK)
        );
        assert_eq!(grant_for("wasi:http/outgoing-handler"), Grant::Refused);
        assert_eq!(grant_for("wasi:sockets/http"), Grant::Refused);
        assert!(matches!(
            grant_for("wasi:cli/stdout@0.2.9"),
            Grant::Stubbed(_)
        ));
        assert!(new_linker(&Engine::default()).is_ok());
    }
}
