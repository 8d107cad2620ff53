"""``rareflow evaluate``: metrics of a scores file (from ``rareflow score`` or ``compare``).

Labels come from the ``label`` column (rare label vs the bulk labels); ``weight`` is used when
present; the cut is the ``threshold`` column (the model's training-data threshold). A file with
``method``/``seed`` columns (compare's scores.parquet) is evaluated per method and seed.

Scores of the model's own training rows (``in_sample`` in the scores metadata, see
:mod:`rareflow.fingerprint`) are evaluated but warned about, and marked ``data.in_sample``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from rareflow.io.tables import encode_labels, keep_valid
from rareflow.errors import RareflowError
from rareflow.evaluation.metrics import evaluate_scores
from rareflow.evaluation.summary import metrics_document
from rareflow.fingerprint import IN_SAMPLE_WARNING
from rareflow.io.scores import read_scores

log = logging.getLogger(__name__)


def _check_exposure(n_events: float, alpha: float) -> None:
    """Li & Ma needs a positive exposure: ``alpha`` (on/off ratio) > 0 and events > 0, both finite."""
    if not (np.isfinite(alpha) and alpha > 0):
        raise RareflowError(f"--alpha {alpha}: the on/off exposure ratio must be a finite number > 0, e.g. 0.2")
    if not (np.isfinite(n_events) and n_events > 0):
        raise RareflowError(f"--significance-events {n_events}: must be a finite number > 0, e.g. 1e6")


def evaluate_file(
    path: str | Path,
    rare_label: str = "gamma",
    bulk_labels: list[str] | None = None,
    significance_events: float = 1e6,
    significance_alpha: float = 0.2,
    drop_nonfinite: bool = False,
) -> dict[str, Any]:
    """The metrics.json document for the scores in ``path``.

    Rows flagged ``is_valid=False`` (not scored by design) are skipped; other rows with a NaN/inf
    score are an error, or skipped with ``drop_nonfinite``.
    """
    _check_exposure(significance_events, significance_alpha)
    df, meta = read_scores(path)
    if meta.get("in_sample"):
        log.warning("%s: %s", path, IN_SAMPLE_WARNING)
    df = keep_valid(df, str(path))
    df, y = encode_labels(df, rare_label, bulk_labels, str(path))
    bad = ~np.isfinite(df["score"].to_numpy(dtype=float))
    if bad.any() and drop_nonfinite:
        df, y = df.loc[~bad].reset_index(drop=True), y[~bad]
    elif bad.any():
        raise RareflowError(
            f"{path}: {int(bad.sum())} non-finite score(s), first at row {int(np.argmax(bad))}; rescore the data "
            "or pass --drop-nonfinite to skip those rows"
        )
    df = df.assign(_y=y)
    if "method" not in df.columns:
        df = df.assign(method=meta.get("method", "model"))
    if "seed" not in df.columns:
        df = df.assign(seed=0)
    per_seed = []
    for (method, seed), g in df.groupby(["method", "seed"], sort=False):
        if g["_y"].nunique() < 2:
            raise RareflowError(f"{path}: method {method}, seed {seed} has only one class; metrics need rare and bulk events")
        thr = float(g["threshold"].iloc[0]) if "threshold" in g.columns else None
        w = g["weight"].to_numpy(dtype=float) if "weight" in g.columns else None
        m = evaluate_scores(
            g["_y"], g["score"], w, threshold=thr,
            significance_events=significance_events, significance_alpha=significance_alpha,
        )
        per_seed.append({"method": str(method), "seed": int(seed), **m})
    bulk = sorted(set(df["label"].astype(str)) - {rare_label})
    return metrics_document(
        dataset=str(path),
        scenario={"kind": "external", "note": "metrics of a scores file; scenario not known to evaluate"},
        seeds=sorted({r["seed"] for r in per_seed}),
        per_seed=per_seed,
        extra={
            "data": {
                "rare_label": rare_label, "bulk_labels": bulk, "in_sample": bool(meta.get("in_sample", False)),
                "holdout_only": bool(meta.get("holdout_only", False)),
            },
            "significance": {"n_events": significance_events, "alpha": significance_alpha},
        },
    )
