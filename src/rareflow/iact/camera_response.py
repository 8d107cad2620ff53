"""The toy simulator's camera response: photons -> pixels -> charges, one chunk of events at a time.

Each photon of a shower component is emitted on the shower axis and lands at the angle the model
gives (:mod:`rareflow.iact.shower_model`); muon-ring photons follow the mirror chord (Vacanti et
al. 1994). Then Poisson night-sky background, single-p.e. resolution and electronic noise are added
and the pedestal subtracted (see the model's docstring, "Camera and electronics").
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from rareflow.iact.camera import CameraGeometry
from rareflow.iact.shower_model import (
    PARTICLE_IDS,
    SimulationConfig,
    _Components,
    _PHI_GRID,
    _SCALE_HEIGHT_KM,
    _X0,
    _X_SEA,
    _chord,
    _concat,
    _gamma_events,
    _muon_rings,
    _proton_events,
)


# ----------------------------------------------------------------------------- photons -> images
def _shower_photons(
    rng: np.random.Generator, c: _Components, comp: np.ndarray, cfg: SimulationConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Camera positions [deg] of photons of shower components ``comp`` (one entry per photon)."""
    b = 0.5
    a = b * c.t_max[comp] + 1.0
    depth = c.x_start[comp] + _X0 * rng.gamma(a, 1.0 / b)
    theta = _angle_from_source(depth, c, comp, cfg)
    theta_ref = _angle_from_source(c.x_start[comp] + _X0 * c.t_max[comp], c, comp, cfg)
    cx, cy = c.core_x[comp], c.core_y[comp]
    r = np.hypot(cx, cy)
    with np.errstate(invalid="ignore", divide="ignore"):
        ux = np.where(r > 0, cx / r, 1.0)
        uy = np.where(r > 0, cy / r, 0.0)
    # the shower maximum sits at theta_ref along the source -> core direction u; the spread along the
    # axis is rotated by the component's tilt about that point (axis not exactly through the source)
    ct, st = np.cos(c.tilt[comp]), np.sin(c.tilt[comp])
    vx, vy = ct * ux - st * uy, st * ux + ct * uy
    along = theta - theta_ref
    sig = np.where(rng.random(comp.size) < c.scatter[comp, 2], c.scatter[comp, 1], c.scatter[comp, 0])
    sig = np.hypot(sig, cfg.psf_deg)
    ex, ey = rng.standard_normal((2, comp.size)) * sig
    x = c.src_x[comp] + theta_ref * ux + along * vx + ex
    y = c.src_y[comp] + theta_ref * uy + along * vy + ey
    return x, y


def _angle_from_source(depth: np.ndarray, c: _Components, comp: np.ndarray, cfg: SimulationConfig) -> np.ndarray:
    """Angle [deg] between the source direction and light emitted at ``depth`` on the shower axis."""
    x_obs = _X_SEA * np.exp(-cfg.observation_level_km / _SCALE_HEIGHT_KM)
    depth = np.clip(depth, 1.0, x_obs - 1.0)
    dist_m = 1e3 * np.maximum(_SCALE_HEIGHT_KM * np.log(_X_SEA / depth) - cfg.observation_level_km, 0.3)
    return np.degrees(np.hypot(c.core_x[comp], c.core_y[comp]) / dist_m)


