//! `handoff new NAME [--lang rust|python|js]`: a policy project that builds
//! out of the box, outside this repository: for Rust a crate with the guest
//! profile the reference policies use, for Python and JavaScript a project
//! on their SDKs; each with a manifest, fixtures and native unit tests.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::build::Lang;

#[derive(Debug, clap::Args)]
pub struct NewArgs {
    /// The policy's name: lower-case letters, digits and `-`, starting with
    /// a letter. Decisions and the audit trail call the policy this.
    name: String,
    /// Where to create the crate (a new directory NAME inside it).
    #[arg(long, value_name = "DIR", default_value = ".")]
    dir: PathBuf,
    /// The language of the policy.
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    lang: Lang,
    /// The SDKs to depend on, as a path to a checkout's `sdk` directory
    /// (the Rust crate; `python/` and `js/` inside it). Defaults to
    /// $HANDOFF_SDK, then to the SDK of the checkout this binary was built
    /// from, if it is still there.
    #[arg(long, value_name = "PATH", conflicts_with = "sdk_git")]
    sdk: Option<PathBuf>,
    /// Depend on `handoff-sdk` from this git repository instead of a path
    /// (Rust only).
    #[arg(long, value_name = "URL")]
    sdk_git: Option<String>,
}

/// The manifest is the same in every language: the host reads it, not the
/// policy.
const POLICY_TOML: &str = include_str!("../templates/policy.toml.tmpl");

/// A project's files: where each goes and its template.
type Template = &'static [(&'static str, &'static str)];

const RUST: Template = &[
    (
        "Cargo.toml",
        include_str!("../templates/rust/Cargo.toml.tmpl"),
    ),
    ("src/lib.rs", include_str!("../templates/rust/lib.rs.tmpl")),
    (
        "README.md",
        include_str!("../templates/rust/README.md.tmpl"),
    ),
    (
        ".gitignore",
        include_str!("../templates/rust/gitignore.tmpl"),
    ),
];

const PYTHON: Template = &[
    (
        "pyproject.toml",
        include_str!("../templates/python/pyproject.toml.tmpl"),
    ),
    (
        "policy.py",
        include_str!("../templates/python/policy.py.tmpl"),
    ),
    ("app.py", include_str!("../templates/python/app.py.tmpl")),
    (
        "conftest.py",
        include_str!("../templates/python/conftest.py.tmpl"),
    ),
    (
        "tests/test_policy.py",
        include_str!("../templates/python/test_policy.py.tmpl"),
    ),
    (
        "README.md",
        include_str!("../templates/python/README.md.tmpl"),
    ),
    (
        ".gitignore",
        include_str!("../templates/python/gitignore.tmpl"),
    ),
];

const JS: Template = &[
    (
        "package.json",
        include_str!("../templates/js/package.json.tmpl"),
    ),
    ("policy.js", include_str!("../templates/js/policy.js.tmpl")),
    (
        "component.js",
        include_str!("../templates/js/component.js.tmpl"),
    ),
    (
        "test/policy.test.js",
        include_str!("../templates/js/policy.test.js.tmpl"),
    ),
    ("README.md", include_str!("../templates/js/README.md.tmpl")),
    (".gitignore", include_str!("../templates/js/gitignore.tmpl")),
];

pub fn run(args: NewArgs) -> anyhow::Result<()> {
    check_name(&args.name)?;
    let sdk = match args.lang {
        Lang::Rust => sdk_dependency(&args)?,
        Lang::Python => json_string(&sdk_path(&args, "python", "handoff_policy/__init__.py")?),
        Lang::Js => json_string(&format!("file:{}", sdk_path(&args, "js", "package.json")?)),
    };
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
    let template = match args.lang {
        Lang::Rust => RUST,
        Lang::Python => PYTHON,
        Lang::Js => JS,
    };
    for (file, text) in template.iter().chain(&[("policy.toml", POLICY_TOML)]) {
        let path = root.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, fill(text))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let mut next = String::new();
    let _ = writeln!(
        next,
        "created {}: the policy `{}`",
        root.display(),
        args.name
    );
    let _ = writeln!(next, "  cd {}", root.display());
    let (setup, unit_tests) = match args.lang {
        Lang::Rust => (None, "cargo test         "),
        Lang::Python => (None, "python -m pytest   "),
        Lang::Js => (
            Some("npm install         # the SDK, jco and esbuild"),
            "npm test           ",
        ),
    };
    if let Some(setup) = setup {
        let _ = writeln!(next, "  {setup}");
    }
    let _ = writeln!(next, "  {unit_tests} # native unit tests");
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
    Ok(format!(
        "path = {}",
        toml_string(&sdk_path(args, "", "Cargo.toml")?)
    ))
}

/// The absolute path of the SDK for one language (`sub` inside a
/// checkout's `sdk` directory), checked by a file it must hold.
fn sdk_path(args: &NewArgs, sub: &str, must_hold: &str) -> anyhow::Result<String> {
    if args.sdk_git.is_some() && args.lang != Lang::Rust {
        bail!("--sdk-git is for Rust policies; pass --sdk PATH (a checkout's `sdk` directory)");
    }
    let explicit = args
        .sdk
        .clone()
        .or_else(|| std::env::var_os("HANDOFF_SDK").map(PathBuf::from));
    let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../sdk");
    let root = match explicit {
        Some(path) => path,
        None if built_from.join("Cargo.toml").is_file() => built_from,
        None => bail!(
            "cannot find the Handoff SDK: pass --sdk PATH (a checkout's `sdk` directory), set \
             HANDOFF_SDK, or, for Rust, pass --sdk-git URL"
        ),
    };
    let path = root.join(sub);
    let path = path
        .canonicalize()
        .with_context(|| format!("--sdk {}", path.display()))?;
    if !path.join(must_hold).is_file() {
        bail!(
            "--sdk {}: no {must_hold} there; point it at the `sdk` directory of a checkout",
            root.display()
        );
    }
    path.to_str()
        .map(str::to_string)
        .context("the SDK's path is not UTF-8, which a project file cannot hold")
}

/// A JSON string: also a valid TOML basic string and Python literal.
fn json_string(text: &str) -> String {
    serde_json::Value::String(text.to_string()).to_string()
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
