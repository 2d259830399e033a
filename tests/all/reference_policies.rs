//! The reference policies, evaluated for real in the sandbox: every tier of
//! each one on hand-picked items, then both together.

use crate::common::*;
use handoff_model::{Tier, TriggerKind};
use serde_json::json;

fn compliance() -> handoff_policy::Evaluator {
    evaluator(vec![reference("compliance-limits")])
}

fn gate() -> handoff_policy::Evaluator {
    evaluator(vec![reference("confidence-gate")])
}

#[test]
fn compliance_refund_limits_below_at_and_above() {
    let mut ev = compliance();
    let cases = [
        (49_999, "USD", Tier::None, "proceed"),
        (50_000, "USD", Tier::None, "proceed"),
        (50_001, "USD", Tier::Operator, "auth-limit.exceeded"),
        (500_000, "USD", Tier::Operator, "auth-limit.exceeded"),
        (500_001, "USD", Tier::Executive, "auth-limit.executive"),
        (45_000, "EUR", Tier::None, "proceed"),
        (45_001, "EUR", Tier::Operator, "auth-limit.exceeded"),
        (450_001, "EUR", Tier::Executive, "auth-limit.executive"),
        (-500_001, "USD", Tier::Executive, "auth-limit.executive"),
    ];
    for (minor, currency, tier, code) in cases {
        let d = decide(&mut ev, &refund(minor, currency));
        assert_eq!(
            (d.tier(), d.reason_code()),
            (tier, code),
            "{minor} {currency}"
        );
        assert_eq!(d.tier().level(), tier.level());
        if tier == Tier::None {
            assert_eq!(d.driver, None);
        } else {
            assert_eq!(d.driver.as_deref(), Some("compliance-limits"));
            assert_eq!(d.verdict.trigger, Some(TriggerKind::Rule));
            let expected_role = if tier == Tier::Executive {
                "finance-executive"
            } else {
                "finance-operator"
            };
            assert_eq!(d.verdict.role.as_deref(), Some(expected_role));
            let pv = &d.verdicts[0];
            let classification = pv.classification.as_ref().unwrap();
            assert!(classification.rules_fired.contains(&code.to_string()));
            assert_eq!(pv.assessment.as_ref().unwrap().risk, 1.0);
        }
    }
}

#[test]
fn compliance_other_kinds_and_currencies() {
    let mut ev = compliance();
    let unknown = decide(&mut ev, &refund(100, "JPY"));
    assert_eq!(
        (unknown.tier(), unknown.reason_code()),
        (Tier::Operator, "auth-limit.unknown-currency")
    );
    let payout = item(json!({"kind": "payout", "amount": {"minor": 100_001, "currency": "USD"}}));
    assert_eq!(
        decide(&mut ev, &payout).reason_code(),
        "auth-limit.exceeded"
    );
    // A kind with no limits is not limited, whatever the amount.
    let reply = item(json!({"kind": "reply", "amount": {"minor": 99_999_999, "currency": "USD"}}));
    assert_eq!(decide(&mut ev, &reply).tier(), Tier::None);
}

#[test]
fn compliance_each_phrase_class() {
    let mut ev = compliance();
    let cases = [
        (
            "I want to end my life",
            Tier::Operator,
            "phrase.self-harm",
            "safety-specialist",
            Some(300),
        ),
        (
            "My ATTORNEY will call you",
            Tier::Operator,
            "phrase.legal-threat",
            "legal",
            Some(3_600),
        ),
        (
            "please delete my data now",
            Tier::Operator,
            "phrase.data-deletion",
            "privacy-officer",
            Some(86_400),
        ),
        (
            "I wrote to the Ombudsman",
            Tier::Executive,
            "phrase.regulator-complaint",
            "compliance-officer",
            Some(1_800),
        ),
    ];
    for (text, tier, code, role, ack) in cases {
        let d = decide(&mut ev, &item(json!({ "text": text })));
        assert_eq!((d.tier(), d.reason_code()), (tier, code), "{text}");
        assert_eq!(d.verdict.role.as_deref(), Some(role), "{text}");
        assert_eq!(d.verdict.ack_sla_secs, ack, "{text}");
        assert!(d.verdict.resolve_sla_secs.is_some());
    }
    // Whole words only: "issue" does not contain the word "sue".
    let clean = decide(
        &mut ev,
        &item(json!({"text": "There is an issue with my invoice"})),
    );
    assert_eq!(clean.tier(), Tier::None);
}

#[test]
fn compliance_exhausted_self_corrections() {
    let mut ev = compliance();
    assert_eq!(
        decide(&mut ev, &item(json!({"attempts": 2}))).tier(),
        Tier::None
    );
    let d = decide(&mut ev, &item(json!({"attempts": 3})));
    assert_eq!(
        (d.tier(), d.reason_code()),
        (Tier::Operator, "attempts.exhausted")
    );
}