def _ring_photons(
    rng: np.random.Generator, c: _Components, comp: np.ndarray, cfg: SimulationConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Camera positions [deg] of muon-ring photons: azimuth ~ mirror chord D(phi) (inverse CDF)."""
    uniq, inv = np.unique(comp, return_inverse=True)
    rho = np.hypot(c.core_x[uniq], c.core_y[uniq])
    phi0 = np.arctan2(c.core_y[uniq], c.core_x[uniq]) + np.pi  # direction impact -> mirror centre
    dens = _chord((rho / cfg.mirror_radius_m)[:, None], _PHI_GRID[None, :] - phi0[:, None]) + 1e-9
    cdf = np.cumsum(dens, axis=1)
    cdf /= cdf[:, -1:]
    cdf += np.arange(uniq.size)[:, None]
    pos = np.searchsorted(cdf.ravel(), inv + rng.random(comp.size))
    phi = _PHI_GRID[np.minimum(pos - inv * _PHI_GRID.size, _PHI_GRID.size - 1)]
    phi = phi + rng.uniform(-np.pi / 256, np.pi / 256, comp.size)
    radius = c.x_start[comp] + rng.standard_normal(comp.size) * c.scatter[comp, 0]
    return c.src_x[comp] + radius * np.cos(phi), c.src_y[comp] + radius * np.sin(phi)


def _render(
    rng: np.random.Generator, c: _Components, n: int, camera: CameraGeometry, cfg: SimulationConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Signal p.e. per pixel (n, P) from the components of ``n`` events; also p.e. in camera."""
    n_ph = rng.poisson(c.mean_pe)
    m = np.minimum(n_ph, cfg.max_photons)
    weight = np.where(m > 0, n_ph / np.maximum(m, 1), 0.0)
    comp = np.repeat(np.arange(c.event.size), m)
    xs, ys = np.empty(comp.size), np.empty(comp.size)
    ring = c.is_ring[comp]
    if (~ring).any():
        xs[~ring], ys[~ring] = _shower_photons(rng, c, comp[~ring], cfg)
    if ring.any():
        xs[ring], ys[ring] = _ring_photons(rng, c, comp[ring], cfg)
    pix = camera.pixel_index(xs, ys)
    inside = pix >= 0
    flat = c.event[comp[inside]] * camera.n_pixels + pix[inside]
    signal = np.bincount(flat, weights=weight[comp[inside]], minlength=n * camera.n_pixels)
    return signal.reshape(n, camera.n_pixels), np.bincount(
        c.event[comp[inside]], weights=weight[comp[inside]], minlength=n
    )


def nsb_per_pixel(camera: CameraGeometry, cfg: SimulationConfig, nsb_rate: float) -> float | np.ndarray:
    """Mean NSB p.e. per pixel in the integration window: ``nsb_rate`` is given for a hexagonal pixel
    of ``cfg.nsb_pixel_deg`` (flat to flat) and scales with each pixel's solid angle, so a camera of
    0.1 deg pixels sees ~1/13 of the default camera's NSB per pixel. A scalar when every pixel has the
    reference size (the default camera: the numbers are those of a fixed per-pixel rate)."""
    ref_area = np.sqrt(3.0) / 2.0 * cfg.nsb_pixel_deg**2
    scale = np.asarray(camera.pix_area, dtype=np.float64) / ref_area
    if np.all(scale == 1.0):
        return nsb_rate * cfg.integration_window_ns
    return nsb_rate * cfg.integration_window_ns * scale


def cleaning_thresholds(camera: CameraGeometry, cfg: SimulationConfig, nsb_rate: float) -> tuple[float, float]:
    """Tail-cut thresholds [p.e.] for ``camera``: ``cfg.picture_thresh`` / ``boundary_thresh`` are
    set for the reference pixel (``cfg.nsb_pixel_deg``, ~4 and ~2 pedestal RMS) and scale with the
    pedestal RMS of the camera's median pixel, so the cleaning keeps the same significance on a camera
    of smaller pixels (less NSB and less signal per pixel). Unchanged on the default camera."""
    nsb = np.asarray(nsb_per_pixel(camera, cfg, nsb_rate), dtype=np.float64)
    ref = nsb_rate * cfg.integration_window_ns

    def rms(mean: float) -> float:
        return float(np.sqrt(mean * (1.0 + cfg.spe_resolution**2) + cfg.electronic_noise_pe**2))

    scale = 1.0 if nsb.ndim == 0 else rms(float(np.median(nsb))) / rms(ref)
    return cfg.picture_thresh * scale, cfg.boundary_thresh * scale


def _add_noise(
    rng: np.random.Generator, signal: np.ndarray, cfg: SimulationConfig, nsb_mean: float | np.ndarray, dead: np.ndarray
) -> np.ndarray:
    """Charges [p.e.]: signal + Poisson NSB (mean ``nsb_mean`` p.e. per pixel), single-p.e. resolution,
    electronic noise, pedestal subtracted."""
    total = signal + (rng.poisson(nsb_mean, signal.shape) if np.any(np.asarray(nsb_mean) > 0) else 0.0)
    smear = rng.standard_normal(signal.shape, dtype=np.float32)
    elec = rng.standard_normal(signal.shape, dtype=np.float32)
    charge = (total + np.sqrt(total) * cfg.spe_resolution * smear + cfg.electronic_noise_pe * elec - nsb_mean).astype(
        np.float32
    )
    charge[:, dead] = 0.0
    return charge

def simulate_chunk(
    rng: np.random.Generator, labels: np.ndarray, cam: CameraGeometry, cfg: SimulationConfig,
    source: str, nsb_rate: float, dead: np.ndarray,
) -> tuple[np.ndarray, pd.DataFrame]:  # fmt: skip
    n = labels.size
    cols = ("true_energy", "true_impact", "true_source_x", "true_source_y", "true_x_max")
    truth = {k: np.full(n, np.nan) for k in cols}
    parts = []
    for name, maker in (
        ("gamma", lambda idx: _gamma_events(rng, idx, cfg, source)),
        ("proton", lambda idx: _proton_events(rng, idx, cfg)),
        ("muon", lambda idx: _muon_rings(rng, idx, cfg)),
    ):
        idx = np.flatnonzero(labels == name)
        if idx.size == 0:
            continue
        t, comps = maker(idx)
        for key in cols:
            truth[key][idx] = t[key]
        parts.append(comps)
    signal = np.zeros((n, cam.n_pixels))
    n_pe = np.zeros(n)
    if parts:
        signal, n_pe = _render(rng, _concat(parts), n, cam, cfg)
    images = _add_noise(rng, signal, cfg, nsb_per_pixel(cam, cfg, nsb_rate), dead)
    df = pd.DataFrame({"label": labels.astype(str), "true_particle": [PARTICLE_IDS[x] for x in labels]})
    df["true_particle"] = df["true_particle"].astype(np.int64)
    for key in cols:
        df[key] = truth[key]
    df["true_n_pe"] = n_pe
    return images, df

