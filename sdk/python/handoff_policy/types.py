"""The contract's types (``wit/policy.wit``), as plain Python values.

A policy receives and returns these. Field names and enum values are the
ones componentize-py generates for the contract, so a value crosses the
component boundary without a conversion layer, and the same code runs
natively under pytest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import List, Optional, Tuple


class Tier(Enum):
    """Who must act on the work. Higher wins when policies disagree."""

    NONE = 0
    SELF_CORRECT = 1
    OPERATOR = 2
    EXECUTIVE = 3

    @property
    def level(self) -> int:
        """The escalation level, 0 (`none`) to 3 (`executive`)."""
        return self.value


class TriggerKind(Enum):
    """A mandated rule is never tuned away; a probabilistic judgement is calibrated."""

    RULE = 0
    PROBABILISTIC = 1


@dataclass
class Money:
    """An amount in the currency's minor units: no float ever touches money."""

    minor: int
    currency: str


@dataclass
class WorkItem:
    """One unit of agent work the host asks the policy about."""

    id: str
    kind: str
    agent: str
    text: str
    confidence: float
    amount: Optional[Money] = None
    segment: Optional[str] = None
    attempts: int = 0
    attributes: List[Tuple[str, str]] = field(default_factory=list)


def attribute(item: WorkItem, key: str) -> Optional[str]:
    """The value of attribute ``key``, if the caller sent one."""
    for k, v in item.attributes:
        if k == key:
            return v
    return None


@dataclass
class TriggerInfo:
    """One trigger a policy implements, for review."""

    code: str
    kind: TriggerKind
    description: str


@dataclass
class PolicyInfo:
    """What a policy says about itself."""

    name: str
    version: str
    description: str
    triggers: List[TriggerInfo]


@dataclass
class Classification:
    """What kind of situation this is, and which mandated rules fired."""

    labels: List[str]
    rules_fired: List[str] = field(default_factory=list)


def has_label(classification: Classification, label: str) -> bool:
    """Whether ``label`` was attached (works on the host's values too)."""
    return label in classification.labels


@dataclass
class Signal:
    """One piece of evidence behind a score: the "why"."""

    name: str
    weight: float
    detail: str


@dataclass
class Assessment:
    """How risky the work is, and the signals that say why, strongest first."""

    risk: float
    confidence: float
    signals: List[Signal]


@dataclass
class Verdict:
    """The policy's decision."""

    tier: Tier
    reason_code: str
    reason: str
    role: Optional[str] = None
    ack_sla_secs: Optional[int] = None
    resolve_sla_secs: Optional[int] = None
    guidance: Optional[str] = None
    trigger: TriggerKind = TriggerKind.RULE

    @staticmethod
    def proceed(reason_code: str, reason: str, trigger: TriggerKind) -> "Verdict":
        """The agent proceeds."""
        return Verdict(Tier.NONE, reason_code, reason, trigger=trigger)

    @staticmethod
    def self_correct(reason_code: str, reason: str, guidance: str, trigger: TriggerKind) -> "Verdict":
        """The agent retries, told what to change."""
        return Verdict(Tier.SELF_CORRECT, reason_code, reason, guidance=guidance, trigger=trigger)

    @staticmethod
    def escalate(tier: Tier, reason_code: str, reason: str, trigger: TriggerKind) -> "Verdict":
        """A human at ``tier`` must act."""
        return Verdict(tier, reason_code, reason, trigger=trigger)

    def with_role(self, role: str) -> "Verdict":
        """Routes the handoff to a named human role."""
        self.role = role
        return self

    def with_sla(self, ack_secs: Optional[int], resolve_secs: Optional[int]) -> "Verdict":
        """Overrides the tier's default SLA clocks."""
        self.ack_sla_secs = ack_secs
        self.resolve_sla_secs = resolve_secs
        return self


@dataclass
class Evaluation:
    """The three stages' results, from one ``evaluate`` call."""

    classification: Classification
    assessment: Assessment
    verdict: Verdict
