//! Helpers shared by the integration tests.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, OnceLock};

use handoff_model::{Decision, WorkItem};
use handoff_pipeline::reference;
use handoff_policy::{Evaluator, PluginSource, PolicySet, Runtime};
use serde_json::{Value, json};

/// Cranelift compiles a new version of a plugin costs: its component, the
/// instrumented copy its `configure` runs in at load, and the configured
/// snapshot its instances start from. Each is cached apart.
pub const COMPILES_PER_VERSION: u64 = 3;

/// One runtime per test binary: compiling components is the slow part.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new().expect("the runtime starts"))
}

/// The embedded source of reference policy `name`.
pub fn reference(name: &str) -> PluginSource {
    reference::sources()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no reference policy {name}"))
}

/// `source` with its manifest edited by replacing `from` with `to`.
pub fn with_manifest_edit(mut source: PluginSource, from: &str, to: &str) -> PluginSource {
    let manifest = source
        .manifest
        .take()
        .expect("reference policies ship a manifest");
    assert!(
        manifest.contains(from),
        "manifest of {} has no {from:?}",
        source.name
    );
    source.manifest = Some(manifest.replacen(from, to, 1));
    source
}

/// The hostile test plugin as `name`, misbehaving in `mode`, with extra
/// top-level manifest lines.
pub fn hostile(name: &str, mode: &str, manifest: &str) -> PluginSource {
    PluginSource {
        signatures: None,
        name: name.into(),
        wasm: handoff_test_fixtures::HOSTILE.to_vec(),
        // One component under many names, each a declared instance.
        manifest: Some(format!(
            "policy = \"hostile\"\n{manifest}\n[config]\nmode = \"{mode}\"\n"
        )),
    }
}

/// Runs `work` on a thread of its own and returns its result, failing the
/// test if it has not finished after `secs` seconds: a guard against a hang,
/// never a measure of speed (the limit is far above what the work takes).
pub fn within<T: Send + 'static>(secs: u64, work: impl FnOnce() -> T + Send + 'static) -> T {
    let (done, result) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(work());
    });
    result
        .recv_timeout(std::time::Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("still running after {secs} s: the host is hanging"))
}

/// A policy set of exactly these sources; every one must load.
pub fn set_of(sources: Vec<PluginSource>) -> Arc<PolicySet> {
    let set = PolicySet::load(runtime(), sources, 1);
    assert!(
        set.rejected().is_empty(),
        "unexpected rejections: {:?}",
        set.rejected()
    );
    Arc::new(set)
}

/// An evaluator over exactly these sources.
pub fn evaluator(sources: Vec<PluginSource>) -> Evaluator {
    Evaluator::new(set_of(sources))
}

/// A work item from the fields that matter to a test, with defaults for the rest.
pub fn item(fields: Value) -> WorkItem {
    let mut base = json!({
        "id": "t-1",
        "kind": "reply",
        "agent": "test-agent",
        "text": "A routine answer.",
        "confidence": 0.9,
    });
    let (Value::Object(base_map), Value::Object(extra)) = (&mut base, fields) else {
        panic!("item fields must be a JSON object");
    };
    base_map.extend(extra);
    WorkItem::from_json(&base.to_string()).expect("test items are valid")
}

/// A refund of `minor` units of `currency` at confidence 0.9.
pub fn refund(minor: i64, currency: &str) -> WorkItem {
    item(json!({"kind": "refund", "amount": {"minor": minor, "currency": currency}}))
}

/// Evaluates `item`, failing the test on an evaluation error.
pub fn decide(evaluator: &mut Evaluator, item: &WorkItem) -> Decision {
    evaluator.evaluate(item).expect("evaluation succeeds")
}

/// Writes the reference policies into `dir`.
pub fn write_reference_policies(dir: &Path) {
    reference::write_to(dir).expect("policies are written");
}

/// Runs the real `handoff` binary with `args`, feeding `stdin`.
pub fn handoff(args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_handoff"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("handoff starts");
    let mut pipe = child.stdin.take().expect("stdin is piped");
    pipe.write_all(stdin.as_bytes()).expect("stdin is written");
    drop(pipe);
    child.wait_with_output().expect("handoff finishes")
}

/// The sample workload's items, from `examples/sample.jsonl`.
pub fn sample_items() -> Vec<WorkItem> {
    std::fs::read_to_string(examples_dir().join("sample.jsonl"))
        .expect("the sample is readable")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| WorkItem::from_json(l).expect("the sample is valid"))
        .collect()
}

/// The repository's `examples/` directory.
pub fn examples_dir() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

/// A small tmpfs, unmounted when dropped.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(at: &Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "this test mounts a tmpfs to fill a disk for real; it needs root"
        );
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `dir` to the last byte.
pub fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let mut file = std::fs::File::create(&filler).unwrap();
    let block = vec![0u8; 64 * 1024];
    while file.write_all(&block).is_ok() {}
    let small = [0u8; 512];
    while file.write_all(&small).is_ok() {}
    while file.write_all(&[0u8]).is_ok() {}
    filler
}

/// A two-person trust configuration in `root`: keys `alice` (author) and
/// `bob` (reviewer) generated under `root/keys`, and `root/trust.toml`
/// trusting them, for tests that sign policies the way an operator would.
pub struct TwoPerson {
    /// The trust configuration's path, for `--trust`.
    pub trust: PathBuf,
    /// The author's key.
    pub alice: handoff_trust::SignerKey,
    /// The reviewer's key.
    pub bob: handoff_trust::SignerKey,
}

impl TwoPerson {
    pub fn new(root: &Path) -> TwoPerson {
        let keys = root.join("keys");
        let (alice, ..) = handoff_trust::SignerKey::generate(&keys.join("alice")).unwrap();
        let (bob, ..) = handoff_trust::SignerKey::generate(&keys.join("bob")).unwrap();
        let trust = root.join("trust.toml");
        std::fs::write(
            &trust,
            format!(
                "activation = \"two-person\"\n[keys.alice]\npublic-key = \"{}\"\nroles = [\"author\"]\n\
                 [keys.bob]\npublic-key = \"{}\"\nroles = [\"reviewer\"]\n",
                alice.public(),
                bob.public()
            ),
        )
        .unwrap();
        TwoPerson { trust, alice, bob }
    }

    /// `--trust`'s argument.
    pub fn trust_arg(&self) -> &str {
        self.trust.to_str().unwrap()
    }
}

/// The signature file (`NAME.sig`) of `wasm` with `manifest`, signed by
/// `author` and by `reviewer` in those roles.
pub fn signed_by_two(
    wasm: &[u8],
    manifest: Option<&str>,
    author: &handoff_trust::SignerKey,
    reviewer: &handoff_trust::SignerKey,
) -> String {
    use handoff_trust::{Role, Signature, SignatureFile, UnitDigests};
    let digests = UnitDigests::of(wasm, manifest);
    let now = chrono::Utc::now();
    let mut file = SignatureFile::default();
    file.add(Signature::sign(author, &digests, Role::Author, now));
    file.add(Signature::sign(reviewer, &digests, Role::Reviewer, now));
    file.to_text()
}
