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

__all__ = ["Choice", "Flag", "Names", "Number", "Pair", "Settings", "Sizes", "short"]


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
    """One of a few strings (or null when ``none_ok``)."""

    options: tuple[str, ...]
    none_ok: bool = False
    module_ok: bool = False  # also a torch.nn.Module (Python API only: e.g. a user's backbone)

    def describe(self) -> str:
        extra = (" or null" if self.none_ok else "") + (" (or a torch.nn.Module in Python)" if self.module_ok else "")
        return "one of " + " | ".join(self.options) + extra

    def ok(self, value: Any) -> bool:
        if self.module_ok and _is_module(value):
            return True
        return (value is None and self.none_ok) or (isinstance(value, str) and value in self.options)


def _is_module(value: Any) -> bool:
    """``value`` is a ``torch.nn.Module`` (without importing torch when it is not loaded)."""
    import sys

    nn = sys.modules.get("torch.nn")
    return nn is not None and isinstance(value, nn.Module)


@dataclass(frozen=True)
class Sizes:
    """A list of layer widths: integers in ``[1, high]`` (at least ``min_len`` of them), e.g. ``[128, 128]``."""

    min_len: int = 0
    high: int = 65536

    def describe(self) -> str:
        return f"a list of at least {self.min_len} integer(s) in [1, {self.high}], e.g. [128, 128]"

    def ok(self, value: Any) -> bool:
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)) or len(value) < self.min_len:
            return False
        item = Number(integer=True, low=1, high=self.high)
        return all(item.ok(v) for v in value)


@dataclass(frozen=True)
class Names:
    """Column names: a list of strings, ``true`` / ``false`` (all / none) or null (automatic)."""

    def describe(self) -> str:
        return "a list of column names, true, false or null (automatic)"

    def ok(self, value: Any) -> bool:
        if value is None or isinstance(value, bool):
            return True
        return isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value)


@dataclass(frozen=True)
class Pair:
    """A number satisfying ``number`` or a range ``[lo, hi]`` of two such numbers with lo <= hi."""

    number: Number

    def describe(self) -> str:
        return f"{self.number.describe()}, or a range [lo, hi] of two such numbers"

    def ok(self, value: Any) -> bool:
        if isinstance(value, (list, tuple)):
            return len(value) == 2 and all(self.number.ok(v) and v is not None for v in value) and value[0] <= value[1]
        return self.number.ok(value)


@dataclass(frozen=True)
class Settings:
    """A mapping with string keys (``{name: scaled, size: 1.0}``), or null when ``none_ok``."""

    example: str = "{key: value}"
    none_ok: bool = True

    def describe(self) -> str:
        return f"a mapping such as {self.example}" + (" (or null)" if self.none_ok else "")

    def ok(self, value: Any) -> bool:
        if value is None:
            return self.none_ok
        return isinstance(value, dict) and all(isinstance(k, str) for k in value)


Spec = Number | Flag | Choice | Sizes | Names | Pair | Settings


def check(method: str, name: str, value: Any, spec: Spec) -> None:
    """Raise a one-line :class:`RareflowError` unless ``value`` satisfies ``spec``."""
    if not spec.ok(value):
        raise RareflowError(
            f"method '{method}': parameter {name}={short(value)} is invalid; it must be {spec.describe()} "
            f"(e.g. --param {name}=...)"
        )
