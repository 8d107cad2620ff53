"""Weighted selection metrics, all derived from one weighted ROC curve.

Notation: a cut selects events with ``score > t``; :math:`\\epsilon_r(t)` is the weighted
fraction of rare events selected (rare efficiency, TPR), :math:`\\epsilon_b(t)` that of bulk
events (bulk acceptance, FPR).

* ROC AUC (trapezoid over the ROC points) and average precision
  :math:`AP = \\sum_n (R_n - R_{n-1}) P_n` — the same definitions as scikit-learn's
  ``roc_auc_score`` / ``average_precision_score`` with ``sample_weight`` (tests check this).
* Rare efficiency at fixed bulk acceptance :math:`a` (0.01, 0.02, 0.05, 0.1, 0.2: the UCI MAGIC
  benchmark's operating points, Bock et al. 2004): the ROC linearly interpolated at :math:`a`.
* Quality factor :math:`Q = \\epsilon_r / \\sqrt{\\epsilon_b}` and its maximum over cuts that keep at
  least ``min_bulk_events`` bulk events (below that, :math:`\\epsilon_b` is noise and Q diverges).
* Li & Ma significance, eq. 17 of Li & Ma (1983, ApJ 272, 317):

  .. math:: S = \\sqrt{2}\\left\\{N_{on}\\ln\\left[\\frac{1+\\alpha}{\\alpha}\\frac{N_{on}}{N_{on}+N_{off}}\\right]
            + N_{off}\\ln\\left[(1+\\alpha)\\frac{N_{off}}{N_{on}+N_{off}}\\right]\\right\\}^{1/2}

  for an exposure of ``n_events`` events before cuts in the ON region with rare fraction
  :math:`f`: :math:`N_{on} = n(f\\epsilon_r + (1-f)\\epsilon_b)`, :math:`N_{off} = n(1-f)\\epsilon_b/\\alpha`
  (expected counts, Asimov-style).
* Purity at a cut: the weighted rare share of the selected events; effective event counts
  (Kish): :math:`n_{eff} = (\\sum w)^2 / \\sum w^2`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

BULK_ACCEPTANCES: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1, 0.2)


@dataclass
class WeightedROC:
    """ROC points at every distinct score (descending cut), with weighted and raw counts."""

    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    rare_pass_raw: np.ndarray
    bulk_pass_raw: np.ndarray
    rare_total: float
    bulk_total: float


def _as_arrays(y: Any, scores: Any, weight: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.asarray(y).astype(bool).ravel()
    s = np.asarray(scores, dtype=float).ravel()
    w = np.ones(len(s)) if weight is None else np.asarray(weight, dtype=float).ravel()
    if not (len(y) == len(s) == len(w)):
        raise ValueError("labels, scores and weights must have the same length")
    return y, s, w


def weighted_roc(y: Any, scores: Any, weight: Any = None) -> WeightedROC:
    """The ROC curve, starting at (0, 0): cut above the highest score."""
    y, s, w = _as_arrays(y, scores, weight)
    order = np.argsort(-s, kind="mergesort")
    s, y, w = s[order], y[order], w[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last index of each distinct score
    tps = np.cumsum(w * y)[last]
    fps = np.cumsum(w * ~y)[last]
    rare_raw = np.cumsum(y)[last]
    bulk_raw = np.cumsum(~y)[last]
    rare_total, bulk_total = float(tps[-1]), float(fps[-1])
    tpr = np.r_[0.0, tps / rare_total] if rare_total > 0 else np.r_[0.0, np.zeros_like(tps)]
    fpr = np.r_[0.0, fps / bulk_total] if bulk_total > 0 else np.r_[0.0, np.zeros_like(fps)]
    return WeightedROC(
        fpr=fpr,
        tpr=tpr,
        thresholds=np.r_[np.inf, s[last]],
        rare_pass_raw=np.r_[0, rare_raw],
        bulk_pass_raw=np.r_[0, bulk_raw],
        rare_total=rare_total,
        bulk_total=bulk_total,
    )


def roc_auc(roc: WeightedROC) -> float:
    """Area under the ROC curve (trapezoid rule)."""
    return float(np.trapezoid(roc.tpr, roc.fpr))


def average_precision(y: Any, scores: Any, weight: Any = None) -> float:
    """:math:`\\sum_n (R_n - R_{n-1}) P_n` over distinct cuts (scikit-learn's definition)."""
    y, s, w = _as_arrays(y, scores, weight)
    order = np.argsort(-s, kind="mergesort")
    s, y, w = s[order], y[order], w[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(w * y)[last]
    fps = np.cumsum(w * ~y)[last]
    if tps[-1] <= 0:
        return float("nan")
    precision = tps / np.maximum(tps + fps, np.finfo(float).tiny)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def efficiency_at_acceptance(roc: WeightedROC, acceptance: float) -> float:
    """Rare efficiency at bulk acceptance ``acceptance`` (linear interpolation of the ROC)."""
    return float(np.interp(acceptance, roc.fpr, roc.tpr))


def q_max(roc: WeightedROC, min_bulk_events: int = 10) -> tuple[float, float]:
    """(max Q, bulk acceptance where it is reached) over cuts keeping >= ``min_bulk_events`` bulk events."""
    ok = (roc.bulk_pass_raw >= min_bulk_events) & (roc.fpr > 0)
    if not ok.any():
        return float("nan"), float("nan")
    q = np.where(ok, roc.tpr / np.sqrt(np.where(ok, roc.fpr, 1.0)), -np.inf)
    i = int(np.argmax(q))
    return float(q[i]), float(roc.fpr[i])


def li_ma(n_on: float, n_off: float, alpha: float) -> float:
    """Li & Ma (1983) eq. 17 significance; signed (negative for a deficit), 0 without counts."""
    if n_on <= 0 and n_off <= 0:
        return 0.0
    tot = n_on + n_off
    term_on = n_on * np.log((1 + alpha) / alpha * n_on / tot) if n_on > 0 else 0.0
    term_off = n_off * np.log((1 + alpha) * n_off / tot) if n_off > 0 else 0.0
    s = np.sqrt(max(2.0 * (term_on + term_off), 0.0))
    return float(s if n_on >= alpha * n_off else -s)


def expected_significance(
    rare_eff: float, bulk_acc: float, rare_fraction: float, n_events: float, alpha: float
) -> float:
    """Li & Ma significance of an exposure of ``n_events`` (ON region, before cuts) at a cut."""
    signal = n_events * rare_fraction * rare_eff
    background = n_events * (1.0 - rare_fraction) * bulk_acc
    return li_ma(signal + background, background / alpha, alpha)


def kish_n_eff(weight: np.ndarray) -> float:
    """Effective number of events :math:`(\\sum w)^2 / \\sum w^2`."""
    s2 = float(np.sum(weight**2))
    return float(np.sum(weight) ** 2 / s2) if s2 > 0 else 0.0


def at_threshold(y: Any, scores: Any, weight: Any, threshold: float) -> dict[str, float]:
    """Efficiencies, purity and event counts for the cut ``score > threshold``."""
    y, s, w = _as_arrays(y, scores, weight)
    sel = s > threshold
    wr, wb = w[y].sum(), w[~y].sum()
    sel_r, sel_b = w[sel & y].sum(), w[sel & ~y].sum()
    return {
        "rare_efficiency": float(sel_r / wr) if wr > 0 else float("nan"),
        "bulk_acceptance": float(sel_b / wb) if wb > 0 else float("nan"),
        "purity": float(sel_r / (sel_r + sel_b)) if sel_r + sel_b > 0 else float("nan"),
        "n_rare_selected": int((sel & y).sum()),
        "n_bulk_selected": int((sel & ~y).sum()),
    }


def evaluate_scores(
    y: Any,
    scores: Any,
    weight: Any = None,
    threshold: float | None = None,
    significance_events: float = 1e6,
    significance_alpha: float = 0.2,
    min_bulk_events: int = 10,
    acceptances: tuple[float, ...] = BULK_ACCEPTANCES,
) -> dict[str, Any]:
    """Every metric of SPEC's metrics.json for one set of test scores (one method, one seed)."""
    y, s, w = _as_arrays(y, scores, weight)
    roc = weighted_roc(y, s, w)
    rare_fraction = roc.rare_total / (roc.rare_total + roc.bulk_total)
    qm, q_acc = q_max(roc, min_bulk_events)
    out: dict[str, Any] = {
        "auc": roc_auc(roc),
        "ap": average_precision(y, s, w),
        "rare_efficiency_at_bulk_acceptance": {f"{a:g}": efficiency_at_acceptance(roc, a) for a in acceptances},
        "q_max": qm,
        "bulk_acceptance_at_q_max": q_acc,
        "test_rare_fraction": float(rare_fraction),
        "n_test_rare": int(y.sum()),
        "n_test_bulk": int((~y).sum()),
        "n_eff_rare": kish_n_eff(w[y]),
        "n_eff_bulk": kish_n_eff(w[~y]),
    }
    if threshold is not None and np.isfinite(threshold):
        cut = at_threshold(y, s, w, threshold)
        out.update(
            threshold=float(threshold),
            rare_efficiency_at_threshold=cut["rare_efficiency"],
            bulk_acceptance_at_threshold=cut["bulk_acceptance"],
            purity_at_threshold=cut["purity"],
            q_at_threshold=float(
                cut["rare_efficiency"] / np.sqrt(cut["bulk_acceptance"]) if cut["bulk_acceptance"] > 0 else np.nan
            ),
            n_rare_selected=cut["n_rare_selected"],
            n_bulk_selected=cut["n_bulk_selected"],
            li_ma_significance=expected_significance(
                cut["rare_efficiency"], cut["bulk_acceptance"], rare_fraction, significance_events, significance_alpha
            ),
        )
    return out
