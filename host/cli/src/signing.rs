//! `handoff keygen`, `sign`, `verify` and `lock`: the author's, the
//! reviewer's and the compliance team's side of trusted policies. Signing
//! and verifying read the unit's files the way a host does (`NAME.wasm`,
//! and `NAME.toml` and `NAME.sig` beside it), so what `verify` says is what
//! a host with the same `--trust` will do.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::Utc;
use handoff_policy::{LoadLimits, read_regular, read_sources};
use handoff_trust::{
    Examination, LockFile, MAX_SIGNATURE_FILE_BYTES, Role, Signature, SignatureFile, SignerKey,
    Trust, UnitDigests,
};

use super::output::terminal;

/// `handoff keygen`.
#[derive(Debug, clap::Args)]
pub struct KeygenArgs {
    /// Where to write the key: NAME.key (the private key, owner-only) and
    /// NAME.pub (the public key, for the trust store). Neither may exist.
    #[arg(value_name = "NAME")]
    name: PathBuf,
}

/// `handoff sign`.
#[derive(Debug, clap::Args)]
pub struct SignArgs {
    /// The component to sign. Its manifest (`NAME.toml` beside it, if any)
    /// is covered too; the signature is added to `NAME.sig` beside it.
    #[arg(value_name = "NAME.wasm")]
    component: PathBuf,
    /// The private key to sign with, as `handoff keygen` wrote it.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    /// What the signature vouches for: `author` (wrote or built it) or
    /// `reviewer` (reviewed it and approves it to serve).
    #[arg(long, default_value = "author", value_parser = parse_role)]
    role: Role,
}

/// `handoff verify`.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// A component (`NAME.wasm`) or a policy directory: every unit in it.
    #[arg(value_name = "PATH")]
    path: PathBuf,
    /// Print the findings as JSON.
    #[arg(long)]
    json: bool,
}

/// `handoff lock`.
#[derive(Debug, clap::Args)]
pub struct LockArgs {
    /// The policy directory whose units are pinned.
    #[arg(value_name = "DIR")]
    dir: PathBuf,
    /// Where to write the lock file. [default: DIR.lock, beside the
    /// directory, where a change to the directory cannot reach it]
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

fn parse_role(text: &str) -> Result<Role, String> {
    text.parse()
}

/// Writes a new signing key and says how to trust it.
pub fn keygen(args: KeygenArgs) -> anyhow::Result<ExitCode> {
    let (key, private, public) = SignerKey::generate(&args.name)?;
    let holder = args
        .name
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "signer".into());
    println!(
        "private key: {} (owner-only; never share it)",
        private.display()
    );
    println!("public key:  {}", public.display());
    println!("key id:      {}", key.public().id());
    println!();
    println!("To trust it, add to the host's trust configuration (--trust FILE):");
    println!();
    println!("[keys.{}]", toml_key(&holder));
    println!("public-key = \"{}\"", key.public());
    println!("roles = [\"author\"]    # or [\"reviewer\"], or both");
    Ok(ExitCode::SUCCESS)
}

/// A TOML bare key, quoted when it must be.
fn toml_key(name: &str) -> String {
    if !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        name.to_string()
    } else {
        format!("{name:?}")
    }
}

/// Adds a signature to the unit's `NAME.sig`, replacing an earlier one by
/// the same key in the same role.
pub fn sign(limits: &LoadLimits, args: SignArgs) -> anyhow::Result<ExitCode> {
    let unit = UnitFiles::read(&args.component, limits)?;
    let key = SignerKey::from_file(&args.key)?;
    let mut file = match &unit.signatures {
        Some(text) => SignatureFile::parse(text)
            .with_context(|| format!("{} cannot be added to", unit.signature_file.display()))?,
        None => SignatureFile::default(),
    };
    file.add(Signature::sign(&key, &unit.digests, args.role, Utc::now()));
    write_atomically(&unit.signature_file, file.to_text().as_bytes())?;
    println!(
        "signed {} as {} with key {}: component {}, manifest {}",
        terminal(&unit.name),
        args.role,
        key.public().id(),
        unit.digests.component,
        unit.digests.manifest_text()
    );
    println!("signatures in {}", unit.signature_file.display());
    Ok(ExitCode::SUCCESS)
}

