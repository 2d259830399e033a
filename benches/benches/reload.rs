//! Hot-reload latency: from the atomic rename of a new policy version to
//! that version serving.
//!
//! Groups (each id is `group/function`):
//! - `reload/watched/{warm-cache,cold-cache}`: the whole path an operator
//!   sees: rename, file event, the default debounce, validation, swap;
//! - `reload/direct/{warm-cache,cold-cache}`: `LivePolicies::reload` alone:
//!   read, compile or load from the cache, link, trial-run, run the
//!   manifest's fixtures, publish the new generation;
//! - `reload/direct/warm-cache-two-person`: the same as `warm-cache` on a
//!   host whose activation policy is `two-person`, every version signed by
//!   an author and a reviewer: what the trust gate adds to a swap.
//!
//! Warm cache: the new version was seen before, so its compiled artifact is
//! on disk. Cold cache: a version never seen, compiled with Cranelift.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use handoff_model::LifecycleEvent;
use handoff_pipeline::reference;
use handoff_policy::Runtime;
use handoff_policy::reload::{LivePolicies, WatchOptions, Watcher};
use handoff_test_fixtures::rebuilt;
use handoff_trust::{
    Activation, Role, Signature, SignatureFile, SignerKey, Trust, TrustConfig, TrustedKey,
    UnitDigests,
};

const GATE: &str = "confidence-gate";

/// An author's and a reviewer's keys, and the `two-person` policy that
/// trusts them.
struct Signers {
    author: SignerKey,
    reviewer: SignerKey,
    trust: Trust,
}

impl Signers {
    fn new(keys: &std::path::Path) -> Signers {
        let (author, ..) = SignerKey::generate(&keys.join("author")).expect("a key");
        let (reviewer, ..) = SignerKey::generate(&keys.join("reviewer")).expect("a key");
        let trusted = |name: &str, key: &SignerKey, role| TrustedKey {
            name: name.into(),
            public: key.public(),
            id: key.public().id(),
            roles: [role].into(),
            expires: None,
            revoked: false,
        };
        let trust = Trust::new(TrustConfig {
            activation: Activation::TwoPerson,
            lock: None,
            keys: vec![
                trusted("author", &author, Role::Author),
                trusted("reviewer", &reviewer, Role::Reviewer),
            ],
        })
        .expect("no lock to read");
        Signers {
            author,
            reviewer,
            trust,
        }
    }

    /// The signature file of `wasm` with `manifest`, signed in both roles.
    fn sign(&self, wasm: &[u8], manifest: Option<&str>) -> String {
        let digests = UnitDigests::of(wasm, manifest);
        let mut file = SignatureFile::default();
        let now = chrono::Utc::now();
        file.add(Signature::sign(&self.author, &digests, Role::Author, now));
        file.add(Signature::sign(
            &self.reviewer,
            &digests,
            Role::Reviewer,
            now,
        ));
        file.to_text()
    }
}

/// A policy directory with the reference policies, served with a cache,
/// and, with signers, under their `two-person` policy.
struct Host {
    _root: tempfile::TempDir,
    wasm_path: PathBuf,
    live: Arc<LivePolicies>,
    base: Vec<u8>,
    signers: Option<Signers>,
    manifest: String,
}

impl Host {
    fn new() -> Host {
        Host::with_signers(false)
    }

    fn with_signers(signed: bool) -> Host {
        let root = tempfile::tempdir().expect("a temporary directory");
        let dir = root.path().join("policies");
        reference::write_to(&dir).expect("policies are written");
        let signers = signed.then(|| Signers::new(&root.path().join("keys")));
        let mut runtime = Runtime::new()
            .expect("the runtime starts")
            .with_cache(&root.path().join("cache"))
            .expect("the cache opens");
        if let Some(signers) = &signers {
            runtime = runtime.with_trust(signers.trust.clone());
            for source in reference::sources() {
                let sig = signers.sign(&source.wasm, source.manifest.as_deref());
                std::fs::write(dir.join(format!("{}.sig", source.name)), sig)
                    .expect("the signatures are written");
            }
        }
        let manifest =
            std::fs::read_to_string(dir.join(format!("{GATE}.toml"))).expect("a manifest");
        let quiet = Arc::new(|_: &LifecycleEvent| {});
        let live = LivePolicies::open(runtime, &dir, quiet).expect("the policies load");
        let wasm_path = dir.join(format!("{GATE}.wasm"));
        let base = std::fs::read(&wasm_path).expect("the gate is there");
        Host {
            _root: root,
            wasm_path,
            live,
            base,
            signers,
            manifest,
        }
    }

