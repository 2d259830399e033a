//! Trusted policies: signed components, two-person activation and pinned
//! digests, on a real `handoff serve` watching a real directory, with keys
//! made and signatures written by the real `handoff keygen` and `handoff
//! sign`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::authoring::multipart;
use crate::common::*;
use crate::serve::Server;
use handoff_model::LifecycleEvent;
use handoff_policy::reload::{LifecycleSink, LivePolicies};
use handoff_policy::{Runtime, digest_of};
use handoff_trust::{Role, SignatureFile, SignerKey, Trust};
use serde_json::Value;

const GATE: &str = "confidence-gate";
const TIMEOUT: Duration = Duration::from_secs(120);

/// Keys made with `handoff keygen` in `dir`, by holder name.
fn keygen(dir: &Path, name: &str) -> PathBuf {
    let stem = dir.join(name);
    let made = handoff(&["keygen", stem.to_str().unwrap()], "");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    stem
}

fn public(stem: &Path) -> String {
    fs::read_to_string(stem.with_extension("pub"))
        .unwrap()
        .trim()
        .to_string()
}

fn key_id(stem: &Path) -> String {
    SignerKey::from_file(&stem.with_extension("key"))
        .unwrap()
        .public()
        .id()
        .to_string()
}

/// Signs `dir/NAME.wasm` (with its manifest) with `handoff sign`.
fn sign(component: &Path, key: &Path, role: &str) {
    let signed = handoff(
        &[
            "sign",
            component.to_str().unwrap(),
            "--key",
            key.with_extension("key").to_str().unwrap(),
            "--role",
            role,
        ],
        "",
    );
    assert!(
        signed.status.success(),
        "{}",
        String::from_utf8_lossy(&signed.stderr)
    );
}

/// Replaces `path` as deployment tools do: a hidden temporary renamed over.
fn put(path: &Path, bytes: &[u8]) {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap().to_string_lossy()
    ));
    fs::write(&tmp, bytes).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// Every lifecycle record the server's audit trail holds about the gate.
fn gate_records(server: &Server) -> Vec<Value> {
    let (status, trail) = server.get(&format!("/v1/audit?plugin={GATE}&limit=10000"), None);
    assert_eq!(status, 200, "{trail}");
    trail
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["type"] == "lifecycle")
        .map(|r| r["event"].clone())
        .collect()
}

