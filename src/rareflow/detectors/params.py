"""Declarative checks of detector constructor parameters: one line naming the parameter and the fix.

A detector lists its checked parameters in the class attribute ``param_specs``
(``{"max_iter": Number(integer=True, low=1)}``); :meth:`rareflow.detectors.base.Detector.check_params`
runs them when :func:`rareflow.detectors.get_detector` builds the detector and again at the start
of ``fit`` (scikit-learn's ``set_params`` may change them in between). User values are shown
truncated, never in full.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

from rareflow.errors import RareflowError

__all__ = ["Choice", "Flag", "Number", "short"]


def short(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters (user input never goes whole into a message)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class Number:
    """A real (or ``integer``) number in ``[low, high]`` (open ends with ``low_open`` / ``high_open``);
    ``none_ok`` also accepts None, ``words`` a few strings (e.g. ``"auto"``)."""

    integer: bool = False
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    none_ok: bool = False
    words: tuple[str, ...] = ()

    def describe(self) -> str:
        kind = "an integer" if self.integer else "a number"
        lo = "" if self.low is None else f"{'>' if self.low_open else '>='} {self.low:g}"
        hi = "" if self.high is None else f"{'<' if self.high_open else '<='} {self.high:g}"
        rng = " and ".join(p for p in (lo, hi) if p)
        extra = [f"'{w}'" for w in self.words] + (["null"] if self.none_ok else [])
        return f"{kind}{' ' + rng if rng else ''}" + (f" (or {', '.join(extra)})" if extra else "")

    def ok(self, value: Any) -> bool:
        if value is None:
            return self.none_ok
        if isinstance(value, str):
            return value in self.words
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            return False
        if self.integer and not float(value).is_integer():
            return False
        v = float(value)
        if not math.isfinite(v):
            return False
        if self.low is not None and (v < self.low or (self.low_open and v == self.low)):
            return False
        return not (self.high is not None and (v > self.high or (self.high_open and v == self.high)))


@dataclass(frozen=True)
class Flag:
    """``true`` or ``false``."""

    def describe(self) -> str:
        return "true or false"

    def ok(self, value: Any) -> bool:
        return isinstance(value, bool)


@dataclass(frozen=True)
class Choice:
    """One of a few strings."""

    options: tuple[str, ...]

    def describe(self) -> str:
        return "one of " + " | ".join(self.options)

    def ok(self, value: Any) -> bool:
        return isinstance(value, str) and value in self.options


def check(method: str, name: str, value: Any, spec: Number | Flag | Choice) -> None:
    """Raise a one-line :class:`RareflowError` unless ``value`` satisfies ``spec``."""
    if not spec.ok(value):
        raise RareflowError(
            f"method '{method}': parameter {name}={short(value)} is invalid; it must be {spec.describe()} "
            f"(e.g. --param {name}=...)"
        )
