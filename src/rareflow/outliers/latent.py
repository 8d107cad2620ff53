"""Extremal sampling in the standard-normal latent of a flow (Bungert 2021).

If a flow maps its training class to :math:`z \\sim N(0, I_d)`, the latent radius follows the
chi law with :math:`d` degrees of freedom,

.. math:: \\lVert z \\rVert_2 \\sim \\chi_d, \\qquad
          E\\lVert z \\rVert = \\sqrt{2}\\,\\frac{\\Gamma(\\tfrac{d+1}{2})}{\\Gamma(\\tfrac{d}{2})}, \\qquad
          \\mathrm{Var}\\lVert z \\rVert = d - (E\\lVert z \\rVert)^2

(the seed slides' equations 3-4), and the direction :math:`z / \\lVert z \\rVert` is uniform on the
sphere, independent of the radius. A generated point is :math:`z = r\\,u` with :math:`u` uniform on
:math:`S^{d-1}` and a radius :math:`r` chosen by one of

``extremal`` ("p sigma")
    :math:`r = E + p\\,\\mathrm{sd}` exactly (a point mass; ``p`` may be a range ``(lo, hi)``, then
    :math:`p \\sim U[lo, hi]` per point) — the seed's "INN, Normal, p".
``tail``
    :math:`r \\sim \\chi_d` truncated to :math:`r > E + p\\,\\mathrm{sd}`, by inverse-CDF sampling
    :math:`r = F^{-1}_{\\chi_d}\\text{-sf}(v\\, S(r_0))`, :math:`v \\sim U(0, 1]`.
``gumbel``
    :math:`r \\sim \\mathrm{Gumbel}(\\mu, \\beta)`, the extreme-value law of the maximum of ``block``
    radii (Fisher-Tippett-Gnedenko): :math:`(\\mu, \\beta)` are fitted by maximum likelihood
    (``scipy.stats.gumbel_r.fit``) to block maxima of :math:`\\chi_d` draws (or of the training
    data's latent radii); with ``p`` given the location is moved to :math:`\\mu = E + p\\,\\mathrm{sd}`
    and the fitted scale kept — the seed's "INN, Gumbel, p".
``inlier``
    :math:`r \\sim \\chi_d` truncated to :math:`r < E + p\\,\\mathrm{sd}` (``p=None``: plain
    :math:`N(0, I)` draws) — generated inliers inside the bulk.

The points are inverted to data space with the flow, :math:`x = T^{-1}(f^{-1}(z))`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy import special, stats

from rareflow.errors import RareflowError
from rareflow.seeding import rng as make_rng

LATENT_METHODS = ("extremal", "tail", "gumbel", "inlier")
DEFAULT_P = {"extremal": 2.5, "tail": 2.0, "gumbel": 2.5, "inlier": None}
DEFAULT_BLOCK = 1000
PLike = float | Sequence[float] | np.ndarray | None


# -- the chi law -------------------------------------------------------------------------------
def chi_moments(d: int) -> tuple[float, float]:
    """``(mean, variance)`` of :math:`\\chi_d`: :math:`\\sqrt2\\,\\Gamma(\\frac{d+1}2)/\\Gamma(\\frac d2)`, :math:`d - E^2`."""
    if d < 1:
        raise RareflowError(f"the chi law needs d >= 1 degrees of freedom, got {d}")
    mean = math.sqrt(2.0) * math.exp(special.gammaln((d + 1) / 2.0) - special.gammaln(d / 2.0))
    return mean, max(d - mean * mean, 0.0)


def sigma_radius(d: int, p: float | np.ndarray) -> float | np.ndarray:
    """The "p sigma" radius :math:`E\\chi_d + p\\,\\mathrm{sd}\\,\\chi_d`."""
    mean, var = chi_moments(d)
    r = mean + np.asarray(p, dtype=float) * math.sqrt(var)
    return float(r) if r.ndim == 0 else r


def radius_to_sigma(d: int, r: np.ndarray) -> np.ndarray:
    """Inverse of :func:`sigma_radius`: :math:`p = (r - E) / \\mathrm{sd}`."""
    mean, var = chi_moments(d)
    return (np.asarray(r, dtype=float) - mean) / math.sqrt(var)


def quantile_to_sigma(d: int, q: float) -> float:
    """``p`` such that :math:`E + p\\,\\mathrm{sd}` is the ``q`` quantile of :math:`\\chi_d` (tail "beyond a quantile")."""
    if not 0.0 < q < 1.0:
        raise RareflowError(f"quantile must be in (0, 1), got {q}")
    return float(radius_to_sigma(d, stats.chi.ppf(q, d)))


# -- directions and radii ----------------------------------------------------------------------
def sample_directions(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` unit vectors uniform on :math:`S^{d-1}` (normalised Gaussian draws, Muller 1959)."""
    g = rng.standard_normal((n, d))
    norm = np.linalg.norm(g, axis=1, keepdims=True)
    while (bad := norm[:, 0] == 0).any():  # probability zero, but never divide by 0
        g[bad] = rng.standard_normal((int(bad.sum()), d))
        norm = np.linalg.norm(g, axis=1, keepdims=True)
    return g / norm


