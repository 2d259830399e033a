//! Plugin faults and what they turn into.
//!
//! The promise to compliance teams: any misbehaviour ends in a known,
//! recorded, human-safe outcome. A fault is never a decision: it is
//! classified into one [`FaultKind`], recorded in the decision, and turned
//! into a verdict by the plugin's [`FailureMode`].

use serde::{Deserialize, Serialize};

use crate::model::{Tier, TriggerKind, Verdict};

/// What went wrong inside a plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// A WebAssembly trap: out-of-bounds access, stack overflow, `unreachable`...
    Trap,
    /// The guest panicked (a trap whose captured stderr carries a panic message).
    Panic,
    /// The evaluation used up its fuel.
    FuelExhausted,
    /// The evaluation ran past its wall-clock deadline.
    DeadlineExceeded,
    /// The plugin asked for more memory, tables or instances than allowed.
    MemoryLimit,
    /// A returned string or list is over the host's cap.
    OutputTooLarge,
    /// A returned value breaks the contract (a score outside [0, 1], NaN, an
    /// SLA of zero, ...).
    InvalidVerdict,
}

impl FaultKind {
    /// Every kind, in a fixed order (for counters and reports).
    pub const ALL: [FaultKind; 7] = [
        FaultKind::Trap,
        FaultKind::Panic,
        FaultKind::FuelExhausted,
        FaultKind::DeadlineExceeded,
        FaultKind::MemoryLimit,
        FaultKind::OutputTooLarge,
        FaultKind::InvalidVerdict,
    ];

    /// The kebab-case name used in reason codes (`plugin-fault.<name>`).
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Trap => "trap",
            FaultKind::Panic => "panic",
            FaultKind::FuelExhausted => "fuel-exhausted",
            FaultKind::DeadlineExceeded => "deadline-exceeded",
            FaultKind::MemoryLimit => "memory-limit",
            FaultKind::OutputTooLarge => "output-too-large",
            FaultKind::InvalidVerdict => "invalid-verdict",
        }
    }

    /// Position in [`FaultKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a plugin's fault turns into, chosen per plugin in its manifest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureMode {
    /// Fail to a human: the plugin's verdict becomes `operator`. The default,
    /// because a policy that cannot decide must not wave work through.
    #[default]
    Escalate,
    /// Fail closed: the plugin's verdict becomes `executive`.
    Deny,
    /// Skip the plugin for this item and record the skip. For advisory
    /// policies only; if every plugin is skipped, the item still goes to an
    /// operator.
    Ignore,
}

/// One fault, as recorded in the decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fault {
    /// What went wrong.
    pub kind: FaultKind,
    /// Where: `instantiate`, `classify`, `score` or `escalate`.
    pub stage: String,
    /// The specifics, for the person debugging the plugin.
    pub detail: String,
    /// The failure mode that was applied.
    pub failure_mode: FailureMode,
}

impl Fault {
    /// The verdict the failure mode substitutes for the plugin's own, or
    /// `None` when the plugin is skipped.
    pub fn substitute_verdict(&self, plugin: &str) -> Option<Verdict> {
        let tier = match self.failure_mode {
            FailureMode::Escalate => Tier::Operator,
            FailureMode::Deny => Tier::Executive,
            FailureMode::Ignore => return None,
        };
        Some(Verdict {
            tier,
            reason_code: format!("plugin-fault.{}", self.kind),
            reason: format!(
                "Policy `{plugin}` failed ({} in {}: {}), so a human must decide.",
                self.kind, self.stage, self.detail
            ),
            role: None,
            ack_sla_secs: None,
            resolve_sla_secs: None,
            guidance: None,
            trigger: TriggerKind::Rule,
        })
    }
}

/// Longest fault detail recorded; trap messages can carry long backtraces.
const MAX_DETAIL: usize = 600;

/// Classifies an error from a plugin call. `refused` is the limiter's note
/// when a growth was refused; `output` is what the plugin wrote.
pub fn classify(
    error: &wasmtime::Error,
    refused: Option<&str>,
    output: &str,
) -> (FaultKind, String) {
    match error.downcast_ref::<wasmtime::Trap>() {
        Some(wasmtime::Trap::OutOfFuel) => {
            return (
                FaultKind::FuelExhausted,
                "the evaluation used up its fuel".into(),
            );
        }
        Some(wasmtime::Trap::Interrupt) => {
            return (
                FaultKind::DeadlineExceeded,
                "the evaluation ran past its deadline".into(),
            );
        }
        _ => {}
    }
    if let Some(why) = refused {
        return (FaultKind::MemoryLimit, truncate(why));
    }
    if let Some(at) = output.find("panicked at") {
        let message: Vec<&str> = output[at..].lines().take(2).collect();
        return (FaultKind::Panic, truncate(&message.join(" ")));
    }
    // The trap itself ("call stack exhausted") says more than the wasm
    // backtrace wrapped around it, which goes to the debug log instead.
    tracing::debug!(error = format!("{error:?}"), "plugin trap");
    let message = match error.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => error.root_cause().to_string(),
    };
    (FaultKind::Trap, truncate(&message))
}

fn truncate(text: &str) -> String {
    if text.len() <= MAX_DETAIL {
        return text.to_string();
    }
    let mut end = MAX_DETAIL;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
