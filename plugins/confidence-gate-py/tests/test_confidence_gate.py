"""The port's logic, natively: the same cases as the Rust crate's unit tests."""

import pytest

from confidence_gate import ConfidenceGate
from handoff_policy import Config, ConfigError, Money, Tier, WorkItem


def policy():
    return ConfidenceGate.configure(Config.from_pairs({
        "known-kinds.0": "refund", "typical.refund.USD": "100", "anomaly-factor": "4",
    }))


def item(kind, confidence, minor=None):
    amount = None if minor is None else Money(minor, "USD")
    return WorkItem(id="1", kind=kind, agent="a", text="t", confidence=confidence, amount=amount)


def test_bands_and_anomalies():
    p = policy()
    assert p.evaluate(item("refund", 0.5)).verdict.tier is Tier.OPERATOR
    marginal = p.evaluate(item("refund", 0.7)).verdict
    assert marginal.tier is Tier.SELF_CORRECT and marginal.guidance
    assert p.evaluate(item("refund", 0.9, 400)).verdict.tier is Tier.NONE
    assert p.evaluate(item("refund", 0.9, 401)).verdict.reason_code == "anomaly.amount"
    assert p.evaluate(item("payout", 0.9)).verdict.reason_code == "anomaly.unknown-kind"


def test_own_confidence_is_lowest_on_a_boundary():
    p = policy()
    on_edge = p.evaluate(item("refund", 0.6)).assessment.confidence
    clear = p.evaluate(item("refund", 0.95)).assessment.confidence
    assert on_edge == 0.5 and on_edge < clear


def test_bad_configuration_names_the_key():
    with pytest.raises(ConfigError) as bad:
        ConfidenceGate.configure(Config.from_pairs({"anomaly-factor": "0.5"}))
    assert bad.value.key == "anomaly-factor"
    with pytest.raises(ConfigError) as bad:
        ConfidenceGate.configure(Config.from_pairs({"typical.refund.USD": "0"}))
    assert bad.value.key == "typical.refund.USD"
