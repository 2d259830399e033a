//! `handoff serve`: the long-running host. Hot reload, the audit log and the
//! SLA clocks run inside it; agents, operators and compliance use its HTTP
//! API.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use handoff_host::Runtime;
use handoff_host::audit::Durability;
use handoff_host::dispatch::{Commit, DispatchConfig, Dispatcher, SqliteStore, SystemClock};
use handoff_host::server::{self, App, Metrics, ServerConfig, check_exposure};

use super::dispatching::start_sla_clock;
use super::host::{HostArgs, LiveHost};

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
    /// TOML configuration: listen address, request limits and bearer
    /// tokens per role (see the README).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub fn run(runtime: &Runtime, args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = ServerConfig::load(args.config.as_deref())?;
    let listen = match args.listen.or(config.listen) {
        Some(listen) => listen,
        None => DEFAULT_LISTEN
            .parse()
            .context("the default listen address")?,
    };
    let tokens = config.tokens(|name| std::env::var(name).ok());
    check_exposure(listen, &tokens)?;
    if tokens.is_empty() {
        eprintln!("handoff: no tokens configured: the API is open to anyone on this machine");
    }

    let metrics = Arc::new(Metrics::new());
    let observer = metrics.clone();
    let host = LiveHost::open(runtime, &args.host, move |event| {
        observer.observe_lifecycle(event)
    })?;

    let tokio = tokio::runtime::Builder::new_multi_thread()
        .thread_name("handoff-serve")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    tokio.block_on(async {
        // The store is as durable as the audit log it sits beside.
        let commit = match args.host.audit.durability {
            Durability::Sync => Commit::Synced,
            Durability::Batch | Durability::Off => Commit::Written,
        };
        let store = SqliteStore::open_with(&args.host.data, commit)
            .await
            .with_context(|| {
                format!(
                    "cannot open the handoff store in {}",
                    args.host.data.display()
                )
            })?;
        let dispatcher = Arc::new(Dispatcher::new(
            store.clone(),
            Arc::new(SystemClock),
            DispatchConfig::default(),
        ));
        let sla_metrics = metrics.clone();
        let sla_tasks = start_sla_clock(dispatcher.clone(), move |event| {
            sla_metrics.observe_sla(event)
        });

        let app = Arc::new(App::new(
            host.live.clone(),
            host.audit.clone(),
            dispatcher,
            metrics,
            tokens,
            config,
        ));
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let bound = listener
            .local_addr()
            .context("cannot read the bound address")?;
        eprintln!("handoff: listening on http://{bound}");
        server::serve(listener, app, stop_signal())
            .await
            .context("the server stopped with an error")?;

        eprintln!("handoff: stopping: in-flight requests finished");
        for task in sla_tasks {
            task.abort();
        }
        host.audit
            .flush()
            .context("cannot flush the audit log on shutdown")?;
        store.close().await;
        eprintln!(
            "handoff: stopped; audit log flushed (next seq {}), store closed",
            host.audit.next_seq()
        );
        Ok(ExitCode::SUCCESS)
    })
}

/// Resolves on the first SIGINT or SIGTERM.
async fn stop_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = terminate.recv() => {}
                }
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM; stopping on SIGINT only");
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    eprintln!("handoff: stop requested; draining requests in flight");
}
