"""`confidence-gate` in Python: the probabilistic reference policy, ported
line for line from ``plugins/confidence-gate`` so that the conformance
vectors hold it to the Rust build's verdicts, reason for reason.

- The agent's confidence falls into one of three bands: below
  ``escalate-below`` an operator must look; below ``self-correct-below`` the
  agent retries with guidance; otherwise it proceeds.
- Anomalies escalate to an operator whatever the confidence: an amount more
  than ``anomaly-factor`` times the typical amount for its kind and
  currency, or a kind of work the deployment does not know.
"""

import math

from handoff_policy import (
    Assessment, Band, Classification, ConfidenceBands, Config, ConfigError, Policy,
    PolicyInfo, Signal, Tier, TriggerInfo, TriggerKind, Verdict, display, fixed,
    format_money, has_label,
)

DEFAULT_BANDS = ConfidenceBands(escalate_below=0.6, self_correct_below=0.75)
LABEL_UNKNOWN_KIND = "anomaly.unknown-kind"
LABEL_AMOUNT = "anomaly.amount"
PROBABILISTIC = TriggerKind.PROBABILISTIC


class ConfidenceGate(Policy):
    def __init__(self, bands, known_kinds, typical, anomaly_factor, operator_role, guidance):
        self.bands = bands
        self.known_kinds = known_kinds
        self.typical = typical
        self.anomaly_factor = anomaly_factor
        self.operator_role = operator_role
        self.guidance = guidance

    @classmethod
    def info(cls):
        return PolicyInfo(
            name="confidence-gate",
            version="0.1.0",
            description="Probabilistic gate on the agent's confidence, with anomaly signals for "
            "unusual amounts and unknown kinds of work.",
            triggers=[
                TriggerInfo(
                    "confidence", PROBABILISTIC,
                    "Agent confidence below `escalate-below` escalates to an operator; below "
                    "`self-correct-below` the agent retries with guidance.",
                ),
                TriggerInfo(
                    "anomaly", PROBABILISTIC,
                    "An amount over `anomaly-factor` times the typical amount for its kind and "
                    "currency, or a kind of work not in `known-kinds`.",
                ),
            ],
        )

    @classmethod
    def configure(cls, config: Config):
        bands = ConfidenceBands.from_config(config, "escalate-below", "self-correct-below", DEFAULT_BANDS)
        anomaly_factor = config.float("anomaly-factor", 8.0)
        if not (math.isfinite(anomaly_factor) and anomaly_factor > 1.0):
            raise ConfigError("anomaly-factor", f"expected a number above 1, got {display(anomaly_factor)}")
        typical = {}
        for kind in config.children("typical"):
            for currency in config.children(f"typical.{kind}"):
                key = f"typical.{kind}.{currency}"
                amount = config.int(key, 0, minimum=0)
                if amount == 0:
                    raise ConfigError(key, "a typical amount must be above zero")
                typical[(kind, currency)] = amount
        return cls(
            bands,
            config.list("known-kinds"),
            typical,
            anomaly_factor,
            config.string("operator-role", "operator"),
            config.string(
                "guidance",
                "Check the answer against your sources and resubmit with higher confidence.",
            ),
        )

    def classify(self, item):
        band = self.bands.band(item.confidence)
        labels = [{Band.ESCALATE: "confidence.low", Band.SELF_CORRECT: "confidence.marginal",
                   Band.PROCEED: "confidence.high"}[band]]
        if self.unknown_kind(item):
            labels.append(LABEL_UNKNOWN_KIND)
        ratio = self.amount_ratio(item)
        if ratio is not None and ratio > self.anomaly_factor:
            labels.append(LABEL_AMOUNT)
        # Probabilistic triggers never count as mandated rules.
        return Classification(labels, [])

    def score(self, item, classification):
        confidence = 0.0 if math.isnan(item.confidence) else min(max(item.confidence, 0.0), 1.0)
        signals = [Signal("confidence.shortfall", 1.0 - confidence, f"agent confidence {fixed(item.confidence, 2)}")]
        if has_label(classification, LABEL_UNKNOWN_KIND):
            signals.append(Signal(LABEL_UNKNOWN_KIND, 0.8, f"kind `{item.kind}` is not one this deployment expects"))
        ratio = self.amount_ratio(item)
        if ratio is not None:
            # Weight grows with how far past the anomaly factor the amount is.
            weight = min(ratio / (2.0 * self.anomaly_factor), 1.0)
            signals.append(Signal("amount.ratio", weight,
                                  f"{format_money(item.amount)} is {fixed(ratio, 1)}x the typical amount"))
        signals.sort(key=lambda signal: signal.weight, reverse=True)
        risk = signals[0].weight if signals else 0.0
        # Confident when the agent's confidence sits well inside a band, unsure on a boundary.
        own_confidence = min(0.5 + 2.0 * self.bands.margin(confidence), 1.0)
        return Assessment(risk, own_confidence, signals)

    def escalate(self, item, classification, assessment):
        def to_operator(code, reason):
            return Verdict.escalate(Tier.OPERATOR, code, reason, PROBABILISTIC).with_role(self.operator_role)

        ratio = self.amount_ratio(item)
        if has_label(classification, LABEL_AMOUNT) and ratio is not None:
            return to_operator(
                "anomaly.amount",
                f"{item.kind} {format_money(item.amount)} is {fixed(ratio, 1)}x the typical amount, "
                f"beyond the anomaly factor of {display(self.anomaly_factor)}.",
            )
        if has_label(classification, LABEL_UNKNOWN_KIND):
            return to_operator("anomaly.unknown-kind",
                               f"Kind of work `{item.kind}` is not one this deployment expects.")
        band = self.bands.band(item.confidence)
        if band is Band.ESCALATE:
            return to_operator(
                "confidence.low",
                f"Agent confidence {fixed(item.confidence, 2)} is below the escalation threshold "
                f"{fixed(self.bands.escalate_below, 2)}.",
            )
        if band is Band.SELF_CORRECT:
            return Verdict.self_correct(
                "confidence.marginal",
                f"Agent confidence {fixed(item.confidence, 2)} is below "
                f"{fixed(self.bands.self_correct_below, 2)}; the agent should retry.",
                self.guidance,
                PROBABILISTIC,
            )
        return Verdict.proceed("confidence.ok", f"Agent confidence {fixed(item.confidence, 2)} is within policy.",
                               PROBABILISTIC)

    def unknown_kind(self, item):
        return bool(self.known_kinds) and item.kind not in self.known_kinds

    def amount_ratio(self, item):
        """The amount as a multiple of the typical amount for its kind and currency."""
        if item.amount is None:
            return None
        typical = self.typical.get((item.kind, item.amount.currency))
        if typical is None:
            return None
        return float(abs(item.amount.minor)) / float(typical)
