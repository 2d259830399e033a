"""The operator's configuration for one plugin, as the policy sees it.

The host hands every value over as a string under a dotted key (nested
manifest tables become ``a.b.c``, array elements ``list.0``, ``list.1`` ...).
``Config`` turns them into typed values and reports a bad one by key, so the
operator reading the load error knows which line to fix. The messages are
the Rust SDK's, word for word.
"""

from __future__ import annotations

import json
import math
from typing import Dict, Iterable, List, Optional, Tuple


class ConfigError(Exception):
    """A bad or missing configuration value, named by its key."""

    def __init__(self, key: str, reason: str):
        super().__init__(f"config key `{key}`: {reason}")
        self.key = key
        self.reason = reason


class Config:
    """A snapshot of one plugin's configuration."""

    def __init__(self, values: Optional[Dict[str, str]] = None):
        self._values: Dict[str, str] = dict(sorted((values or {}).items()))

    @staticmethod
    def from_pairs(pairs: Iterable[Tuple[str, str]] | Dict[str, str]) -> "Config":
        """A configuration from explicit pairs: how tests configure a policy without a host."""
        items = pairs.items() if isinstance(pairs, dict) else pairs
        return Config({str(k): str(v) for k, v in items})

    def get(self, key: str) -> Optional[str]:
        """The raw string value of ``key``."""
        return self._values.get(key)

    def keys(self) -> List[str]:
        """Every key, sorted."""
        return list(self._values)

    def _parse(self, key: str, convert, what: str):
        raw = self.get(key)
        if raw is None:
            return None
        try:
            return convert(raw.strip())
        except (ValueError, OverflowError):
            raise ConfigError(key, f"expected {what}, got {json.dumps(raw)}") from None

    def int(self, key: str, default: Optional[int] = None, *, minimum: Optional[int] = None) -> Optional[int]:
        """``key`` as an integer (``minimum=0`` for a non-negative one), or ``default``."""
        what = "a non-negative integer" if minimum == 0 else "an integer"

        def convert(text: str) -> int:
            if not text or not (text.isdigit() or (text[0] in "+-" and text[1:].isdigit())):
                raise ValueError(text)
            value = int(text)
            if minimum is not None and value < minimum:
                raise ValueError(text)
            return value

        value = self._parse(key, convert, what)
        return default if value is None else value

    def float(self, key: str, default: Optional[float] = None) -> Optional[float]:
        """``key`` as a number, or ``default``."""

        def convert(text: str) -> float:
            # Python also reads `1_000`; Rust, and so the other SDKs, do not.
            if "_" in text:
                raise ValueError(text)
            return float(text)

        value = self._parse(key, convert, "a number")
        return default if value is None else value

    def bool(self, key: str, default: Optional[bool] = None) -> Optional[bool]:
        """``key`` as ``true`` or ``false``, or ``default``."""

        def convert(text: str) -> bool:
            if text not in ("true", "false"):
                raise ValueError(text)
            return text == "true"

        value = self._parse(key, convert, "true or false")
        return default if value is None else value

    def unit_interval(self, key: str, default: float) -> float:
        """``key`` as a probability or confidence in [0, 1], or ``default``."""
        value = self.float(key, default)
        if not (0.0 <= value <= 1.0):
            raise ConfigError(key, f"expected a number between 0 and 1, got {display(value)}")
        return value

    def string(self, key: str, default: str) -> str:
        """``key`` as a string, or ``default``."""
        value = self.get(key)
        return default if value is None else value

    def list(self, key: str) -> List[str]:
        """The elements of the array at ``key``; a plain value counts as one element."""
        single = self.get(key)
        if single is not None:
            return [single]
        out = []
        while (value := self.get(f"{key}.{len(out)}")) is not None:
            out.append(value)
        return out

    def children(self, prefix: str) -> List[str]:
        """The distinct next key segments under ``prefix``, sorted."""
        lead = prefix + "."
        names: List[str] = []
        for key in self._values:
            if key.startswith(lead):
                name = key[len(lead):].split(".", 1)[0]
                if not names or names[-1] != name:
                    names.append(name)
        return names


def display(value: float) -> str:
    """A float the way Rust's ``{}`` shows it (``8`` not ``8.0``, no exponent),
    so that reasons read the same whichever language wrote the policy."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = repr(value)
    if "e" in text:
        from decimal import Decimal

        text = format(Decimal(text), "f")
    if text.endswith(".0"):
        text = text[:-2]
    return text


def fixed(value: float, digits: int) -> str:
    """A float with ``digits`` decimals, the way Rust's ``{:.N}`` shows it
    (round half to even on the exact value; ``NaN`` and ``inf`` spelled out)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return f"{value:.{digits}f}"
