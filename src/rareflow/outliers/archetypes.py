"""Classic archetypal analysis (Cutler & Breiman 1994, "Archetypal analysis", Technometrics 36).

Each data point is a convex combination of ``k`` archetypes, and each archetype a convex
combination of data points (the seed slides' equations 5-8):

.. math:: x_i \\approx \\sum_j a_{ij} z_j, \\qquad z_j = \\sum_i b_{ji} x_i, \\qquad
          a_{i\\cdot} \\in \\Delta^{k-1}, \\; b_{j\\cdot} \\in \\Delta^{n-1},

.. math:: \\min_{A, B} \\; \\lVert X - A B X \\rVert_F^2 .

The problem is convex in :math:`A` for fixed :math:`B` and vice versa. We alternate *projected
gradient* steps on the two blocks (as in PCHA, Mørup & Hansen 2012, "Archetypal analysis for
machine learning and data mining"), projecting rows onto the simplex with the sort-based
Euclidean projection of Duchi et al. (2008). Each step first tries an adaptive step size and
falls back to :math:`1/L` (:math:`L` the Lipschitz constant of the block gradient), for which a
projected-gradient step never increases the objective; a step is kept only if the objective does
not grow, so the recorded loss is non-increasing by construction. Archetypes are initialised by
FurthestSum (Mørup & Hansen 2012). The number of archetypes is chosen at the elbow of the
reconstruction error over ``k`` (largest distance below the chord, "kneedle", Satopää et al. 2011).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from rareflow.errors import RareflowError
from rareflow.seeding import rng as make_rng


def project_simplex(V: np.ndarray) -> np.ndarray:
    """Row-wise Euclidean projection onto :math:`\\{a \\ge 0, \\sum a = 1\\}` (Duchi et al. 2008)."""
    V = np.atleast_2d(np.asarray(V, dtype=float))
    m = V.shape[1]
    U = -np.sort(-V, axis=1)
    css = np.cumsum(U, axis=1) - 1.0
    idx = np.arange(1, m + 1)
    cond = U - css / idx > 0
    rho = m - 1 - np.argmax(cond[:, ::-1], axis=1)  # last index where cond holds
    theta = css[np.arange(len(V)), rho] / (rho + 1.0)
    return np.maximum(V - theta[:, None], 0.0)


def furthest_sum(X: np.ndarray, k: int, rng: np.random.Generator, refine: int = 10) -> np.ndarray:
    """``k`` row indices of ``X`` far apart (FurthestSum of Mørup & Hansen 2012): each new point
    maximises the summed distance to those chosen; the first ``refine`` picks are then revisited."""
    n = len(X)
    chosen = [int(rng.integers(n))]
    dist_sum = np.linalg.norm(X - X[chosen[0]], axis=1)
    for _ in range(k - 1 + refine):
        if len(chosen) == k:  # revisit the oldest pick
            old = chosen.pop(0)
            dist_sum -= np.linalg.norm(X - X[old], axis=1)
        masked = dist_sum.copy()
        masked[chosen] = -np.inf
        new = int(np.argmax(masked))
        chosen.append(new)
        dist_sum += np.linalg.norm(X - X[new], axis=1)
    return np.asarray(chosen[:k])


def sse(X: np.ndarray, A: np.ndarray, Z: np.ndarray) -> float:
    """:math:`\\lVert X - A Z \\rVert_F^2`."""
    return float(np.sum((X - A @ Z) ** 2))


@dataclass
class ArchetypeModel:
    """Fitted archetypes ``Z = B X`` (k, d), coefficients ``A`` (n, k), ``B`` (k, n), loss history."""

    A: np.ndarray
    B: np.ndarray
    Z: np.ndarray
    history: list[float] = field(default_factory=list)
    sst: float = 1.0

    @property
    def k(self) -> int:
        return int(self.Z.shape[0])

    @property
    def error(self) -> float:
        """Final :math:`\\lVert X - ABX \\rVert_F^2 / \\lVert X - \\bar x \\rVert_F^2` (1 - explained variance)."""
        return self.history[-1] / self.sst

    def transform(self, X: np.ndarray, n_iter: int = 200) -> np.ndarray:
        """Simplex coefficients :math:`A` of new rows ``X`` for the fixed archetypes (A-step only)."""
        X = np.asarray(X, dtype=float)
        A = np.full((len(X), self.k), 1.0 / self.k)
        return _solve_a(X, A, self.Z, n_iter)

    def reconstruct(self, A: np.ndarray) -> np.ndarray:
        """:math:`A Z`."""
        return np.asarray(A) @ self.Z


def _pg_block(
    V: np.ndarray, f: Callable[[np.ndarray], float], grad: np.ndarray, lipschitz: float, mu: float
) -> tuple[np.ndarray, float, float]:
    """One projected-gradient step on simplex rows; returns ``(V, f(V), next mu)``; never increases f."""
    f0 = f(V)
    safe = 1.0 / max(lipschitz, 1e-300)
    mu = max(mu, safe)
    while True:
        cand = project_simplex(V - mu * grad)
        f1 = f(cand)
        if f1 <= f0:
            return cand, f1, mu * 1.2
        if mu <= safe:
            return V, f0, safe  # rounding: keep the old point
        mu = max(mu * 0.5, safe)


def _solve_a(X: np.ndarray, A: np.ndarray, Z: np.ndarray, n_iter: int, mu: float = 1.0) -> np.ndarray:
    """A-step: :math:`\\min_A \\lVert X - AZ\\rVert^2` over simplex rows by projected gradient."""
    ZZt, XZt = Z @ Z.T, X @ Z.T
    L = 2.0 * float(np.linalg.eigvalsh(ZZt)[-1])
    for _ in range(n_iter):
        A, _, mu = _pg_block(A, lambda a: sse(X, a, Z), 2.0 * (A @ ZZt - XZt), L, mu)
    return A


def archetypal_analysis(
    X: np.ndarray,
    k: int,
    n_iter: int = 100,
    inner: int = 5,
    tol: float = 1e-7,
    seed: int | None = 0,
) -> ArchetypeModel:
    """Fit ``k`` archetypes to ``X`` (n, d) by alternating projected-gradient steps on ``A`` and ``B``.

    One outer iteration = ``inner`` steps on ``A`` then ``inner`` steps on ``B``; stops when the
    relative decrease of :math:`\\lVert X - ABX\\rVert^2` over an iteration is below ``tol``.
    ``history[t]`` is the objective after iteration ``t`` (``history[0]``: initialisation).
    """
    X = np.asarray(X, dtype=float)
    n = len(X)
    if not 1 <= k <= n:
        raise RareflowError(f"number of archetypes must be in [1, {n}] for {n} rows, got {k}")
    rng = make_rng(seed)
    B = np.zeros((k, n))
    B[np.arange(k), furthest_sum(X, k, rng)] = 1.0
    Z = B @ X
    A = _solve_a(X, np.full((n, k), 1.0 / k), Z, 20)
    XXt_norm = float(np.linalg.eigvalsh(X.T @ X)[-1])  # ||X X^T||_2 = ||X^T X||_2
    history = [sse(X, A, Z)]
    mu_a = mu_b = 1.0
    for _ in range(n_iter):
        ZZt, XZt = Z @ Z.T, X @ Z.T
        La = 2.0 * float(np.linalg.eigvalsh(ZZt)[-1])
        for _ in range(inner):
            A, _, mu_a = _pg_block(A, lambda a: sse(X, a, Z), 2.0 * (A @ ZZt - XZt), La, mu_a)
        AtA = A.T @ A
        Lb = 2.0 * float(np.linalg.eigvalsh(AtA)[-1]) * XXt_norm
        for _ in range(inner):
            grad_b = 2.0 * (AtA @ (B @ X) - A.T @ X) @ X.T
            B, _, mu_b = _pg_block(B, lambda b: sse(X, A, b @ X), grad_b, Lb, mu_b)
        Z = B @ X
        history.append(sse(X, A, Z))
        if history[-2] - history[-1] <= tol * max(history[-2], 1e-300):
            break
    sst = float(np.sum((X - X.mean(axis=0)) ** 2)) or 1.0
    return ArchetypeModel(A=A, B=B, Z=Z, history=history, sst=sst)


def elbow(ks: Sequence[int], errors: Sequence[float]) -> int:
    """The ``k`` where the (decreasing) error curve lies farthest below the chord of its ends."""
    ks_a, err = np.asarray(ks, dtype=float), np.asarray(errors, dtype=float)
    if len(ks_a) < 3:
        return int(ks_a[int(np.argmin(err))]) if len(ks_a) else 1
    kx = (ks_a - ks_a[0]) / (ks_a[-1] - ks_a[0])
    span = err[0] - err[-1]
    ey = (err - err[-1]) / span if span > 0 else np.zeros_like(err)
    chord = 1.0 - kx
    return int(ks_a[int(np.argmax(chord - ey))])


def select_k(
    X: np.ndarray, ks: Sequence[int] = tuple(range(2, 13)), seed: int | None = 0, **kw: int
) -> tuple[int, dict[int, float]]:
    """``(k at the elbow, {k: relative reconstruction error})`` over the candidate ``ks``."""
    errors = {int(k): archetypal_analysis(X, int(k), seed=seed, **kw).error for k in ks}
    return elbow(list(errors), list(errors.values())), errors
