//! The sandbox and the loader against what an attacker would try: calls
//! that block, load-time exports that flood or stall, policy files that are
//! not files, components that take forever (or all memory) to compile,
//! plugin text meant for terminals, plugins whose answer drifts, components
//! of another contract version, outputs meant to exhaust the host, and a
//! policy directory pulled from under a running host. Every test ends by
//! itself: a hang is a failure, not a stuck CI run.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::common::*;
use crate::serve::{COMPLIANCE, Server, config_with_tokens};
use handoff_model::{FaultKind, Tier};
use handoff_pipeline::reference;
use handoff_policy::reload::{LifecycleSink, LivePolicies, WatchOptions, Watcher};
use handoff_policy::{
    Compiler, CpuFeatures, EngineOptions, Evaluator, Grant, LiveEvaluator, LoadLimits, PolicySet,
    Runtime,
};
use handoff_test_fixtures::{FUTURE_WORLD, HOSTILE, slow_to_compile};
use serde_json::json;
use sha2::Digest;

/// The hostile plugin in `mode` as the only plugin of a set, with `manifest`.
fn load(mode: &str, manifest: &str) -> PolicySet {
    PolicySet::load(runtime(), vec![hostile("hostile", mode, manifest)], 1)
}

/// The one rejection of a set that should have rejected its only plugin.
fn rejection(set: &PolicySet) -> String {
    assert!(set.plugins().is_empty(), "the plugin loaded");
    assert_eq!(set.rejected().len(), 1, "{:?}", set.rejected());
    set.rejected()[0].to_string()
}

/// The fault the hostile plugin in `mode` gets on a routine item, after
/// checking that the item went to a human for it.
fn fault_of(mode: &str, manifest: &str) -> (FaultKind, String, String) {
    let mut ev = Evaluator::new(Arc::new(load(mode, manifest)));
    let decision = decide(&mut ev, &item(json!({})));
    let fault = decision.verdicts[0]
        .fault
        .clone()
        .unwrap_or_else(|| panic!("{mode}: no fault in {decision:?}"));
    assert_eq!(decision.tier(), Tier::Operator, "{mode}: fails to a human");
    (fault.kind, fault.stage, fault.detail)
}

// 1. Blocking WASI calls.

#[test]
fn a_sleeping_plugin_never_blocks_the_host_in_any_export() {
    for mode in ["sleep", "configure-sleep", "meta-sleep"] {
        let decision = within(120, move || {
            let set = load(mode, "");
            assert!(set.rejected().is_empty(), "{mode}: {:?}", set.rejected());
            Evaluator::new(Arc::new(set)).evaluate(&item(json!({})))
        })
        .unwrap();
        // Its timer fired at once: the plugin went on to decide as usual.
        let verdict = &decision.verdicts[0];
        assert!(verdict.fault.is_none(), "{mode}: {verdict:?}");
        assert_eq!(decision.tier(), Tier::None, "{mode}");
    }
    // What `inspect` says of the timer is what happens.
    let report = handoff_policy::inspect::inspect(runtime(), HOSTILE).unwrap();
    let clock = report
        .imports
        .iter()
        .find(|i| i.name.starts_with("wasi:clocks/monotonic-clock"))
        .expect("a Rust guest imports the monotonic clock");
    assert!(
        matches!(clock.grant, Grant::Stubbed(note) if note.contains("ready at once")),
        "{:?}",
        clock.grant
    );
}

// 2. Load-time exports: budget, output caps, plain text.

#[test]
fn metadata_is_capped_and_checked_at_load() {
    let cases = [
        (
            "meta-huge-description",
            "output-too-large in metadata: the description is 10485760 long, over the cap of 4096",
        ),
        (
            "meta-many-triggers",
            "output-too-large in metadata: triggers is 100000 long, over the cap of 64",
        ),
        (
            "meta-forged-version",
            "the policy version contains the control character '\\r'",
        ),
        ("meta-bad-name", "the policy name must be lower-case"),
    ];
    for (mode, expected) in cases {
        // Fuel and time enough to build the oversized metadata, even on a
        // loaded machine: the cap, not a budget, must be what refuses it.
        let reason = rejection(&load(
            mode,
            "[limits]\nfuel = 5000000000\nmemory-mib = 128\ndeadline-ms = 30000",
        ));
        assert!(
            reason.starts_with("hostile.wasm: ") && reason.contains(expected),
            "{mode}: {reason}"
        );
    }
}

