//! The sandbox against hostile plugins: every misbehaviour ends in its
//! documented fault kind and failure-mode outcome, within its budget, and
//! the healthy plugins beside it keep deciding.

use crate::common::*;
use handoff_model::{Decision, FailureMode, FaultKind, Tier};
use handoff_policy::{Evaluator, Grant, PluginSource, PolicySet};
use handoff_test_fixtures::FORBIDDEN_IMPORT;
use serde_json::json;

/// An item every healthy reference policy lets through.
fn routine() -> handoff_model::WorkItem {
    item(json!({"id": "routine", "confidence": 0.95}))
}

/// Hostile plugin first, healthy confidence-gate second.
fn beside_a_healthy_plugin(source: PluginSource) -> Evaluator {
    evaluator(vec![source, reference("confidence-gate")])
}

fn assert_fault(decision: &Decision, kind: FaultKind, stage: &str) {
    let hostile = &decision.verdicts[0];
    let fault = hostile
        .fault
        .as_ref()
        .unwrap_or_else(|| panic!("no fault recorded: {decision:?}"));
    assert_eq!(
        (fault.kind, fault.stage.as_str()),
        (kind, stage),
        "{fault:?}"
    );
    assert_eq!(fault.failure_mode, FailureMode::Escalate);
    // Escalate is the default: the plugin's verdict becomes `operator`.
    assert_eq!(decision.tier(), Tier::Operator, "{decision:?}");
    assert_eq!(decision.reason_code(), format!("plugin-fault.{kind}"));
    assert_eq!(decision.driver.as_deref(), Some("hostile"));
    // Outputs that passed their checks are kept; a trap inside the single
    // `evaluate` call leaves none.
    assert_eq!(hostile.classification.is_some(), stage != "evaluate");
    // The healthy plugin beside it decided normally.
    let healthy = &decision.verdicts[1];
    assert!(healthy.fault.is_none());
    assert_eq!(healthy.verdict.as_ref().map(|v| v.tier), Some(Tier::None));
}

/// Runs `mode` twice (a trapped store must be replaced, not reused), checks
/// the fault each time and that a healthy-only evaluation still works after.
fn check_mode(mode: &str, manifest: &str, kind: FaultKind, stage: &str) -> Decision {
    let mut ev = beside_a_healthy_plugin(hostile("hostile", mode, manifest));
    let first = decide(&mut ev, &routine());
    assert_fault(&first, kind, stage);
    let second = decide(&mut ev, &routine());
    assert_fault(&second, kind, stage);
    let mut healthy = evaluator(vec![reference("confidence-gate")]);
    assert_eq!(decide(&mut healthy, &routine()).tier(), Tier::None);
    first
}

#[test]
fn infinite_loop_hits_the_deadline() {
    // Fuel high enough that only the wall clock can stop it.
    let d = check_mode(
        "loop",
        "[limits]\nfuel = 10_000_000_000\ndeadline-ms = 50",
        FaultKind::DeadlineExceeded,
        "evaluate",
    );
    assert!(
        d.verdicts[0]
            .fault
            .as_ref()
            .unwrap()
            .detail
            .contains("deadline")
    );
}

#[test]
fn fuel_burner_runs_out_of_fuel_under_the_deadline() {
    let d = check_mode(
        "burn",
        "[limits]\nfuel = 1_000_000\ndeadline-ms = 10_000",
        FaultKind::FuelExhausted,
        "evaluate",
    );
    let used = d.metering.plugins[0].fuel;
    assert!(used <= 1_000_000, "used {used} fuel, over its budget");
    assert!(
        used > 900_000,
        "used only {used}: the budget was not what stopped it"
    );
}