#[test]
fn compliance_highest_rule_wins_and_equal_rules_keep_precedence() {
    let mut ev = compliance();
    // Operator-level limit plus an executive-level phrase: executive wins.
    let both = item(json!({
        "kind": "refund", "text": "the regulator will hear about this",
        "amount": {"minor": 60_000, "currency": "USD"},
    }));
    let d = decide(&mut ev, &both);
    assert_eq!(d.reason_code(), "phrase.regulator-complaint");
    assert_eq!(
        d.verdicts[0].classification.as_ref().unwrap().rules_fired,
        vec!["auth-limit.exceeded", "phrase.regulator-complaint"]
    );
    // Two operator-level rules: the limit comes first.
    let two = item(json!({
        "kind": "refund", "text": "my lawyer says so",
        "amount": {"minor": 60_000, "currency": "USD"},
    }));
    assert_eq!(decide(&mut ev, &two).reason_code(), "auth-limit.exceeded");
}

#[test]
fn gate_each_confidence_band() {
    let mut ev = gate();
    let cases = [
        (0.0, Tier::Operator, "confidence.low"),
        (0.59, Tier::Operator, "confidence.low"),
        (0.60, Tier::SelfCorrect, "confidence.marginal"),
        (0.7499, Tier::SelfCorrect, "confidence.marginal"),
        (0.75, Tier::None, "proceed"),
        (1.0, Tier::None, "proceed"),
    ];
    for (confidence, tier, code) in cases {
        let d = decide(&mut ev, &item(json!({ "confidence": confidence })));
        assert_eq!(
            (d.tier(), d.reason_code()),
            (tier, code),
            "confidence {confidence}"
        );
        let verdict = d.verdicts[0].verdict.as_ref().unwrap();
        assert_eq!(verdict.trigger, TriggerKind::Probabilistic);
        assert_eq!(
            verdict.guidance.is_some(),
            tier == Tier::SelfCorrect,
            "confidence {confidence}"
        );
        let risk = d.verdicts[0].assessment.as_ref().unwrap().risk;
        assert!(
            (risk - (1.0 - confidence)).abs() < 1e-9,
            "risk {risk} at confidence {confidence}"
        );
    }
}

#[test]
fn gate_anomalies() {
    let mut ev = gate();
    // Typical USD refund is 6,000 minor units and the factor is 8: 48,000 is the edge.
    assert_eq!(decide(&mut ev, &refund(48_000, "USD")).tier(), Tier::None);
    let far = decide(&mut ev, &refund(48_001, "USD"));
    assert_eq!(
        (far.tier(), far.reason_code()),
        (Tier::Operator, "anomaly.amount")
    );
    assert!(
        far.verdicts[0]
            .classification
            .as_ref()
            .unwrap()
            .labels
            .contains(&"anomaly.amount".to_string())
    );
    let unknown = decide(
        &mut ev,
        &item(json!({"kind": "wire-transfer", "confidence": 0.99})),
    );
    assert_eq!(
        (unknown.tier(), unknown.reason_code()),
        (Tier::Operator, "anomaly.unknown-kind")
    );
    assert_eq!(unknown.verdict.role.as_deref(), Some("support-operator"));
}

#[test]
fn both_policies_highest_tier_wins() {
    let mut ev = evaluator(vec![
        reference("compliance-limits"),
        reference("confidence-gate"),
    ]);
    // Compliance says operator (payout limit 100,000), the gate says
    // self-correct (and sees no anomaly: typical payout 25,000 × 8).
    let d = decide(
        &mut ev,
        &item(json!({
            "kind": "payout", "confidence": 0.65, "amount": {"minor": 100_001, "currency": "USD"},
        })),
    );
    assert_eq!(
        (d.tier(), d.driver.as_deref()),
        (Tier::Operator, Some("compliance-limits"))
    );
    let tiers: Vec<_> = d
        .verdicts
        .iter()
        .map(|v| (v.plugin.as_str(), v.verdict.as_ref().unwrap().tier))
        .collect();
    assert_eq!(
        tiers,
        vec![
            ("compliance-limits", Tier::Operator),
            ("confidence-gate", Tier::SelfCorrect)
        ]
    );
    for v in &d.verdicts {
        assert!(
            v.digest.starts_with("sha256:") && v.digest.len() == 7 + 64,
            "{}",
            v.digest
        );
        assert_eq!(v.version, "0.1.0");
    }
    // Only the gate escalates.
    let low = decide(&mut ev, &item(json!({"confidence": 0.3})));
    assert_eq!(
        (low.tier(), low.driver.as_deref()),
        (Tier::Operator, Some("confidence-gate"))
    );
    // Nobody escalates.
    let fine = decide(&mut ev, &item(json!({})));
    assert_eq!(
        (fine.tier(), fine.driver.as_deref(), fine.reason_code()),
        (Tier::None, None, "proceed")
    );
}