/// Waits for the audit trail to record the refusal of component `digest`,
/// and returns its reason.
fn wait_refused(server: &Server, digest: &str) -> String {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(event) = gate_records(server)
            .into_iter()
            .find(|e| e["event"] == "rejected" && e["digest"] == digest)
        {
            return event["reason"].as_str().unwrap().to_string();
        }
        assert!(
            Instant::now() < deadline,
            "{digest} was never refused; stderr:\n{}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn serving_gate(server: &Server) -> (String, Value) {
    let (status, policies) = server.get("/v1/policies", None);
    assert_eq!(status, 200, "{policies}");
    let gate = policies["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == GATE)
        .cloned()
        .unwrap_or_else(|| panic!("{GATE} does not serve: {policies}"));
    (gate["digest"].as_str().unwrap().to_string(), gate)
}

#[test]
fn under_two_person_only_an_author_and_a_different_reviewer_make_a_version_serve() {
    let root = tempfile::tempdir().unwrap();
    let keys = root.path().join("keys");
    let alice = keygen(&keys, "alice");
    let bob = keygen(&keys, "bob");
    let carol = keygen(&keys, "carol");
    let dave = keygen(&keys, "dave");
    let eve = keygen(&keys, "eve");
    let trust = root.path().join("trust.toml");
    fs::write(
        &trust,
        format!(
            "activation = \"two-person\"\n\
             [keys.alice]\npublic-key = \"{}\"\nroles = [\"author\", \"reviewer\"]\n\
             [keys.bob]\npublic-key = \"{}\"\nroles = [\"reviewer\"]\n\
             [keys.carol]\npublic-key = \"{}\"\nroles = [\"reviewer\"]\nrevoked = true\n\
             [keys.dave]\npublic-key = \"{}\"\nroles = [\"reviewer\"]\nexpires = \"2020-01-01T00:00:00Z\"\n",
            public(&alice),
            public(&bob),
            public(&carol),
            public(&dave)
        ),
    )
    .unwrap();

    // The reference policies, each signed by its author and its reviewer.
    let data = root.path().join("data");
    let dir = data.join("policies");
    write_reference_policies(&dir);
    for name in [GATE, "compliance-limits"] {
        let component = dir.join(format!("{name}.wasm"));
        sign(&component, &alice, "author");
        sign(&component, &bob, "reviewer");
    }
    let server = Server::start(&data, &["--trust", trust.to_str().unwrap()]);
    let (original, gate) = serving_gate(&server);
    let (_, policies) = server.get("/v1/policies", None);
    assert_eq!(policies["activation"], "two-person", "{policies}");
    assert_eq!(policies["locked"], false);
    assert_eq!(gate["trust"]["met"], true, "{gate}");
    let signers: Vec<(&str, &str)> = gate["trust"]["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["holder"].as_str().unwrap(), s["role"].as_str().unwrap()))
        .collect();
    assert_eq!(signers, [("alice", "author"), ("bob", "reviewer")]);

    // Each case is a new build of the gate, its signatures and manifest
    // written first and the component last, so no half-written case is a
    // version that could serve.
    let gate_wasm = fs::read(dir.join(format!("{GATE}.wasm"))).unwrap();
    let manifest = fs::read_to_string(dir.join(format!("{GATE}.toml"))).unwrap();
    let staging = root.path().join("staging");
    fs::create_dir_all(&staging).unwrap();
    let mut build = 0;
    // A build of the gate, signed in staging by `signers`; its files.
    let mut signed_build = |signers: &[(&Path, &str)], manifest: &str| {
        build += 1;
        let wasm = handoff_test_fixtures::rebuilt(&gate_wasm, build);
        let component = staging.join(format!("{GATE}.wasm"));
        fs::write(&component, &wasm).unwrap();
        fs::write(staging.join(format!("{GATE}.toml")), manifest).unwrap();
        let _ = fs::remove_file(staging.join(format!("{GATE}.sig")));
        for (key, role) in signers {
            sign(&component, key, role);
        }
        let sig = fs::read_to_string(staging.join(format!("{GATE}.sig"))).ok();
        (wasm, sig)
    };
    let install = |wasm: &[u8], sig: Option<&str>, manifest: &str| {
        put(&dir.join(format!("{GATE}.toml")), manifest.as_bytes());
        match sig {
            Some(text) => put(&dir.join(format!("{GATE}.sig")), text.as_bytes()),
            None => {
                let _ = fs::remove_file(dir.join(format!("{GATE}.sig")));
            }
        }
        put(&dir.join(format!("{GATE}.wasm")), wasm);
        digest_of(wasm)
    };
    let mut refusals = Vec::new();
    let mut expect_refused = |digest: String, needle: &str| {
        let reason = wait_refused(&server, &digest);
        assert!(reason.contains(needle), "expected {needle:?} in: {reason}");
        assert_eq!(
            serving_gate(&server).0,
            original,
            "the signed version keeps serving"
        );
        refusals.push(reason);
    };

    // Unsigned.
    let (wasm, _) = signed_build(&[], &manifest);
    expect_refused(
        install(&wasm, None, &manifest),
        &format!("has no signature that counts (there is no {GATE}.sig"),
    );

    // Wrongly signed: bob's reviewer signature replaced by one he did not make.
    let (wasm, sig) = signed_build(&[(&alice, "author"), (&bob, "reviewer")], &manifest);
    let mut forged = SignatureFile::parse(&sig.unwrap()).unwrap();
    forged.signatures[1].sig = forged.signatures[0].sig.clone();
    expect_refused(
        install(&wasm, Some(&forged.to_text()), &manifest),
        &format!("does not verify with key {} (bob)", key_id(&bob)),
    );

    // Signed, then the component changed (another build put in its place).
    let (_, sig) = signed_build(&[(&alice, "author"), (&bob, "reviewer")], &manifest);
    let (other, _) = signed_build(&[], &manifest);
    expect_refused(
        install(&other, sig.as_deref(), &manifest),
        "the component changed after it was signed",
    );

    // One signer in both roles.
    let (wasm, sig) = signed_build(&[(&alice, "author"), (&alice, "reviewer")], &manifest);
    expect_refused(
        install(&wasm, sig.as_deref(), &manifest),
        &format!(
            "key {} (alice) signed {GATE} as both author and reviewer",
            key_id(&alice)
        ),
    );

    // A key the trust store does not list.
    let (wasm, sig) = signed_build(&[(&alice, "author"), (&eve, "reviewer")], &manifest);
    expect_refused(
        install(&wasm, sig.as_deref(), &manifest),
        &format!("key {} is not in the trust store", key_id(&eve)),
    );

    // A revoked key.
    let (wasm, sig) = signed_build(&[(&alice, "author"), (&carol, "reviewer")], &manifest);
    expect_refused(
        install(&wasm, sig.as_deref(), &manifest),
        &format!("key {} (carol) is revoked", key_id(&carol)),
    );

    // An expired key.
    let (wasm, sig) = signed_build(&[(&alice, "author"), (&dave, "reviewer")], &manifest);
    expect_refused(
        install(&wasm, sig.as_deref(), &manifest),
        &format!("key {} (dave) expired at 2020-01-01", key_id(&dave)),
    );

    // Signed, then the manifest edited: a threshold loosened after review.
    let (wasm, sig) = signed_build(&[(&alice, "author"), (&bob, "reviewer")], &manifest);
    let loosened = format!("{manifest}\n# loosened after review\n");
    expect_refused(
        install(&wasm, sig.as_deref(), &loosened),
        "the manifest changed after it was signed",
    );

    // A replay candidate obeys the same policy: unsigned, it is refused.
    let (content_type, body) = multipart(&[("component", &wasm)]);
    let (status, refused) =
        server.post_as(&format!("/v1/replay?plugin={GATE}"), &content_type, &body);
    assert_eq!(status, 422, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(message.contains("activation `two-person`"), "{message}");

    // Correctly signed by alice and bob: it serves. The component goes in
    // first and the signed manifest last.
    let (good, sig) = signed_build(&[(&alice, "author"), (&bob, "reviewer")], &manifest);
    let good_digest = digest_of(&good);
    put(&dir.join(format!("{GATE}.wasm")), &good);
    put(
        &dir.join(format!("{GATE}.sig")),
        sig.as_deref().unwrap().as_bytes(),
    );
    put(&dir.join(format!("{GATE}.toml")), manifest.as_bytes());
    let deadline = Instant::now() + TIMEOUT;
    while serving_gate(&server).0 != good_digest {
        assert!(
            Instant::now() < deadline,
            "the signed build never served:\n{}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, gate) = serving_gate(&server);
    assert_eq!(gate["trust"]["met"], true, "{gate}");

    // The audit trail: every refusal, and the generation that serves the
    // signed build with both key ids.
    let records = gate_records(&server);
    for reason in &refusals {
        assert!(
            records
                .iter()
                .any(|e| e["event"] == "rejected" && e["reason"] == reason.as_str()),
            "not audited: {reason}"
        );
    }
    let generation = records
        .iter()
        .rev()
        .find(|e| e["event"] == "generation")
        .expect("a generation record");
    assert_eq!(generation["activation"], "two-person");
    let active = generation["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["plugin"] == GATE)
        .unwrap();
    assert_eq!(active["digest"], good_digest.as_str(), "{generation}");
    let keys: Vec<(&str, &str)> = active["signers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["key"].as_str().unwrap(), s["role"].as_str().unwrap()))
        .collect();
    let (alice_id, bob_id) = (key_id(&alice), key_id(&bob));
    assert_eq!(
        keys,
        [(alice_id.as_str(), "author"), (bob_id.as_str(), "reviewer")]
    );
    let (status, _) = server.stop();
    assert!(status.success());
}

/// Lifecycle events, as they happen.
#[derive(Default)]
struct Events(Mutex<Vec<LifecycleEvent>>);

impl Events {
    fn sink(self: &Arc<Self>) -> Arc<dyn LifecycleSink> {
        let events = self.clone();
        Arc::new(move |event: &LifecycleEvent| events.0.lock().unwrap().push(event.clone()))
    }

    fn rejection(&self, plugin: &str) -> Option<String> {
        self.0.lock().unwrap().iter().rev().find_map(|e| match e {
            LifecycleEvent::Rejected {
                plugin: p, reason, ..
            } if p == plugin => Some(reason.clone()),
            _ => None,
        })
    }
}

fn trusting(file: &Path) -> Runtime {
    Runtime::new()
        .unwrap()
        .with_trust(Trust::from_file(file).unwrap())
}

#[test]
fn a_lock_file_pins_what_serves_shadow_versions_included() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("policies");
    write_reference_policies(&dir);
    let locked = handoff(&["lock", dir.to_str().unwrap()], "");
    assert!(
        locked.status.success(),
        "{}",
        String::from_utf8_lossy(&locked.stderr)
    );
    let lock = root.path().join("policies.lock");
    let trust = root.path().join("trust.toml");
    fs::write(&trust, "lock = \"policies.lock\"\n").unwrap();
    assert!(
        fs::read_to_string(&lock)
            .unwrap()
            .contains("[units.confidence-gate]")
    );

    let events = Arc::new(Events::default());
    let live = LivePolicies::open(trusting(&trust), &dir, events.sink()).unwrap();
    let original = live.current().get(GATE).unwrap().digest.clone();

    // A rebuild of the gate is not the pinned version.
    let rebuilt =
        handoff_test_fixtures::rebuilt(&fs::read(dir.join(format!("{GATE}.wasm"))).unwrap(), 1);
    put(&dir.join(format!("{GATE}.wasm")), &rebuilt);
    let outcome = live.reload([GATE]);
    assert_eq!(outcome.rejected, [GATE]);
    let reason = events.rejection(GATE).unwrap();
    assert!(
        reason.starts_with(&format!(
            "not pinned: {GATE}.wasm is {}",
            digest_of(&rebuilt)
        )),
        "{reason}"
    );
    assert_eq!(live.current().get(GATE).unwrap().digest, original);

    // Nor is a shadow version the lock does not list.
    let shadow = format!("{GATE}@candidate");
    let manifest = fs::read_to_string(dir.join(format!("{GATE}.toml"))).unwrap();
    put(
        &dir.join(format!("{shadow}.toml")),
        format!("mode = \"shadow\"\n{manifest}").as_bytes(),
    );
    put(&dir.join(format!("{shadow}.wasm")), &rebuilt);
    let outcome = live.reload([shadow.as_str()]);
    assert_eq!(outcome.rejected, [shadow.as_str()]);
    let reason = events.rejection(&shadow).unwrap();
    assert!(
        reason.contains(&format!("`{shadow}` is not in the lock file")),
        "{reason}"
    );
    assert!(live.current().shadows().is_empty());

    // `handoff verify` agrees, and exits 1.
    let verified = handoff(
        &[
            "verify",
            dir.to_str().unwrap(),
            "--trust",
            trust.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(verified.status.code(), Some(1));
    let report = String::from_utf8_lossy(&verified.stdout);
    assert!(report.contains(&format!("{GATE}: REFUSED")), "{report}");
    assert!(report.contains("compliance-limits: admitted"), "{report}");
    let gate = dir.join(format!("{GATE}.wasm"));
    let inspected = handoff(
        &[
            "inspect",
            gate.to_str().unwrap(),
            "--trust",
            trust.to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(inspected.status.code(), Some(1));
    let report = String::from_utf8_lossy(&inspected.stdout);
    assert!(report.contains("lock       NOT pinned"), "{report}");
    // Without the trust configuration, the same files are admitted.
    let inspected = handoff(&["inspect", gate.to_str().unwrap()], "");
    assert!(
        inspected.status.success(),
        "{}",
        String::from_utf8_lossy(&inspected.stdout)
    );
}

#[test]
fn a_host_made_manifest_edit_cannot_promote_past_two_person() {
    let root = tempfile::tempdir().unwrap();
    let TwoPerson { trust, alice, bob } = TwoPerson::new(root.path());
    let dir = root.path().join("policies");
    write_reference_policies(&dir);
    let sign_unit = |name: &str| {
        let wasm = fs::read(dir.join(format!("{name}.wasm"))).unwrap();
        let manifest = fs::read_to_string(dir.join(format!("{name}.toml"))).ok();
        let signatures = signed_by_two(&wasm, manifest.as_deref(), &alice, &bob);
        fs::write(dir.join(format!("{name}.sig")), signatures).unwrap();
    };
    sign_unit(GATE);
    sign_unit("compliance-limits");
    // A signed shadow version of the gate.
    let shadow = format!("{GATE}@candidate");
    let rebuilt =
        handoff_test_fixtures::rebuilt(&fs::read(dir.join(format!("{GATE}.wasm"))).unwrap(), 7);
    let manifest = fs::read_to_string(dir.join(format!("{GATE}.toml"))).unwrap();
    fs::write(dir.join(format!("{shadow}.wasm")), &rebuilt).unwrap();
    fs::write(
        dir.join(format!("{shadow}.toml")),
        format!("mode = \"shadow\"\n{manifest}"),
    )
    .unwrap();
    sign_unit(&shadow);

    let events = Arc::new(Events::default());
    let live = LivePolicies::open(trusting(&trust), &dir, events.sink()).unwrap();
    assert_eq!(
        live.current().shadows().len(),
        1,
        "{:?}",
        events.0.lock().unwrap()
    );
    let enforcing = live.current().get(GATE).unwrap().digest.clone();
    let status = live.status();
    let serving = status.iter().find(|s| s.plugin == GATE).unwrap();
    let roles: Vec<Role> = serving
        .serving
        .as_ref()
        .unwrap()
        .signers
        .iter()
        .map(|s| s.role)
        .collect();
    assert_eq!(roles, [Role::Author, Role::Reviewer]);

    // Promotion rewrites both manifests, which voids their signatures.
    let before: Vec<Vec<u8>> = [GATE, shadow.as_str()]
        .iter()
        .flat_map(|n| {
            ["wasm", "toml", "sig"].map(|e| fs::read(dir.join(format!("{n}.{e}"))).unwrap())
        })
        .collect();
    let refused = live.promote(&shadow, "ops").unwrap_err().to_string();
    assert!(
        refused.contains("a host-made manifest carries no signature"),
        "{refused}"
    );
    assert_eq!(live.current().get(GATE).unwrap().digest, enforcing);
    let after: Vec<Vec<u8>> = [GATE, shadow.as_str()]
        .iter()
        .flat_map(|n| {
            ["wasm", "toml", "sig"].map(|e| fs::read(dir.join(format!("{n}.{e}"))).unwrap())
        })
        .collect();
    assert!(before == after, "a refused promotion changes no file");
}
