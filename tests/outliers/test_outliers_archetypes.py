"""Classic archetypal analysis: simplex projection, monotone objective, simplex rows, recovery, elbow."""

from __future__ import annotations

import numpy as np
import pytest

from rareflow.errors import RareflowError
from rareflow.outliers.archetypes import archetypal_analysis, elbow, furthest_sum, project_simplex, select_k, sse

TRIANGLE = np.array([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0]])


def triangle_data(n: int = 1500, seed: int = 0, noise: float = 0.02) -> np.ndarray:
    r = np.random.default_rng(seed)
    return r.dirichlet([0.7, 0.7, 0.7], n) @ TRIANGLE + r.normal(0, noise, (n, 2))


def _on_simplex(M: np.ndarray) -> bool:
    return bool((M >= -1e-12).all() and np.allclose(M.sum(axis=1), 1.0, atol=1e-9))


def test_project_simplex_is_the_euclidean_projection() -> None:
    r = np.random.default_rng(0)
    V = r.normal(0, 2, (200, 6))
    P = project_simplex(V)
    assert _on_simplex(P)
    # optimality (KKT): for the projection, <v - p, q - p> <= 0 for every q on the simplex (vertices suffice)
    for v, p in zip(V, P):
        assert np.all((np.eye(6) - p) @ (v - p) <= 1e-9)
    inside = r.dirichlet(np.ones(6), 10)
    assert np.allclose(project_simplex(inside), inside)


def test_objective_non_increasing_and_rows_on_simplex() -> None:
    X = np.random.default_rng(1).normal(size=(400, 5)) @ np.diag([3, 2, 1, 0.5, 0.2])
    model = archetypal_analysis(X, 4, n_iter=60, seed=0)
    h = np.asarray(model.history)
    assert len(h) > 5
    assert np.all(np.diff(h) <= 1e-9 * h[0]), np.diff(h).max()
    assert h[-1] < h[0]
    assert _on_simplex(model.A) and _on_simplex(model.B)
    assert np.allclose(model.Z, model.B @ X)
    assert model.history[-1] == pytest.approx(sse(X, model.A, model.Z))
    assert 0 < model.error < 1


def test_recovers_triangle_vertices_and_transforms_new_points() -> None:
    X = triangle_data()
    model = archetypal_analysis(X, 3, seed=0)
    dist = np.linalg.norm(model.Z[:, None, :] - TRIANGLE[None], axis=2)
    assert dist.min(axis=0).max() < 0.4, model.Z  # every true vertex has an archetype nearby
    assert model.error < 0.01
    A_new = model.transform(triangle_data(100, seed=9))
    assert _on_simplex(A_new)


def test_same_seed_same_archetypes() -> None:
    X = triangle_data(300)
    a, b = archetypal_analysis(X, 3, seed=4), archetypal_analysis(X, 3, seed=4)
    assert np.array_equal(a.Z, b.Z)


def test_furthest_sum_picks_extreme_points() -> None:
    X = triangle_data(500, noise=0.0)
    idx = furthest_sum(X, 3, np.random.default_rng(0))
    assert len(set(idx.tolist())) == 3
    assert np.linalg.norm(X[idx][:, None] - TRIANGLE[None], axis=2).min(axis=0).max() < 1.0


def test_elbow_and_select_k() -> None:
    assert elbow([1, 2, 3, 4, 5, 6], [1.0, 0.5, 0.05, 0.04, 0.035, 0.03]) == 3
    assert elbow([2, 3], [0.5, 0.4]) == 3
    k, errors = select_k(triangle_data(600), ks=range(1, 7), seed=0, n_iter=40)
    assert k == 3
    assert errors[3] < 0.05 < errors[2]


def test_bad_k() -> None:
    with pytest.raises(RareflowError):
        archetypal_analysis(np.ones((3, 2)), 5)
