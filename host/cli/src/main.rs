//! `handoff`: decide, for every unit of AI-agent work, whether the agent may
//! proceed or a human must step in.
//!
//! The command line over the library crates: argument parsing, and for each
//! command the wiring of a host (`handoff_pipeline::Host`) and what it
//! prints.

mod audit;
mod bench_cmd;
mod build;
mod eval;
mod host_args;
mod inspect;
mod new_policy;
mod output;
mod pilot;
mod publish;
mod queue;
mod remote;
mod replay;
mod report;
mod report_text;
mod serve;
mod signing;
mod store_arg;
mod test_cmd;
mod watch;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use handoff_pipeline::reference;
use handoff_policy::{
    Compiler, EngineOptions, LoadLimits, POOL_INSTANCES, PolicySet, Runtime, compile_request,
    parse_cpu, parse_meters,
};
use handoff_trust::Trust;

/// Handoff runs sandboxed WebAssembly routing policies that decide, for every
/// unit of AI-agent work, whether the agent proceeds (`none`), retries with
/// guidance (`self-correct`), or hands the work to an `operator` or an
/// `executive`.
///
/// Logging goes to stderr; set HANDOFF_LOG (for example `HANDOFF_LOG=debug`)
/// to see more.
#[derive(Debug, Parser)]
#[command(name = "handoff", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    load: LoadArgs,
}

/// What loading a policy may cost, for every command that loads one.
#[derive(Debug, clap::Args)]
struct LoadArgs {
    /// The largest policy component read or accepted, in bytes.
    #[arg(long, global = true, value_name = "BYTES", default_value_t = LoadLimits::default().max_component_bytes)]
    max_component_bytes: usize,
    /// The largest policy manifest read, in bytes.
    #[arg(long, global = true, value_name = "BYTES", default_value_t = LoadLimits::default().max_manifest_bytes)]
    max_manifest_bytes: usize,
    /// The longest one component may take to compile, in seconds. Compiles
    /// run in a child process, stopped at this budget.
    #[arg(long, global = true, value_name = "SECS", default_value_t = LoadLimits::default().compile_timeout.as_secs())]
    compile_timeout_secs: u64,
    /// The most memory a compile may use, in MiB.
    #[arg(long, global = true, value_name = "MIB", default_value_t = LoadLimits::default().compile_memory_bytes >> 20)]
    compile_memory_mib: u64,
    /// The most the artifact cache may hold, in MiB; the least recently used
    /// compiled policies are evicted past it.
    #[arg(long, global = true, value_name = "MIB", default_value_t = LoadLimits::default().cache_quota_bytes >> 20)]
    cache_quota_mib: u64,
    /// Instance slots in the WebAssembly pool. Each reserves address space
    /// (not memory) for its largest memory; lower it to run the host under
    /// tools that cannot map the default's 2 TiB, such as valgrind.
    #[arg(long, global = true, value_name = "N", default_value_t = POOL_INSTANCES,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pool_instances: u32,
    /// The trust configuration: the activation policy (`off`, `signed`,
    /// `two-person`), the keys trusted to sign policies and in which role,
    /// and the lock file, if versions are pinned. Every policy loaded, by
    /// any command, must meet it. Without it, activation is `off`.
    #[arg(long, global = true, value_name = "FILE", env = "HANDOFF_TRUST")]
    trust: Option<PathBuf>,
}

impl LoadArgs {
    /// The trust configuration, read now: a host never starts under a
    /// policy other than the one written.
    fn trust(&self) -> anyhow::Result<Trust> {
        match &self.trust {
            Some(file) => {
                Trust::from_file(file).with_context(|| format!("--trust {}", file.display()))
            }
            None => Ok(Trust::off()),
        }
    }