#[test]
fn memory_bomb_is_refused_at_the_limit() {
    let d = check_mode(
        "bomb",
        "[limits]\nmemory-mib = 4",
        FaultKind::MemoryLimit,
        "evaluate",
    );
    let fault = d.verdicts[0].fault.as_ref().unwrap();
    assert!(
        fault.detail.contains("over the limit of 4194304 bytes"),
        "{}",
        fault.detail
    );
    let peak = d.metering.plugins[0].memory_bytes;
    assert!(
        peak <= 4 * 1024 * 1024 && peak > 2 * 1024 * 1024,
        "peak memory {peak}"
    );
}

#[test]
fn unbounded_recursion_traps() {
    let d = check_mode("recurse", "", FaultKind::Trap, "evaluate");
    let detail = &d.verdicts[0].fault.as_ref().unwrap().detail;
    assert!(
        detail.contains("stack") || detail.contains("out of bounds"),
        "{detail}"
    );
    assert!(
        !detail.contains("wasm backtrace"),
        "the trap message, not the backtrace: {detail}"
    );
}

#[test]
fn panic_is_recognised_from_the_trap_not_from_what_it_printed() {
    let d = check_mode("panic", "", FaultKind::Panic, "evaluate");
    let detail = &d.verdicts[0].fault.as_ref().unwrap().detail;
    assert!(detail.contains("panicked"), "{detail}");
    // The guest's own words stay in the debug log: nothing it prints
    // reaches the reason people read.
    assert!(!detail.contains("hostile plugin"), "{detail}");
}

#[test]
fn multi_megabyte_reason_is_output_too_large() {
    let d = check_mode("huge-reason", "", FaultKind::OutputTooLarge, "escalate");
    let fault = d.verdicts[0].fault.as_ref().unwrap();
    assert!(
        fault.detail.contains("reason is 8388608 long"),
        "{}",
        fault.detail
    );
    // Nothing of the 8 MiB reaches the decision.
    assert!(serde_json::to_string(&d).unwrap().len() < 16 * 1024);
}

#[test]
fn out_of_range_score_is_an_invalid_verdict() {
    let d = check_mode("bad-score", "", FaultKind::InvalidVerdict, "score");
    assert!(
        d.verdicts[0]
            .fault
            .as_ref()
            .unwrap()
            .detail
            .contains("risk must be in [0, 1], got 1.5")
    );
    assert!(
        d.verdicts[0].assessment.is_none(),
        "an invalid assessment is never recorded as one"
    );
}

#[test]
fn nan_confidence_and_zero_sla_are_invalid_verdicts() {
    check_mode("nan-confidence", "", FaultKind::InvalidVerdict, "score");
    let d = check_mode("zero-sla", "", FaultKind::InvalidVerdict, "escalate");
    assert!(
        d.verdicts[0]
            .fault
            .as_ref()
            .unwrap()
            .detail
            .contains("at least 1 second")
    );
}

#[test]
fn stdout_flood_is_truncated_and_counted_without_changing_the_verdict() {
    let set = set_of(vec![
        // Formatting 4 MiB of output costs fuel: budget for it, so that the
        // flood itself is what is tested.
        hostile(
            "hostile",
            "chatty",
            "[limits]\nlog-bytes = 4096\nfuel = 1_000_000_000\ndeadline-ms = 10_000",
        ),
        reference("confidence-gate"),
    ]);
    let mut ev = Evaluator::new(set.clone());
    for _ in 0..3 {
        let d = decide(&mut ev, &routine());
        assert!(d.verdicts[0].fault.is_none(), "{:?}", d.verdicts[0].fault);
        assert_eq!(d.tier(), Tier::None);
    }
    let stats = &set.stats()[0];
    assert_eq!(stats.plugin, "hostile");
    assert_eq!(stats.calls, 3);
    assert!(stats.faults.is_empty());
    // 4 MiB written per evaluation, 4 KiB kept.
    assert_eq!(stats.output_dropped, 3 * (4096 * 1024 - 4096));
}

