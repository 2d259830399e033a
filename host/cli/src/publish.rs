//! `handoff publish`: a policy directory, validated here, stored in the
//! fleet's shared store as its next generation, which every node then
//! validates again and serves (or refuses, keeping what it served).

use std::path::PathBuf;
use std::process::ExitCode;

use handoff_dispatch::{DispatchConfig, StoreLocation};
use handoff_pipeline::fleet;
use handoff_policy::Runtime;

use super::output::terminal;
use super::queue::{open as open_store, runtime as async_runtime};
use super::store_arg::StoreArg;

#[derive(Debug, clap::Args)]
pub struct PublishArgs {
    /// The policy directory to publish: every `NAME.wasm` with its
    /// `NAME.toml`. Every unit must pass validation, or nothing is stored.
    dir: PathBuf,
    /// The fleet's store: a PostgreSQL URL (or $HANDOFF_STORE).
    #[command(flatten)]
    store: StoreArg,
    /// Who publishes, as the fleet's record names them [default:
    /// $USER@this host].
    #[arg(long = "as", value_name = "NAME")]
    publisher: Option<String>,
}

pub fn run(runtime: &Runtime, args: PublishArgs) -> anyhow::Result<ExitCode> {
    let location = args.store.location(&args.dir)?;
    if matches!(location, StoreLocation::Embedded(_)) {
        anyhow::bail!(
            "publishing needs the store a fleet shares: --store postgres://USER@HOST:PORT/DATABASE \
             (or $HANDOFF_STORE); a host on the embedded store serves its own directory"
        );
    }
    let publisher = args.publisher.clone().unwrap_or_else(default_publisher);
    async_runtime()?.block_on(async {
        let dispatcher = open_store(&location, DispatchConfig::default().lease_secs).await?;
        let store = dispatcher.store();
        let published = match store.generations() {
            Some(generations) => fleet::publish(runtime, &args.dir, generations, &publisher)
                .await
                .map_err(anyhow::Error::from),
            None => Err(anyhow::anyhow!(
                "{} is not a shared store",
                terminal(&location.to_string())
            )),
        };
        let summary = match (&published, store.generations()) {
            (Ok(generation), Some(generations)) => {
                generations.summary(*generation).await.ok().flatten()
            }
            _ => None,
        };
        store.close().await;
        let generation = published?;
        println!(
            "published generation {generation} to {}",
            terminal(&location.to_string())
        );
        for unit in summary.map(|s| s.units).unwrap_or_default() {
            println!("  {}  {}", terminal(&unit.name), unit.digest);
        }
        Ok(ExitCode::SUCCESS)
    })
}

/// `$USER@hostname`, as well as this machine can tell.
fn default_publisher() -> String {
    let user = std::env::var("USER").unwrap_or_else(|_| "someone".into());
    format!("{user}@{}", super::host_name())
}
