//! Decisions per second with the audit trail in each durability mode,
//! against the same evaluations with no audit at all.
//!
//! Groups (each id is `group/function`):
//! - `audit/{none,off,batch,sync}`: evaluate a batch of sample items with
//!   both reference policies and, unless `none`, append each decision to a
//!   hash-chained log on disk;
//! - `audit/batch-2-threads`: the batch split over two workers sharing one
//!   log, the way a server would use it.
//!
//! The log lives under the target directory, on the same disk as the build,
//! never in a RAM-backed temporary directory where `fsync` costs nothing.

use std::path::PathBuf;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use handoff_audit::record::{GENESIS, encode};
use handoff_audit::{AuditLog, AuditOptions, Body, DecisionRecord, Durability};
use handoff_benches::*;
use handoff_policy::{Evaluator, Runtime};

/// Items per measured iteration.
const BATCH: usize = 100;

fn log_root() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("bench-audit")
}

fn audit(c: &mut Criterion) {
    let runtime = Runtime::new().expect("the runtime starts");
    let set = set(&runtime, &POLICIES, "");
    let items = batch(BATCH);
    let root = log_root();
    std::fs::create_dir_all(&root).expect("the bench directory is writable");
    let mut group = c.benchmark_group("audit");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);

    let mut evaluator = Evaluator::new(set.clone());
    group.bench_function("none", |b| {
        b.iter(|| {
            for item in &items {
                std::hint::black_box(evaluator.evaluate(item).expect("evaluates"));
            }
        })
    });
    for (name, durability) in [
        ("off", Durability::Off),
        ("batch", Durability::Batch),
        ("sync", Durability::Sync),
    ] {
        let dir = tempfile::tempdir_in(&root).expect("a log directory");
        let log = AuditLog::open(
            dir.path(),
            AuditOptions {
                durability,
                ..AuditOptions::default()
            },
        )
        .expect("the log opens");
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter(|| {
                for item in &items {
                    let decision = evaluator.evaluate(item).expect("evaluates");
                    log.record_decision(item, &decision, None).expect("records");
                }
            })
        });
    }

    // The CPU part of a record alone: serialize and hash, no I/O.
    let decisions: Vec<_> = items
        .iter()
        .map(|item| (item, evaluator.evaluate(item).expect("evaluates")))
        .collect();
    group.bench_function("encode-only", |b| {
        b.iter(|| {
            for (item, decision) in &decisions {
                let body = Body::Decision(Box::new(DecisionRecord {
                    generation: decision.generation,
                    digests: Default::default(),
                    principal: None,
                    item: serde_json::to_value(item).expect("serializes"),
                    masked: Vec::new(),
                    replayable: true,
                    decision: decision.clone(),
                }));
                let json = serde_json::to_string(&body).expect("serializes");
                std::hint::black_box(encode(1, chrono::Utc::now(), GENESIS, &json));
            }
        })
    });

    let dir = tempfile::tempdir_in(&root).expect("a log directory");
    let log = Arc::new(AuditLog::open(dir.path(), AuditOptions::default()).expect("the log opens"));
    let halves: Vec<Vec<_>> = items.chunks(BATCH / 2).map(<[_]>::to_vec).collect();
    let mut workers: Vec<Evaluator> = (0..2).map(|_| Evaluator::new(set.clone())).collect();
    group.bench_function("batch-2-threads", |b| {
        b.iter(|| {
            std::thread::scope(|scope| {
                for (evaluator, half) in workers.iter_mut().zip(&halves) {
                    let log = &log;
                    scope.spawn(move || {
                        for item in half {
                            let decision = evaluator.evaluate(item).expect("evaluates");
                            log.record_decision(item, &decision, None).expect("records");
                        }
                    });
                }
            })
        })
    });
    group.finish();
}

criterion_group!(benches, audit);
criterion_main!(benches);