/// Sockets are linked so that standard toolchains load (Python's runtime
/// imports them whether or not a policy uses them), and every call fails:
/// a component that imports them loads, reports them as denied, and never
/// reaches the network, however it tries.
#[test]
fn sockets_load_denied_and_every_network_call_fails() {
    let report = handoff_policy::inspect::inspect(runtime(), FORBIDDEN_IMPORT).unwrap();
    assert_eq!(report.refused().count(), 0);
    let sockets: Vec<_> = report
        .imports
        .iter()
        .filter(|i| i.name.starts_with("wasi:sockets/"))
        .collect();
    assert!(sockets.len() >= 3, "{:?}", report.imports);
    for import in &sockets {
        assert!(
            matches!(import.grant, Grant::Denied(note) if note.contains("every call fails")),
            "{} is {:?}",
            import.name,
            import.grant
        );
    }
    let text = report.to_string();
    assert!(text.contains("denied   wasi:sockets/tcp@"), "{text}");

    // It loads, and its connection attempt fails.
    let mut phones_home = evaluator(vec![PluginSource {
        signatures: None,
        name: "forbidden-import".into(),
        wasm: FORBIDDEN_IMPORT.to_vec(),
        manifest: None,
    }]);
    let d = decide(&mut phones_home, &routine());
    let labels = &d.verdicts[0].classification.as_ref().unwrap().labels;
    assert!(labels.iter().any(|l| l.ends_with(":false")), "{labels:?}");

    // Every way std reaches for the network fails: sockets with access
    // denied, the name lookup as libc reports a resolver failure.
    let mut hostile = evaluator(vec![hostile("hostile", "network", "")]);
    let d = decide(&mut hostile, &routine());
    let reason = d.verdict.reason.clone();
    for attempt in ["tcp-connect", "tcp-listen", "udp-bind"] {
        assert!(
            reason.contains(&format!("{attempt}=PermissionDenied")),
            "{attempt}: {reason}"
        );
    }
    assert!(reason.contains("name-lookup="), "{reason}");
    assert!(!reason.contains("CONNECTED"), "{reason}");
}

#[test]
fn failure_modes_deny_and_ignore() {
    let mut deny = beside_a_healthy_plugin(hostile("hostile", "panic", "failure-mode = \"deny\""));
    let d = decide(&mut deny, &routine());
    assert_eq!(
        (d.tier(), d.reason_code()),
        (Tier::Executive, "plugin-fault.panic")
    );
    assert_eq!(
        d.verdicts[0].fault.as_ref().unwrap().failure_mode,
        FailureMode::Deny
    );

    let mut ignore =
        beside_a_healthy_plugin(hostile("hostile", "panic", "failure-mode = \"ignore\""));
    let d = decide(&mut ignore, &routine());
    assert_eq!((d.tier(), d.reason_code()), (Tier::None, "proceed"));
    let skipped = &d.verdicts[0];
    assert!(skipped.verdict.is_none(), "a skipped plugin has no verdict");
    let fault = skipped.fault.as_ref().expect("the skip is recorded");
    assert_eq!(
        (fault.kind, fault.failure_mode),
        (FaultKind::Panic, FailureMode::Ignore)
    );

    // Ignored, and nothing else to decide: never a silent `none`.
    let mut alone = evaluator(vec![hostile(
        "hostile",
        "panic",
        "failure-mode = \"ignore\"",
    )]);
    let d = decide(&mut alone, &routine());
    assert_eq!(
        (d.tier(), d.reason_code()),
        (Tier::Operator, "plugin-fault.no-verdict")
    );
}

#[test]
fn per_plugin_totals_count_calls_faults_and_fuel() {
    let set = set_of(vec![
        hostile("hostile", "panic", ""),
        reference("confidence-gate"),
    ]);
    let mut ev = Evaluator::new(set.clone());
    for _ in 0..4 {
        decide(&mut ev, &routine());
    }
    let stats = set.stats();
    assert_eq!(stats[0].calls, 4);
    assert_eq!(stats[0].faults.get(&FaultKind::Panic), Some(&4));
    assert_eq!(stats[1].plugin, "confidence-gate");
    assert_eq!(stats[1].calls, 4);
    assert!(stats[1].faults.is_empty());
    assert!(stats[1].fuel > 0 && stats[1].wall_us > 0);
}

