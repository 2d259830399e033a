//! `handoff new NAME`: a policy crate that builds out of the box, outside
//! this repository, with the guest profile the reference policies use.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The policy's name: lower-case letters, digits and `-`, starting with
    /// a letter. Decisions and the audit trail call the policy this.
    name: String,
    /// Where to create the crate (a new directory NAME inside it).
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// The language of the policy. Only Rust has an SDK here today.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    lang: Lang,
    /// The `handoff-sdk` crate to depend on, as a path to a checkout's
    /// `sdk` directory. Defaults to $HANDOFF_SDK, then to the SDK of the
    /// checkout this binary was built from, if it is still there.
    #[arg(long, value_name = "PATH", conflicts_with = "sdk_git")]
    sdk: Option<PathBuf>,
    /// Depend on `handoff-sdk` from this git repository instead of a path.
    #[arg(long, value_name = "URL")]
    sdk_git: Option<String>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Lang {
    Rust,
}

const CARGO_TOML: &str = include_str!("../templates/rust/Cargo.toml.tmpl");
const LIB_RS: &str = include_str!("../templates/rust/lib.rs.tmpl");
const POLICY_TOML: &str = include_str!("../templates/rust/policy.toml.tmpl");
const README_MD: &str = include_str!("../templates/rust/README.md.tmpl");
const GITIGNORE: &str = include_str!("../templates/rust/gitignore.tmpl");

pub fn run(args: NewArgs) -> anyhow::Result<()> {
    let Lang::Rust = args.lang;
    check_name(&args.name)?;
    let sdk = sdk_dependency(&args)?;
    let root = args.dir.join(&args.name);
    if root.exists() {
        bail!(
            "{} already exists; choose another name or directory",
            root.display()
        );
    }
    let fill = |template: &str| {
        template
            .replace("{{name}}", &args.name)
            .replace("{{crate}}", &args.name.replace('-', "_"))
            .replace("{{type}}", &type_name(&args.name))
            .replace("{{sdk}}", &sdk)
    };
    let files = [
        ("Cargo.toml", fill(CARGO_TOML)),
        ("src/lib.rs", fill(LIB_RS)),
        ("policy.toml", fill(POLICY_TOML)),
        ("README.md", fill(README_MD)),
        (".gitignore", fill(GITIGNORE)),
    ];
    std::fs::create_dir_all(root.join("src"))
        .with_context(|| format!("cannot create {}", root.display()))?;
    for (file, text) in files {
        let path = root.join(file);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut next = String::new();
    let _ = writeln!(
        next,
        "created {}: the policy `{}`",
        root.display(),
        args.name
    );
    let _ = writeln!(next, "  cd {}", root.display());
    let _ = writeln!(next, "  cargo test          # native unit tests");
    let _ = writeln!(
        next,
        "  handoff build       # dist/{0}.wasm and dist/{0}.toml",
        args.name
    );
    let _ = writeln!(next, "  handoff test dist   # every fixture, PASS or FAIL");
    print!("{next}");
    Ok(())
}

/// The name rule the host's codes follow, kept narrower so that the name
/// is also a valid crate and file name everywhere.
fn check_name(name: &str) -> anyhow::Result<()> {
    let valid = name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-')
        && !name.contains("--");
    if !valid {
        bail!(
            "policy name {name:?}: use lower-case letters, digits and single `-`, starting with \
             a letter, at most 64 characters (for example `pii-guard`)"
        );
    }
    Ok(())
}

/// `pii-guard` → `PiiGuard`.
fn type_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// The dependency line's inside, as TOML: `path = "..."` or `git = "..."`.
fn sdk_dependency(args: &NewArgs) -> anyhow::Result<String> {
    if let Some(url) = &args.sdk_git {
        return Ok(format!("git = {}", toml_string(url)));
    }
    let explicit = args
        .sdk
        .clone()
        .or_else(|| std::env::var_os("HANDOFF_SDK").map(PathBuf::from));
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk");
    let path = match explicit {
        Some(path) => path,
        None if built_from.join("Cargo.toml").is_file() => built_from,
        None => bail!(
            "cannot find handoff-sdk: pass --sdk PATH (a checkout's `sdk` directory), set \
             HANDOFF_SDK, or pass --sdk-git URL"
        ),
    };
    let path = path
        .canonicalize()
        .with_context(|| format!("--sdk {}", path.display()))?;
    if !path.join("Cargo.toml").is_file() {
        bail!(
            "--sdk {}: no Cargo.toml there; point it at the `sdk` directory of a checkout",
            path.display()
        );
    }
    let path = path
        .to_str()
        .context("the SDK's path is not UTF-8, which Cargo.toml cannot hold")?;
    Ok(format!("path = {}", toml_string(path)))
}

fn toml_string(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_checked_and_typed() {
        assert!(check_name("pii-guard").is_ok());
        assert!(check_name("g2").is_ok());
        for bad in [
            "",
            "Pii",
            "2fa",
            "pii_guard",
            "pii-",
            "a--b",
            "a b",
            &"a".repeat(65),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(type_name("pii-guard"), "PiiGuard");
        assert_eq!(type_name("g2"), "G2");
    }

    #[test]
    fn toml_strings_round_trip_whatever_they_hold() {
        for text in [r#"a"b\c"#, "it's", "/tmp/x y", "'\"'\n"] {
            let line = format!("path = {}", toml_string(text));
            let parsed: toml::Table = toml::from_str(&line).expect("valid TOML");
            assert_eq!(parsed["path"].as_str(), Some(text), "{line}");
        }
    }
}
