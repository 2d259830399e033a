//! Builds WebAssembly guest components from source, for build scripts.
//!
//! Handoff never commits compiled `.wasm`: the host embeds its reference
//! policies and the integration tests use hostile plugins, and both are built
//! here from their crates, in the style of wasmtime's test-programs artifacts.
//! A nested `cargo build --target wasm32-wasip2` produces components directly
//! (the target links with `wasm-component-ld`), into a target directory of its
//! own so that it never contends with the outer build's lock.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The target every guest is built for.
pub const TARGET: &str = "wasm32-wasip2";

/// The cargo profile guests are built with (see the workspace `Cargo.toml`).
pub const PROFILE: &str = "guest";

/// One guest crate to build.
pub struct Guest<'a> {
    /// The cargo package name, for example `compliance-limits`.
    pub package: &'a str,
    /// The crate's directory relative to the workspace root, watched for changes.
    pub dir: &'a str,
}

/// A built component.
pub struct Artifact {
    /// The cargo package name.
    pub package: String,
    /// Where the component was copied into the build script's `OUT_DIR`.
    pub path: PathBuf,
}

/// Builds `guests` for [`TARGET`] and copies each component into `OUT_DIR`
/// as `<package>.wasm`.
///
/// Panics with a message naming the fix when the target is not installed or
/// the build fails: a build script has no better way to stop the build.
pub fn build(guests: &[Guest<'_>]) -> Vec<Artifact> {
    let manifest_dir = PathBuf::from(env_var("CARGO_MANIFEST_DIR"));
    let workspace = workspace_root(&manifest_dir);
    let out_dir = PathBuf::from(env_var("OUT_DIR"));

    for watched in ["wit", "sdk", "Cargo.lock", "Cargo.toml"] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }
    for guest in guests {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(guest.dir).display()
        );
    }

    ensure_target_installed();

    let target_dir = guest_target_dir(&workspace);
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut command = Command::new(cargo);
    command
        .current_dir(&workspace)
        .arg("build")
        .arg("--target")
        .arg(TARGET)
        .arg("--profile")
        .arg(PROFILE)
        .arg("--target-dir")
        .arg(&target_dir);
    for guest in guests {
        command.arg("--package").arg(guest.package);
    }
    // The outer build's flags are for the host; clippy's wrapper would lint the
    // guests a second time and print its findings into the build output.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "RUSTC_WORKSPACE_WRAPPER",
        "CLIPPY_ARGS",
        "CLIPPY_CONF_DIR",
        "__CARGO_FIX_PLZ",
    ] {
        command.env_remove(var);
    }

    let status = command
        .status()
        .unwrap_or_else(|e| panic!("could not run cargo to build the guest components: {e}"));
    if !status.success() {
        panic!(
            "building the guest components for {TARGET} failed ({status}); \
             the compiler's messages are above"
        );
    }

    let built = target_dir.join(TARGET).join(PROFILE);
    guests
        .iter()
        .map(|guest| {
            let file = format!("{}.wasm", guest.package.replace('-', "_"));
            let from = built.join(&file);
            let to = out_dir.join(format!("{}.wasm", guest.package));
            std::fs::copy(&from, &to).unwrap_or_else(|e| {
                panic!("could not copy {} to {}: {e}", from.display(), to.display())
            });
            Artifact {
                package: guest.package.to_string(),
                path: to,
            }
        })
        .collect()
}

/// Stops the build with the one command that fixes a missing target.
fn ensure_target_installed() {
    let rustc = env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let sysroot = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    let installed = sysroot
        .map(|root| root.join("lib/rustlib").join(TARGET).join("lib").is_dir())
        .unwrap_or(false);
    if !installed {
        panic!(
            "\n\nThe {TARGET} Rust target is not installed, and Handoff builds its policy \
             components with it.\nInstall it with:\n\n    rustup target add {TARGET}\n\n"
        );
    }
}

/// The workspace root: the nearest ancestor whose `Cargo.toml` declares `[workspace]`.
fn workspace_root(start: &Path) -> PathBuf {
    start
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .map(|text| text.contains("[workspace]"))
                .unwrap_or(false)
        })
        .unwrap_or(start)
        .to_path_buf()
}

/// Guests share one target directory beside the workspace's own, so the host's
/// and the tests' build scripts, and debug and release builds, reuse each
/// other's work instead of compiling the guests once per configuration.
fn guest_target_dir(workspace: &Path) -> PathBuf {
    let base = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"));
    base.join("wasm-guests")
}

fn env_var(name: &str) -> String {
    env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: guest-build runs in build scripts"))
}
