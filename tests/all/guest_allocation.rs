//! The reference policies allocate from per-call scratch arenas
//! (`handoff_sdk::scratch`): one warm instance answers item after item
//! from memory reused two calls later. Reuse must never show in a
//! decision, and the memory must stop growing.

use crate::common::*;
use handoff_model::{Decision, WorkItem};
use handoff_policy::Evaluator;
use serde_json::json;

/// The sample, with texts long enough to need several arena blocks (and
/// the arena rebuilt as one) between short ones.
fn mixed_items() -> Vec<WorkItem> {
    let mut items = sample_items();
    let long = "please delete all of my personal data under GDPR, ".repeat(2_000);
    let longer = "my lawyer will be in touch about this refund. ".repeat(3_000);
    items.insert(
        3,
        item(json!({"id": "long-1", "kind": "reply", "text": long})),
    );
    items.insert(
        9,
        item(json!({"id": "long-2", "kind": "refund", "text": longer,
        "amount": {"minor": 90_000, "currency": "USD"}})),
    );
    items
}

fn memory(decision: &Decision) -> Vec<u64> {
    decision
        .metering
        .plugins
        .iter()
        .map(|p| p.memory_bytes)
        .collect()
}

#[test]
fn a_warm_instance_reusing_its_arenas_decides_as_fresh_instances_do() {
    let set = set_of(vec![
        reference("compliance-limits"),
        reference("confidence-gate"),
    ]);
    let items = mixed_items();
    let mut fresh = Evaluator::fresh(set.clone());
    let expected: Vec<Decision> = items.iter().map(|i| decide(&mut fresh, i)).collect();
    assert!(
        expected.iter().any(|d| d.tier() != expected[0].tier()),
        "the items reach more than one tier"
    );

    let mut warm = Evaluator::new(set);
    let mut after_round = Vec::new();
    for round in 0..40 {
        for (item, expected) in items.iter().zip(&expected) {
            let decision = decide(&mut warm, item);
            assert_eq!(
                decision.verdicts, expected.verdicts,
                "round {round}, {}",
                item.id
            );
        }
        after_round.push(memory(&decide(&mut warm, &items[0])));
    }
    // Arenas settle after the largest call has been seen twice; from then
    // on nothing grows, however many items follow.
    assert_eq!(
        after_round[2], after_round[39],
        "linear memory per plugin after rounds 3 and 40: {after_round:?}"
    );
}
