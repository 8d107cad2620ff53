"""Thresholds chosen on training data only.

A threshold is a cut on the score (higher = rarer): events with ``score > threshold`` are selected
as rare. Rules (the ``threshold`` parameter of every detector and of the experiment config):

``{"rule": "quantile", "bulk_acceptance": a}``
    cut at the weighted (1 - a) quantile of the *bulk* training scores, so a fraction ``a`` of
    bulk training events passes. Needs bulk events among the training scores.
``{"rule": "quantile", "rare_efficiency": e}``
    cut at the weighted (1 - e) quantile of the *rare* training scores, so a fraction ``e`` of rare
    training events passes (one-class detectors fitted on the rare class).
``{"rule": "chi2", "alpha": p}`` / ``{"rule": "k_sigma", "k": k}``
    analytic cuts for detectors whose training-class score has a known law (Mahalanobis distance
    of a Gaussian, a flow's latent radius): the detector supplies the value. See the detector docs.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from rareflow.errors import RareflowError, short_repr


class ThresholdRule(BaseModel):
    """A validated threshold rule (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    rule: Literal["quantile", "chi2", "k_sigma"] = "quantile"
    bulk_acceptance: float | None = Field(default=None, gt=0, lt=1)
    rare_efficiency: float | None = Field(default=None, gt=0, lt=1)
    alpha: float | None = Field(default=None, gt=0, lt=1)
    k: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _fill_defaults(self) -> "ThresholdRule":
        given = set(self.model_fields_set)  # filled defaults must not count as given (see ThresholdConfig)
        if self.rule == "chi2" and self.alpha is None:
            self.alpha = 0.01
        if self.rule == "k_sigma" and self.k is None:
            self.k = 3.0
        if self.rule == "quantile" and self.bulk_acceptance is None and self.rare_efficiency is None:
            self.bulk_acceptance = 0.01
        self.model_fields_set.intersection_update(given)
        return self


DEFAULT_RARE_EFFICIENCY = 0.9

#: the fields of a rule (an experiment's threshold section may hold others, e.g. calibration_fraction)
RULE_FIELDS = ("rule", "bulk_acceptance", "rare_efficiency", "alpha", "k")


def parse_rule(spec: ThresholdRule | dict[str, Any] | None) -> ThresholdRule:
    """A :class:`ThresholdRule` from a dict (config / constructor parameter) or None (defaults)."""
    if isinstance(spec, ThresholdRule):
        return spec
    try:
        return ThresholdRule(**(spec or {}))
    except Exception as exc:  # pydantic's message is multi-line: keep the first error
        first = str(exc).splitlines()
        detail = " ".join(first[1:3]) if len(first) > 2 else str(exc)
        raise RareflowError(
            f"invalid threshold {short_repr(spec)}: {detail[:160]}; use e.g. {{rule: quantile, bulk_acceptance: 0.01}}"
        ) from None


def weighted_quantile(values: np.ndarray, q: float, sample_weight: np.ndarray | None = None) -> float:
    """The weighted ``q`` quantile of ``values`` (inverse of the weighted empirical CDF).

    With unit weights this equals ``numpy.quantile(values, q, method="inverted_cdf")``.
    """
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise RareflowError("cannot choose a threshold from zero training scores; check the training data")
    if sample_weight is None:
        return float(np.quantile(values, q, method="inverted_cdf"))
    w = np.asarray(sample_weight, dtype=float)
    order = np.argsort(values, kind="stable")
    cw = np.cumsum(w[order])
    idx = int(np.searchsorted(cw, q * cw[-1], side="left"))
    return float(values[order][min(idx, values.size - 1)])


def quantile_threshold(
    scores: np.ndarray,
    y: np.ndarray | None,
    rule: ThresholdRule,
    sample_weight: np.ndarray | None = None,
    single_class: Literal["bulk", "rare"] | None = None,
) -> float:
    """Cut for a ``quantile`` rule from training ``scores`` (labels ``y``: 1 rare, 0 bulk).

    ``single_class`` names the class of unlabelled scores (one-class training sets, ``y=None``).
    The bulk-acceptance form is used when bulk scores exist, unless only ``rare_efficiency`` is set.
    """
    scores = np.asarray(scores, dtype=float)
    w = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
    if y is None:
        is_rare = np.full(scores.shape, single_class == "rare")
    else:
        is_rare = np.asarray(y).astype(bool)
    has_bulk, has_rare = bool((~is_rare).any()), bool(is_rare.any())
    use_bulk = has_bulk and (rule.bulk_acceptance is not None or not has_rare)
    if use_bulk:
        a = rule.bulk_acceptance if rule.bulk_acceptance is not None else 0.01
        sel = ~is_rare
        return weighted_quantile(scores[sel], 1.0 - a, None if w is None else w[sel])
    if not has_rare:
        raise RareflowError("no training scores to choose a threshold from; check the training data")
    e = rule.rare_efficiency if rule.rare_efficiency is not None else DEFAULT_RARE_EFFICIENCY
    sel = is_rare
    return weighted_quantile(scores[sel], 1.0 - e, None if w is None else w[sel])
