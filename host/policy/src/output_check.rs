//! Checks what a plugin returns before anything else sees it.
//!
//! Two kinds of violation: too large (over [`OUTPUT_CAPS`]) and invalid
//! (breaking the contract). Both are faults, never decisions. The checks
//! read the model's types, so every contract version is held to the same
//! rules.

use handoff_model::{Assessment, Classification, FaultKind, Tier, Verdict};

use crate::limits::{OUTPUT_CAPS, OutputCaps};

/// A violation: its fault kind and a precise description.
pub(crate) type Violation = (FaultKind, String);

fn too_large(what: &str, len: usize, cap: usize) -> Violation {
    (
        FaultKind::OutputTooLarge,
        format!("{what} is {len} long, over the cap of {cap}"),
    )
}

fn invalid(detail: String) -> Violation {
    (FaultKind::InvalidVerdict, detail)
}

fn name(what: &str, value: &str, caps: &OutputCaps) -> Result<(), Violation> {
    if value.len() > caps.name_bytes {
        return Err(too_large(what, value.len(), caps.name_bytes));
    }
    Ok(())
}

fn text(what: &str, value: &str, caps: &OutputCaps) -> Result<(), Violation> {
    if value.len() > caps.text_bytes {
        return Err(too_large(what, value.len(), caps.text_bytes));
    }
    Ok(())
}

fn unit(what: &str, value: f64) -> Result<(), Violation> {
    if !(0.0..=1.0).contains(&value) {
        return Err(invalid(format!("{what} must be in [0, 1], got {value}")));
    }
    Ok(())
}

/// Checks a `classify` result.
pub(crate) fn classification(c: &Classification) -> Result<(), Violation> {
    let caps = &OUTPUT_CAPS;
    for (what, list) in [("labels", &c.labels), ("rules-fired", &c.rules_fired)] {
        if list.len() > caps.labels {
            return Err(too_large(what, list.len(), caps.labels));
        }
        for entry in list {
            name(what, entry, caps)?;
        }
    }
    Ok(())
}

/// Checks a `score` result.
pub(crate) fn assessment(a: &Assessment) -> Result<(), Violation> {
    let caps = &OUTPUT_CAPS;
    if a.signals.len() > caps.signals {
        return Err(too_large("signals", a.signals.len(), caps.signals));
    }
    unit("risk", a.risk)?;
    unit("confidence", a.confidence)?;
    for signal in &a.signals {
        name("signal name", &signal.name, caps)?;
        text("signal detail", &signal.detail, caps)?;
        unit(
            &format!("weight of signal `{}`", signal.name),
            signal.weight,
        )?;
    }
    Ok(())
}

/// Checks an `escalate` result.
pub(crate) fn verdict(v: &Verdict) -> Result<(), Violation> {
    let caps = &OUTPUT_CAPS;
    name("reason-code", &v.reason_code, caps)?;
    text("reason", &v.reason, caps)?;
    if let Some(role) = &v.role {
        name("role", role, caps)?;
    }
    if let Some(guidance) = &v.guidance {
        text("guidance", guidance, caps)?;
    }
    let code_ok = !v.reason_code.is_empty()
        && v.reason_code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if !code_ok {
        return Err(invalid(format!(
            "reason-code must be non-empty lower-case letters, digits, `-`, `_` and `.`, got {:?}",
            v.reason_code
        )));
    }
    if v.reason_code.starts_with("plugin-fault.") {
        return Err(invalid(
            "reason-code `plugin-fault.*` is reserved for the host".into(),
        ));
    }
    for (what, sla) in [
        ("ack-sla-secs", v.ack_sla_secs),
        ("resolve-sla-secs", v.resolve_sla_secs),
    ] {
        if sla == Some(0) {
            return Err(invalid(format!("{what} must be at least 1 second")));
        }
    }
    if let (Some(ack), Some(resolve)) = (v.ack_sla_secs, v.resolve_sla_secs)
        && resolve < ack
    {
        return Err(invalid(format!(
            "resolve-sla-secs ({resolve}) is shorter than ack-sla-secs ({ack})"
        )));
    }
    if v.tier == Tier::SelfCorrect && v.guidance.as_deref().is_none_or(str::is_empty) {
        return Err(invalid(
            "a self-correct verdict must carry guidance for the agent".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict_with(f: impl FnOnce(&mut Verdict)) -> Result<(), Violation> {
        let mut v = Verdict {
            tier: Tier::Operator,
            reason_code: "auth-limit.exceeded".into(),
            reason: "over".into(),
            role: None,
            ack_sla_secs: Some(60),
            resolve_sla_secs: Some(600),
            guidance: None,
            trigger: handoff_model::TriggerKind::Rule,
        };
        f(&mut v);
        verdict(&v)
    }

    #[test]
    fn accepts_a_good_verdict_and_names_each_violation() {
        assert_eq!(verdict_with(|_| {}), Ok(()));
        let kind = |r: Result<(), Violation>| r.unwrap_err().0;
        assert_eq!(
            kind(verdict_with(|v| v.reason = "x".repeat(5000))),
            FaultKind::OutputTooLarge
        );
        assert_eq!(
            kind(verdict_with(|v| v.ack_sla_secs = Some(0))),
            FaultKind::InvalidVerdict
        );
        assert_eq!(
            kind(verdict_with(|v| v.reason_code = "Bad Code".into())),
            FaultKind::InvalidVerdict
        );
        assert_eq!(
            kind(verdict_with(|v| v.reason_code = "plugin-fault.trap".into())),
            FaultKind::InvalidVerdict
        );
        assert_eq!(
            kind(verdict_with(|v| v.resolve_sla_secs = Some(5))),
            FaultKind::InvalidVerdict
        );
        assert_eq!(
            kind(verdict_with(|v| v.tier = Tier::SelfCorrect)),
            FaultKind::InvalidVerdict
        );
    }

    #[test]
    fn scores_must_be_in_the_unit_interval() {
        let a = |risk: f64, confidence: f64| Assessment {
            risk,
            confidence,
            signals: vec![],
        };
        assert!(assessment(&a(0.0, 1.0)).is_ok());
        assert_eq!(
            assessment(&a(1.5, 1.0)).unwrap_err().0,
            FaultKind::InvalidVerdict
        );
        assert_eq!(
            assessment(&a(0.5, f64::NAN)).unwrap_err().0,
            FaultKind::InvalidVerdict
        );
        assert_eq!(
            assessment(&a(-0.1, 0.5)).unwrap_err().0,
            FaultKind::InvalidVerdict
        );
    }
}