/// Says, for each unit, whether the activation policy and the lock admit
/// it, and why each signature counts or not. Exits 1 when any unit would be
/// refused.
pub fn verify(trust: &Trust, limits: &LoadLimits, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    // A unit a host could not even read would be refused too.
    let mut all_met = true;
    let units = if args.path.is_dir() {
        let (sources, rejected) = read_sources(&args.path, limits)?;
        for rejection in &rejected {
            eprintln!("handoff: cannot read {}", terminal(&rejection.to_string()));
            all_met = false;
        }
        sources
            .into_iter()
            .map(|s| {
                let digests = UnitDigests::of(&s.wasm, s.manifest.as_deref());
                (s.name, digests, s.signatures)
            })
            .collect::<Vec<_>>()
    } else {
        let unit = UnitFiles::read(&args.path, limits)?;
        vec![(unit.name, unit.digests, unit.signatures)]
    };
    anyhow::ensure!(
        !units.is_empty() || !all_met,
        "no policy to verify in {}",
        args.path.display()
    );
    let mut report = serde_json::Map::new();
    for (name, digests, signatures) in &units {
        let examination = trust.examine(name, digests, signatures.as_deref(), Utc::now());
        all_met &= examination.met;
        if args.json {
            report.insert(name.clone(), serde_json::to_value(&examination)?);
        } else {
            print!("{}", describe(name, digests, &examination));
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "activation": trust.activation(),
                "units": report,
            }))?
        );
    }
    Ok(if all_met {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Writes the lock file pinning every unit of the directory, refusing (and
/// writing nothing) when any unit would not be admitted under `trust`.
pub fn lock(trust: &Trust, limits: &LoadLimits, args: LockArgs) -> anyhow::Result<ExitCode> {
    let (sources, rejected) = read_sources(&args.dir, limits)?;
    if !rejected.is_empty() {
        anyhow::bail!(
            "cannot lock {}: {}",
            args.dir.display(),
            terminal(&handoff_policy::describe_all(&rejected))
        );
    }
    anyhow::ensure!(
        !sources.is_empty(),
        "{} holds no policy to lock",
        args.dir.display()
    );
    // The lock being rewritten is not consulted: relocking a changed
    // directory is the point. The signatures still are.
    let signatures_only = Trust::new(handoff_trust::TrustConfig {
        lock: None,
        ..trust.config().clone()
    })?;
    let mut units = Vec::with_capacity(sources.len());
    for source in &sources {
        let digests = UnitDigests::of(&source.wasm, source.manifest.as_deref());
        let examination = signatures_only.examine(
            &source.name,
            &digests,
            source.signatures.as_deref(),
            Utc::now(),
        );
        if let Some(reason) = examination.unmet {
            anyhow::bail!(
                "{} would not be admitted, so it is not locked (nothing written): {}",
                terminal(&source.name),
                terminal(&reason)
            );
        }
        units.push((source.name.clone(), digests));
    }
    let out = args.out.unwrap_or_else(|| {
        let mut name = args.dir.as_os_str().to_owned();
        name.push(".lock");
        PathBuf::from(name)
    });
    let lock = LockFile::of(units);
    write_atomically(&out, lock.to_text().as_bytes())?;
    for (name, unit) in &lock.units {
        println!(
            "locked {} {} (manifest {})",
            terminal(name),
            unit.component,
            unit.manifest.as_deref().unwrap_or("none")
        );
    }
    println!(
        "wrote {}; name it as `lock` in the trust configuration",
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// One unit's trust findings, as `verify` and `inspect` print them.
pub fn describe(name: &str, digests: &UnitDigests, examination: &Examination) -> String {
    use std::fmt::Write as _;
    let mut text = String::new();
    let verdict = if examination.met {
        "admitted"
    } else {
        "REFUSED"
    };
    let _ = writeln!(
        text,
        "{}: {verdict} under activation `{}`",
        terminal(name),
        examination.activation
    );
    let _ = writeln!(text, "  component  {}", digests.component);
    let _ = writeln!(text, "  manifest   {}", digests.manifest_text());
    match examination.pinned {
        Some(true) => {
            let _ = writeln!(text, "  lock       pinned");
        }
        Some(false) => {
            let _ = writeln!(text, "  lock       NOT pinned");
        }
        None => {}
    }
    if let Some(problem) = &examination.signature_file {
        let _ = writeln!(text, "  signatures unreadable: {}", terminal(problem));
    } else if examination.signatures.is_empty() {
        let _ = writeln!(text, "  signatures none");
    }
    for check in &examination.signatures {
        let holder = check.holder.as_deref().unwrap_or("unknown key");
        let state = if check.counts {
            "counts"
        } else {
            "does not count"
        };
        let _ = writeln!(
            text,
            "  {:<10} key {} ({}), signed {}: {state}",
            check.role,
            terminal(&check.key),
            terminal(holder),
            terminal(&check.signed_at)
        );
        if let Some(problem) = &check.problem {
            let _ = writeln!(text, "             {}", terminal(problem));
        }
    }
    if let Some(unmet) = &examination.unmet {
        let _ = writeln!(text, "  refused:   {}", terminal(unmet));
    }
    text
}

/// A unit's files, found from its component's path.
pub struct UnitFiles {
    /// The unit's name: the component's file name without `.wasm`.
    pub name: String,
    /// Its digests.
    pub digests: UnitDigests,
    /// Its signature file's text, if any.
    pub signatures: Option<String>,
    /// Where its signature file is (or would be).
    pub signature_file: PathBuf,
}

impl UnitFiles {
    /// Reads `component` and the manifest and signature file beside it,
    /// each within its limit.
    pub fn read(component: &Path, limits: &LoadLimits) -> anyhow::Result<UnitFiles> {
        let name = component
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".wasm"))
            .filter(|n| !n.is_empty())
            .with_context(|| format!("{} is not a NAME.wasm component", component.display()))?
            .to_string();
        let wasm = read_regular(component, limits.max_component_bytes)
            .with_context(|| format!("cannot read {}", component.display()))?;
        let beside = |extension: &str| component.with_file_name(format!("{name}.{extension}"));
        let manifest = read_text(&beside("toml"), limits.max_manifest_bytes)?;
        let signature_file = beside("sig");
        let signatures = read_text(&signature_file, MAX_SIGNATURE_FILE_BYTES)?;
        Ok(UnitFiles {
            digests: UnitDigests::of(&wasm, manifest.as_deref()),
            name,
            signatures,
            signature_file,
        })
    }
}

/// A text file within `limit` bytes, or `None` when there is none.
fn read_text(file: &Path, limit: usize) -> anyhow::Result<Option<String>> {
    match read_regular(file, limit) {
        Ok(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", file.display())),
        Err(handoff_policy::FileError::NotFound) => Ok(None),
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", file.display())),
    }
}

/// Writes `file` through a hidden temporary renamed into place, so that a
/// host watching the directory never reads half of it.
fn write_atomically(file: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = file
        .file_name()
        .with_context(|| format!("{} is not a file name", file.display()))?;
    let staging = dir.join(format!(".{}.writing", name.to_string_lossy()));
    std::fs::write(&staging, bytes)
        .and_then(|()| std::fs::File::open(&staging)?.sync_all())
        .and_then(|()| std::fs::rename(&staging, file))
        .with_context(|| format!("cannot write {}", file.display()))
}
