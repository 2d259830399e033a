"""Authorization limits per currency, the commonest compliance trigger.

Limits are in minor units and compared as integers: no floating point ever
decides whether a refund needs a human.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

from .config import Config, ConfigError
from .types import Money, Tier


@dataclass(frozen=True)
class CurrencyLimits:
    """Amounts strictly above a limit breach it."""

    operator: Optional[int]
    executive: Optional[int]


@dataclass(frozen=True)
class Within:
    """Within every limit; ``share`` is the amount as a fraction of the lowest limit."""

    share: float


@dataclass(frozen=True)
class Exceeded:
    """Above the limit for ``tier``."""

    tier: Tier
    limit: int


@dataclass(frozen=True)
class UnknownCurrency:
    """Limits exist for this work, but not in this currency: it cannot be authorized automatically."""


class TierLimits:
    """Operator and executive limits per currency, from ``<prefix>.<CURRENCY>.operator``
    and ``<prefix>.<CURRENCY>.executive``."""

    def __init__(self, by_currency: Dict[str, CurrencyLimits]):
        self.by_currency = by_currency

    @staticmethod
    def from_config(config: Config, prefix: str) -> "TierLimits":
        """Reads and checks the limits under ``prefix``."""
        by_currency: Dict[str, CurrencyLimits] = {}
        for currency in config.children(prefix):
            if len(currency) != 3 or not all("A" <= c <= "Z" for c in currency):
                raise ConfigError(
                    f"{prefix}.{currency}",
                    "currency must be a three-letter upper-case ISO 4217 code",
                )
            operator = config.int(f"{prefix}.{currency}.operator", minimum=0)
            executive = config.int(f"{prefix}.{currency}.executive", minimum=0)
            if operator is not None and executive is not None and executive <= operator:
                raise ConfigError(
                    f"{prefix}.{currency}.executive",
                    f"executive limit {executive} must be above the operator limit {operator}",
                )
            if operator is None and executive is None:
                raise ConfigError(f"{prefix}.{currency}", "expected an `operator` or `executive` limit")
            by_currency[currency] = CurrencyLimits(operator, executive)
        return TierLimits(by_currency)

    def is_empty(self) -> bool:
        return not self.by_currency

    def check(self, amount: Money):
        """``Within``, ``Exceeded`` or ``UnknownCurrency`` for ``amount`` (its absolute value)."""
        limits = self.by_currency.get(amount.currency)
        if limits is None:
            return UnknownCurrency()
        value = abs(amount.minor)
        if limits.executive is not None and value > limits.executive:
            return Exceeded(Tier.EXECUTIVE, limits.executive)
        if limits.operator is not None and value > limits.operator:
            return Exceeded(Tier.OPERATOR, limits.operator)
        lowest = limits.operator if limits.operator is not None else limits.executive
        return Within(1.0 if lowest == 0 else value / lowest)


def format_money(amount: Money) -> str:
    """Minor units for people: 125000 USD is ``1250.00 USD``."""
    sign = "-" if amount.minor < 0 else ""
    value = abs(amount.minor)
    return f"{sign}{value // 100}.{value % 100:02d} {amount.currency}"