    fn limits(&self) -> LoadLimits {
        LoadLimits {
            max_component_bytes: self.max_component_bytes,
            max_manifest_bytes: self.max_manifest_bytes,
            compile_timeout: std::time::Duration::from_secs(self.compile_timeout_secs),
            compile_memory_bytes: self.compile_memory_mib << 20,
            cache_quota_bytes: self.cache_quota_mib << 20,
        }
    }
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the host: an HTTP API for agents (evaluate, fetch outcomes),
    /// operators (the handoff queue) and compliance (policies, audit,
    /// report, replay), with hot reload, the audit log and SLA clocks.
    ///
    /// Starts on the embedded reference policies (copied into the data
    /// directory so they can be edited live) and listens on
    /// 127.0.0.1:8080. Stop it with Ctrl-C or SIGTERM: requests in flight
    /// finish, the audit log is flushed and the store closed.
    Serve(serve::ServeArgs),
    /// Evaluate work items (JSON Lines) and print one decision per line.
    ///
    /// Decisions go to stdout as JSON Lines, a per-tier summary to stderr. A
    /// malformed line is reported with its line number and skipped; the exit
    /// code is 1 if any line failed, 2 if nothing could be evaluated.
    Eval(eval::EvalArgs),
    /// Print a component's digest, world, imports (with what the sandbox
    /// grants, stubs or refuses) and exports.
    ///
    /// Exits 1 when the component would be rejected at load.
    Inspect(inspect::InspectArgs),
    /// Keep running: evaluate items as they arrive and hot-reload the
    /// policy directory, printing every reload and rejected version.
    ///
    /// A changed component or manifest is validated (compiled, capability
    /// checked, trial-run, fixtures passed) before it replaces the serving
    /// version; a version that fails keeps the old one serving. Decisions go
    /// to stdout as JSON Lines, reloads to stderr. Stop it with Ctrl-C.
    Watch(watch::WatchArgs),
    /// Verify or read the audit trail.
    Audit(audit::AuditArgs),
    /// Re-evaluate the items recorded in an audit log against a candidate
    /// policy set, and report every decision that would change.
    ///
    /// Reads the log and writes nothing to it. Prints a matrix of recorded
    /// tier against candidate tier and each changed item with both reasons.
    Replay(replay::ReplayArgs),
    /// Compare every shadow version with what enforced, on the live
    /// decisions it ran beside (from the audit log): the tier-transition
    /// matrix, each item whose tier would change with both reasons, the
    /// human workload and SLA load per day by tier and role, and the
    /// shadow's faults and latency. `--fail-on` makes it a promotion gate.
    Pilot(pilot::PilotArgs),
    /// Promote a shadow version (`NAME@LABEL`) to enforce, on a running
    /// server, in one generation; the replaced version runs on in shadow
    /// under that name, so the same command again rolls back. The token is
    /// read from $HANDOFF_TOKEN.
    Promote(remote::PromoteArgs),
    /// Threshold calibration on a running server: propose the threshold the
    /// evidence supports, and approve it as a second person.
    #[command(subcommand)]
    Calibrate(remote::CalibrateCommand),
    /// Publish a policy directory to a fleet: validated here (compiled,
    /// capability checked, trial-run, fixtures passed; all or nothing) and
    /// stored in the shared PostgreSQL store as the next generation, which
    /// every `handoff serve` node on that store validates again and swaps
    /// in whole, or refuses and keeps serving what it served (see
    /// `GET /v1/fleet`).
    Publish(publish::PublishArgs),
    /// Work the human handoff queue: list, claim, ack, resolve, release,
    /// show. Works on the same store as a running host.
    Queue(queue::QueueArgs),
    /// The feedback report, measured on pieces of work: autonomous share,
    /// first-contact resolution, time to value, human handling time, SLA
    /// compliance and cost avoided, per policy, reason code and trigger
    /// kind, and a threshold suggestion per probabilistic trigger.
    Report(report::ReportArgs),
    /// Run every plugin's fixtures and report each case (PASS, FAIL), with
    /// the triggers no fixture exercises.
    ///
    /// Exits 1 if any case fails or any plugin cannot load, whatever else
    /// passes; 2 if nothing was found to test.
    Test(test_cmd::TestArgs),
    /// Create a policy crate NAME: the policy, its manifest with fixtures,
    /// native unit tests and build instructions, built with the same guest
    /// profile as the reference policies. It builds outside this repository.
    New(new_policy::NewArgs),
    /// Build a policy crate into dist/NAME.wasm and dist/NAME.toml, named
    /// after the policy's own name (not cargo's file name), ready to copy
    /// into a policy directory.
    Build(build::BuildArgs),
    /// Create an Ed25519 key for signing policies: NAME.key (owner-only)
    /// and NAME.pub, and print the entry that trusts it.
    Keygen(signing::KeygenArgs),
    /// Sign a policy (its component and its manifest together) as its
    /// author or as a reviewer; the signature goes into NAME.sig beside it.
    /// Changing either file afterwards voids the signature.
    Sign(signing::SignArgs),
    /// Check a policy's signatures, or a directory's, against the trust
    /// configuration (`--trust`): which count, which do not and why, and
    /// whether the activation policy and the lock admit it. Exits 1 if any
    /// unit would be refused.
    Verify(signing::VerifyArgs),
    /// Pin a policy directory: write a lock file of every unit's exact
    /// component and manifest digests. With a lock in the trust
    /// configuration, nothing else serves. Refuses (writing nothing) when
    /// a unit does not meet the activation policy.
    Lock(signing::LockArgs),
    /// Measure each plugin per evaluation: wall time, fuel and peak memory
    /// percentiles, on the given items or the plugins' own fixtures.
    Bench(bench_cmd::BenchArgs),
    /// Compile one component read from stdin and write its artifact to
    /// stdout: the child process a host compiles in, under its compile
    /// budget. Not for people.
    #[command(name = "__compile", hide = true)]
    Compile {
        /// The meters the host's engine has compiled in.
        #[arg(allow_hyphen_values = true)]
        meters: String,
        /// The CPU features the host's engine compiles for, when not all.
        #[arg(allow_hyphen_values = true)]
        cpu: Option<String>,
    },
}

