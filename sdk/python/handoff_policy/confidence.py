"""Confidence bands: the core of every probabilistic trigger."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum

from .config import Config, ConfigError, display


class Band(Enum):
    """Where an agent's confidence falls."""

    ESCALATE = "escalate"
    SELF_CORRECT = "self-correct"
    PROCEED = "proceed"


@dataclass(frozen=True)
class ConfidenceBands:
    """Two thresholds splitting [0, 1] into three bands."""

    escalate_below: float
    self_correct_below: float

    @staticmethod
    def from_config(config: Config, escalate_key: str, self_correct_key: str,
                    defaults: "ConfidenceBands") -> "ConfidenceBands":
        """Reads both thresholds, with defaults, and checks they are ordered in [0, 1]."""
        low = config.unit_interval(escalate_key, defaults.escalate_below)
        high = config.unit_interval(self_correct_key, defaults.self_correct_below)
        if high < low:
            raise ConfigError(
                self_correct_key,
                f"must be at least `{escalate_key}` ({display(low)}), got {display(high)}",
            )
        return ConfidenceBands(low, high)

    def band(self, confidence: float) -> Band:
        """A NaN confidence escalates: it is never evidence that the agent may proceed."""
        if math.isnan(confidence) or confidence < self.escalate_below:
            return Band.ESCALATE
        if confidence < self.self_correct_below:
            return Band.SELF_CORRECT
        return Band.PROCEED

    def margin(self, confidence: float) -> float:
        """Distance to the nearest threshold: how clear-cut the band is. Zero on a boundary."""
        if math.isnan(confidence):
            return 0.0
        return min(abs(confidence - self.escalate_below), abs(confidence - self.self_correct_below))
