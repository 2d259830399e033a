//! Hot reload: policies swapped in a running host, with real files, a real
//! watcher and a real artifact cache on disk.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use handoff_model::{CompileOrigin, Decision, LifecycleEvent, Tier};
use handoff_policy::reload::{LifecycleSink, LivePolicies, WatchOptions, Watcher};
use handoff_policy::{LiveEvaluator, Runtime, digest_of, sha256};
use serde_json::json;

const GATE: &str = "confidence-gate";
/// Generous: only a broken host waits this long.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Lifecycle events as they happen, with a way to wait for one.
#[derive(Default)]
struct Events {
    seen: Mutex<Vec<LifecycleEvent>>,
    changed: Condvar,
}

impl Events {
    fn sink(self: &Arc<Self>) -> Arc<dyn LifecycleSink> {
        let events = self.clone();
        Arc::new(move |event: &LifecycleEvent| {
            events.seen.lock().unwrap().push(event.clone());
            events.changed.notify_all();
        })
    }

    fn all(&self) -> Vec<LifecycleEvent> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until an event after the first `from` satisfies `matches`.
    fn wait_for(
        &self,
        from: usize,
        what: &str,
        matches: impl Fn(&LifecycleEvent) -> bool,
    ) -> LifecycleEvent {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = self.seen.lock().unwrap();
        loop {
            if let Some(event) = seen.iter().skip(from).find(|e| matches(e)) {
                return event.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "no {what} event; saw {:#?}", *seen);
            seen = self.changed.wait_timeout(seen, left).unwrap().0;
        }
    }

    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// A policy directory with the reference policies, a cache directory and a
/// runtime using it.
struct Host {
    _root: tempfile::TempDir,
    dir: PathBuf,
    cache: PathBuf,
    events: Arc<Events>,
    live: Arc<LivePolicies>,
}

impl Host {
    fn start() -> Host {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("policies");
        let cache = root.path().join("cache");
        write_reference_policies(&dir);
        let events = Arc::new(Events::default());
        let live = LivePolicies::open(cached_runtime(&cache), &dir, events.sink()).unwrap();
        Host {
            _root: root,
            dir,
            cache,
            events,
            live,
        }
    }