#[test]
fn load_time_exports_run_under_the_plugins_budget() {
    // Instantiation and `configure` get the plugin's fuel like any call:
    // with almost none, the trial run is refused, naming the limit.
    let reason = rejection(&load("healthy", "[limits]\nfuel = 1000"));
    assert!(reason.contains("fuel-exhausted"), "{reason}");
}

// 3. Policy files: regular files only, within the limits.

#[test]
fn policy_files_must_be_regular_files_within_the_limits() {
    let dir = tempfile::tempdir().unwrap();
    write_reference_policies(dir.path());
    let path = |name: &str| dir.path().join(name);
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("/dev/zero", path("zero.wasm")).unwrap();
        fs::write(path("random.wasm"), HOSTILE).unwrap();
        std::os::unix::fs::symlink("/dev/urandom", path("random.toml")).unwrap();
        let fifo = std::ffi::CString::new(path("fifo.wasm").to_str().unwrap()).unwrap();
        // SAFETY: a valid, NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    }
    // A 200 MiB file that costs no disk: sparse.
    let junk = fs::File::create(path("junk.wasm")).unwrap();
    junk.set_len(200 << 20).unwrap();
    fs::write(path("long.wasm"), HOSTILE).unwrap();
    fs::write(path("long.toml"), format!("# {}\n", "x".repeat(2 << 20))).unwrap();

    let limits = LoadLimits::default();
    let dir_path = dir.path().to_path_buf();
    let set = within(120, move || {
        PolicySet::load_dir(runtime(), &dir_path, 1).unwrap()
    });
    let reasons: Vec<String> = set.rejected().iter().map(ToString::to_string).collect();
    let rejected = |prefix: &str, reason: &str| {
        assert!(
            reasons
                .iter()
                .any(|r| r.starts_with(prefix) && r.contains(reason)),
            "no `{prefix}` rejection with {reason:?}: {reasons:#?}"
        );
    };
    #[cfg(unix)]
    {
        rejected("zero.wasm: ", "not a regular file (it is a device)");
        rejected("random.toml: ", "not a regular file (it is a device)");
        rejected("fifo.wasm: ", "not a regular file (it is a FIFO)");
    }
    rejected(
        "junk.wasm: ",
        &format!("over the limit of {} bytes", limits.max_component_bytes),
    );
    rejected(
        "long.toml: ",
        &format!("over the limit of {} bytes", limits.max_manifest_bytes),
    );
    // Every good plugin still loads beside them.
    let loaded: Vec<&str> = set.plugins().iter().map(|p| &*p.name).collect();
    assert_eq!(loaded, ["compliance-limits", "confidence-gate"]);
}

// 4 and 5. Compiles are bounded, and never block the API.

/// A policy directory with the reference policies and `extra` components.
fn policies_with(dir: &Path, extra: &[(&str, Vec<u8>)]) {
    write_reference_policies(dir);
    for (name, bytes) in extra {
        fs::write(dir.join(format!("{name}.wasm")), bytes).unwrap();
    }
}

/// Runs `handoff eval` with `flags` over the reference policies and `extra`
/// components, on one routine item; answers its stderr.
fn eval_with(flags: &[&str], extra: (&str, Vec<u8>)) -> String {
    let dir = tempfile::tempdir().unwrap();
    policies_with(dir.path(), &[extra]);
    let mut args: Vec<String> = flags.iter().map(|f| f.to_string()).collect();
    args.extend([
        "eval".into(),
        "--policies".into(),
        dir.path().display().to_string(),
    ]);
    let output = within(300, move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        handoff(
            &args,
            "{\"id\":\"r\",\"kind\":\"reply\",\"agent\":\"a\",\"text\":\"hi\",\"confidence\":0.95}\n",
        )
    });
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    // The host is alive and the good policies decided.
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("1 decided"), "{stderr}");
    stderr
}

#[test]
fn a_compile_over_its_time_budget_is_stopped_and_rejected() {
    let stderr = eval_with(
        &["--compile-timeout-secs", "3"],
        ("slow", slow_to_compile(HOSTILE, 100, 100_000)),
    );
    assert!(
        stderr.contains("rejected slow.wasm: compiling took longer than the compile budget of 3s"),
        "{stderr}"
    );
}

