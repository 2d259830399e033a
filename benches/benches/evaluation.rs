//! Evaluation latency and throughput, sandboxed and native.
//!
//! Groups (each id is `group/function`):
//! - `stage/<policy>/{classify,score,escalate}`: one component call on a warm instance;
//! - `warm/<policy|both>`: full evaluation through the host, warm instances, all meters on;
//! - `fresh/<policy|both>`: the same with a fresh pooled instance per item,
//!   started from the plugin's configured snapshot;
//! - `fresh-live/<policy|both>`: fresh instances that run `configure` live
//!   (a runtime without snapshots): what the snapshot saves;
//! - `host-path/trivial`: a warm evaluation by a policy that does almost
//!   nothing (the hostile test guest, healthy): what the host path costs;
//! - `native/<policy|both>`: the same policy logic as plain Rust;
//! - `configure/native/<policy>`: building a policy from its configuration, natively;
//! - `metering/{none,epoch,fuel+epoch}`: both policies, warm, by meters compiled in;
//! - `record/{without,with}`: evaluation alone, and plus writing the decision as a JSON line;
//! - `throughput/{1,2}-threads`: a batch of 1,000 sample items split across threads.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use handoff_benches::*;
use handoff_policy::{Evaluator, Meters, PolicySet, Runtime};
use handoff_sdk::Policy;

fn runtime(meters: Meters) -> Runtime {
    Runtime::with_meters(meters).expect("the runtime starts")
}

fn stages(c: &mut Criterion) {
    let runtime = runtime(Meters::default());
    let item = representative_item();
    let mut group = c.benchmark_group("stage");
    for name in POLICIES {
        let set = set(&runtime, &[name], "");
        let mut probe = set.plugins()[0].stage_probe(&item).expect("instantiates");
        group.bench_function(BenchmarkId::new(name, "classify"), |b| {
            b.iter(|| probe.classify().expect("classifies"))
        });
        group.bench_function(BenchmarkId::new(name, "score"), |b| {
            b.iter(|| probe.score().expect("scores"))
        });
        group.bench_function(BenchmarkId::new(name, "escalate"), |b| {
            b.iter(|| probe.escalate().expect("escalates"))
        });
    }
    group.finish();
}

/// Full evaluations of the representative item, by policy set.
fn evaluations(c: &mut Criterion, runtime: &Runtime, group_name: &str, extra_manifest: &str) {
    let item = representative_item();
    let mut group = c.benchmark_group(group_name);
    let sets: [(&str, &[&str]); 3] = [
        ("compliance-limits", &["compliance-limits"]),
        ("confidence-gate", &["confidence-gate"]),
        ("both", &POLICIES),
    ];
    for (id, names) in sets {
        let mut evaluator = Evaluator::new(set(runtime, names, extra_manifest));
        group.bench_function(id, |b| {
            b.iter(|| black_box(evaluator.evaluate(black_box(&item)).expect("evaluates")))
        });
    }
    group.finish();
}

fn host_path(c: &mut Criterion) {
    let runtime = runtime(Meters::default());
    let item = representative_item();
    let mut evaluator = Evaluator::new(set_of(&runtime, vec![instructions::trivial("")]));
    let mut group = c.benchmark_group("host-path");
    group.bench_function("trivial", |b| {
        b.iter(|| black_box(evaluator.evaluate(black_box(&item)).expect("evaluates")))
    });
    group.finish();
}

const FRESH: &str = "instance-reuse = \"fresh\"";

fn warm(c: &mut Criterion) {
    evaluations(c, &runtime(Meters::default()), "warm", "");
}

fn fresh(c: &mut Criterion) {
    evaluations(c, &runtime(Meters::default()), "fresh", FRESH);
}

fn fresh_live(c: &mut Criterion) {
    let live = runtime(Meters::default()).with_snapshots(false);
    evaluations(c, &live, "fresh-live", FRESH);
}