def per_row_p(n: int, p: PLike, rng: np.random.Generator) -> np.ndarray:
    """``p`` for each of ``n`` rows: a float, a range ``(lo, hi)`` (uniform draws) or ``n`` values."""
    if p is None:
        return np.full(n, np.nan)
    arr = np.asarray(p, dtype=float)
    if arr.ndim == 0:
        return np.full(n, float(arr))
    if arr.shape == (2,) and n != 2:
        lo, hi = sorted(arr.tolist())
        return rng.uniform(lo, hi, n)
    if arr.shape == (n,):
        return arr.copy()
    raise RareflowError(f"sigma/p must be a number, a range (lo, hi) or one value per point; got shape {arr.shape}")


def psigma_radii(n: int, d: int, p: PLike, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(radii, p)``: the point mass :math:`r = E + p\\,\\mathrm{sd}` (per-row ``p`` for a range)."""
    pr = per_row_p(n, 2.5 if p is None else p, rng)
    r = np.asarray(sigma_radius(d, pr), dtype=float)
    if (r <= 0).any():
        raise RareflowError(f"p = {pr.min():g} gives a radius <= 0 in d = {d}; use a larger p")
    return r, pr


def truncated_chi_radii(
    n: int, d: int, p: PLike, rng: np.random.Generator, upper: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """``(radii, p)`` from :math:`\\chi_d` restricted to ``r > r0`` (``upper``) or ``r < r0``, ``r0 = E + p sd``.

    Inverse-CDF sampling through the survival function (``chi.isf``) keeps deep tails exact.
    """
    pr = per_row_p(n, p, rng)
    r0 = np.asarray(sigma_radius(d, pr), dtype=float)
    v = 1.0 - rng.random(n)  # (0, 1]
    if upper:
        s0 = stats.chi.sf(np.maximum(r0, 0.0), d)
        if (s0 <= 0).any():
            raise RareflowError(f"the chi_{d} tail beyond p = {np.nanmax(pr):g} sigma has zero probability in float64")
        r = stats.chi.isf(v * s0, d)
    else:
        c0 = stats.chi.cdf(np.maximum(r0, 0.0), d)
        if (c0 <= 0).any():
            raise RareflowError(f"no chi_{d} mass below p = {np.nanmin(pr):g} sigma; use a larger p for inliers")
        r = stats.chi.ppf(v * c0, d)
    return np.asarray(r, dtype=float), pr


@dataclass(frozen=True)
class GumbelFit:
    """Gumbel (max) law :math:`F(r) = \\exp(-e^{-(r-\\mu)/\\beta})` fitted to block maxima of radii."""

    loc: float
    scale: float
    block: int

    def dist(self, loc: float | None = None) -> Any:
        """The frozen ``scipy.stats.gumbel_r`` (optionally at another location)."""
        return stats.gumbel_r(loc=self.loc if loc is None else loc, scale=self.scale)


def block_maxima(radii: np.ndarray, block: int) -> np.ndarray:
    """Maximum of each consecutive block of ``block`` radii (a ragged last block is dropped)."""
    radii = np.asarray(radii, dtype=float)
    m = len(radii) // block
    if m < 2:
        raise RareflowError(f"need >= 2 blocks of {block} radii to fit a Gumbel law, got {len(radii)} radii")
    return radii[: m * block].reshape(m, block).max(axis=1)


def fit_gumbel(
    d: int,
    rng: np.random.Generator,
    block: int = DEFAULT_BLOCK,
    n_blocks: int = 200,
    radii: np.ndarray | None = None,
) -> GumbelFit:
    """ML fit of a Gumbel law to block maxima of latent radii.

    ``radii=None``: maxima of ``n_blocks`` blocks of ``block`` :math:`\\chi_d` draws (the law of
    the latent radius of a perfect flow); otherwise the given radii (e.g. the training data's
    latent radii, shuffled) are cut into blocks.
    """
    if block < 1:
        raise RareflowError(f"Gumbel block size must be >= 1, got {block}")
    if radii is None:
        radii = stats.chi.rvs(d, size=block * n_blocks, random_state=rng)
    loc, scale = stats.gumbel_r.fit(block_maxima(radii, block))
    return GumbelFit(loc=float(loc), scale=float(scale), block=int(block))


def gumbel_radii(
    n: int, d: int, p: PLike, rng: np.random.Generator, fit: GumbelFit | None = None, block: int = DEFAULT_BLOCK
) -> tuple[np.ndarray, np.ndarray, GumbelFit]:
    """``(radii, p, fit)``: :math:`r \\sim \\mathrm{Gumbel}(\\mu, \\beta)`, :math:`\\mu = E + p\\,sd` when ``p`` is given."""
    fit = fit or fit_gumbel(d, rng, block=block)
    if p is None:
        pr = np.full(n, np.nan)
        loc = np.full(n, fit.loc)
    else:
        pr = per_row_p(n, p, rng)
        loc = np.asarray(sigma_radius(d, pr), dtype=float)
    r = rng.gumbel(loc, fit.scale, n)
    return np.maximum(r, 1e-12), pr, fit


def latent_points(
    n: int, d: int, method: str, p: PLike, rng: np.random.Generator, **kw: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    """``(z, radii, p, info)``: ``n`` latent points of the chosen radius law (see module doc)."""
    if method not in LATENT_METHODS:
        raise RareflowError(f"unknown latent method {method!r}; use one of {', '.join(LATENT_METHODS)}")
    info: dict[str, Any] = {}
    if method == "inlier" and p is None:
        z = rng.standard_normal((n, d))
        r = np.linalg.norm(z, axis=1)
        return z, r, np.full(n, np.nan), info
    if method == "extremal":
        r, pr = psigma_radii(n, d, p, rng)
    elif method == "tail":
        r, pr = truncated_chi_radii(n, d, 2.0 if p is None else p, rng, upper=True)
    elif method == "inlier":
        r, pr = truncated_chi_radii(n, d, p, rng, upper=False)
    else:
        r, pr, fit = gumbel_radii(n, d, p, rng, fit=kw.get("gumbel_fit"), block=int(kw.get("block", DEFAULT_BLOCK)))
        info.update(gumbel_loc=fit.loc, gumbel_scale=fit.scale, gumbel_block=fit.block)
    z = sample_directions(n, d, rng) * r[:, None]
    return z, r, pr, info


# -- through the flow --------------------------------------------------------------------------
@dataclass
class Generated:
    """Generated points: data-space ``x``, latent ``z``, radius, per-row ``p`` and the settings."""

    x: np.ndarray
    z: np.ndarray
    radius: np.ndarray
    p: np.ndarray
    method: str
    params: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.x)


def invert(model: Any, z: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Data-space points :math:`x = T^{-1}(f^{-1}(z))` of a ``FlowModel`` (float64 numpy, batched)."""
    p = next(model.parameters())
    was_training = model.training
    model.eval()
    out = np.empty_like(np.asarray(z, dtype=np.float64))
    try:
        with torch.inference_mode():
            for s in range(0, len(z), batch_size):
                zb = torch.as_tensor(np.ascontiguousarray(z[s : s + batch_size]), dtype=p.dtype, device=p.device)
                out[s : s + len(zb)] = model.inverse(zb).double().cpu().numpy()
    finally:
        model.train(was_training)
    return out


def generate(
    model: Any,
    n: int,
    method: str = "extremal",
    p: PLike | str = "default",
    seed: int | None = 0,
    *,
    block: int = DEFAULT_BLOCK,
    gumbel_fit: GumbelFit | None = None,
    max_tries: int = 10,
) -> Generated:
    """``n`` points in the data space of ``model`` (a ``FlowModel``) from extremal latent radii.

    ``method``: ``extremal`` | ``tail`` | ``gumbel`` | ``inlier`` (module doc); ``p`` in units of
    :math:`\\mathrm{sd}\\,\\chi_d` (a number, a range ``(lo, hi)`` or per-row values; default per
    method: 2.5, 2.0, 2.5, None). Points whose inverse is not finite (overflow of the inverse
    preprocessing far out) are replaced by new draws, at most ``max_tries`` times.
    Same seed -> same points.
    """
    if isinstance(p, str):
        p = DEFAULT_P.get(method)
    if n < 1:
        raise RareflowError(f"number of points to generate must be >= 1, got {n}")
    d = int(model.config.features)
    if getattr(model.config, "context", 0):
        raise RareflowError("outlier generation needs an unconditional flow (this one takes a context)")
    rng = make_rng(seed)
    if method == "gumbel" and gumbel_fit is None:
        gumbel_fit = fit_gumbel(d, rng, block=block)
    parts: list[tuple[np.ndarray, ...]] = []
    need, info = n, {}
    for _ in range(max_tries):
        pp = p if np.ndim(p) == 0 or np.shape(p) == (2,) else np.asarray(p)[n - need : n]
        z, r, pr, info = latent_points(need, d, method, pp, rng, gumbel_fit=gumbel_fit, block=block)
        x = invert(model, z)
        ok = np.isfinite(x).all(axis=1)
        parts.append((x[ok], z[ok], r[ok], pr[ok]))
        need -= int(ok.sum())
        if need == 0:
            break
    if need > 0:
        raise RareflowError(
            f"{need} of {n} generated points have no finite inverse after {max_tries} tries; use a smaller sigma"
        )
    x, z, r, pr = (np.concatenate(a) for a in zip(*parts))
    params = {"method": method, "p": None if p is None else np.asarray(p, dtype=float).tolist(), "seed": seed, **info}
    return Generated(x=x, z=z, radius=r, p=pr, method=method, params=params)


# -- diagnostics -------------------------------------------------------------------------------
def plot_radii(
    radii: dict[str, np.ndarray], d: int, path: str | Path, data_radii: np.ndarray | None = None, title: str = ""
) -> None:
    """Histogram of sampled radii per generator against the :math:`\\chi_d` density (PNG, atomic)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rareflow.atomic import atomic_path

    all_r = np.concatenate([np.asarray(v) for v in radii.values()] + ([data_radii] if data_radii is not None else []))
    hi = float(np.quantile(all_r, 0.999)) * 1.05
    grid = np.linspace(0.0, hi, 400)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(grid, stats.chi.pdf(grid, d), "k-", lw=2, label=rf"$\chi_{{{d}}}$ density")
    if data_radii is not None:
        ax.hist(data_radii, bins=80, range=(0, hi), density=True, histtype="step", lw=1.5, label="data (train) radii")
    for name, r in radii.items():
        ax.hist(r, bins=80, range=(0, hi), density=True, alpha=0.45, label=name)
    mean, var = chi_moments(d)
    for k in (1, 2, 3):
        ax.axvline(mean + k * math.sqrt(var), color="grey", ls=":", lw=0.8)
    ax.set_xlabel(r"latent radius $\|z\|$")
    ax.set_ylabel("density")
    ax.set_title(title or rf"sampled radii vs $\chi_{{{d}}}$ (dotted: $E + k\,\sigma$, k=1,2,3)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
