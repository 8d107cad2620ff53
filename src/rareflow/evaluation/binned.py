r"""Binned evaluation: a cut per bin of energy (or any column), chosen on training data.

The gamma/hadron separation of an IACT changes by an order of magnitude between 50 GeV and 50 TeV,
so one global cut is too tight at some energies and too loose at others. The field's practice
(e.g. pyirf's ``calculate_percentile_cut``; CTA IRF production, Cherenkov Telescope Array
Observatory 2021) is to choose the cut **per energy bin**, then quote per bin:

* rare (gamma) efficiency :math:`\epsilon_r = \sum_{rare,\,s\ge c} w / \sum_{rare} w`,
* bulk (hadron) acceptance :math:`\epsilon_b`, likewise on the bulk class,
* the quality factor :math:`Q = \epsilon_r / \sqrt{\epsilon_b}` (the gain in significance of a
  background-dominated signal, Hillas 1985),
* the ROC AUC inside the bin (cut-free separation power),
* Kish's effective event counts :math:`n_{eff} = (\sum w)^2 / \sum w^2` per class.

Two cut rules, both on TRAINING scores of one bin only (test data never tunes the cut):

``rare_efficiency=e``  pyirf's percentile cut: the :math:`100(1-e)`-th percentile of the rare
                       training scores (``np.nanpercentile``, linear interpolation), so a fraction
                       ``e`` of rare events keeps ``score >= cut`` (pyirf: ``op=operator.ge``).
``bulk_acceptance=a``  the :math:`100(1-a)`-th percentile of the bulk training scores.

With training weights the percentile is the weighted one (``method="inverted_cdf"``). A bin with
fewer than ``min_events`` training events of the class the rule uses gets ``fill_value`` (like
pyirf's ``fill_value``; default: the same rule applied to all training events pooled) and
``cut_filled=True``. Bins with fewer than ``min_count`` test events of either class are kept and
flagged ``low_statistics`` — never dropped. Bin membership is ``low <= x < high`` (pyirf's
``np.digitize``), except that values equal to the last edge belong to the last bin, so the
default edges over the data's range hold every event.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from rareflow.errors import RareflowError
from rareflow.evaluation.metrics import kish_n_eff, roc_auc, weighted_roc

__all__ = [
    "MIN_COUNT",
    "aggregate_seeds",
    "assign_bins",
    "bin_column",
    "binned_cuts",
    "evaluate_binned",
    "make_edges",
]

#: Fewer test events than this in either class flags a bin ``low_statistics`` (one event more or
#: less moves an efficiency by > 5 % below 20 events).
MIN_COUNT = 20
#: Fewer training events than this of the rule's class: the bin's cut is ``fill_value`` (pyirf's default).
MIN_EVENTS = 10
_METRICS = ("cut", "rare_efficiency", "bulk_acceptance", "q_factor", "auc", "n_eff_rare", "n_eff_bulk")


def bin_column(df: pd.DataFrame, column: str, source: str = "table") -> np.ndarray:
    """The values of ``column`` as floats, or a one-line error naming the table and close columns."""
    if column not in df.columns:
        near = [c for c in df.columns if "energy" in c or "intensity" in c or "size" in c.lower()][:5]
        raise RareflowError(
            f"{source}: no bin column {column!r}; pass --bin-column / binning.column with one of its columns"
            + (f" (e.g. {', '.join(near)})" if near else "")
        )
    try:
        return df[column].to_numpy(dtype=float)
    except (TypeError, ValueError) as exc:
        raise RareflowError(f"{source}: bin column {column!r} is not numeric ({exc})") from exc


def make_edges(
    values: Any,
    edges: Sequence[float] | None = None,
    *,
    per_decade: int = 5,
    value_range: tuple[float, float] | None = None,
    column: str = "bin column",
) -> np.ndarray:
    """Bin edges: explicit ``edges``, or ``per_decade`` log-spaced bins over ``value_range`` (default:
    the finite data's min..max). Any bad binning raises a one-line :class:`RareflowError`."""
    if edges is not None:
        e = np.asarray(edges, dtype=float).ravel()
        if e.size < 2 or not np.all(np.isfinite(e)):
            raise RareflowError(f"binning of {column!r}: need >= 2 finite edges (got {list(e)}); e.g. [0.1, 1, 10]")
        if np.any(np.diff(e) <= 0):
            raise RareflowError(f"binning of {column!r}: edges must be strictly increasing (got {list(e)})")
        return e
    if per_decade < 1:
        raise RareflowError(f"binning of {column!r}: per_decade must be >= 1 (got {per_decade})")
    lo, hi = value_range if value_range is not None else _data_range(values, column)
    if not (lo > 0 and hi > lo):
        raise RareflowError(
            f"binning of {column!r}: log bins need 0 < low < high (got {lo}, {hi}); pass explicit edges for this column"
        )
    n = max(1, int(np.ceil(np.log10(hi / lo) * per_decade - 1e-9)))
    return np.geomspace(lo, hi, n + 1)


def _data_range(values: Any, column: str) -> tuple[float, float]:
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise RareflowError(f"binning of {column!r}: no finite values to bin")
    if np.any(v <= 0):
        raise RareflowError(
            f"binning of {column!r}: {int(np.sum(v <= 0))} values <= 0 cannot go into log bins; "
            "pass explicit linear edges (binning.edges) or a positive column"
        )
    return float(v.min()), float(v.max())


def assign_bins(values: Any, edges: np.ndarray) -> np.ndarray:
    """Bin index per value (``low <= x < high``; the last edge closes the last bin); -1 outside."""
    v = np.asarray(values, dtype=float)
    idx = np.searchsorted(edges, v, side="right") - 1
    idx[v == edges[-1]] = len(edges) - 2
    idx[(idx < 0) | (idx >= len(edges) - 1) | ~np.isfinite(v)] = -1
    return idx


def _percentile(scores: np.ndarray, weight: np.ndarray | None, q: float) -> float:
    """``q``-th percentile (0-100): pyirf's ``np.nanpercentile``, or the weighted inverted CDF."""
    if weight is None:
        return float(np.nanpercentile(scores, q))
    ok = np.isfinite(scores)
    return float(np.percentile(scores[ok], q, weights=weight[ok], method="inverted_cdf"))


def _rule(rare_efficiency: float | None, bulk_acceptance: float | None) -> tuple[bool, float]:
    """``(use_rare_class, fraction kept)`` from exactly one of the two rules."""
    if (rare_efficiency is None) == (bulk_acceptance is None):
        raise RareflowError("binned cut: give exactly one of rare_efficiency or bulk_acceptance (e.g. rare_efficiency=0.7)")
    frac = rare_efficiency if rare_efficiency is not None else bulk_acceptance
    if not 0.0 < float(frac) < 1.0:
        raise RareflowError(f"binned cut: the kept fraction must be in (0, 1) (got {frac})")
    return rare_efficiency is not None, float(frac)


def binned_cuts(
    scores: Any, labels: Any, bin_values: Any, edges: np.ndarray, *, weight: Any = None,
    rare_efficiency: float | None = None, bulk_acceptance: float | None = None,
    fill_value: float | None = None, min_events: int = MIN_EVENTS,
) -> pd.DataFrame:  # fmt: skip
    """Per-bin cut on TRAINING data: ``bin, low, high, n_train, cut, cut_filled`` (see module docstring)."""
    use_rare, frac = _rule(rare_efficiency, bulk_acceptance)
    s = np.asarray(scores, dtype=float)
    cls = np.asarray(labels).astype(bool) == use_rare
    w = None if weight is None else np.asarray(weight, dtype=float)
    q = 100.0 * (1.0 - frac)
    if fill_value is None:
        if not cls.any():
            raise RareflowError(f"binned cut: no {'rare' if use_rare else 'bulk'} training events to choose a cut on")
        fill_value = _percentile(s[cls], None if w is None else w[cls], q)
    idx = assign_bins(bin_values, edges)
    rows = []
    for b in range(len(edges) - 1):
        m = cls & (idx == b)
        filled = int(m.sum()) < min_events
        cut = fill_value if filled else _percentile(s[m], None if w is None else w[m], q)
        rows.append(dict(bin=b, low=edges[b], high=edges[b + 1], n_train=int(m.sum()), cut=cut, cut_filled=filled))
    return pd.DataFrame(rows)


def _bin_metrics(y: np.ndarray, s: np.ndarray, w: np.ndarray, cut: float, min_count: int) -> dict[str, Any]:
    keep = s >= cut
    wr, wb = w[y].sum(), w[~y].sum()
    eff_r = float(w[y & keep].sum() / wr) if wr > 0 else np.nan
    eff_b = float(w[~y & keep].sum() / wb) if wb > 0 else np.nan
    both = y.any() and (~y).any()
    return dict(
        n_test_rare=int(y.sum()), n_test_bulk=int((~y).sum()),
        n_eff_rare=kish_n_eff(w[y]), n_eff_bulk=kish_n_eff(w[~y]),
        rare_efficiency=eff_r, bulk_acceptance=eff_b,
        q_factor=eff_r / np.sqrt(eff_b) if eff_b > 0 else np.nan,
        auc=roc_auc(weighted_roc(y, s, w)) if both else np.nan,
        low_statistics=bool(y.sum() < min_count or (~y).sum() < min_count),
    )  # fmt: skip


def evaluate_binned(
    train: tuple[Any, Any, Any], test: tuple[Any, Any, Any], edges: np.ndarray, *,
    train_weight: Any = None, test_weight: Any = None, rare_efficiency: float | None = None,
    bulk_acceptance: float | None = None, fill_value: float | None = None,
    min_events: int = MIN_EVENTS, min_count: int = MIN_COUNT, column: str = "bin column",
) -> pd.DataFrame:  # fmt: skip
    """Per-bin cut chosen on ``train = (scores, labels, bin_values)``, evaluated on ``test`` (same).

    Labels: truthy = rare. Returns one row per bin: ``bin, low, high, center`` (geometric for
    positive edges), ``cut, cut_filled, n_train, n_test_rare, n_test_bulk, n_eff_rare, n_eff_bulk,
    rare_efficiency, bulk_acceptance, q_factor, auc, low_statistics``. A bin with no test event at
    all is a binning error (one line naming the bin), not a silent gap.
    """
    cuts = binned_cuts(
        *train, edges, weight=train_weight, rare_efficiency=rare_efficiency,
        bulk_acceptance=bulk_acceptance, fill_value=fill_value, min_events=min_events,
    )  # fmt: skip
    s = np.asarray(test[0], dtype=float)
    y = np.asarray(test[1]).astype(bool)
    w = np.ones(len(s)) if test_weight is None else np.asarray(test_weight, dtype=float)
    idx = assign_bins(test[2], edges)
    rows = []
    for b, cut in enumerate(cuts["cut"]):
        m = idx == b
        if not m.any():
            raise RareflowError(
                f"binning of {column!r}: bin {b} [{edges[b]:.4g}, {edges[b + 1]:.4g}) holds no test events; "
                "use fewer bins per decade or explicit edges"
            )
        rows.append(_bin_metrics(y[m], s[m], w[m], float(cut), min_count))
    out = pd.concat([cuts, pd.DataFrame(rows)], axis=1)
    out.insert(3, "center", np.sqrt(edges[:-1] * edges[1:]) if edges[0] > 0 else 0.5 * (edges[:-1] + edges[1:]))
    return out


def aggregate_seeds(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Mean and standard deviation (ddof=1; 0 for one seed) per bin over several seeds' frames.

    Columns: ``bin, low, high, center``, ``<metric>_mean`` / ``<metric>_std`` for the cut,
    efficiencies, Q, AUC and n_eff, ``n_seeds`` and ``low_statistics`` (true if any seed flagged it).
    """
    if not frames:
        raise RareflowError("aggregate_seeds: no per-seed frames given")
    all_ = pd.concat(list(frames), ignore_index=True)
    g = all_.groupby("bin", sort=True)
    out = g[["low", "high", "center"]].first()
    for m in _METRICS:
        out[f"{m}_mean"] = g[m].mean()
        out[f"{m}_std"] = g[m].std(ddof=1).fillna(0.0)
    out["n_seeds"] = g.size()
    out["low_statistics"] = g["low_statistics"].any()
    return out.reset_index()
