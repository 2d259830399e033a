//! What a plugin returns, lifted with every string and list capped before
//! the host allocates it (see `bindings::capped`), and converted into the
//! model's types. Every contract version returns the same shapes, and
//! wasmtime checks component types by structure, not by package, so these
//! types (with 0.1.0's enums) lift the results of them all.

use handoff_model as model;
use wasmtime::component::{ComponentType, Lift};

use super::since_v0_1_0::wit;
use crate::bindings::capped::{Cap, Capped, OverCap, caps};
use crate::plugin::{PolicyInfo, TriggerInfo};

/// Bytes in a name: a label, rule, signal name, reason code, role or
/// trigger code.
pub(crate) const NAME_BYTES: usize = 128;
/// Bytes in a text: a reason, guidance, signal detail or description.
pub(crate) const TEXT_BYTES: usize = 4096;
/// Entries in a list: labels, rules fired, signals or triggers.
pub(crate) const LIST_ENTRIES: usize = 64;

caps! {
    Labels: "labels" in "classify", at most LIST_ENTRIES;
    Label: "a label" in "classify", at most NAME_BYTES;
    RulesFired: "rules-fired" in "classify", at most LIST_ENTRIES;
    RuleFired: "a rule fired" in "classify", at most NAME_BYTES;
    Signals: "signals" in "score", at most LIST_ENTRIES;
    SignalName: "a signal name" in "score", at most NAME_BYTES;
    SignalDetail: "a signal detail" in "score", at most TEXT_BYTES;
    ReasonCode: "reason-code" in "escalate", at most NAME_BYTES;
    Reason: "reason" in "escalate", at most TEXT_BYTES;
    Role: "role" in "escalate", at most NAME_BYTES;
    Guidance: "guidance" in "escalate", at most TEXT_BYTES;
    PolicyName: "the policy name" in "metadata", at most NAME_BYTES;
    PolicyVersion: "the policy version" in "metadata", at most 64;
    Description: "the description" in "metadata", at most TEXT_BYTES;
    Triggers: "triggers" in "metadata", at most LIST_ENTRIES;
    TriggerCode: "a trigger code" in "metadata", at most NAME_BYTES;
    TriggerDescription: "a trigger description" in "metadata", at most TEXT_BYTES;
    Refusal: "the configuration refusal" in "configure", at most TEXT_BYTES;
}

#[derive(ComponentType, Lift)]
#[component(record)]
pub(crate) struct Classification {
    labels: Capped<Vec<Capped<String, Label>>, Labels>,
    #[component(name = "rules-fired")]
    rules_fired: Capped<Vec<Capped<String, RuleFired>>, RulesFired>,
}

#[derive(ComponentType, Lift)]
#[component(record)]
pub(crate) struct Signal {
    name: Capped<String, SignalName>,
    weight: f64,
    detail: Capped<String, SignalDetail>,
}

#[derive(ComponentType, Lift)]
#[component(record)]
pub(crate) struct Assessment {
    risk: f64,
    confidence: f64,
    signals: Capped<Vec<Signal>, Signals>,
}

#[derive(ComponentType, Lift)]
#[component(record)]
pub(crate) struct Verdict {
    tier: wit::Tier,
    #[component(name = "reason-code")]
    reason_code: Capped<String, ReasonCode>,
    reason: Capped<String, Reason>,
    role: Option<Capped<String, Role>>,
    #[component(name = "ack-sla-secs")]
    ack_sla_secs: Option<u32>,
    #[component(name = "resolve-sla-secs")]
    resolve_sla_secs: Option<u32>,
    guidance: Option<Capped<String, Guidance>>,
    trigger: wit::TriggerKind,
}

/// The result of the `evaluate` export.
#[derive(ComponentType, Lift)]
#[component(record)]
pub(crate) struct EvaluationOut {
    classification: Classification,
    assessment: Assessment,
    verdict: Verdict,
}

#[derive(ComponentType, Lift)]
#[component(record)]
pub(crate) struct TriggerInfoOut {
    code: Capped<String, TriggerCode>,
    kind: wit::TriggerKind,
    description: Capped<String, TriggerDescription>,
}

/// The result of the `metadata` export.
#[derive(ComponentType, Lift)]
#[component(record)]
pub(crate) struct PolicyInfoOut {
    name: Capped<String, PolicyName>,
    version: Capped<String, PolicyVersion>,
    description: Capped<String, Description>,
    triggers: Capped<Vec<TriggerInfoOut>, Triggers>,
}

/// The result of the `configure` export: a refusal, capped.
pub(crate) type ConfigureOut = Result<(), Capped<String, Refusal>>;

fn strings<F: Cap, G: Cap>(
    list: Capped<Vec<Capped<String, F>>, G>,
) -> Result<Vec<String>, OverCap> {
    list.checked()?.into_iter().map(Capped::checked).collect()
}

fn optional<F: Cap>(value: Option<Capped<String, F>>) -> Result<Option<String>, OverCap> {
    value.map(Capped::checked).transpose()
}

impl EvaluationOut {
    /// The three stages' outputs, each converted to the model's types or
    /// refused for a field over its cap, in stage order.
    pub(crate) fn into_stages(self) -> Stages {
        Stages {
            classification: self.classification.into_model(),
            assessment: self.assessment.into_model(),
            verdict: self.verdict.into_model(),
        }
    }
}

/// The outputs of `evaluate`, stage by stage.
pub(crate) struct Stages {
    pub(crate) classification: Result<model::Classification, OverCap>,
    pub(crate) assessment: Result<model::Assessment, OverCap>,
    pub(crate) verdict: Result<model::Verdict, OverCap>,
}

impl Classification {
    fn into_model(self) -> Result<model::Classification, OverCap> {
        Ok(model::Classification {
            labels: strings(self.labels)?,
            rules_fired: strings(self.rules_fired)?,
        })
    }
}

impl Assessment {
    fn into_model(self) -> Result<model::Assessment, OverCap> {
        Ok(model::Assessment {
            risk: self.risk,
            confidence: self.confidence,
            signals: self
                .signals
                .checked()?
                .into_iter()
                .map(|s| {
                    Ok(model::Signal {
                        name: s.name.checked()?,
                        weight: s.weight,
                        detail: s.detail.checked()?,
                    })
                })
                .collect::<Result<_, OverCap>>()?,
        })
    }
}

impl Verdict {
    fn into_model(self) -> Result<model::Verdict, OverCap> {
        Ok(model::Verdict {
            tier: self.tier.into(),
            reason_code: self.reason_code.checked()?,
            reason: self.reason.checked()?,
            role: optional(self.role)?,
            ack_sla_secs: self.ack_sla_secs,
            resolve_sla_secs: self.resolve_sla_secs,
            guidance: optional(self.guidance)?,
            trigger: self.trigger.into(),
        })
    }
}

impl PolicyInfoOut {
    /// What the policy says about itself, or the refusal of a field over
    /// its cap.
    pub(crate) fn into_info(self) -> Result<PolicyInfo, OverCap> {
        Ok(PolicyInfo {
            name: self.name.checked()?,
            version: self.version.checked()?,
            description: self.description.checked()?,
            triggers: self
                .triggers
                .checked()?
                .into_iter()
                .map(|t| {
                    Ok(TriggerInfo {
                        code: t.code.checked()?,
                        kind: t.kind.into(),
                        description: t.description.checked()?,
                    })
                })
                .collect::<Result<_, OverCap>>()?,
        })
    }
}
