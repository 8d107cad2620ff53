r"""Calibrated gammaness: any detector score -> :math:`P(\mathrm{rare} \mid s)` in [0, 1].

Method: **centred isotonic regression** (Oron & Flournoy 2017, Stat. Biopharm. Res. 9, 258) on the
TRAINING scores and labels, class-balanced, plus a vanishing strictly monotone tie-breaker.

Why isotonic and not Platt (a logistic fit of the score): rareflow's scores are of very different
kinds (log-odds of a classifier, negative log-likelihoods of a flow, reconstruction errors of an
autoencoder, distances), so :math:`\mathrm{logit}\,P(\mathrm{rare}\mid s)` is rarely linear in
:math:`s`; the only property all of them share is "higher = rarer". Isotonic regression (the
pool-adjacent-violators fit, Zadrozny & Elkan 2002) assumes exactly that and nothing else.

* Class balance: sample weights :math:`1/(2 n_{rare})` and :math:`1/(2 n_{bulk})` (times any given
  weights, normalised per class), so the fit is the posterior at a 50/50 prior — a property of the
  method, not of the training mix. ``prior=pi`` rescales the odds by :math:`\pi/(1-\pi)`.
* Centring: each PAV block becomes one knot at its weighted mean score, linear in between
  (strictly increasing where isotonic regression is a step function), clipped beyond the
  outer knots (``out_of_bounds="clip"``).
* Tie-breaker: :math:`g = (1-\epsilon)\,g_{CIR} + \epsilon\,(1/2 + \arctan((s - m)/d)/\pi)` with
  :math:`\epsilon = 10^{-6}`, median :math:`m` and IQR :math:`d` of the training scores: strictly
  monotone everywhere (arctan's slow 1/z tail keeps this true in floating point far out; so the
  score's ranking, hence the ROC curve, is unchanged) and strictly
  inside (0, 1), while moving the probability by at most 1e-6.

The fitted calibrator is plain numbers (``to_dict`` / ``from_dict``, JSON-able; no pickle).

**Fallback without labels** (:func:`fit_ecdf_gammaness`; a one-class fit given only one class):
the empirical CDF of the training scores, :math:`g(s) = \hat F_{train}(s)`, as knots at the
training-score quantiles with the same tie-breaker. It is monotone in the score and in (0, 1), so
every per-bin cut on it equals a cut on the score, but it is a **rank** (the fraction of training
events scoring lower), not a probability of being a gamma; its ``method`` says ``training-ecdf``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from rareflow.errors import RareflowError

__all__ = ["GammanessCalibrator", "fit_ecdf_gammaness", "fit_gammaness"]

EPSILON = 1e-6


@dataclass(frozen=True)
class GammanessCalibrator:
    """A fitted score -> gammaness map (see the module docstring)."""

    x: np.ndarray  # knots: weighted mean score of each isotonic block (increasing)
    y: np.ndarray  # balanced P(rare | block), non-decreasing
    center: float
    scale: float
    prior: float = 0.5
    epsilon: float = EPSILON
    method: str = "centred-isotonic"  # or "training-ecdf" (no labels: a rank, not a probability)

    def __call__(self, scores: Any) -> np.ndarray:
        """Gammaness of ``scores`` (NaN stays NaN)."""
        s = np.asarray(scores, dtype=float)
        g = np.interp(s, self.x, self.y)  # clips beyond the outer knots
        tie = 0.5 + np.arctan((s - self.center) / self.scale) / np.pi
        g = (1.0 - self.epsilon) * g + self.epsilon * tie
        if self.prior != 0.5:
            odds = self.prior / (1.0 - self.prior)
            g = odds * g / (odds * g + (1.0 - g))
        return np.where(np.isnan(s), np.nan, g)

    def with_prior(self, prior: float) -> "GammanessCalibrator":
        """The same calibrator at another rare-class prior (odds rescaled)."""
        _check_prior(prior)
        return GammanessCalibrator(self.x, self.y, self.center, self.scale, prior, self.epsilon, self.method)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able numbers."""
        return dict(
            method=self.method, x=self.x.tolist(), y=self.y.tolist(), center=self.center,
            scale=self.scale, prior=self.prior, epsilon=self.epsilon,
        )  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "GammanessCalibrator":
        """Inverse of :meth:`to_dict`, with a one-line error on a damaged record."""
        try:
            x, y = np.asarray(d["x"], dtype=float), np.asarray(d["y"], dtype=float)
            method = str(d.get("method", "centred-isotonic"))
            out = cls(x, y, float(d["center"]), float(d["scale"]), float(d["prior"]), float(d["epsilon"]), method)
        except (KeyError, TypeError, ValueError) as exc:
            raise RareflowError(f"gammaness calibration record is damaged ({type(exc).__name__}: {exc}); refit the model") from exc
        if x.size == 0 or x.shape != y.shape or np.any(np.diff(x) <= 0) or np.any(np.diff(y) < 0):
            raise RareflowError("gammaness calibration record is damaged (knots not increasing); refit the model")
        return out


def _check_prior(prior: float) -> None:
    if not 0.0 < prior < 1.0:
        raise RareflowError(f"gammaness prior must be in (0, 1) (got {prior}); 0.5 = class-balanced")


def fit_gammaness(scores: Any, labels: Any, weight: Any = None, *, prior: float = 0.5) -> GammanessCalibrator:
    """Fit on TRAINING ``scores`` (higher = rarer) and ``labels`` (truthy = rare)."""
    from sklearn.isotonic import IsotonicRegression

    _check_prior(prior)
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels).astype(bool)
    w = np.ones(s.size) if weight is None else np.asarray(weight, dtype=float)
    ok = np.isfinite(s) & (w > 0)
    s, y, w = s[ok], y[ok], w[ok]
    if not (y.any() and (~y).any()):
        raise RareflowError("gammaness calibration needs training events of both classes (rare and bulk) with finite scores")
    w = np.where(y, w / w[y].sum(), w / w[~y].sum()) / 2.0
    fitted = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(s, y, sample_weight=w).predict(s)
    values, block = np.unique(fitted, return_inverse=True)  # one value per PAV block, increasing
    x = np.bincount(block, weights=w * s) / np.bincount(block, weights=w)
    q25, m, q75 = np.percentile(s, [25, 50, 75])
    return GammanessCalibrator(x, values, float(m), float(q75 - q25) or 1.0, prior)


#: Knots of the ECDF fallback (quantiles of the training scores).
ECDF_KNOTS = 512


def fit_ecdf_gammaness(scores: Any) -> GammanessCalibrator:
    """The no-label fallback: the ECDF of the TRAINING scores (a rank in (0, 1), see module docstring)."""
    s = np.asarray(scores, dtype=float)
    s = s[np.isfinite(s)]
    if s.size < 2:
        raise RareflowError("gammaness fallback needs at least 2 finite training scores")
    probs = np.linspace(0.0, 1.0, min(ECDF_KNOTS, s.size))
    x, keep = np.unique(np.quantile(s, probs), return_index=True)
    y = probs[keep]
    if x.size < 2:  # every training score equal: a step at that score
        x, y = np.array([x[0] - 0.5, x[0] + 0.5]), np.array([0.0, 1.0])
    q25, m, q75 = np.percentile(s, [25, 50, 75])
    return GammanessCalibrator(x, y, float(m), float(q75 - q25) or 1.0, 0.5, EPSILON, "training-ecdf")
