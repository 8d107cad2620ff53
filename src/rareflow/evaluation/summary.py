"""Aggregate per-seed metrics into SPEC's metrics.json (means over seeds, ``*_std`` spreads)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from rareflow import __version__


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars -> Python, NaN/inf -> None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        v = float(value)
        return v if math.isfinite(v) else None
    return value


def _mean_std(values: list[float]) -> tuple[float, float]:
    arr = np.asarray([np.nan if v is None else v for v in values], dtype=float)
    if np.all(np.isnan(arr)):
        return float("nan"), float("nan")
    return float(np.nanmean(arr)), float(np.nanstd(arr, ddof=1)) if np.sum(~np.isnan(arr)) > 1 else 0.0


def aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean and std over the rows (one per seed) of one method; nested dicts aggregated per key."""
    out: dict[str, Any] = {}
    keys = [k for k in rows[0] if k not in ("method", "seed")]
    for key in keys:
        first = rows[0][key]
        if isinstance(first, dict):
            means, stds = {}, {}
            for sub in first:
                means[sub], stds[sub] = _mean_std([r[key][sub] for r in rows])
            out[key], out[f"{key}_std"] = means, stds
        elif isinstance(first, str):  # labels such as kind, threshold_rule: kept when every seed agrees
            values = {r.get(key) for r in rows}
            out[key] = first if len(values) == 1 else sorted(map(str, values))
        elif isinstance(first, (int, float, np.floating, np.integer)) or first is None:
            out[key], out[f"{key}_std"] = _mean_std([r[key] for r in rows])
    return out


def summarise(per_seed: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{method: aggregated metrics}`` in the order methods first appear."""
    methods: dict[str, list[dict[str, Any]]] = {}
    for row in per_seed:
        methods.setdefault(row["method"], []).append(row)
    return {m: aggregate(rows) for m, rows in methods.items()}


def metrics_document(
    dataset: str | dict[str, Any],
    scenario: dict[str, Any],
    seeds: list[int],
    per_seed: list[dict[str, Any]],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The metrics.json document (SPEC), with per-seed values kept under ``per_seed``."""
    doc: dict[str, Any] = {
        "rareflow_version": __version__,
        "dataset": dataset,
        "scenario": scenario,
        "seeds": seeds,
        "methods": summarise(per_seed),
        "per_seed": per_seed,
    }
    if extra:
        doc.update(extra)
    return _clean(doc)


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, allow_nan=False) + "\n"