    fn watch(&self) -> Watcher {
        let options = WatchOptions::with_debounce(Duration::from_millis(20));
        Watcher::start(self.live.clone(), options).unwrap()
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn serving_digest(&self, plugin: &str) -> Option<String> {
        self.live.current().get(plugin).map(|p| p.digest.clone())
    }

    /// Waits until `plugin` serves `digest`.
    fn wait_serving(&self, plugin: &str, digest: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while self.serving_digest(plugin).as_deref() != Some(digest) {
            assert!(
                Instant::now() < deadline,
                "{plugin} never served {digest}; events: {:#?}",
                self.events.all()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

fn cached_runtime(cache: &Path) -> Runtime {
    Runtime::new().unwrap().with_cache(cache).unwrap()
}

/// Replaces `path` the way deployment tools do: write a hidden temporary
/// beside it, then rename over.
fn atomic_write(path: &Path, bytes: &[u8]) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    fs::write(&tmp, bytes).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// A rebuild of `component`: same behaviour, new digest.
fn variant(component: &[u8], n: u32) -> Vec<u8> {
    handoff_test_fixtures::rebuilt(component, n)
}

fn gate_wasm() -> Vec<u8> {
    reference(GATE).wasm
}

#[test]
fn swap_under_load_keeps_every_decision_on_its_generation() {
    let host = Host::start();
    let _watcher = host.watch();
    let variants: Vec<Vec<u8>> = (0..5).map(|n| variant(&gate_wasm(), n)).collect();

    let stop = Arc::new(AtomicBool::new(false));
    let newest_decided = Arc::new(AtomicU64::new(0));
    let items = Arc::new(sample_items());
    let workers: Vec<_> = (0..2)
        .map(|worker| {
            let (live, stop, newest, items) = (
                host.live.clone(),
                stop.clone(),
                newest_decided.clone(),
                items.clone(),
            );
            std::thread::spawn(move || {
                let mut evaluator = LiveEvaluator::new(live);
                let mut decisions: Vec<Decision> = Vec::new();
                let mut failures = Vec::new();
                for item in items.iter().cycle().skip(worker) {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match evaluator.evaluate(item) {
                        Ok(decision) => {
                            newest.fetch_max(decision.generation, Ordering::Relaxed);
                            decisions.push(decision);
                        }
                        Err(error) => failures.push(error.to_string()),
                    }
                }
                (decisions, failures)
            })
        })
        .collect();

    let first_generation = host.live.generation();
    for round in 0..100 {
        let bytes = &variants[round % variants.len()];
        atomic_write(&host.path(&format!("{GATE}.wasm")), bytes);
        host.wait_serving(GATE, &digest_of(bytes));
        // Let the workers decide on the new generation before replacing it
        // again, so every generation is exercised under load.
        let generation = host.live.generation();
        let deadline = Instant::now() + TIMEOUT;
        while newest_decided.load(Ordering::Relaxed) < generation {
            assert!(
                Instant::now() < deadline,
                "no decision on generation {generation}"
            );
            std::thread::yield_now();
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut decisions = Vec::new();
    for worker in workers {
        let (mut decided, failures) = worker.join().unwrap();
        assert!(failures.is_empty(), "evaluations failed: {failures:?}");
        decisions.append(&mut decided);
    }

    // What the host announced each generation served.
    let mut serving: BTreeMap<u64, BTreeMap<String, String>> = BTreeMap::new();
    let mut latest = BTreeMap::new();
    for event in host.events.all() {
        match event {
            LifecycleEvent::Loaded {
                plugin,
                digest,
                generation,
                ..
            }
            | LifecycleEvent::Swapped {
                plugin,
                digest,
                generation,
                ..
            } => {
                latest.insert(plugin, digest);
                serving.insert(generation, latest.clone());
            }
            // Each generation's record names exactly what serves in it.
            LifecycleEvent::Generation {
                generation,
                plugins,
                ..
            } => {
                let listed: BTreeMap<String, String> =
                    plugins.into_iter().map(|p| (p.plugin, p.digest)).collect();
                assert_eq!(
                    Some(&listed),
                    serving.get(&generation),
                    "generation {generation}"
                );
            }
            other => panic!("unexpected event during the swaps: {other:?}"),
        }
    }
    assert_eq!(host.live.generation(), first_generation + 100);
    assert_eq!(serving.len(), 101, "one generation per replacement");

    let mut generations_decided = BTreeSet::new();
    for decision in &decisions {
        let announced = &serving[&decision.generation];
        for verdict in &decision.verdicts {
            assert_eq!(
                announced.get(&verdict.plugin),
                Some(&verdict.digest),
                "decision {} on generation {} recorded {} {}",
                decision.id,
                decision.generation,
                verdict.plugin,
                verdict.digest
            );
        }
        assert_eq!(decision.verdicts.len(), 2);
        generations_decided.insert(decision.generation);
    }
    assert_eq!(generations_decided.len(), 101);

    // Five distinct versions were compiled once each; every revisit came
    // from the cache.
    assert_eq!(
        host.live.runtime().compilations(),
        (2 + 5) * COMPILES_PER_VERSION
    );
}

#[test]
fn broken_and_half_written_versions_never_serve() {
    let host = Host::start();
    let _watcher = host.watch();
    let original = host.serving_digest(GATE).unwrap();
    let wasm_path = host.path(&format!("{GATE}.wasm"));

    // Garbage: refused, old version keeps serving, status says why and when.
    let before = host.events.count();
    let started = chrono::Utc::now();
    fs::write(&wasm_path, b"not a component at all").unwrap();
    let rejected = host.events.wait_for(
        before,
        "rejected",
        |e| matches!(e, LifecycleEvent::Rejected { plugin, .. } if plugin == GATE),
    );
    let LifecycleEvent::Rejected {
        file,
        reason,
        still_serving,
        ..
    } = rejected
    else {
        unreachable!()
    };
    assert_eq!(file, format!("{GATE}.wasm"));
    assert!(reason.contains("not a WebAssembly file"), "{reason}");
    assert_eq!(still_serving.as_ref(), Some(&original));
    assert_eq!(host.serving_digest(GATE).as_ref(), Some(&original));
    let status = host
        .live
        .status()
        .into_iter()
        .find(|s| s.plugin == GATE)
        .unwrap();
    let error = status.last_error.expect("the failure is in the status");
    assert!(error.reason.contains("not a WebAssembly file"));
    assert!(error.at >= started);
    assert_eq!(status.serving.map(|s| s.digest), Some(original.clone()));
    let mut evaluator = LiveEvaluator::new(host.live.clone());
    let decision = evaluator
        .evaluate(&item(json!({"confidence": 0.4})))
        .unwrap();
    assert_eq!(decision.reason_code(), "confidence.low");

    // Half a component, written in place as a slow copy would: refused.
    let full = variant(&gate_wasm(), 7);
    let (head, tail) = full.split_at(full.len() / 2);
    let before = host.events.count();
    let mut file = fs::File::create(&wasm_path).unwrap();
    file.write_all(head).unwrap();
    file.flush().unwrap();
    host.events.wait_for(
        before,
        "rejected half",
        |e| matches!(e, LifecycleEvent::Rejected { digest: Some(d), .. } if *d == digest_of(head)),
    );
    assert_eq!(host.serving_digest(GATE).as_ref(), Some(&original));

    // The rest of the copy arrives: the next event retries, and it serves.
    file.write_all(tail).unwrap();
    drop(file);
    host.wait_serving(GATE, &digest_of(&full));
    for event in host.events.all() {
        if let LifecycleEvent::Loaded { digest, .. } | LifecycleEvent::Swapped { digest, .. } =
            event
        {
            assert_ne!(digest, digest_of(head), "a half-written file was loaded");
        }
    }
}

#[test]
fn a_manifest_whose_fixture_fails_is_refused_naming_the_case() {
    let host = Host::start();
    let _watcher = host.watch();
    let original = host.serving_digest(GATE).unwrap();
    let manifest_path = host.path(&format!("{GATE}.toml"));
    let manifest = fs::read_to_string(&manifest_path).unwrap();
    // A looser threshold: 0.4 no longer goes to an operator, and the
    // manifest's own fixture says it must.
    let loosened = manifest.replacen("escalate-below = 0.60", "escalate-below = 0.30", 1);
    assert_ne!(loosened, manifest);
    let before = host.events.count();
    atomic_write(&manifest_path, loosened.as_bytes());
    let event = host.events.wait_for(before, "rejected", |e| {
        matches!(e, LifecycleEvent::Rejected { .. })
    });
    let LifecycleEvent::Rejected { file, reason, .. } = event else {
        unreachable!()
    };
    assert_eq!(file, format!("{GATE}.toml"));
    assert!(
        reason.contains("fixture `low confidence goes to an operator` failed")
            && reason.contains("expected operator with reason code `confidence.low`")
            && reason.contains("got self-correct"),
        "{reason}"
    );
    assert_eq!(host.serving_digest(GATE), Some(original));
    let mut evaluator = LiveEvaluator::new(host.live.clone());
    let decision = evaluator
        .evaluate(&item(json!({"confidence": 0.4})))
        .unwrap();
    assert_eq!(
        decision.tier(),
        Tier::Operator,
        "the old manifest still serves"
    );

    // A manifest change that keeps its fixtures passing is swapped in, and
    // the component is not recompiled for it: only the snapshot of its new
    // configuration is.
    let compiled = host.live.runtime().compilations();
    let adjusted = manifest.replacen("escalate-below = 0.60", "escalate-below = 0.50", 1);
    atomic_write(&manifest_path, adjusted.as_bytes());
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let decision = evaluator
            .evaluate(&item(json!({"confidence": 0.55})))
            .unwrap();
        if decision.tier() == Tier::SelfCorrect {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the adjusted manifest never served"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(host.live.runtime().compilations(), compiled + 1);
}

#[test]
fn deleting_unloads_and_reverting_comes_from_the_cache() {
    let host = Host::start();
    let _watcher = host.watch();
    let wasm_path = host.path(&format!("{GATE}.wasm"));
    let original = fs::read(&wasm_path).unwrap();
    let mut evaluator = LiveEvaluator::new(host.live.clone());

    // Move to a new version, then delete the plugin.
    let newer = variant(&original, 1);
    atomic_write(&wasm_path, &newer);
    host.wait_serving(GATE, &digest_of(&newer));
    let before = host.events.count();
    fs::remove_file(&wasm_path).unwrap();
    fs::remove_file(host.path(&format!("{GATE}.toml"))).unwrap();
    let unloaded = host.events.wait_for(before, "unloaded", |e| {
        matches!(e, LifecycleEvent::Unloaded { .. })
    });
    assert_eq!(
        unloaded,
        LifecycleEvent::Unloaded {
            plugin: GATE.into(),
            digest: digest_of(&newer),
            generation: host.live.generation(),
        }
    );
    assert!(host.live.current().get(GATE).is_none());
    let status = host.live.status();
    let gate = status.iter().find(|s| s.plugin == GATE).unwrap();
    assert!(gate.serving.is_none());
    // The other plugin decides alone.
    let decision = evaluator.evaluate(&refund(60_000, "USD")).unwrap();
    assert_eq!(decision.verdicts.len(), 1);
    assert_eq!(decision.reason_code(), "auth-limit.exceeded");

    // Revert to the original: served from the cache, nothing recompiled.
    let compiled = host.live.runtime().compilations();
    let before = host.events.count();
    atomic_write(
        &host.path(&format!("{GATE}.toml")),
        reference(GATE).manifest.unwrap().as_bytes(),
    );
    atomic_write(&wasm_path, &original);
    let loaded = host.events.wait_for(before, "loaded", |e| {
        matches!(e, LifecycleEvent::Loaded { .. })
    });
    let LifecycleEvent::Loaded {
        digest, compile, ..
    } = loaded
    else {
        unreachable!()
    };
    assert_eq!(digest, digest_of(&original));
    assert_eq!(compile, CompileOrigin::Cached);
    assert_eq!(host.live.runtime().compilations(), compiled);
    let decision = evaluator
        .evaluate(&item(json!({"confidence": 0.4})))
        .unwrap();
    assert_eq!(decision.verdicts.len(), 2);
    assert_eq!(decision.reason_code(), "confidence.low");
}

#[test]
fn unchanged_content_is_not_reloaded() {
    let host = Host::start();
    let generation = host.live.generation();
    let wasm_path = host.path(&format!("{GATE}.wasm"));
    atomic_write(&wasm_path, &fs::read(&wasm_path).unwrap());
    let outcome = host.live.reload([GATE]);
    assert_eq!(outcome.unchanged, vec![GATE.to_string()]);
    assert_eq!(outcome.generation, None);
    assert_eq!(host.live.generation(), generation);

    // A changed manifest alone is a new version of the unit.
    let manifest_path = host.path(&format!("{GATE}.toml"));
    let manifest = fs::read_to_string(&manifest_path).unwrap();
    atomic_write(
        &manifest_path,
        format!("{manifest}\n# reviewed\n").as_bytes(),
    );
    let outcome = host.live.reload([GATE]);
    assert_eq!(outcome.changed, vec![GATE.to_string()]);
    assert_eq!(outcome.generation, Some(generation + 1));
}

#[test]
fn restart_loads_from_the_cache_and_a_corrupt_entry_is_recompiled() {
    let host = Host::start();
    assert_eq!(host.live.runtime().compilations(), 2 * COMPILES_PER_VERSION);

    // A restart: a new engine, the same cache directory.
    let events = Arc::new(Events::default());
    let restarted =
        LivePolicies::open(cached_runtime(&host.cache), &host.dir, events.sink()).unwrap();
    assert_eq!(restarted.runtime().compilations(), 0);
    for event in events.all() {
        if let LifecycleEvent::Generation { generation, .. } = event {
            assert_eq!(generation, 1, "the restart's first generation");
            continue;
        }
        let LifecycleEvent::Loaded { compile, .. } = event else {
            panic!("unexpected {event:?}")
        };
        assert_eq!(compile, CompileOrigin::Cached);
    }

    // Flip one byte in the gate's cached artifact.
    let sha = sha256(&fs::read(host.path(&format!("{GATE}.wasm"))).unwrap());
    let entry = restarted.runtime().cache().unwrap().entry_path(&sha);
    let mut bytes = fs::read(&entry).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&entry, &bytes).unwrap();

    let events = Arc::new(Events::default());
    let again = LivePolicies::open(cached_runtime(&host.cache), &host.dir, events.sink()).unwrap();
    assert_eq!(
        again.runtime().compilations(),
        1,
        "only the corrupt entry is recompiled"
    );
    let recompiled: Vec<_> = events
        .all()
        .into_iter()
        .filter(|e| matches!(e, LifecycleEvent::CacheRecompiled { .. }))
        .collect();
    assert_eq!(recompiled.len(), 1, "{recompiled:?}");
    assert_eq!(recompiled[0].plugin(), GATE);
    let LifecycleEvent::CacheRecompiled { reason, .. } = &recompiled[0] else {
        unreachable!()
    };
    assert!(reason.contains("checksum"), "{reason}");
    assert!(matches!(
        again.current().get(GATE).unwrap().compiled,
        CompileOrigin::Recompiled { .. }
    ));

    // The rewritten entry is good again.
    let events = Arc::new(Events::default());
    let healed = LivePolicies::open(cached_runtime(&host.cache), &host.dir, events.sink()).unwrap();
    assert_eq!(healed.runtime().compilations(), 0);
}

#[test]
fn concurrent_cache_writers_leave_one_valid_entry() {
    let cache = tempfile::tempdir().unwrap();
    let bytes = Arc::new(variant(&gate_wasm(), 42));
    let sha = sha256(&bytes);
    let runtime = cached_runtime(cache.path());
    let writers: Vec<_> = (0..4)
        .map(|_| {
            let (runtime, bytes) = (runtime.clone(), bytes.clone());
            std::thread::spawn(move || {
                // Only a validated version is cached: say this one is.
                let (component, origin) = runtime.compile(&bytes, &sha)?;
                runtime.remember(&sha, &component);
                Ok::<_, handoff_policy::CompileError>(origin)
            })
        })
        .collect();
    for writer in writers {
        assert!(writer.join().unwrap().is_ok());
    }
    let entries: Vec<_> = fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        entries.len(),
        1,
        "one entry, no temporaries left: {entries:?}"
    );
    let fresh = cached_runtime(cache.path());
    let (_, origin) = fresh.compile(&bytes, &sha).unwrap();
    assert_eq!(origin, CompileOrigin::Cached);
    assert_eq!(fresh.compilations(), 0);
}

#[test]
fn watch_command_evaluates_as_items_arrive_and_reports_reloads() {
    use std::process::{Command, Stdio};
    let root = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(["watch", "--debounce-ms", "20", "--input", "-", "--data"])
        .arg(root.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the host however the test ends.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let stderr = child.stderr.take().unwrap();
    let _child = Kill(child);
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if lines_tx.send(line).is_err() {
                return;
            }
        }
    });
    let wait_stderr = |needle: &str| {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!("stderr never said {needle:?}; it said {seen:#?}"),
            }
        }
    };
    let mut decide = |confidence: f64| -> serde_json::Value {
        let item = json!({"id": "w-1", "kind": "reply", "agent": "a", "text": "Hello.", "confidence": confidence});
        writeln!(stdin, "{item}").unwrap();
        stdin.flush().unwrap();
        serde_json::from_str(&stdout.next().unwrap().unwrap()).unwrap()
    };

    wait_stderr("watching");
    let policies = root.path().join("policies");
    assert!(
        policies.join(format!("{GATE}.wasm")).exists(),
        "seeded from the embedded policies"
    );
    let first = decide(0.73);
    assert_eq!(first["tier"], "self-correct");
    assert_eq!(first["generation"], 1);

    let manifest_path = policies.join(format!("{GATE}.toml"));
    let manifest = fs::read_to_string(&manifest_path).unwrap();
    atomic_write(
        &manifest_path,
        manifest
            .replacen("self-correct-below = 0.75", "self-correct-below = 0.72", 1)
            .as_bytes(),
    );
    let swapped = wait_stderr("swapped confidence-gate");
    assert!(swapped.contains("generation 2"), "{swapped}");
    let second = decide(0.73);
    assert_eq!(second["tier"], "none");
    assert_eq!(second["generation"], 2);

    fs::write(policies.join(format!("{GATE}.wasm")), b"junk").unwrap();
    let rejected = wait_stderr("rejected confidence-gate.wasm");
    assert!(rejected.contains("still serving"), "{rejected}");
    assert_eq!(decide(0.73)["generation"], 2);
}
