//! Checks what a plugin returns before anything else sees it.
//!
//! Lengths were already held to the host's caps while the output was copied
//! out of the plugin (`bindings::capped`); what remains is the contract:
//! scores in range, codes and roles of the documented form, SLAs within
//! the host's maximum, guidance only where it belongs, and no control
//! characters in any text a person or a terminal will see. A violation is
//! an `invalid-verdict` fault, never a decision. The checks read the
//! model's types, so every contract version is held to the same rules.

use handoff_model::{Assessment, Classification, FaultKind, Tier, Verdict};

use crate::plugin::PolicyInfo;

/// The longest SLA a verdict may ask for, in seconds (30 days): a deadline
/// further out is no deadline.
pub const MAX_SLA_SECS: u32 = 30 * 24 * 3600;

/// A violation: its fault kind and a precise description.
pub(crate) type Violation = (FaultKind, String);

fn invalid(detail: String) -> Violation {
    (FaultKind::InvalidVerdict, detail)
}

/// The first character of `value` that must not appear in text shown to
/// people: control characters (newlines and escape sequences rewrite
/// terminals and split log lines) and the bidirectional overrides that make
/// text read other than it is stored. Scans bytes, since this runs on every
/// string of every verdict: in UTF-8 those characters are the bytes below
/// 0x20 and 0x7F, C1 controls (0xC2 0x80–0x9F) and the overrides (0xE2 0x80
/// 0xAA–0xAE, 0xE2 0x81 0xA6–0xA9).
fn forbidden(value: &str) -> Option<char> {
    let bytes = value.as_bytes();
    // Printable ASCII, the usual case, is checked in one branch-free (so
    // vectorised) pass.
    if !bytes
        .iter()
        .fold(false, |odd, &b| odd | !(0x20..0x7f).contains(&b))
    {
        return None;
    }
    let at = bytes.iter().enumerate().position(|(i, &b)| match b {
        0x00..=0x1f | 0x7f => true,
        0xc2 => matches!(bytes.get(i + 1), Some(0x80..=0x9f)),
        0xe2 => matches!(
            (bytes.get(i + 1), bytes.get(i + 2)),
            (Some(0x80), Some(0xaa..=0xae)) | (Some(0x81), Some(0xa6..=0xa9))
        ),
        _ => false,
    })?;
    value[at..].chars().next()
}

/// Text a person reads: a reason, guidance, a detail, a description.
fn text(what: &str, value: &str) -> Result<(), Violation> {
    match forbidden(value) {
        Some(c) => Err(invalid(format!(
            "{what} contains the control character {c:?}; plain text only"
        ))),
        None => Ok(()),
    }
}

/// Whether `value` is a well-formed code (see [`code`]), with at most the
/// 128 bytes a role may have: what a manifest's role keys must be too.
pub(crate) fn is_code(value: &str) -> bool {
    value.len() <= 128 && code("", value).is_ok()
}

