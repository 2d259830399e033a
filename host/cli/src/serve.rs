//! `handoff serve`: the long-running host. Hot reload, the audit log and the
//! SLA clocks run inside it; agents, operators and compliance use its HTTP
//! API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use handoff_pipeline::fleet::FleetMember;
use handoff_pipeline::{Observers, Placement};
use handoff_policy::Runtime;
use handoff_server::{App, Metrics, ServerConfig, check_exposure};

use super::host_args::HostArgs;
use super::output::terminal;

/// Where the server listens when neither the flag nor the config file says.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    #[command(flatten)]
    host: HostArgs,
    /// Address to listen on [default: 127.0.0.1:8080]. Port 0 picks a free
    /// port; the address is printed once listening.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// TOML configuration: listen address, request and connection limits,
    /// timeouts, and who may call (principals with token digests, JWTs,
    /// role tokens; see the README).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// This node's name in a fleet (a PostgreSQL store shared by several
    /// hosts), as `GET /v1/fleet` shows it; keep it across restarts
    /// [default: this host's name and port].
    #[arg(long, value_name = "NAME", env = "HANDOFF_NODE")]
    node: Option<String>,
}

pub fn run(runtime: &Runtime, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = ServerConfig::load(args.config.as_deref())?;
    let listen = match args.listen.or(config.listen) {
        Some(listen) => listen,
        None => DEFAULT_LISTEN
            .parse()
            .context("the default listen address")?,
    };
    let identities = config.identities(|name| std::env::var(name).ok())?;
    check_exposure(listen, &identities)?;
    if identities.is_empty() {
        eprintln!("handoff: no credentials configured: the API is open to anyone on this machine");
    }
    let limits = config.connection_limits();

    let metrics = Arc::new(Metrics::new());
    let observers = Observers {
        lifecycle: Some(Arc::new({
            let metrics = metrics.clone();
            move |event| metrics.observe_lifecycle(event)
        })),
        sla: Some(Arc::new({
            let metrics = metrics.clone();
            move |event| metrics.observe_sla(event)
        })),
    };
    let tokio = tokio::runtime::Builder::new_multi_thread()
        .thread_name("handoff-serve")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    tokio.block_on(async {
        // Bound first: the default node name is this host's name and the
        // port, and the host needs it to open a shared store.
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let bound = listener
            .local_addr()
            .context("cannot read the bound address")?;
        let member = FleetMember {
            node: args
                .node
                .clone()
                .unwrap_or_else(|| format!("{}:{}", super::host_name(), bound.port())),
            address: Some(format!("http://{bound}")),
        };
        let placement = Placement::Blocking(config.evaluator_count());
        let mut host = args
            .host
            .open(runtime, placement, observers, &member.node)
            .await?;
        let node = member.node.clone();
        if host.join_fleet(member).await {
            let live = host.policies().current();
            eprintln!(
                "handoff: node {} of the fleet: {} (generation {})",
                terminal(&node),
                host.policies()
                    .live()
                    .and_then(|live| live.fleet_generation())
                    .map_or(
                        "serving its own policy directory until a generation is published".into(),
                        |g| { format!("serving the fleet's published policy generation {g}") }
                    ),
                live.generation()
            );
        }
        let app = Arc::new(App::new(&host, metrics, identities, config)?);
        eprintln!(
            "handoff: accepting at most {} connections (headers within {} s, bodies within {} s)",
            limits.max_connections,
            limits.header_timeout.as_secs(),
            limits.body_timeout.as_secs()
        );
        let stop = stop_signal();
        eprintln!("handoff: listening on http://{bound}");
        handoff_server::serve(listener, app, stop)
            .await
            .context("the server stopped with an error")?;

        eprintln!("handoff: stopping: connections closed");
        let audit = host.audit().cloned();
        host.close()
            .await
            .context("cannot flush the audit log on shutdown")?;
        let next_seq = audit.map_or(0, |audit| audit.next_seq());
        eprintln!("handoff: stopped; audit log flushed (next seq {next_seq}), store closed");
        Ok(ExitCode::SUCCESS)
    })
}

/// Resolves on the first SIGINT or SIGTERM.
///
/// The handlers are installed when this is called, not when the future is
/// first polled: a supervisor may send SIGTERM the moment it reads
/// "listening on", and a signal arriving before the handler exists would
/// kill the process without draining requests or flushing the audit log.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let handlers = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        )
    };
    async move {
        #[cfg(unix)]
        match handlers {
            (Ok(mut interrupt), Ok(mut terminate)) => {
                tokio::select! {
                    _ = interrupt.recv() => {}
                    _ = terminate.recv() => {}
                }
            }
            (interrupt, terminate) => {
                let error = interrupt.err().or(terminate.err());
                tracing::error!(
                    ?error,
                    "cannot listen for SIGINT and SIGTERM; stopping on Ctrl-C only"
                );
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        eprintln!("handoff: stop requested; draining requests in flight");
    }
}
