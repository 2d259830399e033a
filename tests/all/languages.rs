//! Policies in Python and JavaScript: the SDKs' native tests, the templates
//! from `handoff new` to a hot load, and the conformance vectors that every
//! language's build of `confidence-gate` must reproduce exactly.
//!
//! The toolchains are real: componentize-py from pip, esbuild and jco from
//! `npm ci` in `sdk/js` (`.ci/run` installs both). Nothing built is
//! committed; the ports are built from source here, with `handoff build`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use serde_json::Value;

use crate::common::*;

/// The repository (the test binary belongs to `host/cli`).
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

/// Runs `program` in `dir` and returns its exit code and all it printed.
fn run_in(dir: &Path, program: &str, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .env("PYTHONPATH", root().join("sdk/python"))
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{program} runs (install it; .ci/run does): {e}"));
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), text)
}

fn handoff_in(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    run_in(dir, env!("CARGO_BIN_EXE_handoff"), args)
}

/// `npm install` from the local cache where it can: links the SDK into the
/// project's `node_modules` and fetches jco and esbuild at most once.
fn npm_install(dir: &Path) {
    let (code, text) = run_in(
        dir,
        "npm",
        &["install", "--prefer-offline", "--no-audit", "--no-fund"],
    );
    assert_eq!(code, Some(0), "npm install in {}: {text}", dir.display());
}

/// The JavaScript port's dependencies, installed once per test process (two
/// tests need them, and two `npm install`s in one directory would race).
fn js_port_installed() -> PathBuf {
    static INSTALLED: OnceLock<PathBuf> = OnceLock::new();
    INSTALLED
        .get_or_init(|| {
            let project = root().join("plugins/confidence-gate-js");
            npm_install(&project);
            project
        })
        .clone()
}

