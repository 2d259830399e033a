//! `handoff:policy@0.1.0`: typed bindings generated from `wit/policy.wit`
//! (the WIT Python and JavaScript policies build against, so a contract
//! change the host does not follow fails to compile), the item in this
//! version's form, and the conversions of the result enums to the model's
//! (which every version shares: see `bindings::lifted`).

use handoff_model as model;

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "policy",
});

pub(crate) use handoff::policy::types as wit;

/// This contract's version, exactly as a component built for it imports
/// its interfaces.
pub(crate) const VERSION: &str = "0.1.0";

/// The item as this contract passes it to plugins. Built once per
/// evaluation and lent to every plugin.
pub(crate) fn work_item(item: &model::WorkItem) -> wit::WorkItem {
    wit::WorkItem {
        id: item.id.clone(),
        kind: item.kind.clone(),
        agent: item.agent.clone(),
        text: item.text.clone(),
        confidence: item.confidence,
        amount: item.amount.as_ref().map(|m| wit::Money {
            minor: m.minor,
            currency: m.currency.clone(),
        }),
        segment: item.segment.clone(),
        attempts: item.attempts,
        attributes: item
            .attributes
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    }
}

impl From<wit::Tier> for model::Tier {
    fn from(tier: wit::Tier) -> Self {
        match tier {
            wit::Tier::None => model::Tier::None,
            wit::Tier::SelfCorrect => model::Tier::SelfCorrect,
            wit::Tier::Operator => model::Tier::Operator,
            wit::Tier::Executive => model::Tier::Executive,
        }
    }
}

impl From<wit::TriggerKind> for model::TriggerKind {
    fn from(kind: wit::TriggerKind) -> Self {
        match kind {
            wit::TriggerKind::Rule => model::TriggerKind::Rule,
            wit::TriggerKind::Probabilistic => model::TriggerKind::Probabilistic,
        }
    }
}