#[test]
fn healthy_verdicts_are_intact_in_a_mixed_set() {
    let ignore =
        "order = 100\nfailure-mode = \"ignore\"\n[limits]\ndeadline-ms = 20\nmemory-mib = 4";
    let mut mixed = evaluator(vec![
        reference("compliance-limits"),
        reference("confidence-gate"),
        hostile("h-loop", "loop", ignore),
        hostile("h-bomb", "bomb", ignore),
        hostile("h-panic", "panic", ignore),
        hostile("h-huge", "huge-reason", ignore),
        hostile("h-nan", "nan-confidence", ignore),
    ]);
    let mut healthy = evaluator(vec![
        reference("compliance-limits"),
        reference("confidence-gate"),
    ]);
    let sample = std::fs::read_to_string(examples_dir().join("sample.jsonl")).unwrap();
    for line in sample.lines().take(12) {
        let item = handoff_model::WorkItem::from_json(line).unwrap();
        let a = decide(&mut mixed, &item);
        let b = decide(&mut healthy, &item);
        assert_eq!(
            (a.tier(), &a.reason_code(), &a.driver),
            (b.tier(), &b.reason_code(), &b.driver),
            "{}",
            item.id
        );
        assert_eq!(a.verdicts[..2], b.verdicts[..], "{}", item.id);
        assert!(
            a.verdicts[2..]
                .iter()
                .all(|v| v.fault.is_some() && v.verdict.is_none())
        );
    }
}

#[test]
fn a_plugin_that_loops_in_configure_is_rejected_at_load() {
    // `configure` runs at load under the same budget; the hostile plugin only
    // misbehaves in its stages, so use a manifest whose limits cannot even
    // instantiate it.
    let set = PolicySet::load(
        runtime(),
        vec![hostile("tiny", "healthy", "[limits]\nmemory-mib = 1")],
        1,
    );
    assert!(set.plugins().is_empty());
    assert!(
        set.rejected()[0].reason.contains("memory-limit"),
        "{}",
        set.rejected()[0].reason
    );
}

#[test]
fn instance_reuse_warm_recycles_and_fresh_never_reuses() {
    let count_instances = |manifest: &str, evaluations: usize| {
        let set = set_of(vec![hostile("hostile", "healthy", manifest)]);
        let mut ev = Evaluator::new(set.clone());
        for _ in 0..evaluations {
            assert!(decide(&mut ev, &routine()).verdicts[0].fault.is_none());
        }
        // The trial instance at load is not traffic: totals start after it.
        set.stats()[0].instances
    };
    assert_eq!(
        count_instances("", 6),
        1,
        "warm: one instance serves every item"
    );
    assert_eq!(
        count_instances("recycle-after = 2", 6),
        3,
        "recycled every 2 items"
    );
    assert_eq!(
        count_instances("instance-reuse = \"fresh\"", 6),
        6,
        "fresh: one per item"
    );
    // Fresh means fresh even after a bad return value, which does not trap.
    let set = set_of(vec![hostile(
        "hostile",
        "bad-score",
        "instance-reuse = \"fresh\"",
    )]);
    let mut ev = Evaluator::new(set.clone());
    for _ in 0..3 {
        decide(&mut ev, &routine());
    }
    assert_eq!(set.stats()[0].instances, 3);
    // A trap replaces the instance whatever the setting.
    let set = set_of(vec![hostile("hostile", "panic", "")]);
    let mut ev = Evaluator::new(set.clone());
    for _ in 0..3 {
        decide(&mut ev, &routine());
    }
    assert_eq!(set.stats()[0].instances, 3);
}
