"""The working point of a fitted detector, in words: which rule placed the cut and what it implies.

``predict`` selects events with ``score > threshold_``. The cut is placed on the training data
(or the calibration rows given to ``set_threshold_from``) by the detector's ``threshold`` rule:
by default the weighted 99% quantile of the *bulk* training scores (1% bulk acceptance), or,
for a one-class detector trained on the rare class only, the 10% quantile of the rare scores
(90% rare efficiency). :func:`working_point` records the rule and the efficiencies the cut has
on those same rows:

.. math:: \\epsilon_{rare} = \\frac{\\sum_{i \\in rare} w_i [s_i > t]}{\\sum_{i \\in rare} w_i}, \\qquad
          a_{bulk} = \\frac{\\sum_{i \\in bulk} w_i [s_i > t]}{\\sum_{i \\in bulk} w_i}

These are in-sample values: on new data a flexible model's bulk acceptance is usually larger.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def rule_text(rule: Any, has_bulk: bool = True, has_rare: bool = True) -> str:
    """The rule that actually placed the cut, e.g. ``quantile(bulk_acceptance=0.01)``.

    A quantile rule cuts on the bulk scores when there are any (and ``bulk_acceptance`` is set or
    no rare scores exist), otherwise on the rare scores (``rare_efficiency``, default 0.9): a
    one-class detector fitted on the rare class alone keeps 90% of its training class.
    """
    if rule.rule == "chi2":
        return f"chi2(alpha={rule.alpha:g})"
    if rule.rule == "k_sigma":
        return f"k_sigma(k={rule.k:g})"
    if has_bulk and (rule.bulk_acceptance is not None or not has_rare):
        return f"quantile(bulk_acceptance={rule.bulk_acceptance if rule.bulk_acceptance is not None else 0.01:g})"
    return f"quantile(rare_efficiency={rule.rare_efficiency if rule.rare_efficiency is not None else 0.9:g})"


def working_point(
    scores: np.ndarray, y: np.ndarray | None, weight: np.ndarray | None, threshold: float, single_class: str | None
) -> dict[str, float]:
    """Fraction of each class present in ``scores`` above ``threshold`` (weighted).

    ``single_class`` names the class of unlabelled scores (``bulk``/``rare``, one-class fits).
    """
    scores = np.asarray(scores, dtype=float)
    w = np.ones_like(scores) if weight is None else np.asarray(weight, dtype=float)
    if y is None:
        is_rare = np.full(scores.shape, single_class == "rare")
    else:
        is_rare = np.asarray(y).astype(bool)
    passed = scores > threshold
    out: dict[str, float] = {}
    for key, sel in (("rare_efficiency", is_rare), ("bulk_acceptance", ~is_rare)):
        total = float(w[sel].sum())
        if sel.any() and total > 0:
            out[key] = float(w[sel & passed].sum() / total)
    return out


def describe_working_point(det: Any) -> str:
    """One line: the cut, the rule that placed it and its efficiencies on the training data."""
    thr = float(det.threshold_)
    rule = getattr(det, "threshold_rule_", None) or "unknown rule"
    eff = getattr(det, "working_point_", None) or {}
    names = {"rare_efficiency": "rare eff.", "bulk_acceptance": "bulk acc."}
    parts = ", ".join(f"{names[k]} {v:.3f}" for k, v in eff.items())
    cut = f"predict: score > {thr:.4g}"
    if det.kind == "one-class" and getattr(det, "fit_on", "bulk") == "rare":
        cut += f" (outlier score < {-thr:.4g}; fit_on=rare negates scores)"
    return f"{cut}, rule {rule}" + (f" -> on training data {parts}" if parts else "")