/// Where the policies come from, shared by every command that evaluates.
#[derive(Debug, clap::Args)]
struct PolicyArgs {
    /// Directory of policy components (`NAME.wasm`) and their manifests
    /// (`NAME.toml`). Without it, the reference policies built into this
    /// binary are used.
    #[arg(long, value_name = "DIR")]
    policies: Option<PathBuf>,
    /// Keep compiled policies in DIR, so the next run skips compiling them
    /// (a Python component takes about ten seconds). Defaults to
    /// $HANDOFF_CACHE, else $XDG_CACHE_HOME/handoff, else ~/.cache/handoff.
    #[arg(long, value_name = "DIR", conflicts_with = "no_cache")]
    cache: Option<PathBuf>,
    /// Compile every policy, using no artifact cache.
    #[arg(long)]
    no_cache: bool,
}

impl PolicyArgs {
    /// Loads the policy set, failing when no plugin could load: evaluating
    /// with none would wave every item through.
    fn load(&self, runtime: &Runtime) -> anyhow::Result<PolicySet> {
        let runtime = self.with_cache(runtime);
        let set = match &self.policies {
            Some(dir) => PolicySet::load_dir(&runtime, dir, 1)?,
            None => reference::set(&runtime),
        };
        for rejection in set.rejected() {
            eprintln!(
                "handoff: rejected {}",
                output::terminal(&rejection.to_string())
            );
        }
        if set.plugins().is_empty() {
            let source = self
                .policies
                .as_ref()
                .map_or("the embedded set".to_string(), |d| d.display().to_string());
            anyhow::bail!(
                "no enabled policy loaded from {source} ({} rejected, {} disabled)",
                set.rejected().len(),
                set.disabled().len()
            );
        }
        Ok(set)
    }

    /// `runtime` with the artifact cache, when there is one to use. A cache
    /// that cannot be opened costs a compile, not the run.
    fn with_cache(&self, runtime: &Runtime) -> Runtime {
        let dir = if self.no_cache {
            None
        } else {
            self.cache.clone().or_else(default_cache_dir)
        };
        let Some(dir) = dir else {
            return runtime.clone();
        };
        match runtime.clone().with_cache(&dir) {
            Ok(cached) => cached,
            Err(e) => {
                tracing::warn!(cache = %dir.display(), error = %e, "artifact cache unusable; compiling");
                runtime.clone()
            }
        }
    }
}

