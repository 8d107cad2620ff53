"""``rareflow evaluate``: metrics of a scores file (from ``rareflow score`` or ``compare``).

Labels come from the ``label`` column (rare label vs the bulk labels); ``weight`` is used when
present; the cut is the ``threshold`` column (the model's training-data threshold). A file with
``method``/``seed`` columns (compare's scores.parquet) is evaluated per method and seed.

``binning`` (``--bin-column``): metrics per bin of a column of the file as well (``per_bin``). A
scores file holds no training rows, so the cut in every bin is the file's ``threshold`` (the
model's global cut, placed on its training data); per-bin cuts chosen on training data per bin
come from ``rareflow compare`` (``binning:`` in the config).

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
    binning: dict[str, Any] | None = None,
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
    per_bin = None if binning is None else _per_bin(df, binning, str(path))
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
            **({"per_bin": per_bin} if per_bin is not None else {}),
        },
    )


def _per_bin(df: Any, binning: dict[str, Any], source: str) -> dict[str, Any]:
    """Per-bin metrics at the file's global cut, per method (mean/std over seeds)."""
    from rareflow.evaluation.binned import bin_column, evaluate_binned, make_edges
    from rareflow.evaluation.energy import aggregate_binned

    column = binning["column"]
    values = bin_column(df, column, source)
    if "threshold" not in df.columns:
        raise RareflowError(f"{source}: --bin-column needs the 'threshold' column of `rareflow score` (the model's cut)")
    rare = values[df["_y"].to_numpy(dtype=bool)]
    edges = make_edges(rare, binning.get("edges"), per_decade=binning.get("per_decade", 5), column=column)
    frames: dict[str, list[Any]] = {}
    empty = np.empty(0)
    for (method, _), g in df.groupby(["method", "seed"], sort=False):
        w = g["weight"].to_numpy(dtype=float) if "weight" in g.columns else None
        test = (g["score"].to_numpy(dtype=float), g["_y"].to_numpy(), values[g.index.to_numpy()])
        frames.setdefault(str(method), []).append(evaluate_binned(
            (empty, empty, empty), test, edges, test_weight=w, rare_efficiency=0.5,
            fill_value=float(g["threshold"].iloc[0]), min_events=1, column=column,
        ))  # fmt: skip
    return dict(
        column=column, proxy=not column.startswith("true_"), edges=edges.tolist(), rule="global threshold",
        cut_chosen_on="the model's global cut (the file's threshold column, placed on its training data)",
        methods={m: aggregate_binned(f) for m, f in frames.items()},
    )  # fmt: skip