#[test]
fn a_compile_over_its_memory_budget_is_stopped_and_rejected() {
    // Asks for tens of gigabytes: in the host's own process, that aborts it.
    let stderr = eval_with(
        &["--compile-memory-mib", "512"],
        ("greedy", slow_to_compile(HOSTILE, 5_000, 50_000)),
    );
    assert!(
        stderr.contains(
            "rejected greedy.wasm: compiling needed more than the compile budget of 512 MiB"
        ),
        "{stderr}"
    );
}

/// A compiling child builds the engine its host has, CPU features included:
/// its artifact is the one the host would have compiled itself. (wasmtime
/// would load an artifact using more of the CPU than the host's engine
/// allows, and run it: under valgrind, which lacks AVX-512, a crash.)
#[test]
fn a_compiling_child_compiles_for_the_hosts_cpu_features() {
    let source = reference("confidence-gate");
    let sha: [u8; 32] = sha2::Sha256::digest(&source.wasm).into();
    for cpu in [CpuFeatures::Detected, CpuFeatures::ValgrindCompatible] {
        let options = EngineOptions {
            pool_instances: 4,
            cpu,
            ..EngineOptions::default()
        };
        let in_process = Runtime::with_options(options).unwrap();
        let in_child = in_process.clone().with_compiler(Compiler::Subprocess {
            program: env!("CARGO_BIN_EXE_handoff").into(),
            args: vec!["__compile".into()],
        });
        let artifact = |runtime: &Runtime| {
            let (component, _) = runtime.compile(&source.wasm, &sha).unwrap();
            component.serialize().unwrap()
        };
        assert!(
            artifact(&in_process) == artifact(&in_child),
            "{cpu:?}: the child compiled other code than the host would"
        );
        assert_eq!(in_child.compilations(), 2, "{cpu:?}");
    }
}

#[test]
fn the_api_answers_while_a_candidate_and_a_reload_compile() {
    let data = tempfile::tempdir().unwrap();
    let config = config_with_tokens(data.path(), "");
    let config = config.to_str().unwrap();
    let server = Server::start(
        data.path(),
        &["--config", config, "--compile-timeout-secs", "8"],
    );
    // About 18 s and 1.7 GiB to compile on a 2-core machine: over the
    // server's budget of 8 s (and perhaps of 2 GiB) either way.
    let slow = slow_to_compile(HOSTILE, 100, 100_000);

    // A replay of a candidate that compiles for longer than its budget, and
    // a reload of the same, both in flight while the API is used.
    let replay = {
        let (base, slow) = (server_base(&server), slow.clone());
        thread::spawn(move || {
            ureq::post(&format!("{base}/v1/replay?plugin=slow"))
                .header("Authorization", &format!("Bearer {COMPLIANCE}"))
                .config()
                .http_status_as_error(false)
                .build()
                .send(&slow[..])
                .map(|mut r| {
                    let status = r.status().as_u16();
                    (status, r.body_mut().read_to_string().unwrap_or_default())
                })
        })
    };
    fs::write(data.path().join("policies/slow.wasm"), &slow).unwrap();

    let mut answered = 0;
    let started = Instant::now();
    while !replay.is_finished() {
        assert!(
            started.elapsed() < Duration::from_secs(240),
            "the replay hangs"
        );
        for path in ["/healthz", "/readyz"] {
            let (status, body) = server.get(path, None);
            assert_eq!(status, 200, "{path}: {body}");
        }
        let (status, body) = server.get("/v1/policies", Some(COMPLIANCE));
        assert_eq!(status, 200, "{body}");
        let id = format!("during-compile-{answered}");
        let (status, body) = server.post(
            "/v1/evaluate",
            Some(crate::serve::AGENT),
            &crate::serve::item(&id, "reply", 0.95, None),
        );
        assert_eq!(status, 200, "{body}");
        answered += 1;
    }
    let (status, body) = replay.join().unwrap().expect("the replay answers");
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("compile budget"), "{body}");
    assert!(answered > 0, "the API was used while compiling");

    // The reload was refused the same way, and the good policies serve on.
    server.wait_stderr("rejected slow.wasm: compiling");
    let (_, policies) = server.get("/v1/policies", Some(COMPLIANCE));
    let status = policies["status"].as_array().unwrap();
    let slow_status = status.iter().find(|s| s["plugin"] == "slow").unwrap();
    assert!(
        slow_status["last_error"]["reason"]
            .as_str()
            .unwrap()
            .contains("compile budget"),
        "{slow_status}"
    );
    assert_eq!(policies["plugins"].as_array().unwrap().len(), 2);
}

