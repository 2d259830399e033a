//! `handoff queue`: the human side of dispatch, working on the same store
//! as a running host.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use handoff_dispatch::{
    Commit, DispatchConfig, Dispatcher, Handoff, HandoffState, HandoffStore, ListFilter, Outcome,
    Resolution, Store, StoreLocation, SystemClock,
};
use handoff_model::Named;

use super::output::{fit, terminal};
use super::store_arg::StoreArg;

#[derive(Debug, clap::Args)]
pub struct QueueArgs {
    /// The data directory whose `handoffs.db` holds the queue.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "handoff-data",
        global = true
    )]
    data: PathBuf,
    /// The handoff store.
    #[command(flatten)]
    store: StoreArg,
    #[command(subcommand)]
    command: QueueCommand,
}

#[derive(Debug, clap::Subcommand)]
enum QueueCommand {
    /// List handoffs, most urgent first (an expired lease lists as queued).
    List {
        /// Only handoffs for this role.
        #[arg(long)]
        role: Option<String>,
        /// Only handoffs in this state: queued, claimed, acknowledged, resolved.
        #[arg(long)]
        state: Option<HandoffState>,
        /// Only handoffs of this item.
        #[arg(long, value_name = "ID")]
        item: Option<String>,
        /// Print JSON Lines (each handoff with its transfer payload).
        #[arg(long)]
        json: bool,
    },
    /// Take the most urgent handoff for a role, under a lease. Prints it
    /// with its full context as JSON; exits 1 when there is none.
    Claim {
        /// The role you work as.
        #[arg(long)]
        role: String,
        /// Who you are.
        #[arg(long)]
        worker: String,
        /// Lease length in seconds.
        #[arg(long, value_name = "SECS", default_value_t = DispatchConfig::default().lease_secs)]
        lease_secs: u32,
    },
    /// Acknowledge a handoff you hold.
    Ack {
        /// The handoff id.
        id: String,
        /// Who you are.
        #[arg(long)]
        worker: String,
    },
    /// Resolve a handoff you hold.
    Resolve {
        /// The handoff id.
        id: String,
        /// Who you are.
        #[arg(long)]
        worker: String,
        /// approved, corrected or rejected.
        #[arg(long, value_parser = ["approved", "corrected", "rejected"])]
        outcome: String,
        /// What you changed the work to (required with `corrected`).
        #[arg(long)]
        correction: Option<String>,
        /// Your note.
        #[arg(long, default_value = "")]
        note: String,
        /// Whether the escalation was warranted: true or false.
        #[arg(long, action = clap::ArgAction::Set, value_name = "BOOL")]
        warranted: bool,
    },
    /// Keep holding a handoff: extend your lease, for work that takes
    /// longer than one lease.
    Renew {
        /// The handoff id.
        id: String,
        /// Who you are.
        #[arg(long)]
        worker: String,
        /// The new lease, in seconds from now.
        #[arg(long, value_name = "SECS", default_value_t = DispatchConfig::default().lease_secs)]
        lease_secs: u32,
    },
    /// Give a handoff you hold back to the queue.
    Release {
        /// The handoff id.
        id: String,
        /// Who you are.
        #[arg(long)]
        worker: String,
    },
    /// Print one handoff and every event in its life, as JSON.
    Show {
        /// The handoff id.
        id: String,
    },
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub(crate) async fn open(
    location: &StoreLocation,
    lease_secs: u32,
) -> anyhow::Result<Dispatcher<Store>> {
    let store = Store::open(location, Commit::Synced, &super::node_name())
        .await
        .with_context(|| {
            format!(
                "cannot open the handoff store {}",
                terminal(&location.to_string())
            )
        })?;
    let config = DispatchConfig {
        lease_secs,
        ..DispatchConfig::default()
    };
    Ok(Dispatcher::new(store, Arc::new(SystemClock), config))
}

pub fn run_queue(args: QueueArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(queue(args))
}

async fn queue(args: QueueArgs) -> anyhow::Result<ExitCode> {
    let lease = match &args.command {
        QueueCommand::Claim { lease_secs, .. } | QueueCommand::Renew { lease_secs, .. } => {
            *lease_secs
        }
        _ => DispatchConfig::default().lease_secs,
    };
    let host = open(&args.store.location(&args.data)?, lease).await?;
    match args.command {
        QueueCommand::List {
            role,
            state,
            item,
            json,
        } => {
            let filter = ListFilter {
                role,
                state,
                item_id: item,
            };
            let handoffs = host.list(&filter).await?;
            if json {
                for handoff in &handoffs {
                    println!("{}", serde_json::to_string(handoff)?);
                }
            } else {
                print_table(&handoffs);
            }
        }
        QueueCommand::Claim { role, worker, .. } => match host.claim(&role, &worker).await? {
            // The same shape as `POST /v1/queue/claim` answers.
            Some(handoff) => println!(
                "{}",
                serde_json::to_string_pretty(&serde_json::json!({ "handoff": handoff }))?
            ),
            None => {
                eprintln!("handoff: nothing to claim for role `{}`", terminal(&role));
                return Ok(ExitCode::from(1));
            }
        },
        QueueCommand::Ack { id, worker } => {
            let handoff = host.acknowledge(&id, &worker).await?;
            println!(
                "acknowledged {} ({} {})",
                handoff.id,
                handoff.tier,
                terminal(&handoff.item_id)
            );
        }
        QueueCommand::Resolve {
            id,
            worker,
            outcome,
            correction,
            note,
            warranted,
        } => {
            let outcome = Outcome::from_parts(&outcome, correction)
                .map_err(|e| anyhow::anyhow!("{e} (--outcome, --correction)"))?;
            let resolution = Resolution {
                outcome,
                note,
                warranted,
            };
            let handoff = host.resolve(&id, &worker, &resolution).await?;
            println!(
                "resolved {} as {}{}",
                handoff.id,
                resolution.outcome.name(),
                if handoff.breached {
                    " (after an SLA breach)"
                } else {
                    ""
                }
            );
        }
        QueueCommand::Renew { id, worker, .. } => {
            let handoff = host.renew(&id, &worker).await?;
            let until = handoff
                .lease_expires
                .map(|t| t.to_rfc3339())
                .unwrap_or_default();
            println!("renewed {} until {until}", handoff.id);
        }
        QueueCommand::Release { id, worker } => {
            let handoff = host.release(&id, &worker).await?;
            println!(
                "released {} to the {} queue",
                handoff.id,
                terminal(&handoff.role)
            );
        }
        QueueCommand::Show { id } => {
            let handoff = host.store().get(&id).await?;
            let events = host.store().events(Some(&id)).await?;
            let shown = serde_json::json!({"handoff": handoff, "events": events});
            println!("{}", serde_json::to_string_pretty(&shown)?);
        }
    }
    host.store().close().await;
    Ok(ExitCode::SUCCESS)
}

/// Column widths of `queue list`; longer values are cut with `…`, so that a
/// long reason code or role never shifts the columns after it.
const COLUMNS: [usize; 8] = [18, 12, 10, 18, 13, 19, 24, 12];

fn print_table(handoffs: &[Handoff]) {
    print_row(&[
        "id",
        "item",
        "tier",
        "role",
        "state",
        "next deadline",
        "reason code",
        "holder",
    ]);
    for h in handoffs {
        let deadline = if h.state == HandoffState::Resolved {
            "-".to_string()
        } else {
            h.next_deadline().format("%Y-%m-%d %H:%M:%S").to_string()
        };
        print_row(&[
            &h.id,
            &terminal(&h.item_id),
            h.tier.as_str(),
            &terminal(&h.role),
            h.state.as_str(),
            &deadline,
            &terminal(&h.reason_code),
            &terminal(h.lease_owner.as_deref().unwrap_or("-")),
        ]);
    }
}

fn print_row(cells: &[&str; 8]) {
    let row: Vec<String> = cells
        .iter()
        .zip(COLUMNS)
        .map(|(cell, width)| format!("{:<width$}", fit(cell, width)))
        .collect();
    println!("{}", row.join("  ").trim_end());
}