/// A code: a reason code, a role, a trigger code, a policy name. Lower-case
/// letters, digits, `-`, `_` and `.`, starting with a letter or digit.
fn code(what: &str, value: &str) -> Result<(), Violation> {
    let well_formed = value
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if !well_formed {
        return Err(invalid(format!(
            "{what} must be lower-case letters, digits, `-`, `_` and `.`, starting with a \
             letter or digit, got {value:?}"
        )));
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
    for label in &c.labels {
        text("a label", label)?;
    }
    for rule in &c.rules_fired {
        text("a rule fired", rule)?;
    }
    Ok(())
}

/// Checks a `score` result.
pub(crate) fn assessment(a: &Assessment) -> Result<(), Violation> {
    unit("risk", a.risk)?;
    unit("confidence", a.confidence)?;
    for signal in &a.signals {
        text("a signal name", &signal.name)?;
        text("a signal detail", &signal.detail)?;
        if !(0.0..=1.0).contains(&signal.weight) {
            return Err(invalid(format!(
                "the weight of signal `{}` must be in [0, 1], got {}",
                signal.name, signal.weight
            )));
        }
    }
    Ok(())
}

/// Checks an `escalate` result.
pub(crate) fn verdict(v: &Verdict) -> Result<(), Violation> {
    code("reason-code", &v.reason_code)?;
    if v.reason_code.starts_with("plugin-fault.") {
        return Err(invalid(
            "reason-code `plugin-fault.*` is reserved for the host".into(),
        ));
    }
    text("reason", &v.reason)?;
    if let Some(role) = &v.role {
        code("role", role)?;
    }
    for (what, sla) in [
        ("ack-sla-secs", v.ack_sla_secs),
        ("resolve-sla-secs", v.resolve_sla_secs),
    ] {
        match sla {
            Some(0) => return Err(invalid(format!("{what} must be at least 1 second"))),
            Some(secs) if secs > MAX_SLA_SECS => {
                return Err(invalid(format!(
                    "{what} is {secs}, over the host's maximum of {MAX_SLA_SECS} (30 days)"
                )));
            }
            _ => {}
        }
    }
    if let (Some(ack), Some(resolve)) = (v.ack_sla_secs, v.resolve_sla_secs)
        && resolve < ack
    {
        return Err(invalid(format!(
            "resolve-sla-secs ({resolve}) is shorter than ack-sla-secs ({ack})"
        )));
    }
    match (&v.guidance, v.tier) {
        (Some(guidance), Tier::SelfCorrect) if !guidance.is_empty() => text("guidance", guidance),
        (_, Tier::SelfCorrect) => Err(invalid(
            "a self-correct verdict must carry guidance for the agent".into(),
        )),
        (Some(_), tier) => Err(invalid(format!(
            "guidance is for the agent's self-correction; a `{tier}` verdict must not carry it"
        ))),
        (None, _) => Ok(()),
    }
}

/// Checks what a policy says about itself, at load.
pub(crate) fn policy_info(info: &PolicyInfo) -> Result<(), String> {
    let checked = (|| {
        code("the policy name", &info.name)?;
        if info.version.is_empty() {
            return Err(invalid("the policy version is empty".into()));
        }
        text("the policy version", &info.version)?;
        text("the description", &info.description)?;
        for trigger in &info.triggers {
            code("a trigger code", &trigger.code)?;
            text("a trigger description", &trigger.description)?;
        }
        Ok(())
    })();
    checked.map_err(|(_, detail)| detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict_with(f: impl FnOnce(&mut Verdict)) -> Result<(), Violation> {
        let mut v = Verdict {
            tier: Tier::Operator,
            reason_code: "auth-limit.exceeded".into(),
            reason: "over".into(),
            role: Some("finance-operator".into()),
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
        let refused = |f: fn(&mut Verdict)| {
            let (kind, detail) = verdict_with(f).unwrap_err();
            assert_eq!(kind, FaultKind::InvalidVerdict, "{detail}");
            detail
        };
        refused(|v| v.ack_sla_secs = Some(0));
        refused(|v| v.reason_code = "Bad Code".into());
        refused(|v| v.reason_code = "plugin-fault.trap".into());
        refused(|v| v.resolve_sla_secs = Some(5));
        refused(|v| v.tier = Tier::SelfCorrect);
        assert!(refused(|v| v.resolve_sla_secs = Some(u32::MAX)).contains("30 days"));
        assert!(refused(|v| v.role = Some("ops\nadmin".into())).contains("role"));
        assert!(refused(|v| v.role = Some(String::new())).contains("role"));
        assert!(refused(|v| v.reason = "ok\u{1b}[2J".into()).contains("control"));
        assert!(refused(|v| v.reason = "evil\u{202E}txt".into()).contains("control"));
        assert!(refused(|v| v.guidance = Some("retry".into())).contains("must not carry"));
    }

    #[test]
    fn scores_must_be_in_the_unit_interval() {
        let a = |risk: f64, confidence: f64| Assessment {
            risk,
            confidence,
            signals: vec![],
        };
        assert!(assessment(&a(0.0, 1.0)).is_ok());
        for (risk, confidence) in [(1.5, 1.0), (0.5, f64::NAN), (-0.1, 0.5)] {
            assert_eq!(
                assessment(&a(risk, confidence)).unwrap_err().0,
                FaultKind::InvalidVerdict
            );
        }
    }

    #[test]
    fn the_byte_scan_finds_every_forbidden_character_and_nothing_else() {
        for c in (0..=0x10ffffu32).filter_map(char::from_u32) {
            let expected =
                c.is_control() || matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}');
            let text = format!("ok {c} ok");
            assert_eq!(forbidden(&text).is_some(), expected, "{:?}", c);
        }
    }

    #[test]
    fn metadata_is_plain_text_with_codes_of_the_documented_form() {
        let info = |version: &str| PolicyInfo {
            name: "a-policy".into(),
            version: version.into(),
            description: "Fine.".into(),
            triggers: vec![],
        };
        assert!(policy_info(&info("1.0.0")).is_ok());
        assert!(policy_info(&info("1.0\r\nforged log line")).is_err());
        assert!(policy_info(&info("")).is_err());
    }
}
