"""DeepAA head on a flow latent: simplex geometry, null space, Dirichlet behaviour, fitting, sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rareflow.errors import RareflowError
from rareflow.outliers.deep_aa import (
    DeepAA,
    dirichlet_coefficients,
    fit_deep_aa,
    nullspace_latent,
    sample_archetype,
    sample_nullspace,
    simplex_vertices,
)


def test_simplex_vertices_regular_and_centred() -> None:
    V = simplex_vertices(5)
    assert V.shape == (5, 4)
    assert np.allclose(V.mean(axis=0), 0.0)
    assert np.allclose(np.linalg.norm(V, axis=1), 1.0)
    d = np.linalg.norm(V[:, None] - V[None], axis=2)[~np.eye(5, dtype=bool)]
    assert np.allclose(d, d[0])
    with pytest.raises(RareflowError):
        simplex_vertices(1)


def test_nullspace_samples_keep_MA_t(small_flow) -> None:
    flow, _ = small_flow
    model = DeepAA(flow, 3)
    with torch.no_grad():  # random head weights: the identity must hold for any M_A
        model.head.M_A.weight.copy_(torch.randn(3, 4, generator=torch.Generator().manual_seed(0)))
    r = np.random.default_rng(0)
    A = dirichlet_coefficients(200, 3, 0.5, r)
    w = 5.0 * r.standard_normal((200, 4))
    t0 = nullspace_latent(model.head, A, np.zeros_like(w))
    t = nullspace_latent(model.head, A, w)
    M = model.head.M_A.weight.detach().double().numpy()
    assert np.abs(t @ M.T - t0 @ M.T).max() < 1e-6
    assert np.abs(t - t0).max() > 1.0  # the null-space part really moves the points
    P = model.head.null_projector().numpy()
    assert np.allclose(P @ P, P, atol=1e-10) and np.allclose(M @ P, 0.0, atol=1e-10)
    g = sample_nullspace(model, 100, concentration=0.3, seed=1, scale=2.0)
    assert np.abs(g.z @ M.T - nullspace_latent(model.head, g.params["A"], np.zeros((100, 4))) @ M.T).max() < 1e-6


def test_dirichlet_concentration_behaviour() -> None:
    r = np.random.default_rng(0)
    small = dirichlet_coefficients(2000, 4, 0.05, r)
    large = dirichlet_coefficients(2000, 4, 100.0, r)
    assert np.allclose(small.sum(axis=1), 1) and (small >= 0).all()
    assert np.median(small.max(axis=1)) > 0.95  # near the vertices (archetypes)
    assert np.abs(large - 0.25).max(axis=1).mean() < 0.1  # near the centre
    out = dirichlet_coefficients(500, 4, 0.1, r, expand=1.5)
    assert np.allclose(out.sum(axis=1), 1) and (out < 0).any()  # outside the simplex
    tiny = dirichlet_coefficients(200, 4, 1e-4, r)  # numpy underflow handled: vertices
    assert np.isfinite(tiny).all() and np.allclose(tiny.sum(axis=1), 1)
    with pytest.raises(RareflowError):
        dirichlet_coefficients(5, 3, 0.0, r)


def test_fit_and_sample(small_flow) -> None:
    flow, X = small_flow
    before = {k: v.clone() for k, v in flow.state_dict().items()}
    model, info = fit_deep_aa(flow, X, k=3, epochs=10, seed=0)
    assert info["k"] == 3 and np.isfinite(info["recon_mse"])
    T = model.latent(X[:500])
    A = model.coefficients(T)
    assert np.allclose(A.sum(axis=1), 1, atol=1e-5) and (A >= 0).all()
    # the trained head reconstructs better than predicting the latent mean (0)
    assert np.mean((model.reconstruct_latent(T) - T) ** 2) < np.mean(T**2)
    near = sample_archetype(model, 300, concentration=0.05, seed=0)
    centre = sample_archetype(model, 300, concentration=50.0, seed=0)
    assert near.x.shape == (300, 4) and np.isfinite(near.x).all()
    # small c: latent points near the archetype vertices, spread; large c: near the decoded centre
    assert near.z.std(axis=0).sum() > 3 * centre.z.std(axis=0).sum()
    joint, _ = fit_deep_aa(flow, X, k=3, epochs=2, train_flow=True, seed=0)
    assert all(torch.equal(v, flow.state_dict()[k]) for k, v in before.items())  # the input flow is untouched
    assert joint.flow is not flow


def test_fit_without_data_uses_latent_draws_and_elbow(small_flow) -> None:
    flow, _ = small_flow
    model, info = fit_deep_aa(flow, None, k=None, ks=(2, 3, 4, 5), n_latent=600, epochs=5, seed=0)
    assert info["k"] in (2, 3, 4, 5) and set(info["aa_errors"]) == {2, 3, 4, 5}
    a = sample_archetype(model, 20, seed=5).x
    model2, _ = fit_deep_aa(flow, None, k=None, ks=(2, 3, 4, 5), n_latent=600, epochs=5, seed=0)
    assert np.allclose(a, sample_archetype(model2, 20, seed=5).x)  # seeded end to end
