//! Host memory stays bounded while a memory bomb is evaluated 10,000 times.
//!
//! Measured in a process of its own (this test binary, re-run with only this
//! test), so that no other test's allocations move the resident set while
//! it is measured.

use crate::common::*;
use handoff_model::FaultKind;
use handoff_policy::PluginSource;
use handoff_test_fixtures::HOSTILE;
use serde_json::json;

/// Resident set size of this process, in KiB, from `/proc/self/status`.
fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("procfs is readable");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS is reported")
}

/// Set in the child process that does the measuring.
const CHILD: &str = "HANDOFF_TEST_MEASURE_MEMORY";

#[test]
fn memory_bomb_ten_thousand_times_keeps_host_memory_bounded() {
    if std::env::var_os(CHILD).is_some() {
        return measure();
    }
    let module = module_path!().split_once("::").map_or("", |(_, rest)| rest);
    let name = format!("{module}::memory_bomb_ten_thousand_times_keeps_host_memory_bounded");
    let child = std::process::Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", &name, "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .expect("the test binary runs");
    let stdout = String::from_utf8_lossy(&child.stdout);
    let stderr = String::from_utf8_lossy(&child.stderr);
    assert!(
        child.status.success() && stdout.contains("1 passed"),
        "the measuring process failed ({}):\n{stdout}\n{stderr}",
        child.status
    );
    eprint!("{stderr}");
}

fn measure() {
    let bomb = PluginSource {
        signatures: None,
        name: "bomb".into(),
        wasm: HOSTILE.to_vec(),
        manifest: Some("[limits]\nmemory-mib = 2\n[config]\nmode = \"bomb\"\n".into()),
    };
    let mut ev = evaluator(vec![bomb]);
    let item = item(json!({}));
    let mut run = |times: usize| {
        for _ in 0..times {
            let decision = decide(&mut ev, &item);
            let fault = decision.verdicts[0]
                .fault
                .as_ref()
                .expect("the bomb faults");
            assert_eq!(fault.kind, FaultKind::MemoryLimit);
        }
    };
    // Warm up allocator pools and caches before the baseline.
    run(200);
    let before = resident_kib();
    run(10_000);
    let after = resident_kib();
    // Each evaluation touches up to 2 MiB of guest memory: 10,000 of them
    // would be ~20 GiB if any leaked. Allow a generous 256 MiB of drift.
    let growth = after.saturating_sub(before);
    eprintln!("resident: {before} KiB -> {after} KiB");
    assert!(
        growth < 256 * 1024,
        "resident memory grew by {growth} KiB over 10,000 evaluations ({before} KiB -> {after} KiB)"
    );
}