/// The fleet node a command other than `serve` acts as, on a shared store:
/// `HANDOFF_NODE`, or this machine's name. Its changes (a claim made with
/// `handoff queue`, say) are chained in that node's audit chain.
fn node_name() -> String {
    std::env::var("HANDOFF_NODE")
        .ok()
        .filter(|name| !name.trim().is_empty())
        .unwrap_or_else(host_name)
}

/// This machine's name, for naming a node or a publisher by default.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Where commands keep compiled policies by default.
fn default_cache_dir() -> Option<PathBuf> {
    let var = |name: &str| {
        std::env::var_os(name)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    var("HANDOFF_CACHE")
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("handoff")))
        .or_else(|| var("HOME").map(|d| d.join(".cache/handoff")))
}

fn main() -> ExitCode {
    let args = Cli::parse();
    init_tracing();
    match run(args) {
        Ok(code) => code,
        Err(error) => {
            eprintln!(
                "handoff: error: {}",
                output::terminal(&format!("{error:#}"))
            );
            ExitCode::from(2)
        }
    }
}

/// Sends `tracing` output to stderr, filtered by `HANDOFF_LOG`.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HANDOFF_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
}

/// Runs the parsed command. Only commands that evaluate start the
/// WebAssembly runtime; reading the audit trail or the queue needs none.
fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let limits = cli.load.limits();
    let pool_instances = cli.load.pool_instances;
    let trust = || cli.load.trust();
    let runtime = || -> anyhow::Result<Runtime> {
        let program =
            std::env::current_exe().context("cannot find this program to compile policies with")?;
        let options = EngineOptions {
            pool_instances,
            ..EngineOptions::default()
        };
        Ok(Runtime::with_options(options)
            .map_err(anyhow::Error::from)
            .context("cannot start the WebAssembly runtime")?
            .with_limits(limits)
            .with_trust(trust()?)
            .with_compiler(Compiler::Subprocess {
                program,
                args: vec!["__compile".into()],
            }))
    };
    match cli.command {
        Command::Eval(args) => eval::run(&runtime()?, args),
        Command::Inspect(args) => inspect::run(&runtime()?, args),
        Command::Serve(args) => serve::run(&runtime()?, args),
        Command::Watch(args) => watch::run(&runtime()?, args),
        Command::Replay(args) => replay::run(&runtime()?, args),
        Command::Pilot(args) => pilot::run(args),
        Command::Promote(args) => remote::promote(args),
        Command::Calibrate(command) => remote::calibrate(command),
        Command::Audit(args) => audit::run(args),
        Command::Publish(args) => publish::run(&runtime()?, args),
        Command::Queue(args) => queue::run_queue(args),
        Command::Report(args) => report::run(args),
        Command::Test(args) => test_cmd::run(&runtime()?, args),
        Command::New(args) => new_policy::run(args).map(|()| ExitCode::SUCCESS),
        Command::Bench(args) => bench_cmd::run(&runtime()?, args),
        Command::Keygen(args) => signing::keygen(args),
        Command::Sign(args) => signing::sign(&limits, args),
        Command::Verify(args) => signing::verify(&trust()?, &limits, args),
        Command::Lock(args) => signing::lock(&trust()?, &limits, args),
        Command::Build(args) => build::run(&runtime()?, args).map(|()| ExitCode::SUCCESS),
        Command::Compile { meters, cpu } => {
            let meters =
                parse_meters(&meters).with_context(|| format!("unknown meters {meters:?}"))?;
            let cpu = parse_cpu(cpu.as_deref())
                .with_context(|| format!("unknown CPU features {cpu:?}"))?;
            match compile_request(meters, cpu, limits.max_component_bytes) {
                Ok(()) => Ok(ExitCode::SUCCESS),
                Err(message) => {
                    eprintln!("{message}");
                    Ok(ExitCode::from(1))
                }
            }
        }
    }
}
