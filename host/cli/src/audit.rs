//! `handoff audit verify|show`, and the audit-log options shared by the
//! commands that decide (`eval`, `watch`).

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, SecondsFormat, Utc};
use handoff_audit::{
    AuditOptions, Body, Durability, Entry, Filter, Masking, PublicKey, VerifyError, checkpoint,
    log_files, query, verify, verify_anchored, verify_segment,
};
use handoff_dispatch::{Commit, SqliteStore, Store, StoreLocation};
use handoff_model::Tier;
use handoff_pipeline::{AuditSetup, fleet_audit};

use super::output::terminal;

#[derive(Debug, clap::Args)]
pub struct AuditArgs {
    #[command(subcommand)]
    command: AuditCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AuditCommand {
    /// Check the hash chain of audit files (or directories of them) as one
    /// whole chain, in the order given: it must start at record 1, and the
    /// files must run from audit-000001.jsonl with no gap.
    ///
    /// Prints the number of records verified, or the first broken record's
    /// sequence number and what happened to it: edited, deleted, reordered
    /// or truncated. With --checkpoints and --key, also proves that no
    /// record up to the last signed checkpoint was rewritten (even
    /// re-hashed) or cut off, and names the records after it as
    /// unanchored. Exits 1 on a break or an untrusted checkpoint.
    Verify(VerifyArgs),
    /// Print the records that match every given filter, as JSON Lines
    /// exactly as stored, or as a table.
    Show(ShowArgs),
}

#[derive(Debug, clap::Args)]
struct VerifyArgs {
    /// Audit files, or directories holding `audit-NNNNNN.jsonl` files.
    #[arg(required_unless_present = "store", value_name = "FILE|DIR")]
    paths: Vec<PathBuf>,
    /// A fleet's PostgreSQL store (`postgres://...`): verify every node's
    /// chain kept there, each from record 1 to the head the store names,
    /// every record naming its node. Exits 1 if any chain is broken.
    #[arg(long, value_name = "URL", conflicts_with_all = ["paths", "checkpoints", "segment"])]
    store: Option<String>,
    /// Signed checkpoints to hold the log to: a witness file
    /// (`audit-checkpoints.jsonl`) or the handoff store (`handoffs.db`),
    /// which keeps a copy of each. Repeatable.
    #[arg(long = "checkpoints", value_name = "FILE", requires = "key")]
    checkpoints: Vec<PathBuf>,
    /// The checkpoint public key to trust: a `.pub` file, or the key itself
    /// (`ed25519:...`). Take it from where the log's writer cannot change
    /// it, not from beside the log.
    #[arg(long, value_name = "FILE|KEY")]
    key: Option<String>,
    /// Verify a segment of a chain (an archive whose head is elsewhere):
    /// the first record's link to what came before is taken on trust.
    #[arg(long, conflicts_with = "checkpoints")]
    segment: bool,
}

#[derive(Debug, clap::Args)]
struct ShowArgs {
    /// Audit files, or directories holding `audit-NNNNNN.jsonl` files.
    #[arg(required_unless_present = "store", value_name = "FILE|DIR")]
    paths: Vec<PathBuf>,
    /// A fleet's PostgreSQL store (`postgres://...`): every node's records,
    /// oldest first, instead of files.
    #[arg(long, value_name = "URL", conflicts_with = "paths")]
    store: Option<String>,
    /// Decisions of this tier: none, self-correct, operator or executive.
    #[arg(long)]
    tier: Option<Tier>,
    /// Decisions this plugin drove, and lifecycle events about it.
    #[arg(long)]
    plugin: Option<String>,
    /// Decisions with this reason code or one under it (`auth-limit`
    /// matches `auth-limit.exceeded`).
    #[arg(long, value_name = "CODE")]
    reason_code: Option<String>,
    /// Records at or after this time (RFC 3339, e.g. 2026-11-24T09:00:00Z).
    #[arg(long, value_name = "TIME")]
    since: Option<DateTime<Utc>>,
    /// Records before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    until: Option<DateTime<Utc>>,
    /// Decisions about this item id, and faults while deciding it.
    #[arg(long, value_name = "ID")]
    item: Option<String>,
    /// A readable table instead of JSON Lines.
    #[arg(long)]
    table: bool,
}

/// Where and how a deciding command writes its audit trail.
#[derive(Debug, clap::Args)]
pub struct AuditLogArgs {
    /// Append every decision and lifecycle event to the hash-chained audit
    /// log in DIR (`audit-NNNNNN.jsonl` files, created if needed).
    #[arg(long = "audit", value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// When an audit record is on disk: `sync` (fsync before the decision
    /// is printed), `batch` (group commit every 5 ms or 256 records), `off`.
    /// A host's handoff store follows it: `sync` syncs every commit, the
    /// others survive a process crash and sync at checkpoints.
    #[arg(long, value_name = "MODE", default_value = "batch")]
    pub durability: Durability,
    /// Store the item's `text` as a keyed hash. Masked records are marked
    /// not replayable.
    #[arg(long)]
    mask_text: bool,
    /// Store attribute NAME as a keyed hash (repeatable).
    #[arg(long = "mask-attribute", value_name = "NAME")]
    mask_attributes: Vec<String>,
    /// The masking key (64 hex digits), created if missing. Defaults to
    /// `mask.key` in the audit directory; keep it elsewhere when the log
    /// leaves your hands, or the hashes of short values can be guessed.
    #[arg(long, value_name = "FILE")]
    mask_key: Option<PathBuf>,
    /// Rotate to a new audit file before one grows past this many bytes.
    #[arg(long, value_name = "BYTES", default_value_t = AuditOptions::default().max_file_bytes)]
    audit_max_file_bytes: u64,
}

impl AuditLogArgs {
    /// The audit trail in `dir` with these options (the masking key is
    /// read, or created, now).
    pub fn setup(&self, dir: &Path) -> anyhow::Result<AuditSetup> {
        let masking = if self.mask_text || !self.mask_attributes.is_empty() {
            let key = self
                .mask_key
                .clone()
                .unwrap_or_else(|| dir.join("mask.key"));
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create audit directory {}", dir.display()))?;
            Some(Masking::with_key_file(
                self.mask_text,
                self.mask_attributes.clone(),
                &key,
            )?)
        } else {
            None
        };
        let options = AuditOptions {
            durability: self.durability,
            max_file_bytes: self.audit_max_file_bytes,
            masking,
            ..AuditOptions::default()
        };
        Ok(AuditSetup {
            dir: dir.to_path_buf(),
            options,
        })
    }
}

pub fn run(args: AuditArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        AuditCommand::Verify(args) => run_verify(&args),
        AuditCommand::Show(args) => run_show(args),
    }
}

