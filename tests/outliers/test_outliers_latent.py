"""Extremal latent sampling: chi moments, radius laws (exact / KS tests), directions, flow inversion."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from rareflow.errors import RareflowError
from rareflow.outliers.latent import (
    chi_moments,
    fit_gumbel,
    generate,
    gumbel_radii,
    latent_points,
    plot_radii,
    psigma_radii,
    radius_to_sigma,
    sample_directions,
    sigma_radius,
    truncated_chi_radii,
)

KS_ALPHA = 0.01  # fixed seeds: deterministic, but a wrong law fails by orders of magnitude


@pytest.mark.parametrize("d", [1, 2, 3, 7, 32, 100, 784])
def test_chi_moments_match_scipy(d: int) -> None:
    mean, var = chi_moments(d)
    assert mean == pytest.approx(stats.chi.mean(d), rel=1e-12)
    assert var == pytest.approx(stats.chi.var(d), rel=1e-9, abs=1e-12)
    # E = sqrt(2) Gamma((d+1)/2) / Gamma(d/2) and Var = d - E^2 literally (small d, no overflow)
    if d < 100:
        assert mean == pytest.approx(math.sqrt(2) * math.gamma((d + 1) / 2) / math.gamma(d / 2), rel=1e-12)
    assert var == pytest.approx(d - mean**2, abs=1e-9)


def test_sigma_radius_round_trip() -> None:
    p = np.array([-1.0, 0.0, 2.5, 10.0])
    r = sigma_radius(16, p)
    assert r[1] == pytest.approx(stats.chi.mean(16))
    assert np.allclose(radius_to_sigma(16, r), p)
    assert isinstance(sigma_radius(16, 2.0), float)


def test_directions_uniform_on_sphere() -> None:
    u = sample_directions(20000, 5, np.random.default_rng(0))
    assert np.allclose(np.linalg.norm(u, axis=1), 1.0)
    assert np.abs(u.mean(axis=0)).max() < 0.02
    assert np.allclose(np.cov(u, rowvar=False), np.eye(5) / 5, atol=0.01)
    # a coordinate of a uniform direction on S^{d-1}: (u_1 + 1)/2 ~ Beta((d-1)/2, (d-1)/2)
    assert stats.kstest((u[:, 0] + 1) / 2, stats.beta(2, 2).cdf).pvalue > KS_ALPHA


def test_psigma_is_an_exact_point_mass_and_ranges_are_uniform() -> None:
    r, p = psigma_radii(1000, 32, 2.5, np.random.default_rng(0))
    mean, var = chi_moments(32)
    assert np.all(r == mean + 2.5 * math.sqrt(var)) and np.all(p == 2.5)
    z, radii, _, _ = latent_points(1000, 32, "extremal", 2.5, np.random.default_rng(0))
    assert np.allclose(np.linalg.norm(z, axis=1), radii, rtol=1e-12)
    r, p = psigma_radii(3000, 32, (1.0, 4.0), np.random.default_rng(1))
    assert stats.kstest(p, stats.uniform(1.0, 3.0).cdf).pvalue > KS_ALPHA
    assert np.allclose(radius_to_sigma(32, r), p)


@pytest.mark.parametrize("d,p", [(2, 1.0), (32, 2.0), (32, 5.0)])
def test_tail_radii_follow_truncated_chi(d: int, p: float) -> None:
    r, _ = truncated_chi_radii(3000, d, p, np.random.default_rng(2), upper=True)
    r0 = sigma_radius(d, p)
    assert r.min() >= r0
    s0 = stats.chi.sf(r0, d)
    assert stats.kstest(r, lambda x: 1 - stats.chi.sf(x, d) / s0).pvalue > KS_ALPHA
    # and NOT the untruncated law
    assert stats.kstest(r, stats.chi(d).cdf).pvalue < 1e-6


def test_inlier_radii_follow_chi_truncated_below() -> None:
    r, _ = truncated_chi_radii(3000, 8, 1.0, np.random.default_rng(3), upper=False)
    r0 = sigma_radius(8, 1.0)
    assert r.max() <= r0
    c0 = stats.chi.cdf(r0, 8)
    assert stats.kstest(r, lambda x: np.minimum(stats.chi.cdf(x, 8) / c0, 1.0)).pvalue > KS_ALPHA
    z, radii, p, _ = latent_points(3000, 8, "inlier", None, np.random.default_rng(4))  # plain N(0, I)
    assert stats.kstest(radii, stats.chi(8).cdf).pvalue > KS_ALPHA


def test_gumbel_fit_describes_block_maxima_and_samples_follow_it() -> None:
    d, block = 16, 200
    fit = fit_gumbel(d, np.random.default_rng(5), block=block, n_blocks=300)
    fresh = stats.chi.rvs(d, size=(400, block), random_state=np.random.default_rng(6)).max(axis=1)
    assert stats.kstest(fresh, fit.dist().cdf).pvalue > KS_ALPHA  # the fit is the law of the maximum
    r, p, _ = gumbel_radii(3000, d, None, np.random.default_rng(7), fit=fit)
    assert stats.kstest(r, fit.dist().cdf).pvalue > KS_ALPHA
    r, p, _ = gumbel_radii(3000, d, 2.5, np.random.default_rng(8), fit=fit)
    assert stats.kstest(r, fit.dist(loc=sigma_radius(d, 2.5)).cdf).pvalue > KS_ALPHA
    with pytest.raises(RareflowError):
        fit_gumbel(d, np.random.default_rng(0), radii=np.ones(10), block=10)


def test_bad_p_shapes_are_user_errors() -> None:
    with pytest.raises(RareflowError):
        psigma_radii(10, 4, [1.0, 2.0, 3.0], np.random.default_rng(0))
    with pytest.raises(RareflowError):
        psigma_radii(10, 4, -100.0, np.random.default_rng(0))  # negative radius
    with pytest.raises(RareflowError):
        latent_points(10, 4, "nope", 1.0, np.random.default_rng(0))


@pytest.mark.parametrize("method,p", [("extremal", 2.5), ("extremal", (1.0, 3.0)), ("tail", 2.0), ("gumbel", 2.5), ("inlier", None)])
def test_generated_points_invert_and_forward_consistently(small_flow, method: str, p) -> None:
    flow, _ = small_flow
    g = generate(flow, 400, method, p, seed=0)
    assert g.x.shape == (400, 4) and np.isfinite(g.x).all()
    with torch.no_grad():
        z_back = flow.transform(torch.as_tensor(g.x, dtype=torch.float32)).double().numpy()
    assert np.allclose(z_back, g.z, atol=2e-3 * max(1.0, float(g.radius.max()))), np.abs(z_back - g.z).max()
    assert np.allclose(np.linalg.norm(z_back, axis=1), g.radius, rtol=1e-3, atol=1e-3)
    if method == "extremal" and np.ndim(p) == 0:
        assert np.allclose(g.radius, sigma_radius(4, p))


def test_generate_is_seeded(small_flow) -> None:
    flow, _ = small_flow
    a, b = generate(flow, 50, "gumbel", 2.0, seed=3), generate(flow, 50, "gumbel", 2.0, seed=3)
    assert np.array_equal(a.x, b.x) and np.array_equal(a.radius, b.radius)
    assert not np.array_equal(a.x, generate(flow, 50, "gumbel", 2.0, seed=4).x)
    assert a.params["gumbel_scale"] > 0


def test_generated_extremes_are_far_by_the_flow(small_flow) -> None:
    """Points generated far out have a lower likelihood than the training data under the same flow."""
    flow, X = small_flow
    far = generate(flow, 300, "extremal", 4.0, seed=0).x
    lp_far = flow.evaluate(far, latent=False)["log_prob"]
    lp_data = flow.evaluate(X, latent=False)["log_prob"]
    assert np.median(lp_far) < np.quantile(lp_data, 0.05)


def test_plot_radii_writes_png(tmp_path) -> None:
    r = {"extremal": np.full(100, 3.0), "tail": 3 + np.random.default_rng(0).exponential(0.3, 100)}
    plot_radii(r, 4, tmp_path / "r.png", data_radii=stats.chi.rvs(4, size=500, random_state=0))
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_tail_beyond_a_quantile() -> None:
    from rareflow.outliers.latent import quantile_to_sigma

    p = quantile_to_sigma(10, 0.99)
    r, _ = truncated_chi_radii(2000, 10, p, np.random.default_rng(9))
    assert r.min() >= stats.chi.ppf(0.99, 10) - 1e-9
    assert np.mean(stats.chi.sf(r, 10) <= 0.01) == 1.0
    with pytest.raises(RareflowError):
        quantile_to_sigma(10, 1.0)
