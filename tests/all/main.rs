//! Handoff's integration tests: one test binary, one module per area, in
//! the style of wasmtime's `tests/all`. Each area drives real parts: real
//! components built from source, real files and watchers, real SQLite and
//! PostgreSQL stores, and the real `handoff` binary on a loopback port.

mod audit;
mod authoring;
mod common;
mod dashboard;
mod dispatch;
mod eval_cli;
mod fleet;
mod guest_allocation;
mod hardening;
mod hot_reload;
mod human_audit;
mod languages;
mod pilot;
mod policy_loading;
mod policy_names;
mod reference_policies;
mod report;
mod sandbox;
mod sandbox_memory;
mod serve;
mod serve_limits;
mod serve_trust;
mod signing;
mod snapshots;
mod stores;

/// Every file in this directory is a module above: a test file that is not
/// declared would never compile or run, and nothing else would say so.
#[test]
fn every_test_file_is_a_module_of_this_binary() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/all");
    let main = std::fs::read_to_string(dir.join("main.rs")).expect("main.rs is readable");
    let mut undeclared = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("tests/all is readable") {
        let path = entry.expect("a directory entry").path();
        let Some(stem) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let is_rust = path.extension().is_some_and(|e| e == "rs");
        if is_rust && stem != "main" && !main.contains(&format!("\nmod {stem};")) {
            undeclared.push(stem.to_string());
        }
    }
    assert!(
        undeclared.is_empty(),
        "tests/all has files that are not modules of the test binary: {undeclared:?}"
    );
}