/// A port of `confidence-gate`, built from source once per test process.
fn port(dir: &'static str) -> &'static [u8] {
    static PYTHON: OnceLock<Vec<u8>> = OnceLock::new();
    static JS: OnceLock<Vec<u8>> = OnceLock::new();
    let slot = if dir.ends_with("-py") { &PYTHON } else { &JS };
    slot.get_or_init(|| {
        let project = if dir.ends_with("-js") {
            js_port_installed()
        } else {
            root().join(dir)
        };
        let out = tempfile::tempdir().unwrap();
        let (code, text) = handoff_in(&project, &["build", "--out", out.path().to_str().unwrap()]);
        assert_eq!(code, Some(0), "handoff build {dir}: {text}");
        std::fs::read(out.path().join("confidence-gate.wasm"))
            .unwrap_or_else(|e| panic!("{dir} built no confidence-gate.wasm ({e}): {text}"))
    })
}

#[test]
fn the_sdks_and_the_ports_pass_their_native_tests() {
    let (code, text) = run_in(
        &root(),
        "python3",
        &[
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "sdk/python/tests",
            "plugins/confidence-gate-py/tests",
        ],
    );
    assert_eq!(code, Some(0), "pytest: {text}");
    assert!(text.contains(" passed"), "{text}");
    js_port_installed();
    let (code, text) = run_in(
        &root(),
        "node",
        &["--test", "sdk/js/test/", "plugins/confidence-gate-js/test/"],
    );
    assert_eq!(code, Some(0), "node --test: {text}");
    assert!(text.contains("# fail 0"), "{text}");
}

/// One plugin's answer in a decision: what the vectors pin down.
fn answer(decision: &handoff_model::Decision) -> Value {
    let verdict = serde_json::to_value(&decision.verdicts[0]).unwrap();
    assert_eq!(verdict["fault"], Value::Null, "{verdict}");
    let fields = &verdict;
    serde_json::json!({
        "classification": fields["classification"],
        "assessment": fields["assessment"],
        "verdict": fields["verdict"],
    })
}

fn gate_with(wasm: &[u8]) -> handoff_policy::Evaluator {
    evaluator(vec![handoff_policy::PluginSource {
        signatures: None,
        name: "confidence-gate".into(),
        wasm: wasm.to_vec(),
        manifest: reference("confidence-gate").manifest,
    }])
}

/// `tests/conformance/confidence-gate.jsonl`: items and the exact
/// classification, assessment and verdict the Rust build gives each.
/// `HANDOFF_BLESS=1` rewrites the expectations from the Rust build.
#[test]
fn every_language_reproduces_the_conformance_vectors() {
    let file = root().join("tests/conformance/confidence-gate.jsonl");
    let mut vectors: Vec<Value> = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(vectors.len() > 600, "{} vectors", vectors.len());
    if std::env::var_os("HANDOFF_BLESS").is_some() {
        let mut rust = gate_with(&reference("confidence-gate").wasm);
        for vector in &mut vectors {
            let item = serde_json::from_value(vector["item"].clone()).unwrap();
            vector["expect"] = answer(&decide(&mut rust, &item));
        }
        let lines: Vec<String> = vectors.iter().map(Value::to_string).collect();
        std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    }
    // Every tier the gate can give, and both anomalies, are in the vectors.
    for needle in [
        "\"none\"",
        "\"self-correct\"",
        "\"operator\"",
        "anomaly.amount",
        "anomaly.unknown-kind",
        "confidence.low",
    ] {
        assert!(
            vectors
                .iter()
                .any(|v| v["expect"].to_string().contains(needle)),
            "no vector expects {needle}"
        );
    }
    let builds: [(&str, &[u8]); 3] = [
        ("rust", &reference("confidence-gate").wasm),
        ("python", port("plugins/confidence-gate-py")),
        ("javascript", port("plugins/confidence-gate-js")),
    ];
    for (language, wasm) in builds {
        let mut gate = gate_with(wasm);
        // The Rust SDK builds handoff:policy@0.2.0 (the item's strings as
        // spans of one), Python and JavaScript 0.1.0: the same vectors hold
        // the two contract versions to the same answers.
        let contract = gate.policy_set().plugins()[0].contract();
        let built_for = if language == "rust" {
            handoff_policy::Contract::V0_2_0
        } else {
            handoff_policy::Contract::V0_1_0
        };
        assert_eq!(contract, built_for, "{language}");
        let mut differ = Vec::new();
        for vector in &vectors {
            let item = serde_json::from_value(vector["item"].clone()).unwrap();
            // Through text, as the expectations were: serde_json reads a
            // float's shortest form back to within a unit in the last place,
            // so values compare as the same text.
            let got: Value =
                serde_json::from_str(&answer(&decide(&mut gate, &item)).to_string()).unwrap();
            let expect = &vector["expect"];
            // jco's QuickJS backend lifts an s64 into a JS number, so an
            // amount beyond 2^53 minor units arrives rounded: the decision
            // (tier, reason code, labels) must still agree exactly, while
            // the amount printed in a reason may differ in its last digits.
            let same = if language == "javascript" && beyond_f64_precision(&vector["item"]) {
                got["verdict"]["tier"] == expect["verdict"]["tier"]
                    && got["verdict"]["reason_code"] == expect["verdict"]["reason_code"]
                    && got["classification"] == expect["classification"]
            } else {
                got == *expect
            };
            if !same {
                differ.push(format!(
                    "{}: expected {}\n  got {got}",
                    vector["item"]["id"], vector["expect"]
                ));
            }
        }
        assert!(
            differ.is_empty(),
            "{language}: {} of {} vectors differ:\n{}",
            differ.len(),
            vectors.len(),
            differ.join("\n")
        );
    }
}

/// Whether the item's amount is one a JS number cannot hold exactly.
fn beyond_f64_precision(item: &Value) -> bool {
    const EXACT: i64 = 1 << 53;
    item["amount"]["minor"]
        .as_i64()
        .is_some_and(|minor| !(-EXACT..=EXACT).contains(&minor))
}

/// `handoff new --lang python|js`, outside the repository: native tests,
/// build, `handoff test` (pass, then a broken fixture fails the gate), and
/// a hot load into a running server that then decides with it.
#[test]
fn python_and_js_policies_from_the_templates_test_build_and_hot_load() {
    let outside = tempfile::Builder::new()
        .prefix("handoff-new-")
        .tempdir_in(std::env::temp_dir())
        .unwrap();
    let data = tempfile::tempdir().unwrap();
    let server = crate::serve::Server::start(data.path(), &[]);
    let policies = data.path().join("policies");
    for (name, lang, native_test) in [
        ("pii-py", "python", &["python3", "-m", "pytest", "-q"][..]),
        ("pii-js", "js", &["npm", "test"][..]),
    ] {
        let (code, text) = handoff_in(outside.path(), &["new", name, "--lang", lang]);
        assert_eq!(code, Some(0), "{text}");
        let project = outside.path().join(name);
        if lang == "js" {
            npm_install(&project);
        }
        let (code, text) = run_in(&project, native_test[0], &native_test[1..]);
        assert_eq!(code, Some(0), "{name}: {text}");

        let (code, text) = handoff_in(&project, &["build"]);
        assert_eq!(code, Some(0), "{name}: {text}");
        assert!(
            project.join(format!("dist/{name}.wasm")).is_file(),
            "{text}"
        );
        let (code, text) = handoff_in(&project, &["test", "dist"]);
        assert_eq!(code, Some(0), "{name}: {text}");
        assert!(
            text.contains("  PASS  a mandated phrase goes to a human"),
            "{text}"
        );

        let manifest = project.join("dist").join(format!("{name}.toml"));
        let good = std::fs::read_to_string(&manifest).unwrap();
        let broken = good.replacen(
            "name = \"routine work proceeds\"\nexpect = \"none\"",
            "name = \"routine work proceeds\"\nexpect = \"executive\"",
            1,
        );
        assert_ne!(broken, good, "the template's first fixture changed");
        std::fs::write(&manifest, broken).unwrap();
        let (code, text) = handoff_in(&project, &["test", "dist"]);
        assert_eq!(code, Some(1), "{name}: {text}");
        assert!(
            text.contains("  FAIL  routine work proceeds: expected executive"),
            "{text}"
        );

        let (code, text) = handoff_in(&project, &["build", "--out", policies.to_str().unwrap()]);
        assert_eq!(code, Some(0), "{name}: {text}");
    }
    // Both load (a Python component compiles for a while), then decide.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let (_, listed) = server.get("/v1/policies", None);
        let serving = |name: &str| {
            listed["plugins"]
                .as_array()
                .is_some_and(|plugins| plugins.iter().any(|p| p["name"] == name))
        };
        if serving("pii-py") && serving("pii-js") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not both served: {listed}\n{}",
            server.stderr()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let item = serde_json::json!({
        "id": "lang-1", "kind": "reply", "agent": "bot", "confidence": 0.95,
        "text": "Let me speak to a human, please."
    });
    let (status, decided) = server.post("/v1/evaluate", None, &item);
    assert_eq!(status, 200, "{decided}");
    assert_eq!(decided["tier"], "operator", "{decided}");
    let fired: Vec<&str> = decided["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["verdict"]["reason_code"] == "phrase.matched")
        .filter_map(|v| v["plugin"].as_str())
        .collect();
    assert!(
        fired.contains(&"pii-py") && fired.contains(&"pii-js"),
        "{decided}"
    );

    // A Python component (about 19 MiB) fits the replay API's candidate
    // limit: backtested against the decision just recorded, with a
    // manifest whose rule no longer matches it.
    let wasm = std::fs::read(policies.join("pii-py.wasm")).unwrap();
    assert!(wasm.len() > 16 << 20, "{} bytes", wasm.len());
    let manifest = std::fs::read_to_string(policies.join("pii-py.toml"))
        .unwrap()
        .replacen("speak BEFORE/3", "shout BEFORE/3", 1);
    let (content_type, body) =
        crate::authoring::multipart(&[("component", &wasm), ("manifest", manifest.as_bytes())]);
    let (status, replayed) = server.post_as("/v1/replay?plugin=pii-py", &content_type, &body);
    assert_eq!(status, 200, "{replayed}");
    assert_eq!(replayed["report"]["replayed"], 1, "{replayed}");
}

/// What a Python or JavaScript policy prints, and the exception that stops
/// it, reach the host's log attributed to the plugin; the exception is a
/// fault handled by the failure mode, and the next item is decided as usual.
#[test]
fn python_and_js_output_and_exceptions_reach_the_plugin_log() {
    let outside = tempfile::Builder::new()
        .prefix("handoff-new-")
        .tempdir_in(std::env::temp_dir())
        .unwrap();
    let policies = outside.path().join("policies");
    for (name, lang, file, from, to) in [
        (
            "loud-py",
            "python",
            "policy.py",
            "        labels = [f\"kind.{item.kind}\"]",
            "        print(f\"classifying {item.id}\")\n        if item.text == \"boom\":\n            \
             raise ValueError(\"exploded on purpose\")\n        labels = [f\"kind.{item.kind}\"]",
        ),
        (
            "loud-js",
            "js",
            "policy.js",
            "    const labels = [`kind.${item.kind}`];",
            "    console.log('classifying', item.id);\n    if (item.text === 'boom') throw new \
             Error('exploded on purpose');\n    const labels = [`kind.${item.kind}`];",
        ),
    ] {
        let (code, text) = handoff_in(outside.path(), &["new", name, "--lang", lang]);
        assert_eq!(code, Some(0), "{text}");
        let project = outside.path().join(name);
        let source = project.join(file);
        let original = std::fs::read_to_string(&source).unwrap();
        let edited = original.replacen(from, to, 1);
        assert_ne!(edited, original, "{file} of the template changed");
        std::fs::write(&source, edited).unwrap();
        if lang == "js" {
            npm_install(&project);
        }
        let (code, text) = handoff_in(&project, &["build", "--out", policies.to_str().unwrap()]);
        assert_eq!(code, Some(0), "{name}: {text}");
    }
    let items = outside.path().join("items.jsonl");
    std::fs::write(
        &items,
        "{\"id\":\"b-1\",\"kind\":\"reply\",\"agent\":\"a\",\"text\":\"boom\",\"confidence\":0.9}\n\
         {\"id\":\"b-2\",\"kind\":\"reply\",\"agent\":\"a\",\"text\":\"fine\",\"confidence\":0.9}\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(["eval", "--no-cache", "--policies"])
        .arg(&policies)
        .arg("--input")
        .arg(&items)
        .env("HANDOFF_LOG", "debug")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let decisions: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(decisions.len(), 2, "{stdout}\n{stderr}");
    let log_lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("plugin output"))
        .collect();
    for plugin in ["loud-py", "loud-js"] {
        let mine: Vec<&&str> = log_lines.iter().filter(|l| l.contains(plugin)).collect();
        assert!(
            mine.iter().any(|l| l.contains("classifying b-2")),
            "{plugin}'s output not logged:\n{stderr}"
        );
        assert!(
            mine.iter().any(|l| l.contains("exploded on purpose")),
            "{plugin}'s exception not logged:\n{stderr}"
        );
        for (decision, faulted) in [(&decisions[0], true), (&decisions[1], false)] {
            let verdict = decision["verdicts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["plugin"] == plugin)
                .unwrap();
            assert_eq!(verdict["fault"].is_object(), faulted, "{plugin}: {verdict}");
        }
    }
    assert!(
        log_lines
            .iter()
            .any(|l| l.contains("loud-py") && l.contains("Traceback")),
        "no traceback:\n{stderr}"
    );
    // The boom item escalates through the failure mode; the fine one proceeds.
    assert_ne!(decisions[0]["tier"], "none", "{}", decisions[0]);
    assert_eq!(decisions[1]["tier"], "none", "{}", decisions[1]);
}