/// The server's base URL, as it printed it.
fn server_base(server: &Server) -> String {
    server.base().to_string()
}

// 6. The artifact cache.

#[test]
fn the_cache_keeps_only_validated_versions_within_its_quota() {
    let cache = tempfile::tempdir().unwrap();
    let runtime = |quota: u64| {
        Runtime::new()
            .unwrap()
            .with_limits(LoadLimits {
                cache_quota_bytes: quota,
                ..LoadLimits::default()
            })
            .with_cache(cache.path())
            .unwrap()
    };
    let entries = || fs::read_dir(cache.path()).unwrap().count();
    // A version that fails its fixture is compiled, refused, and not kept.
    let failing = with_manifest_edit(
        reference("confidence-gate"),
        "expect = \"none\"",
        "expect = \"executive\"",
    );
    let set = PolicySet::load(&runtime(1 << 30), vec![failing], 1);
    assert!(set.plugins().is_empty(), "{:?}", set.rejected());
    assert_eq!(entries(), 0, "a rejected version takes no cache space");

    // Valid versions are kept, least recently used first out past the quota.
    let one = {
        let rt = runtime(1 << 30);
        let set = PolicySet::load(&rt, vec![reference("confidence-gate")], 1);
        assert!(set.rejected().is_empty());
        rt.cache().unwrap().usage().unwrap()
    };
    assert!(one > 0);
    let quota = one * 5 / 2;
    let rt = runtime(quota);
    for build in 0..6 {
        let mut source = reference("confidence-gate");
        source.wasm = handoff_test_fixtures::rebuilt(&source.wasm, build);
        let set = PolicySet::load(&rt, vec![source], 1);
        assert!(set.rejected().is_empty(), "{:?}", set.rejected());
        let usage = rt.cache().unwrap().usage().unwrap();
        assert!(
            usage <= quota,
            "{usage} bytes cached, over the quota of {quota}"
        );
    }
    // Each version is three artifacts; the two most recent versions fit
    // the quota, a third does not (an older artifact may still fit).
    let kept = entries() as u64;
    assert!(
        (2 * COMPILES_PER_VERSION..3 * COMPILES_PER_VERSION).contains(&kept),
        "{kept} artifacts kept"
    );
}

// 7. Plugin text.

#[test]
fn text_a_person_or_a_terminal_reads_is_validated() {
    let cases = [
        ("role-newline", "escalate", "role must be lower-case"),
        ("role-escape", "escalate", "role must be lower-case"),
        ("role-nul", "escalate", "role must be lower-case"),
        ("role-empty", "escalate", "role must be lower-case"),
        (
            "reason-escape",
            "escalate",
            "reason contains the control character",
        ),
        ("guidance-on-operator", "escalate", "must not carry it"),
        ("max-sla", "escalate", "over the host's maximum of 2592000"),
        (
            "label-escape",
            "classify",
            "a label contains the control character",
        ),
    ];
    for (mode, stage, expected) in cases {
        let (kind, at, detail) = fault_of(mode, "");
        assert_eq!(
            (kind, at.as_str()),
            (FaultKind::InvalidVerdict, stage),
            "{mode}: {detail}"
        );
        assert!(detail.contains(expected), "{mode}: {detail}");
        assert!(
            !detail.contains('\u{1b}') && !detail.contains('\n'),
            "{mode}: {detail:?}"
        );
    }
}

#[test]
fn printing_a_panic_message_is_not_a_panic() {
    let mut ev = Evaluator::new(Arc::new(load("fake-panic", "")));
    let decision = decide(&mut ev, &item(json!({})));
    assert!(decision.verdicts[0].fault.is_none(), "{decision:?}");
    assert_eq!(decision.tier(), Tier::None);
    assert!(
        !serde_json::to_string(&decision)
            .unwrap()
            .contains("panicked")
    );
}

