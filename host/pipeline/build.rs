//! Builds the reference policies from source so the `handoff` binary can
//! embed them as its default policy set. No compiled wasm is committed.

fn main() {
    guest_build::build(&[
        guest_build::Guest {
            package: "compliance-limits",
            dir: "plugins/compliance-limits",
        },
        guest_build::Guest {
            package: "confidence-gate",
            dir: "plugins/confidence-gate",
        },
    ]);
}
