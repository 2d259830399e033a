"""Write Handoff routing policies in Python.

The same experience as the Rust ``handoff-sdk``: the contract's types, the
host's log and configuration, and the helpers the reference policies use
(money limits per currency, confidence bands, text rules), all testable
natively with pytest before the policy is compiled to a component.
"""

from . import log
from .config import Config, ConfigError, display, fixed
from .confidence import Band, ConfidenceBands
from .money import CurrencyLimits, Exceeded, TierLimits, UnknownCurrency, Within, format_money
from .policy import Policy, component
from .types import (
    Assessment,
    Classification,
    Evaluation,
    Money,
    PolicyInfo,
    Signal,
    Tier,
    TriggerInfo,
    TriggerKind,
    Verdict,
    WorkItem,
    attribute,
    has_label,
)

__all__ = [
    "Assessment", "Band", "Classification", "ConfidenceBands", "Config", "ConfigError",
    "CurrencyLimits", "Evaluation", "Exceeded", "Money", "Policy", "PolicyInfo", "Signal",
    "Tier", "TierLimits", "TriggerInfo", "TriggerKind", "UnknownCurrency", "Verdict", "Within",
    "WorkItem", "attribute", "component", "display", "fixed", "format_money", "has_label", "log",
]
