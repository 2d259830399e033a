//! Instruction counts of one evaluation, under callgrind (through gungraun).
//!
//! Wall-clock ratios move when a neighbour loads one side of a ratio only;
//! instruction counts do not. `benches/guard` runs this bench and checks the
//! ratios between these counts against budgets, so CI catches a regression
//! however busy the machine is. Criterion (`evaluation`) keeps the times
//! people read.
//!
//! Each benchmark decides [`EVALUATIONS`] items on instances warmed in
//! setup (setup is not counted). The engine has a small instance pool:
//! valgrind cannot reserve the default pool's address space. Compiled
//! components come from the artifact cache that `guard --prepare-cache`
//! fills natively (`HANDOFF_BENCH_CACHE`), so nothing is compiled under
//! valgrind.

use std::hint::black_box;

use gungraun::{LibraryBenchmarkConfig, library_benchmark, library_benchmark_group, main};
use handoff_benches::instructions::{EVALUATIONS, Hosted, NativeBench, Workload};

#[library_benchmark]
#[bench::both(Hosted::warm(Workload::Both))]
#[bench::compliance_limits(Hosted::warm(Workload::ComplianceLimits))]
#[bench::confidence_gate(Hosted::warm(Workload::ConfidenceGate))]
#[bench::trivial(Hosted::warm(Workload::Trivial))]
fn warm(mut hosted: Hosted) -> Hosted {
    for _ in 0..EVALUATIONS {
        black_box(hosted.evaluate());
    }
    hosted
}

#[library_benchmark]
#[bench::both(Hosted::fresh(Workload::Both))]
#[bench::compliance_limits(Hosted::fresh(Workload::ComplianceLimits))]
#[bench::both_live(Hosted::fresh_live(Workload::Both))]
#[bench::compliance_limits_live(Hosted::fresh_live(Workload::ComplianceLimits))]
fn fresh(mut hosted: Hosted) -> Hosted {
    for _ in 0..EVALUATIONS {
        black_box(hosted.evaluate());
    }
    hosted
}

#[library_benchmark]
#[bench::none(Hosted::unmetered(false, false))]
#[bench::epoch(Hosted::unmetered(false, true))]
#[bench::fuel(Hosted::unmetered(true, false))]
fn metering(mut hosted: Hosted) -> Hosted {
    for _ in 0..EVALUATIONS {
        black_box(hosted.evaluate());
    }
    hosted
}

#[library_benchmark]
#[bench::both(NativeBench::new(Workload::Both))]
#[bench::compliance_limits(NativeBench::new(Workload::ComplianceLimits))]
#[bench::confidence_gate(NativeBench::new(Workload::ConfidenceGate))]
fn native(native: NativeBench) -> NativeBench {
    for _ in 0..EVALUATIONS {
        native.evaluate();
    }
    native
}

library_benchmark_group!(
    name = evaluation,
    benchmarks = [warm, fresh, metering, native]
);

main!(
    config = LibraryBenchmarkConfig::default().pass_through_env("HANDOFF_BENCH_CACHE"),
    library_benchmark_groups = evaluation
);
