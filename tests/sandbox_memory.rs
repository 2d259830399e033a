//! Host memory stays bounded while a memory bomb is evaluated 10,000 times.
//!
//! In a test binary of its own, so that no other test's allocations move the
//! process's resident set while this one measures it.

mod common;

use common::*;
use handoff_host::PluginSource;
use handoff_host::fault::FaultKind;
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

#[test]
fn memory_bomb_ten_thousand_times_keeps_host_memory_bounded() {
    let bomb = PluginSource {
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