#[test]
fn equal_tiers_keep_the_first_plugin_by_order() {
    let both_operator = item(json!({
        "kind": "refund", "confidence": 0.3, "amount": {"minor": 60_000, "currency": "USD"},
    }));
    let mut shipped = evaluator(vec![
        reference("confidence-gate"),
        reference("compliance-limits"),
    ]);
    assert_eq!(
        decide(&mut shipped, &both_operator).driver.as_deref(),
        Some("compliance-limits")
    );
    // Move compliance-limits after the gate: the gate now leads the tie.
    let reordered = with_manifest_edit(reference("compliance-limits"), "order = 10", "order = 30");
    let mut ev = evaluator(vec![reordered, reference("confidence-gate")]);
    let d = decide(&mut ev, &both_operator);
    assert_eq!(d.driver.as_deref(), Some("confidence-gate"));
    assert_eq!(d.verdicts[0].plugin, "confidence-gate");
}

#[test]
fn configuration_changes_behaviour() {
    let stricter = with_manifest_edit(
        reference("confidence-gate"),
        "escalate-below = 0.60",
        "escalate-below = 0.70",
    );
    let mut ev = evaluator(vec![stricter]);
    assert_eq!(
        decide(&mut ev, &item(json!({"confidence": 0.65}))).tier(),
        Tier::Operator
    );
}

#[test]
fn calibration_keys_name_probabilistic_triggers_only() {
    // The reference manifest names the confidence trigger's threshold.
    let set = set_of(vec![reference("confidence-gate")]);
    let targets = handoff_pipeline::calibration::targets_of_set(&set);
    assert_eq!(targets.len(), 1, "{targets:?}");
    assert_eq!(
        (targets[0].trigger.as_str(), targets[0].config_key.as_str()),
        ("confidence", "escalate-below")
    );
    assert_eq!(targets[0].current, Some(0.6));

    let refused = |source| {
        let set = handoff_policy::PolicySet::load(runtime(), vec![source], 1);
        let rejection = set.rejected().first().cloned().expect("refused at load");
        assert!(set.plugins().is_empty());
        rejection
    };
    // A rule is mandated: it is never tuned from feedback.
    let rule = with_manifest_edit(
        reference("compliance-limits"),
        "[config]",
        "[calibrate]\nauth-limit = \"threshold\"\n\n[config]\nthreshold = 0.5",
    );
    let rejection = refused(rule);
    assert_eq!(rejection.file, "compliance-limits.toml");
    assert!(
        rejection.reason.contains("calibrate.auth-limit")
            && rejection.reason.contains("rule-based"),
        "{}",
        rejection.reason
    );
    // A trigger the plugin does not declare.
    let unknown = with_manifest_edit(
        reference("confidence-gate"),
        "confidence = \"escalate-below\"",
        "confidence = \"escalate-below\"\nconfidnce = \"escalate-below\"",
    );
    let rejection = refused(unknown);
    assert!(
        rejection.reason.contains("calibrate.confidnce")
            && rejection.reason.contains("declares no trigger"),
        "{}",
        rejection.reason
    );
}

#[test]
fn compliance_reads_a_long_text_to_the_end_and_rules_that_catch_real_phrasings() {
    let mut ev = compliance();
    // 200 KB of routine chatter, with the request at the very end.
    let chatter = "Thanks for the update on my order, the parcel arrived and the \
                   support team was helpful. ";
    let mut text = chatter.repeat(200_000 / chatter.len());
    text.push_str("Under GDPR I demand that you delete all of my personal data immediately.");
    let d = decide(&mut ev, &item(json!({ "text": text })));
    assert!(d.verdicts[0].fault.is_none(), "{:?}", d.verdicts[0].fault);
    assert_eq!(d.reason_code(), "phrase.data-deletion");
    let fuel = d.metering.plugins[0].fuel;
    assert!(fuel < 100_000_000, "within the manifest's budget: {fuel}");

    // Normalised, not exact: case, curly apostrophes, a zero-width space.
    for text in [
        "I’m going to SUE you",
        "i want to end my life",
        "I've contacted the Financial Ombudsman",
        "pls delete\u{200b} my data",
    ] {
        let d = decide(&mut ev, &item(json!({ "text": text })));
        assert_ne!(d.tier(), Tier::None, "{text}");
    }
    // Negation that helps: the denial alone does not fire, the threat does.
    let calm = decide(
        &mut ev,
        &item(json!({"text": "I'm not going to sue, just fix it"})),
    );
    assert_eq!(calm.tier(), Tier::None);
    let both = decide(
        &mut ev,
        &item(json!({"text": "I'm not going to sue, but my lawyer will"})),
    );
    assert_eq!(both.reason_code(), "phrase.legal-threat");
}
