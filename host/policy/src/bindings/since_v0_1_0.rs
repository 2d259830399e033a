//! `handoff:policy@0.1.0`: typed bindings, generated from `wit/policy.wit`
//! (the WIT the guests and the SDK build against, so a contract change the
//! host does not follow fails to compile), the host interface a plugin
//! imports, and the conversions to and from the model.

use handoff_model as model;

use crate::sandbox::PluginState;

wasmtime::component::bindgen!({
    path: "../../wit",
    world: "policy",
});

use handoff::policy::host::LogLevel;
pub(crate) use handoff::policy::types as wit;

impl handoff::policy::types::Host for PluginState {}

impl handoff::policy::host::Host for PluginState {
    /// Log lines join stdout and stderr in the bounded capture, so a
    /// plugin cannot flood the host's log through this door either.
    fn log(&mut self, level: LogLevel, message: String) {
        let level = match level {
            LogLevel::Trace => "trace",
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Warn => "warn",
            LogLevel::Error => "error",
        };
        self.capture()
            .append(format!("[{level}] {message}\n").as_bytes());
    }

    fn config_get(&mut self, key: String) -> Option<String> {
        self.config().get(&key).cloned()
    }

    fn config_keys(&mut self) -> Vec<String> {
        self.config().keys().cloned().collect()
    }
}

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

impl From<wit::Classification> for model::Classification {
    fn from(c: wit::Classification) -> Self {
        model::Classification {
            labels: c.labels,
            rules_fired: c.rules_fired,
        }
    }
}

impl From<wit::Assessment> for model::Assessment {
    fn from(a: wit::Assessment) -> Self {
        model::Assessment {
            risk: a.risk,
            confidence: a.confidence,
            signals: a
                .signals
                .into_iter()
                .map(|s| model::Signal {
                    name: s.name,
                    weight: s.weight,
                    detail: s.detail,
                })
                .collect(),
        }
    }
}

impl From<wit::Verdict> for model::Verdict {
    fn from(v: wit::Verdict) -> Self {
        model::Verdict {
            tier: v.tier.into(),
            reason_code: v.reason_code,
            reason: v.reason,
            role: v.role,
            ack_sla_secs: v.ack_sla_secs,
            resolve_sla_secs: v.resolve_sla_secs,
            guidance: v.guidance,
            trigger: v.trigger.into(),
        }
    }
}

impl From<wit::PolicyInfo> for crate::plugin::PolicyInfo {
    fn from(info: wit::PolicyInfo) -> Self {
        crate::plugin::PolicyInfo {
            name: info.name,
            version: info.version,
            description: info.description,
            triggers: info
                .triggers
                .into_iter()
                .map(|t| crate::plugin::TriggerInfo {
                    code: t.code,
                    kind: t.kind.into(),
                    description: t.description,
                })
                .collect(),
        }
    }
}
