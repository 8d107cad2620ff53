"""The schema of a model file's ``meta.json``, validated before anything is built from it.

Every field is typed and bounded (pydantic): a missing ``method``/``params``/``threshold``, a
wrong type, a list instead of a mapping, nesting deeper than :data:`MAX_DEPTH`, a non-finite
threshold, feature names that repeat or disagree with ``n_features``, or a blob name that is not
a plain file name (``../..``) are refused with one line naming the field.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

#: Largest meta.json accepted (bytes) and deepest nesting of its values.
MAX_META_BYTES = 8 * 1024**2
MAX_DEPTH = 32
_BLOB_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value (iterative: a 20000-deep value cannot exhaust the stack)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > MAX_DEPTH:
            return deepest
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return deepest


class WorkingPoint(BaseModel):
    """Which rule placed the cut and its efficiencies on the training data (informational)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    rule: str | None = Field(default=None, max_length=200)
    training_efficiencies: dict[str, float] = Field(default_factory=dict, max_length=8)


class TrainingData(BaseModel):
    """Fingerprint of the table a model was trained on (see :mod:`rareflow.fingerprint`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    fingerprint: str = Field(max_length=64)
    n_rows: int = Field(ge=0, le=10**12)
    holdout: float = Field(ge=0, lt=1)
    holdout_seed: int = Field(ge=0, le=2**32 - 1)


class ModelMeta(BaseModel):
    """``meta.json`` of schema 1 (see :mod:`rareflow.persistence`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    schema_version: int
    rareflow_version: str = Field(max_length=64)
    method: str = Field(min_length=1, max_length=64)
    params: dict[str, Any]
    feature_names: list[str] | None = Field(default=None, max_length=100_000)
    n_features: int = Field(ge=1, le=10_000_000)
    threshold: float
    state: dict[str, Any]
    blobs: list[str] = Field(max_length=64)
    working_point: WorkingPoint | None = None  # absent in files written before it was recorded
    training_data: TrainingData | None = None
    gammaness: dict[str, Any] | None = None  # rareflow.calibration record; absent in older files

    @field_validator("threshold", mode="before")
    @classmethod
    def _finite(cls, v: Any) -> Any:
        if isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError("threshold is not finite")
        return v

    @field_validator("blobs")
    @classmethod
    def _plain_names(cls, v: list[str]) -> list[str]:
        for name in v:
            if not _BLOB_NAME.match(name) or ".." in name:
                raise ValueError(f"blob name {name[:40]!r} is not a plain file name")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "ModelMeta":
        names = self.feature_names
        if names is not None:
            if len(names) != self.n_features:
                raise ValueError(f"{len(names)} feature names but n_features is {self.n_features}")
            if len(set(names)) != len(names):
                dup = sorted({n for n in names if names.count(n) > 1})[:3]
                raise ValueError(f"feature names repeat ({', '.join(n[:40] for n in dup)})")
        for key in ("params", "state"):
            if _depth(getattr(self, key)) > MAX_DEPTH:
                raise ValueError(f"{key} nested deeper than {MAX_DEPTH} levels")
        return self


def parse_meta(raw: bytes) -> dict[str, Any]:
    """Decode and validate ``meta.json`` bytes; ``ValueError`` with a one-line reason otherwise."""
    if len(raw) > MAX_META_BYTES:
        raise ValueError(f"meta.json is {len(raw)} bytes (limit {MAX_META_BYTES})")
    try:
        doc = json.loads(raw)
    except RecursionError:
        raise ValueError("meta.json is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, int digit limit, bad UTF-8
        raise ValueError(f"meta.json is not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(doc, dict):
        raise ValueError(f"meta.json holds a {type(doc).__name__}, not a mapping")
    try:
        return ModelMeta(**doc).model_dump()
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "meta.json"
        return _raise(f"meta.json field {loc[:60]}: {err['msg'][:120]}")
    except TypeError as exc:  # non-string keys cannot occur in JSON; keep the contract anyway
        return _raise(f"meta.json: {str(exc)[:120]}")


def _raise(msg: str) -> Any:
    raise ValueError(msg)