#[test]
fn tables_escape_what_they_print() {
    // A store someone edited by hand: a role with an escape sequence.
    let data = tempfile::tempdir().unwrap();
    let db = data.path().join("handoffs.db");
    let out = handoff(
        &[
            "eval",
            "--dispatch",
            data.path().to_str().unwrap(),
            "--input",
            "-",
        ],
        &format!(
            "{}\n",
            serde_json::to_string(&json!({
                "id": "big", "kind": "refund", "agent": "a", "text": "refund please",
                "confidence": 0.9, "amount": {"minor": 90_000, "currency": "USD"}
            }))
            .unwrap()
        ),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let edited = std::process::Command::new("python3")
        .arg("-c")
        .arg(format!(
            "import sqlite3; c = sqlite3.connect({:?}); c.execute(\"UPDATE handoffs SET role = 'ops\\x1b[2J'\"); c.commit()",
            db.to_str().unwrap()
        ))
        .status()
        .expect("python3 runs");
    assert!(edited.success());
    let listed = handoff(
        &["queue", "list", "--data", data.path().to_str().unwrap()],
        "",
    );
    let table = String::from_utf8_lossy(&listed.stdout);
    assert!(table.contains("ops\\u{1b}[2J"), "{table}");
    assert!(!table.contains('\u{1b}'), "{table:?}");
}

// 8. Determinism.

#[test]
fn a_plugin_whose_fixtures_depend_on_their_order_is_refused() {
    let fixtures = "[[fixture]]\nname = \"a\"\nexpect = \"none\"\nitem = { kind = \"reply\", confidence = 0.9 }\n\
                    [[fixture]]\nname = \"b\"\nexpect = \"operator\"\nitem = { kind = \"reply\", confidence = 0.9 }\n";
    let reason = rejection(&load("drift", fixtures));
    assert!(
        reason.starts_with("hostile.toml: fixture `") && reason.contains("in reverse order"),
        "{reason}"
    );
}

#[test]
fn a_sampled_warm_evaluation_catches_a_drifting_plugin() {
    let mut ev = Evaluator::new(Arc::new(load("drift", "fresh-sample = 1.0")));
    let first = decide(&mut ev, &item(json!({"id": "same"})));
    assert!(first.verdicts[0].fault.is_none());
    let second = decide(&mut ev, &item(json!({"id": "same"})));
    let fault = second.verdicts[0]
        .fault
        .as_ref()
        .expect("the drift is caught");
    assert_eq!(fault.kind, FaultKind::Nondeterministic, "{fault:?}");
    assert_eq!(second.tier(), Tier::Operator, "it fails to a human");
}

#[test]
fn the_same_item_draws_the_same_randomness_whatever_came_before() {
    let set = Arc::new(load("random", "fresh-sample = 0"));
    let target = item(json!({"id": "random-target"}));
    let mut reference_ev = Evaluator::new(set.clone());
    let expected = decide(&mut reference_ev, &target).tier();
    let mut busy = Evaluator::new(set);
    for round in 0..8 {
        for other in 0..round {
            decide(
                &mut busy,
                &item(json!({"id": format!("other-{round}-{other}")})),
            );
        }
        assert_eq!(decide(&mut busy, &target).tier(), expected, "round {round}");
    }
}

#[test]
fn replay_runs_each_record_fresh_so_a_drift_shows_as_a_change() {
    let audit = tempfile::tempdir().unwrap();
    let log = handoff_audit::AuditLog::open(audit.path(), Default::default()).unwrap();
    let set = Arc::new(load("drift", "fresh-sample = 0"));
    let mut warm = Evaluator::new(set.clone());
    for n in 0..4 {
        let it = item(json!({"id": format!("drift-{n}")}));
        let decision = decide(&mut warm, &it);
        log.record_decision(&it, &decision, None).unwrap();
    }
    log.flush().unwrap();
    let files = handoff_audit::log_files(audit.path()).unwrap();
    let entries = handoff_audit::query::read(&files).unwrap();
    let report = handoff_pipeline::replay::replay(&entries, &mut Evaluator::fresh(set));
    // Warm, it alternated none and operator; fresh, every item is the first.
    assert_eq!(report.replayed, 4);
    assert_eq!(report.changed.len(), 2, "{:?}", report.changed);
}

// 9. The contract version.

#[test]
fn a_component_of_another_contract_version_is_refused_naming_both() {
    let set = PolicySet::load(
        runtime(),
        vec![handoff_policy::PluginSource {
            signatures: None,
            name: "future".into(),
            wasm: FUTURE_WORLD.to_vec(),
            manifest: None,
        }],
        1,
    );
    let reason = rejection(&set);
    assert!(
        reason
            .contains("built for handoff:policy@0.3.0; this host serves handoff:policy@0.1.0 and handoff:policy@0.2.0"),
        "{reason}"
    );
    let report = handoff_policy::inspect::inspect(runtime(), FUTURE_WORLD).unwrap();
    let world = report.world.clone().unwrap_err();
    assert!(
        world.contains("0.3.0") && world.contains("0.1.0") && world.contains("0.2.0"),
        "{world}"
    );
    assert!(
        report
            .refused()
            .any(|i| i.name == "handoff:policy/types@0.3.0")
    );
}

/// `handoff:policy@0.2.0` passes the item's strings as spans of one
/// string: a plugin built with the SDK must still see every field exactly
/// as sent, multi-byte characters, empty strings and attributes included.
#[test]
fn a_0_2_0_plugin_receives_every_field_of_the_item_exactly() {
    let set = load("echo", "");
    assert_eq!(
        set.plugins()[0].contract(),
        handoff_policy::Contract::V0_2_0
    );
    let mut ev = Evaluator::new(Arc::new(set));
    let items = [
        item(json!({})),
        item(json!({
            "id": "rü-ß-9",
            "kind": "tool-call",
            "agent": "агент",
            "text": "Naïve café ✓ 🚀 refund, 東京",
            "confidence": 0.125,
            "amount": {"minor": -4200, "currency": "EUR"},
            "segment": "enterprise",
            "attempts": 3,
            "attributes": {"clé": "vâleur", "empty": "", "z": "🚀", "a": "1"},
        })),
        item(json!({"text": "", "segment": "", "attributes": {"": "no key"}})),
    ];
    for work in items {
        let amount = work.amount.as_ref().map_or("none".to_string(), |m| {
            format!("{} {}", m.minor, m.currency)
        });
        let attributes: Vec<String> = work
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let expected = format!(
            "id {} | kind {} | agent {} | text {} | confidence {} | amount {amount} | segment {} | attempts {} | attributes {}",
            work.id,
            work.kind,
            work.agent,
            work.text,
            work.confidence,
            work.segment.as_deref().unwrap_or("none"),
            work.attempts,
            attributes.join(";")
        );
        let decision = decide(&mut ev, &work);
        let verdict = decision.verdicts[0].verdict.as_ref();
        assert_eq!(
            verdict.map(|v| v.reason.as_str()),
            Some(expected.as_str()),
            "{decision:?}"
        );
    }
}

// 10. Output caps before the host allocates.

/// Limits that let the plugin build an enormous output: the host's caps,
/// not the plugin's budget, must be what stops it.
const BIG_OUTPUT: &str = "[limits]\nmemory-mib = 128\nfuel = 5000000000\ndeadline-ms = 60000";

#[test]
fn an_oversized_output_is_refused_before_the_host_copies_it() {
    let (kind, stage, detail) = fault_of("many-labels", BIG_OUTPUT);
    assert_eq!(
        (kind, stage.as_str()),
        (FaultKind::OutputTooLarge, "classify")
    );
    assert!(
        detail.contains("labels is 2000000 long, over the cap of 64"),
        "{detail}"
    );
    // A 64 MiB log line is kept up to the log cap and counted past it.
    let set = Arc::new(load("huge-log", BIG_OUTPUT));
    let mut ev = Evaluator::new(set.clone());
    assert!(
        decide(&mut ev, &item(json!({}))).verdicts[0]
            .fault
            .is_none()
    );
    // All but the log cap (64 KiB by default) of the 64 MiB was dropped.
    let dropped = set.stats()[0].output_dropped;
    assert!(dropped >= (64 << 20) - 65_536, "{dropped}");
}

/// Set in the child process that measures the host's memory.
const MEASURE: &str = "HANDOFF_TEST_MEASURE_OUTPUT_MEMORY";

#[test]
fn oversized_outputs_cost_the_host_no_memory() {
    if std::env::var_os(MEASURE).is_some() {
        return measure_output_memory();
    }
    let module = module_path!().split_once("::").map_or("", |(_, rest)| rest);
    let name = format!("{module}::oversized_outputs_cost_the_host_no_memory");
    let child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", &name, "--nocapture", "--test-threads=1"])
        .env(MEASURE, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&child.stdout);
    let stderr = String::from_utf8_lossy(&child.stderr);
    assert!(
        child.status.success() && stdout.contains("1 passed"),
        "the measuring process failed ({}):\n{stdout}\n{stderr}",
        child.status
    );
    eprint!("{stderr}");
}

/// In a process of its own: the host's peak memory while a plugin returns
/// 2 million labels and logs 64 MiB lines, over what the plugin's own
/// memory already takes.
fn measure_output_memory() {
    let kib = |field: &str| -> u64 {
        let status = fs::read_to_string("/proc/self/status").unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    };
    for mode in ["many-labels", "huge-log"] {
        let set = Arc::new(load(mode, BIG_OUTPUT));
        let mut ev = Evaluator::new(set);
        // The first evaluation grows the plugin's own memory.
        let first = decide(&mut ev, &item(json!({})));
        let fault = first.verdicts[0].fault.as_ref().map(|f| f.kind);
        let expected = (mode == "many-labels").then_some(FaultKind::OutputTooLarge);
        assert_eq!(fault, expected, "{mode}: {first:?}");
        fs::write("/proc/self/clear_refs", "5").expect("the peak can be reset");
        let before = kib("VmRSS:");
        for _ in 0..10 {
            decide(&mut ev, &item(json!({})));
        }
        let peak = kib("VmHWM:");
        let growth = peak.saturating_sub(before);
        eprintln!("{mode}: resident {before} KiB, peak {peak} KiB over 10 evaluations");
        assert!(
            growth < 16 * 1024,
            "{mode}: the host's peak grew by {growth} KiB over the plugin's own memory"
        );
    }
}

// 11. The policy directory pulled from under a running host.

#[test]
fn the_watcher_survives_its_directory_being_moved_deleted_and_recreated() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path().join("policies");
    write_reference_policies(&dir);
    let sink: Arc<dyn LifecycleSink> = Arc::new(|_: &handoff_model::LifecycleEvent| {});
    let live = LivePolicies::open(runtime().clone(), &dir, sink).unwrap();
    let _watcher = Watcher::start(
        live.clone(),
        WatchOptions::with_debounce(Duration::from_millis(30)),
    )
    .unwrap();
    let mut ev = LiveEvaluator::new(live.clone());
    let generation = live.generation();

    // Moved away: the serving policies keep serving.
    fs::rename(&dir, work.path().join("moved")).unwrap();
    thread::sleep(Duration::from_secs(2));
    assert_eq!(live.generation(), generation);
    assert_eq!(ev.evaluate(&item(json!({}))).unwrap().verdicts.len(), 2);

    // Back, as a new directory with a new version of one policy: watched
    // again and reloaded.
    reference::write_to(&dir).unwrap();
    let gate = reference("confidence-gate");
    fs::write(
        dir.join("confidence-gate.wasm"),
        handoff_test_fixtures::rebuilt(&gate.wasm, 7),
    )
    .unwrap();
    wait_for(
        || live.generation() > generation,
        "a reload of the new directory",
    );
    let generation = live.generation();

    // Deleted and recreated with one policy: the watch follows again.
    fs::remove_dir_all(&dir).unwrap();
    thread::sleep(Duration::from_secs(1));
    fs::create_dir(&dir).unwrap();
    fs::write(dir.join("confidence-gate.wasm"), &gate.wasm).unwrap();
    fs::write(dir.join("confidence-gate.toml"), gate.manifest.unwrap()).unwrap();
    wait_for(
        || live.generation() > generation && live.current().plugins().len() == 1,
        "the recreated directory's one policy",
    );
    assert_eq!(ev.evaluate(&item(json!({}))).unwrap().verdicts.len(), 1);
}

fn wait_for(condition: impl Fn() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !condition() {
        assert!(Instant::now() < deadline, "no {what}");
        thread::sleep(Duration::from_millis(20));
    }
}