    /// Installs `bytes` (signed first, on a signed host) by atomic rename
    /// and returns when the rename is done.
    fn install(&self, bytes: &[u8]) {
        if let Some(signers) = &self.signers {
            let sig = self.wasm_path.with_extension("sig");
            let tmp = self.wasm_path.with_file_name(format!(".{GATE}.sig.tmp"));
            std::fs::write(&tmp, signers.sign(bytes, Some(&self.manifest)))
                .expect("the signatures are written");
            std::fs::rename(&tmp, &sig).expect("the rename succeeds");
        }
        let tmp = self.wasm_path.with_file_name(format!(".{GATE}.wasm.tmp"));
        std::fs::write(&tmp, bytes).expect("the temporary is written");
        std::fs::rename(&tmp, &self.wasm_path).expect("the rename succeeds");
    }

    fn serving(&self) -> String {
        self.live
            .current()
            .get(GATE)
            .map(|p| p.digest.clone())
            .unwrap_or_default()
    }
}

fn digest(bytes: &[u8]) -> String {
    handoff_policy::digest_of(bytes)
}

/// Versions to alternate between, each compiled once before timing.
fn warm_versions(host: &Host) -> [Vec<u8>; 2] {
    let versions = [rebuilt(&host.base, 1), rebuilt(&host.base, 2)];
    for version in &versions {
        host.install(version);
        host.live.reload([GATE]);
        assert_eq!(host.serving(), digest(version), "the version loads");
    }
    versions
}

/// A version never seen before.
fn cold_version(host: &Host, counter: &mut u32) -> Vec<u8> {
    *counter += 1;
    rebuilt(&host.base, 1_000_000 + *counter)
}

/// Times `LivePolicies::reload` alone, alternating two versions seen
/// before.
fn warm_swaps(host: &Host, warm: &[Vec<u8>; 2], turn: &mut usize, iters: u64) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        *turn += 1;
        let version = &warm[*turn % 2];
        host.install(version);
        let started = Instant::now();
        host.live.reload([GATE]);
        total += started.elapsed();
        assert_eq!(host.serving(), digest(version));
    }
    total
}

fn direct(c: &mut Criterion) {
    let mut group = c.benchmark_group("reload/direct");
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    let host = Host::new();
    let warm = warm_versions(&host);
    let mut turn = 0usize;
    group.bench_function("warm-cache", |b| {
        b.iter_custom(|iters| warm_swaps(&host, &warm, &mut turn, iters))
    });
    let signed = Host::with_signers(true);
    let signed_warm = warm_versions(&signed);
    group.bench_function("warm-cache-two-person", |b| {
        b.iter_custom(|iters| warm_swaps(&signed, &signed_warm, &mut turn, iters))
    });
    let mut counter = 0;
    group.bench_function("cold-cache", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let version = cold_version(&host, &mut counter);
                host.install(&version);
                let started = Instant::now();
                host.live.reload([GATE]);
                total += started.elapsed();
                assert_eq!(host.serving(), digest(&version));
            }
            total
        })
    });
    group.finish();
}

/// Times from the rename to `bytes` serving, through the watcher.
fn rename_to_serving(host: &Host, bytes: &[u8]) -> Duration {
    let expected = digest(bytes);
    host.install(bytes);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(60);
    while host.serving() != expected {
        assert!(Instant::now() < deadline, "the new version never served");
        std::thread::sleep(Duration::from_micros(100));
    }
    started.elapsed()
}

fn watched(c: &mut Criterion) {
    let mut group = c.benchmark_group("reload/watched");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(4));
    let host = Host::new();
    let warm = warm_versions(&host);
    let _watcher =
        Watcher::start(host.live.clone(), WatchOptions::default()).expect("the watch starts");
    let mut turn = 0usize;
    group.bench_function("warm-cache", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    turn += 1;
                    rename_to_serving(&host, &warm[turn % 2])
                })
                .sum()
        })
    });
    let mut counter = 0;
    group.bench_function("cold-cache", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| rename_to_serving(&host, &cold_version(&host, &mut counter)))
                .sum()
        })
    });
    group.finish();
}

criterion_group!(benches, direct, watched);
criterion_main!(benches);
