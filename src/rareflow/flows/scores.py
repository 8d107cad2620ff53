"""Flow anomaly scores: negative log-likelihood, latent radius, latent Mahalanobis distance.

All three are *outlier* scores (larger = farther from the training class).

``nll``
    :math:`-\\log p(x) = -\\log N(z; 0, I) - \\log|\\det J(x)|`, the density of the data in the
    original feature space (Dinh et al. 2017; Papamakarios et al. 2017). Kirichenko, Izmailov &
    Wilson (2020, "Why normalizing flows fail to detect out-of-distribution data") and Nalisnick
    et al. (2019, "Do deep generative models know what they don't know?") show that the
    likelihood is dominated by low-level statistics and the Jacobian term, so OOD data can get a
    *higher* likelihood than training data: hence the latent scores below.
``latent_norm``
    :math:`r = \\lVert z \\rVert_2` with :math:`z = f(x)`. If the flow maps the training class to
    :math:`N(0, I_d)`, :math:`r \\sim \\chi_d`: most mass sits on the shell
    :math:`r \\approx \\sqrt{d}` (the typical set, Nalisnick et al. 2019, "Detecting
    out-of-distribution inputs to deep generative models using typicality"), and the tail
    probability :math:`P(\\chi_d > r)` = ``scipy.stats.chi.sf(r, d)`` is the seed's
    :math:`d`-sigma cut ("the boundary is set by :math:`2\\sigma`") in :math:`d` dimensions.
``latent_mahalanobis``
    :math:`d_M(z) = \\sqrt{(z - \\mu)^T \\Sigma^{-1} (z - \\mu)}` with :math:`\\mu, \\Sigma` the
    mean and covariance of the latent points of the training data (Mahalanobis 1936; the seed
    slides' :math:`d_M`; Lee et al. 2018 use the same distance on learnt features). It corrects a
    flow whose latent is not exactly standard (under-trained, early-stopped), and also follows
    :math:`\\chi_d` when the latent is Gaussian.

Analytic cuts on the radii (in ``detectors/flow.py``): ``k_sigma``
:math:`r > E[\\chi_d] + k\\, \\mathrm{sd}[\\chi_d]`, ``chi2`` :math:`r^2 > \\chi^2_{d, 1-\\alpha}`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


SCORES = ("nll", "latent_norm", "latent_mahalanobis")


def nll(log_prob: np.ndarray) -> np.ndarray:
    """Negative log-likelihood :math:`-\\log p(x)` (nats)."""
    return -np.asarray(log_prob, dtype=float)


def latent_norm(z: np.ndarray) -> np.ndarray:
    """Latent radius :math:`\\lVert z \\rVert_2` per row."""
    return np.sqrt(np.einsum("ij,ij->i", z, z))


def chi_tail(radius: np.ndarray, dof: int) -> np.ndarray:
    """:math:`P(\\chi_{dof} > r)`: tail probability of a radius under the standard normal latent."""
    return stats.chi.sf(np.asarray(radius, dtype=float), dof)


@dataclass
class LatentGaussian:
    """Mean and covariance of the training latent points, for :math:`d_M` in latent space."""

    mean: np.ndarray
    covariance: np.ndarray

    @classmethod
    def fit(cls, z: np.ndarray, sample_weight: np.ndarray | None = None, ridge: float = 1e-6) -> "LatentGaussian":
        """Weighted mean / covariance of ``z`` with a small ridge (relative to the mean variance)."""
        w = np.ones(len(z)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
        mean = np.average(z, axis=0, weights=w)
        if len(z) > 1:
            cov = np.atleast_2d(np.cov(z, rowvar=False, aweights=w))
        else:
            cov = np.eye(z.shape[1])
        cov = cov + ridge * max(float(np.trace(cov)) / len(cov), 1e-12) * np.eye(len(cov))
        return cls(mean=mean, covariance=cov)

    def __post_init__(self) -> None:
        self.precision = np.linalg.inv(self.covariance)

    def mahalanobis(self, z: np.ndarray) -> np.ndarray:
        """:math:`d_M(z)` per row (not squared)."""
        diff = z - self.mean
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", diff, self.precision, diff), 0.0))


def all_scores(log_prob: np.ndarray, z: np.ndarray, latent: LatentGaussian) -> dict[str, np.ndarray]:
    """The three outlier scores from one pass's ``log_prob`` and ``z``."""
    return {"nll": nll(log_prob), "latent_norm": latent_norm(z), "latent_mahalanobis": latent.mahalanobis(z)}