/// Files named on the command line, with directories expanded to their
/// audit files in chain order.
pub fn expand(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let found = log_files(path)?;
            anyhow::ensure!(
                !found.is_empty(),
                "no audit files (audit-NNNNNN.jsonl) in {}",
                path.display()
            );
            files.extend(found);
        } else {
            anyhow::ensure!(
                path.exists(),
                "audit file {} does not exist",
                path.display()
            );
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// The chains of the fleet sharing the store at `url`.
fn fleet_ledger(url: &str) -> anyhow::Result<(tokio::runtime::Runtime, handoff_dispatch::Store)> {
    let location = StoreLocation::parse(url, Path::new("."))
        .map_err(|reason| anyhow::anyhow!("--store: {reason}"))?;
    anyhow::ensure!(
        matches!(location, StoreLocation::Postgres(_)),
        "--store: audit chains are kept in a fleet's PostgreSQL store (postgres://...); \
         a single host's chain is its audit directory: name that instead"
    );
    let runtime = super::queue::runtime()?;
    let store = runtime
        .block_on(Store::open(&location, Commit::Synced, &super::node_name()))
        .with_context(|| {
            format!(
                "cannot open the handoff store {}",
                terminal(&location.to_string())
            )
        })?;
    Ok((runtime, store))
}

fn run_verify_fleet(url: &str) -> anyhow::Result<ExitCode> {
    let (runtime, store) = fleet_ledger(url)?;
    let ledger = store.ledger().context("the store keeps no audit chains")?;
    let chains = runtime
        .block_on(fleet_audit::verify_fleet(ledger))
        .context("cannot read the audit chains")?;
    let mut broken = 0;
    let mut records = 0;
    for chain in &chains {
        let node = terminal(&chain.head.node);
        match &chain.outcome {
            Ok(verified) => {
                records += verified.records;
                println!(
                    "node {node}: verified {} records, seq 1..={}",
                    verified.records, chain.head.seq
                );
            }
            Err(VerifyError::Broken(at)) => {
                broken += 1;
                println!("node {node}: broken: {}", terminal(&at.to_string()));
            }
            Err(error) => {
                broken += 1;
                println!("node {node}: broken: {}", terminal(&error.to_string()));
            }
        }
    }
    runtime.block_on(store.close());
    if chains.is_empty() {
        // Nothing verified is not a chain that verified: the wrong
        // database, or one whose chains were dropped.
        println!("broken: no audit chains in this store: no node has recorded anything here");
        return Ok(ExitCode::from(1));
    }
    if broken > 0 {
        println!("broken: {broken} of {} chains", chains.len());
        return Ok(ExitCode::from(1));
    }
    println!("verified {} chains, {records} records", chains.len());
    Ok(ExitCode::SUCCESS)
}

fn run_verify(args: &VerifyArgs) -> anyhow::Result<ExitCode> {
    if let Some(url) = &args.store {
        return run_verify_fleet(url);
    }
    let files = expand(&args.paths)?;
    let verified = if args.segment {
        verify_segment(&files)
    } else {
        verify(&files)
    };
    let verified = match verified {
        Ok(verified) => verified,
        Err(VerifyError::Broken(broken)) => {
            println!("broken: {broken}");
            return Ok(ExitCode::from(1));
        }
        Err(error) => return Err(error.into()),
    };
    let range = match (verified.first_seq, verified.last_seq) {
        (Some(first), Some(last)) => format!(", seq {first}..={last}"),
        _ => String::new(),
    };
    println!(
        "verified {} records in {} file(s){range}",
        verified.records, verified.files
    );
    let Some(key) = &args.key else {
        return Ok(ExitCode::SUCCESS);
    };
    if args.checkpoints.is_empty() {
        anyhow::bail!(
            "--key needs --checkpoints: the witness file or handoffs.db to check against"
        );
    }
    let key = trusted_key(key)?;
    let Some(genesis) = verified.genesis.clone() else {
        println!("untrusted: the log holds no records, but checkpoints vouch for some");
        return Ok(ExitCode::from(1));
    };
    let mut witnessed = Vec::new();
    for source in &args.checkpoints {
        witnessed.extend(read_checkpoints(source)?);
    }
    let anchors = match checkpoint::anchors(&witnessed, &key, &genesis) {
        Ok(anchors) => anchors,
        Err(error) => {
            println!("untrusted: {}", terminal(&error.to_string()));
            return Ok(ExitCode::from(1));
        }
    };
    let anchored = match verify_anchored(&files, &anchors) {
        Ok(anchored) => anchored,
        Err(VerifyError::Broken(broken)) => {
            println!("broken: {broken}");
            return Ok(ExitCode::from(1));
        }
        Err(error) => return Err(error.into()),
    };
    let last = anchored.last_seq.unwrap_or(0);
    match anchored.anchored_through {
        None => println!("unanchored: no checkpoint vouches for any of the {last} records yet"),
        Some(through) => {
            println!(
                "anchored: records 1..={through} match {} signed checkpoint(s)",
                anchors.len()
            );
            if through < last {
                println!(
                    "unanchored: records {}..={last} come after the last checkpoint",
                    through + 1
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A public key given as a file or inline.
fn trusted_key(given: &str) -> anyhow::Result<PublicKey> {
    if given.trim_start().starts_with("ed25519:") {
        return given
            .parse()
            .context("--key is not an Ed25519 public key (`ed25519:<base64>`)");
    }
    Ok(PublicKey::from_file(Path::new(given))?)
}

/// Checkpoints from a witness file, or from the copy a handoff store keeps.
fn read_checkpoints(source: &Path) -> anyhow::Result<Vec<checkpoint::Witnessed>> {
    if source.extension().is_some_and(|e| e == "db") {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?;
        let lines = runtime
            .block_on(SqliteStore::read_checkpoints(source))
            .with_context(|| format!("cannot read checkpoints from {}", source.display()))?;
        return lines
            .iter()
            .enumerate()
            .map(|(index, line)| {
                let checkpoint = serde_json::from_str(line).with_context(|| {
                    format!("{} checkpoint {} is malformed", source.display(), index + 1)
                })?;
                Ok(checkpoint::Witnessed {
                    source_name: format!("{}#{}", source.display(), index + 1),
                    checkpoint,
                })
            })
            .collect();
    }
    Ok(checkpoint::read_witness(source)?)
}

fn run_show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let filter = Filter {
        tier: args.tier,
        plugin: args.plugin,
        reason_code: args.reason_code,
        since: args.since,
        until: args.until,
        item: args.item,
    };
    let entries = match &args.store {
        Some(url) => {
            let (runtime, store) = fleet_ledger(url)?;
            let ledger = store.ledger().context("the store keeps no audit chains")?;
            let entries = runtime.block_on(fleet_audit::fleet_entries(ledger))?;
            runtime.block_on(store.close());
            entries
        }
        None => query::read(&expand(&args.paths)?)?,
    };
    let mut out = io::BufWriter::new(io::stdout().lock());
    if args.table {
        writeln!(
            out,
            "{:>6}  {:<24}  {:<10}  {:<12}  {:<20}  {:<28}  detail",
            "seq", "time", "type", "tier", "item", "reason code / event"
        )?;
    }
    for entry in entries.iter().filter(|e| filter.matches(&e.record)) {
        if args.table {
            writeln!(out, "{}", table_row(entry))?;
        } else {
            writeln!(out, "{}", entry.line)?;
        }
    }
    out.flush().context("cannot write records")?;
    Ok(ExitCode::SUCCESS)
}

fn table_row(entry: &Entry) -> String {
    let record = &entry.record;
    let time = record.ts.to_rfc3339_opts(SecondsFormat::Millis, true);
    let (kind, tier, item, code, detail) = match &record.body {
        Body::Decision(d) => {
            let decision = &d.decision;
            let mut detail = decision.verdict.reason.clone();
            if !d.masked.is_empty() {
                detail.push_str(&format!(" [masked: {}]", d.masked.join(", ")));
            }
            (
                "decision",
                decision.tier().to_string(),
                decision.id.clone(),
                decision.reason_code().to_string(),
                detail,
            )
        }
        Body::Lifecycle { event } => (
            "lifecycle",
            String::new(),
            event.item().unwrap_or("").to_string(),
            event.name().to_string(),
            event.to_string(),
        ),
        Body::Handoff { event } => (
            "handoff",
            String::new(),
            event.item.clone(),
            event.kind.clone(),
            format!("{} by {}: {}", event.handoff, event.actor, event.detail),
        ),
        Body::Outage {
            since,
            until,
            reason,
            refused,
        } => (
            "outage",
            String::new(),
            String::new(),
            String::new(),
            format!(
                "appends refused from {} to {} ({refused} refused): {reason}",
                since.to_rfc3339_opts(SecondsFormat::Millis, true),
                until.to_rfc3339_opts(SecondsFormat::Millis, true)
            ),
        ),
        Body::Recovery {
            file, cut_bytes, ..
        } => (
            "recovery",
            String::new(),
            String::new(),
            String::new(),
            format!("cut {cut_bytes} torn bytes from {file}"),
        ),
    };
    format!(
        "{:>6}  {:<24}  {:<10}  {:<12}  {:<20}  {:<28}  {}",
        record.seq,
        time,
        kind,
        tier,
        terminal(&item),
        terminal(&code),
        terminal(&detail)
    )
}
