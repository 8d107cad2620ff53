"""``mahalanobis``: distance to the training class's Gaussian.

.. math:: d_M^2(x) = (x - \\mu)^T \\Sigma^{-1} (x - \\mu)

with the (weighted) mean and covariance of the training class (Mahalanobis 1936). If that class
were Gaussian, :math:`d_M^2 \\sim \\chi^2_d` and :math:`d_M \\sim \\chi_d`, which gives the
analytic cuts ``chi2`` (tail probability ``alpha``) and ``k_sigma`` (:math:`d_M > E + k\\,\\sigma`
of :math:`\\chi_d`). The outlier score is :math:`d_M^2`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy import stats

from rareflow.detectors import register
from rareflow.detectors.base import Detector, FittedState, Kind
from rareflow.detectors.params import Number
from rareflow.detectors.thresholds import ThresholdRule


def chi_radius_cut(dof: int, k: float) -> float:
    """:math:`E + k\\,\\sigma` of the :math:`\\chi_d` law of a d-dimensional Gaussian's radius."""
    return float(stats.chi.mean(dof) + k * stats.chi.std(dof))


def gaussian_cut(rule: ThresholdRule, dof: int) -> float:
    """Cut on :math:`d^2` for the analytic rules when :math:`d^2 \\sim \\chi^2_{dof}`."""
    if rule.rule == "chi2":
        return float(stats.chi2.isf(rule.alpha, dof))
    return chi_radius_cut(dof, rule.k) ** 2


@register
class MahalanobisDetector(Detector):
    """One-class Gaussian model; score = squared Mahalanobis distance (sign by ``fit_on``)."""

    name: ClassVar[str] = "mahalanobis"
    kind: ClassVar[Kind] = "one-class"
    deterministic: ClassVar[bool] = True
    param_specs: ClassVar[dict[str, Any]] = {"ridge": Number(low=0)}

    def __init__(self, fit_on: str = "bulk", ridge: float = 1e-6, threshold: dict[str, Any] | None = None) -> None:
        self._store(locals())

    def _transform(self, X: np.ndarray) -> np.ndarray:
        """Hook for subclasses that map the features first (``power-mahalanobis``)."""
        return X

    def _fit_transform(self, X: np.ndarray, sample_weight: np.ndarray | None) -> np.ndarray:
        return X

    def _fit(self, X: np.ndarray, y: np.ndarray | None, sample_weight: np.ndarray | None) -> None:
        Z = self._fit_transform(X, sample_weight)
        w = np.ones(len(Z)) if sample_weight is None else sample_weight
        self.location_ = np.average(Z, axis=0, weights=w)
        cov = np.atleast_2d(np.cov(Z, rowvar=False, aweights=w)) if len(Z) > 1 else np.eye(Z.shape[1])
        cov = cov + self.ridge * max(np.trace(cov) / len(cov), 1e-12) * np.eye(len(cov))
        self.covariance_ = cov
        self.precision_ = np.linalg.inv(cov)

    def _score(self, X: np.ndarray) -> np.ndarray:
        diff = self._transform(X) - self.location_
        return np.einsum("ij,jk,ik->i", diff, self.precision_, diff)

    def tail_probability(self, X: Any) -> np.ndarray:
        """:math:`P(\\chi^2_d > d_M^2)`: the seeds' tail probability under the training Gaussian."""
        d2 = self._sign() * self.decision_function(X)
        return stats.chi2.sf(d2, self.n_features_in_)

    def _analytic_threshold(self, rule: ThresholdRule) -> float:
        return gaussian_cut(rule, self.n_features_in_)

    def _export(self) -> FittedState:
        return FittedState(arrays={"location": self.location_, "covariance": self.covariance_})

    def _import(self, state: FittedState) -> None:
        self.location_ = state.arrays["location"]
        self.covariance_ = state.arrays["covariance"]
        self.precision_ = np.linalg.inv(self.covariance_)
