"""``power-mahalanobis``: "transforming for normality", then the Mahalanobis distance.

Each feature is mapped by the Yeo-Johnson power transform (Yeo & Johnson 2000)

.. math:: \\psi_\\lambda(x) = \\begin{cases}((x+1)^\\lambda - 1)/\\lambda & x \\ge 0, \\lambda \\ne 0\\\\
          \\log(x+1) & x \\ge 0, \\lambda = 0\\\\ -((1-x)^{2-\\lambda} - 1)/(2-\\lambda) & x < 0, \\lambda \\ne 2\\\\
          -\\log(1-x) & x < 0, \\lambda = 2\\end{cases}

applied to the raw values, with :math:`\\lambda` fitted per feature by maximum likelihood
(``scipy.stats.yeojohnson_normmax``, as scikit-learn's ``PowerTransformer`` does), then standardised. The Mahalanobis distance of the result is
compared with :math:`\\chi^2_d`: the seeds' threshold rule is the tail probability
(``threshold: {rule: chi2, alpha: 0.01}``, the default of this method), see Stevens (2002),
*Applied Multivariate Statistics for the Social Sciences*, and the seed slides ("Transforming
probability distributions for normality").
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from scipy import stats

from rareflow.detectors import register
from rareflow.detectors.base import FittedState
from rareflow.detectors.mahalanobis import MahalanobisDetector


def _yeojohnson(X: np.ndarray, lambdas: np.ndarray) -> np.ndarray:
    return np.column_stack([stats.yeojohnson(X[:, j], lmbda=float(lam)) for j, lam in enumerate(lambdas)])


@register
class PowerMahalanobisDetector(MahalanobisDetector):
    """Yeo-Johnson per feature, standardisation, then :class:`MahalanobisDetector`."""

    name: ClassVar[str] = "power-mahalanobis"
    default_threshold: ClassVar[dict[str, Any]] = {"rule": "chi2", "alpha": 0.01}

    def __init__(self, fit_on: str = "bulk", ridge: float = 1e-6, threshold: dict[str, Any] | None = None) -> None:
        super().__init__(fit_on=fit_on, ridge=ridge, threshold=threshold)

    def _transform(self, X: np.ndarray) -> np.ndarray:
        Z = _yeojohnson(X, self.lambdas_)
        return (Z - self.post_center_) / self.post_scale_

    def _fit_transform(self, X: np.ndarray, sample_weight: np.ndarray | None) -> np.ndarray:
        self.lambdas_ = np.array([stats.yeojohnson_normmax(X[:, j]) for j in range(X.shape[1])])
        Z = _yeojohnson(X, self.lambdas_)
        self.post_center_ = Z.mean(axis=0)
        self.post_scale_ = _nonzero(Z.std(axis=0))
        return (Z - self.post_center_) / self.post_scale_

    def _export(self) -> FittedState:
        state = super()._export()
        for key in ("lambdas_", "post_center_", "post_scale_"):
            state.arrays[key] = getattr(self, key)
        return state

    def _import(self, state: FittedState) -> None:
        super()._import(state)
        for key in ("lambdas_", "post_center_", "post_scale_"):
            setattr(self, key, state.arrays[key])


def _nonzero(scale: np.ndarray) -> np.ndarray:
    return np.where(scale > 0, scale, 1.0)
