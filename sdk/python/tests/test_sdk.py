"""The SDK's helpers, natively: the cases the Rust SDK's unit tests check."""

import math

import pytest

from handoff_policy import (
    Band, ConfidenceBands, Config, ConfigError, Exceeded, Money, Tier, TierLimits,
    UnknownCurrency, Verdict, Within, TriggerKind, display, fixed, format_money,
)
from handoff_policy.text import PhraseError, PhraseSet, Rule, RuleError, words

SAMPLE = Config.from_pairs({
    "limits.refund.USD.operator": "50000",
    "limits.refund.EUR.operator": "40000",
    "limits.payout.USD.operator": "1000",
    "phrases.legal.match.0": "lawyer",
    "phrases.legal.match.1": "sue",
    "threshold": "0.6",
    "bad": "1.5",
})


def test_typed_values_name_the_key_on_error():
    assert SAMPLE.int("limits.refund.USD.operator") == 50000
    assert SAMPLE.int("missing") is None
    with pytest.raises(ConfigError) as bad:
        SAMPLE.int("threshold")
    assert bad.value.key == "threshold" and "expected an integer" in str(bad.value)
    assert str(bad.value) == 'config key `threshold`: expected an integer, got "0.6"'
    with pytest.raises(ConfigError):
        Config.from_pairs({"n": "1_000"}).float("n")


def test_unit_interval_rejects_out_of_range():
    assert SAMPLE.unit_interval("threshold", 0.1) == 0.6
    assert SAMPLE.unit_interval("unset", 0.1) == 0.1
    with pytest.raises(ConfigError):
        SAMPLE.unit_interval("bad", 0.1)


def test_lists_and_children_follow_the_flattening_rules():
    assert SAMPLE.list("phrases.legal.match") == ["lawyer", "sue"]
    assert SAMPLE.list("threshold") == ["0.6"]
    assert SAMPLE.list("nothing") == []
    assert SAMPLE.children("limits") == ["payout", "refund"]
    assert SAMPLE.children("limits.refund") == ["EUR", "USD"]
    assert SAMPLE.children("none") == []


def test_limits_per_currency():
    limits = TierLimits.from_config(
        Config.from_pairs({"l.USD.operator": "50000", "l.USD.executive": "500000"}), "l")
    assert limits.check(Money(50000, "USD")) == Within(1.0)
    assert limits.check(Money(50001, "USD")) == Exceeded(Tier.OPERATOR, 50000)
    assert limits.check(Money(-500001, "USD")) == Exceeded(Tier.EXECUTIVE, 500000)
    assert limits.check(Money(1, "EUR")) == UnknownCurrency()
    for pairs, key in [({"l.usd.operator": "1"}, "l.usd"),
                       ({"l.USD.operator": "5", "l.USD.executive": "5"}, "l.USD.executive"),
                       ({"l.USD.operator": "-1"}, "l.USD.operator")]:
        with pytest.raises(ConfigError) as bad:
            TierLimits.from_config(Config.from_pairs(pairs), "l")
        assert bad.value.key == key
    assert format_money(Money(125000, "USD")) == "1250.00 USD"
    assert format_money(Money(-5, "EUR")) == "-0.05 EUR"


def test_bands_split_at_the_thresholds():
    bands = ConfidenceBands(0.6, 0.75)
    assert [bands.band(c) for c in (0.59, 0.6, 0.74, 0.75, math.nan)] == [
        Band.ESCALATE, Band.SELF_CORRECT, Band.SELF_CORRECT, Band.PROCEED, Band.ESCALATE]
    with pytest.raises(ConfigError) as bad:
        ConfidenceBands.from_config(Config.from_pairs({"low": "0.8", "high": "0.7"}), "low", "high", bands)
    assert bad.value.key == "high"


def test_numbers_read_as_rust_writes_them():
    assert [fixed(x, 2) for x in (0.125, 0.375, 2.5, -0.0)] == ["0.12", "0.38", "2.50", "-0.00"]
    assert [display(x) for x in (8.0, 0.1, 1e21, 1e-7, -0.0)] == ["8", "0.1", "1000000000000000000000", "0.0000001", "-0"]


def test_verdict_builders():
    v = Verdict.escalate(Tier.OPERATOR, "c", "r", TriggerKind.RULE).with_role("lead").with_sla(60, None)
    assert (v.role, v.ack_sla_secs, v.resolve_sla_secs, v.guidance) == ("lead", 60, None, None)
    assert Verdict.self_correct("c", "r", "g", TriggerKind.PROBABILISTIC).tier.level == 1


def test_words_are_normalised():
    assert words("DON’T lö\u0301schen su\u200be, ﬁne") == ["dont", "loschen", "sue", "fine"]
    assert words("don`t") == ["dont"]


def test_rules_match_real_phrasings():
    def hits(rule, text):
        return Rule.parse(rule).matches(text)
    assert hits("delete my data", "Please, DELETE my data.")
    assert not hits("delete my data", "undelete my database")
    assert hits("delet* NEAR/6 data", "Under GDPR I demand that you delete all of my personal data")
    assert hits("going to BEFORE/3 regulator", "I am going to the regulator")
    assert not hits("going to BEFORE/3 regulator", "the regulator is not going to")
    assert hits("lawyer EXCEPT no lawyer", "my lawyer will call")
    assert not hits("lawyer EXCEPT no lawyer", "no lawyer needed")
    assert hits("refund AND NOT test", "refund please")


def test_bad_rules_say_why():
    for bad in ["NOT x", "a*", "(a", "{a}", "NEAR/99 x", "a NEAR/2 (b AND c)", "x)", "NOT " * 40 + "x"]:
        with pytest.raises(RuleError):
            Rule.parse(bad)
    with pytest.raises(PhraseError) as bad:
        PhraseSet({"legal": ["lawyer", "a*"]})
    assert (bad.value.cls, bad.value.index) == ("legal", 1)
    phrases = PhraseSet({"legal": ["lawyer", ""], "harm": ["hurt myself"]})
    assert phrases.matching_classes("My lawyer says I might hurt myself") == ["legal", "harm"]
    assert phrases.matching_rule("legal", "my LAWYER").source == "lawyer"