fn native(c: &mut Criterion) {
    let native = Native::new();
    let item = to_sdk(&representative_item());
    let mut group = c.benchmark_group("native");
    group.bench_function("compliance-limits", |b| {
        b.iter(|| black_box(native.compliance.evaluate(black_box(&item))))
    });
    group.bench_function("confidence-gate", |b| {
        b.iter(|| black_box(native.gate.evaluate(black_box(&item))))
    });
    group.bench_function("both", |b| {
        b.iter(|| {
            black_box(native.compliance.evaluate(black_box(&item)));
            black_box(native.gate.evaluate(black_box(&item)))
        })
    });
    group.finish();
}

/// What `configure` costs natively: the floor under a fresh instance.
fn configure(c: &mut Criterion) {
    let mut group = c.benchmark_group("configure");
    let compliance = native_config("compliance-limits");
    let gate = native_config("confidence-gate");
    group.bench_function("native/compliance-limits", |b| {
        b.iter(|| {
            black_box(compliance_limits::ComplianceLimits::configure(black_box(
                &compliance,
            )))
        })
    });
    group.bench_function("native/confidence-gate", |b| {
        b.iter(|| black_box(confidence_gate::ConfidenceGate::configure(black_box(&gate))))
    });
    group.finish();
}

fn metering(c: &mut Criterion) {
    let item = representative_item();
    let mut group = c.benchmark_group("metering");
    let variants = [
        (
            "none",
            Meters {
                fuel: false,
                epoch: false,
            },
        ),
        (
            "epoch",
            Meters {
                fuel: false,
                epoch: true,
            },
        ),
        (
            "fuel+epoch",
            Meters {
                fuel: true,
                epoch: true,
            },
        ),
    ];
    for (id, meters) in variants {
        let runtime = runtime(meters);
        let mut evaluator = Evaluator::new(set(&runtime, &POLICIES, ""));
        group.bench_function(id, |b| {
            b.iter(|| black_box(evaluator.evaluate(black_box(&item)).expect("evaluates")))
        });
    }
    group.finish();
}

fn record(c: &mut Criterion) {
    let runtime = runtime(Meters::default());
    let item = representative_item();
    let mut evaluator = Evaluator::new(set(&runtime, &POLICIES, ""));
    let mut group = c.benchmark_group("record");
    group.bench_function("without", |b| {
        b.iter(|| black_box(evaluator.evaluate(black_box(&item)).expect("evaluates")))
    });
    let mut line = Vec::with_capacity(8192);
    group.bench_function("with", |b| {
        b.iter(|| {
            let decision = evaluator.evaluate(black_box(&item)).expect("evaluates");
            line.clear();
            serde_json::to_writer(&mut line, &decision).expect("serializes");
            line.push(b'\n');
            black_box(&line);
        })
    });
    group.finish();
}

fn throughput(c: &mut Criterion) {
    let runtime = runtime(Meters::default());
    let set: Arc<PolicySet> = set(&runtime, &POLICIES, "");
    let items = batch(1000);
    let mut group = c.benchmark_group("throughput");
    group.throughput(Throughput::Elements(items.len() as u64));
    for threads in [1usize, 2] {
        // One evaluator per worker, kept warm across iterations.
        let mut evaluators: Vec<Evaluator> =
            (0..threads).map(|_| Evaluator::new(set.clone())).collect();
        let chunk = items.len().div_ceil(threads);
        group.bench_function(format!("{threads}-threads"), |b| {
            b.iter(|| {
                std::thread::scope(|scope| {
                    for (evaluator, part) in evaluators.iter_mut().zip(items.chunks(chunk)) {
                        scope.spawn(move || {
                            for item in part {
                                black_box(evaluator.evaluate(item).expect("evaluates"));
                            }
                        });
                    }
                })
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches, stages, warm, host_path, fresh, fresh_live, native, configure, metering, record,
    throughput
);
criterion_main!(benches);
