r"""The toy simulator's physics model: spectra, light yield, showers, hadrons, muons, electronics.

The public API is :mod:`rareflow.iact.simulate`; photons -> camera images is
:mod:`rareflow.iact.camera_response`. The model:

Not a replacement for CORSIKA + sim_telarray (see ``docs/simulator.md``): a parametric model whose
distributions follow the literature closely enough to give realistic Hillas-parameter distributions
and a realistic, non-trivial gamma/hadron separation for a single small telescope (TAIGA-IACT-like
camera by default). Every image is built photon by photon (so Poisson statistics, pixelisation and
camera leakage come out naturally), then noise is added, then the images are cleaned and parametrised
exactly like real data (:func:`rareflow.iact.hillas.extract_parameters`). All constants live in
:class:`SimulationConfig`.

Model and sources (one line each on *why*)
-------------------------------------------
Spectra and light yield

* Gamma energies: power law :math:`dN/dE \propto E^{-2.6}` (0.7-300 TeV) — the Crab Nebula
  spectrum measured by HEGRA, index 2.62 (Aharonian et al. 2004, ApJ 614, 897).
* Proton energies: :math:`E^{-2.7}` (2-1000 TeV) — the cosmic-ray proton spectrum (PDG Review of
  Particle Physics, "Cosmic rays"); the range is ~3x the gamma one because protons give ~1/3 of the
  Cherenkov light (next item).
* Cherenkov photon density ~100 photons m^-2 TeV^-1 on the light-pool plateau for gammas
  (Hillas 1996, Space Sci. Rev. 75, 17; Weekes 2003, *Very High Energy Gamma-Ray Astronomy*);
  protons yield ~1/3 of that for the same energy, i.e. need 2-3x the energy for the same image size
  (Fegan 1997, J. Phys. G 23, 1013; Aharonian et al. 2008, Rep. Prog. Phys. 71, 096901).
  Expected p.e. = density x mirror area (10 m^2, a 4.3 m dish) x photon efficiency (0.1).
* Lateral distribution: gamma plateau to ~120 m with the Cherenkov "hump" at ~120 m and an
  exponential fall (scale 120 m) beyond (Hillas 1996; Aharonian et al. 2008); protons: no hump, a
  broader exponential (200 m). Impacts uniform in area up to 400 m (gammas) / 350 m (protons).
* Shower-to-shower light fluctuations: log-normal, 15 % for gammas and 50 % for protons (hadron
  showers fluctuate much more; Fegan 1997; Hillas 1985).

Longitudinal development and image geometry (Hillas 1985, Proc. 19th ICRC 3, 445)

* Electromagnetic cascades: the Longo-Sestili profile :math:`dE/dt \propto t^{a-1}e^{-bt}` in
  radiation lengths :math:`t` (X0 = 36.7 g cm^-2), :math:`b=0.5`, :math:`t_{max}=\ln(E/E_c)-0.5`,
  :math:`E_c` = 85 MeV (PDG review "Passage of particles through matter", electromagnetic cascades);
  first interaction depth exponential with mean 9/7 X0 (pair production).
* Isothermal atmosphere :math:`h = 8.4\,\mathrm{km}\,\ln(1030/X)`, observation level 675 m (Tunka).
* Each photon is emitted at depth :math:`X` on the shower axis; seen from a telescope at impact
  distance :math:`r` it arrives at the angle :math:`\theta = r / D(X)` from the source direction,
  along the source -> core direction (:math:`D` the distance to the emission point). This makes gamma
  images ellipses whose major axis points to the source (small alpha), whose length grows with the
  impact distance and whose tail points away from the source (positive m3_long) — Hillas 1985.
* The spread along the axis is rotated about the shower maximum by a random tilt (gammas 10 deg
  rms, proton sub-showers 15 deg): shower fluctuations and the geomagnetic deflection of the
  electrons (Commichau et al. 2008, NIM A 595, 572) keep real gamma axes from pointing exactly at the
  source. The 10 deg was *calibrated*: it gives a median gamma |alpha| of ~9 deg, close to the
  MAGIC Monte Carlo of Bock et al. 2004 (NIM A 516, 511; the UCI ``magic04`` data, median 9.7 deg).
* Transverse spread from the electrons' multiple-scattering angles plus the optical PSF (0.07 deg):
  a Gaussian core of 0.06 deg with a 20 % halo of 0.15 deg for gammas — intrinsic gamma widths
  0.05-0.1 deg as measured by HEGRA / H.E.S.S. (Daum et al. 1997, Astropart. Phys. 8, 1;
  Aharonian et al. 2006, A&A 457, 899); the 0.36 deg pixels add ~0.1 deg in quadrature.

Hadrons (Fegan 1997; Hillas 1985; Hillas 1996)

* A proton image is the sum of 1 + Poisson(1) (max 5) electromagnetic sub-showers (pi0 cascades,
  ~half of the primary energy) sharing the light by a Dirichlet(3, 1, ...) split; sub-showers other
  than the leading one start deeper (pion interaction length ~120 g cm^-2) and are deflected by the
  pion transverse momentum (:math:`\delta \approx p_t/E_{sub}`, :math:`p_t` = 0.35 GeV/c), which
  makes proton images broader, longer, irregular and more often split into several islands.
* Wider electron angles: Gaussian core 0.10 deg with a 25 % halo of 0.25 deg.
* 15 % of proton events carry a local muon arc (the muon component of hadron showers).
* Proton arrival directions are diffuse, uniform within 4 deg of the pointing (the field of view),
  so image axes do not point to the camera centre (|alpha| roughly uniform).

Muons (Vacanti et al. 1994, Astropart. Phys. 2, 1; Rovero et al. 1996, Astropart. Phys. 5, 27)

* Energies :math:`E^{-2.7}` from 10 GeV to 1 TeV (sea-level muon spectrum, PDG); Cherenkov angle
  :math:`\cos\theta_c = 1/(n\beta)` with :math:`n-1 = 2.7\times10^{-4}` -> ring radii 1.1-1.3 deg.
* Light per azimuth :math:`dN/d\phi \propto \sin^2\theta_c\,D(\rho,\phi)/\tan\theta_c` with
  :math:`D` the chord of the mirror seen from the impact point (Vacanti et al. 1994): rings for
  impacts on the mirror, partial arcs for impacts outside; :math:`2\pi\alpha(1/300\,nm - 1/550\,nm)
  \sin^2\theta_c` photons per metre of track.
* Impacts uniform in area up to 1.5 mirror radii (44 % full rings, the rest arcs), directions
  uniform within 3.5 deg (rings cut by the camera edge), ring width 0.05 deg.

Camera and electronics

* Poisson photo-electrons (photon by photon; images brighter than ``max_photons`` use that many
  photons with weights, which slightly over-disperses the brightest images).
* Night-sky background: Poisson with mean ``nsb_rate`` x ``integration_window_ns`` p.e. per pixel
  of the default 0.36 deg size (``nsb_pixel_deg``; other pixels scale with their solid angle, so
  the NSB per square degree, not per pixel, is the same on every camera geometry)
  (default 0.12 p.e./ns x 20 ns = 2.4 p.e.): a dark-site flux of ~2e12 photons m^-2 s^-1 sr^-1
  (Preuss et al. 2002, NIM A 481, 229) on a 0.36 deg pixel, 10 m^2 and 10 % efficiency gives
  ~0.07 p.e./ns; subtracted on average (pedestal); single-p.e. charge resolution 40 %; electronic
  noise 0.5 p.e.
* Optional dead pixels (a fixed random set per call) read 0.

Cleaning: tail cuts 7 / 3.5 p.e. (picture / boundary; ~4 and ~2 times the pedestal RMS of ~1.7
p.e.), no minimum of picture neighbours; ~1 % of pure-noise events survive with >= 3 pixels.
On a camera of other pixels (``rareflow simulate --camera-from FILE``) the NSB per pixel scales with
the pixel solid angle and the tail cuts with the pedestal RMS (same ~4 / ~2 sigma): LSTCam's 0.1 deg
pixels get ~2.7 / 1.4 p.e. Every angle of the model (widths, lengths, view cones) is in degrees, so
the showers are the same on the sky; only the pixelisation differs.

Calibration, honestly: the tilt, the proton viewcone, the NSB level and the cleaning levels were
chosen within their plausible ranges so that a gradient-boosting classifier on the Hillas table
reaches ROC AUC ~0.95-0.96 (20k events), i.e. inside the 0.85-0.97 band of real single-telescope
analyses (0.93 on the MAGIC Monte Carlo), not near 1.

Reproducibility: one master generator (:func:`rareflow.seeding.rng`) draws the event list and
spawns one child generator per chunk of events, so the same seed gives the same table and images.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: sim_telarray / ctapipe ``shower_primary_id`` codes (CORSIKA-like): gamma 0, electron 1, muon 2,
#: nuclei 100 A + Z (proton 101).
PARTICLE_IDS: dict[str, int] = {"gamma": 0, "electron": 1, "muon": 2, "proton": 101}

_X0 = 36.7  # radiation length in air [g cm^-2]
_EC_TEV = 85e-6  # critical energy in air [TeV]
_SCALE_HEIGHT_KM = 8.4
_X_SEA = 1030.0  # vertical depth at sea level [g cm^-2]
_MUON_MASS_GEV = 0.10566
_PHOTONS_PER_M = 2 * np.pi / 137.036 * (1 / 300e-9 - 1 / 550e-9)  # x sin^2(theta_c)


@dataclass(frozen=True)
class SimulationConfig:
    """Physical and instrumental constants of the toy simulator (see the module docstring)."""

    gamma_energy_tev: tuple[float, float] = (0.7, 300.0)
    gamma_index: float = 2.6
    proton_energy_tev: tuple[float, float] = (2.0, 1000.0)
    proton_index: float = 2.7
    muon_energy_tev: tuple[float, float] = (0.01, 1.0)
    muon_index: float = 2.7
    photon_density_per_tev: float = 100.0  # gamma, plateau [photons m^-2 TeV^-1]
    proton_light_ratio: float = 1.0 / 3.0
    mirror_area_m2: float = 10.0
    photon_efficiency: float = 0.1
    gamma_max_impact_m: float = 400.0
    proton_max_impact_m: float = 350.0
    gamma_light_sigma: float = 0.15
    proton_light_sigma: float = 0.5
    observation_level_km: float = 0.675
    gamma_scatter_deg: tuple[float, float, float] = (0.06, 0.15, 0.2)  # core, halo, halo fraction
    proton_scatter_deg: tuple[float, float, float] = (0.10, 0.25, 0.25)
    psf_deg: float = 0.07
    proton_viewcone_deg: float = 4.0
    diffuse_radius_deg: float = 3.0
    axis_jitter_deg: float = 0.02  # scatter of the gamma arrival direction about the source (pointing)
    gamma_lateral_scale_m: float = 120.0  # exponential fall of the gamma light pool beyond the hump
    proton_lateral_scale_m: float = 200.0
    gamma_subshowers: float = 0.0  # mean number of extra sub-cascades (Poisson) in gamma showers
    proton_subshowers: float = 1.0
    gamma_subshower_spec: dict[str, float] = field(default_factory=lambda: dict(
        lead_weight=4.0, pt_gev=0.0, max_delta_deg=0.0, extra_depth=2 * _X0, tilt_deg=10.0))  # fmt: skip
    proton_subshower_spec: dict[str, float] = field(default_factory=lambda: dict(
        lead_weight=3.0, pt_gev=0.35, max_delta_deg=1.7, extra_depth=120.0, tilt_deg=15.0))  # fmt: skip
    proton_muon_probability: float = 0.15
    muon_max_offset_deg: float = 3.5
    muon_ring_width_deg: float = 0.05
    refractive_index_minus_one: float = 2.7e-4
    mirror_radius_m: float = 1.78  # sqrt(10 m^2 / pi)
    muon_max_impact_factor: float = 1.5
    integration_window_ns: float = 20.0
    nsb_pixel_deg: float = 0.36  # the pixel (flat to flat) nsb_rate is given for; NSB scales with pixel solid angle
    spe_resolution: float = 0.4
    electronic_noise_pe: float = 0.5
    max_photons: int = 4000
    picture_thresh: float = 7.0
    boundary_thresh: float = 3.5
    min_number_picture_neighbors: int = 0



# ----------------------------------------------------------------------------- event-level draws
def _power_law(rng: np.random.Generator, n: int, lo: float, hi: float, index: float) -> np.ndarray:
    """Inverse-CDF draws from dN/dE ~ E^-index on [lo, hi]."""
    g = 1.0 - index
    u = rng.random(n)
    return (lo**g + u * (hi**g - lo**g)) ** (1.0 / g)


def _disk(rng: np.random.Generator, n: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Points uniform in area in a disk."""
    r = radius * np.sqrt(rng.random(n))
    phi = rng.uniform(0, 2 * np.pi, n)
    return r * np.cos(phi), r * np.sin(phi)


def _gamma_lateral(r: np.ndarray, cfg: SimulationConfig) -> np.ndarray:
    """Relative photon density of gamma showers vs impact distance [m] (plateau + hump at 120 m)."""
    hump = 1.0 + 0.35 * np.exp(-0.5 * ((r - 120.0) / 25.0) ** 2)
    return np.where(r <= 120.0, hump, 1.35 * np.exp(-(r - 120.0) / cfg.gamma_lateral_scale_m))


def _proton_lateral(r: np.ndarray, cfg: SimulationConfig) -> np.ndarray:
    """Relative photon density of proton showers vs impact distance [m] (no hump, broad)."""
    return np.exp(-r / cfg.proton_lateral_scale_m)


def _t_max(energy_tev: np.ndarray) -> np.ndarray:
    return np.maximum(np.log(energy_tev / _EC_TEV) - 0.5, 1.0)


@dataclass
class _Components:
    """Light components (sub-showers or muon rings) of a set of events, one row per component."""

    event: np.ndarray
    mean_pe: np.ndarray
    is_ring: np.ndarray
    src_x: np.ndarray  # shower: direction [deg]; ring: ring centre [deg]
    src_y: np.ndarray
    core_x: np.ndarray  # shower: core position [m]; ring: impact vector on the mirror plane [m]
    core_y: np.ndarray
    x_start: np.ndarray  # shower: first interaction depth [g cm^-2]; ring: ring radius [deg]
    t_max: np.ndarray
    scatter: np.ndarray  # (n, 3): core sigma, halo sigma, halo fraction [deg]
    tilt: np.ndarray  # shower: rotation of the image axis about the shower-maximum point [rad]


def _concat(parts: list[_Components]) -> _Components:
    return _Components(*[np.concatenate([getattr(p, f) for p in parts]) for f in _Components.__dataclass_fields__])


def _subshowers(
    rng: np.random.Generator, idx: np.ndarray, k: np.ndarray, e_em: np.ndarray, pe: np.ndarray,
    src: tuple[np.ndarray, np.ndarray], core: tuple[np.ndarray, np.ndarray], x1: np.ndarray,
    spec: dict[str, float], scatter: tuple[float, float, float],
) -> _Components:  # fmt: skip
    """Split each event into ``k`` electromagnetic sub-showers (the first one leading).

    Light and energy are shared by a Dirichlet(lead_weight, 1, 1, ...) split; the other sub-showers
    start ``Exp(extra_depth)`` deeper and are deflected by ``delta = min(pt / E_sub, max_delta)``
    (Rayleigh-distributed, random azimuth), which also shifts their core by delta x height.
    """
    ev = np.repeat(np.arange(idx.size), k)
    lead = np.zeros(ev.size, bool)
    lead[np.concatenate([[0], np.cumsum(k)[:-1]])] = True
    frac = rng.gamma(np.where(lead, spec["lead_weight"], 1.0))
    frac /= np.bincount(ev, weights=frac, minlength=idx.size)[ev]
    e_sub = e_em[ev] * frac
    delta = np.where(lead, 0.0, np.minimum(spec["pt_gev"] * 1e-3 / e_sub, np.radians(spec["max_delta_deg"])))
    delta = delta * np.sqrt(rng.exponential(1.0, ev.size))
    phi = rng.uniform(0, 2 * np.pi, ev.size)
    h1_m = 1e3 * np.maximum(_SCALE_HEIGHT_KM * np.log(_X_SEA / np.maximum(x1[ev], 1.0)), 1.0)
    ddeg = np.degrees(delta)
    return _Components(
        idx[ev], pe[ev] * frac, np.zeros(ev.size, bool),
        src[0][ev] + ddeg * np.cos(phi), src[1][ev] + ddeg * np.sin(phi),
        core[0][ev] + delta * h1_m * np.cos(phi), core[1][ev] + delta * h1_m * np.sin(phi),
        x1[ev] + np.where(lead, 0.0, rng.exponential(spec["extra_depth"], ev.size)),
        _t_max(np.maximum(e_sub, 1e-3)),
        np.tile(np.asarray(scatter, float), (ev.size, 1)),
        np.radians(spec["tilt_deg"]) * rng.standard_normal(ev.size),
    )  # fmt: skip


def _gamma_events(
    rng: np.random.Generator, idx: np.ndarray, cfg: SimulationConfig, source: str
) -> tuple[dict, _Components]:
    n = idx.size
    energy = _power_law(rng, n, *cfg.gamma_energy_tev, cfg.gamma_index)
    cx, cy = _disk(rng, n, cfg.gamma_max_impact_m)
    impact = np.hypot(cx, cy)
    if source == "diffuse":
        sx, sy = _disk(rng, n, cfg.diffuse_radius_deg)
    else:
        sx, sy = rng.normal(0, cfg.axis_jitter_deg, (2, n))
    light = np.exp(rng.normal(-0.5 * cfg.gamma_light_sigma**2, cfg.gamma_light_sigma, n))
    pe = (
        cfg.photon_density_per_tev
        * cfg.mirror_area_m2
        * cfg.photon_efficiency
        * energy
        * _gamma_lateral(impact, cfg)
        * light
    )
    x1 = rng.exponential(9.0 / 7.0 * _X0, n)  # pair-production mean free path
    k = np.minimum(1 + rng.poisson(cfg.gamma_subshowers, n), 4)
    comps = _subshowers(
        rng, idx, k, energy, pe, (sx, sy), (cx, cy), x1, cfg.gamma_subshower_spec, cfg.gamma_scatter_deg
    )
    truth = dict(true_energy=energy, true_impact=impact, true_source_x=sx, true_source_y=sy,
                 true_x_max=x1 + _X0 * _t_max(energy))  # fmt: skip
    return truth, comps


def _proton_events(rng: np.random.Generator, idx: np.ndarray, cfg: SimulationConfig) -> tuple[dict, _Components]:
    n = idx.size
    energy = _power_law(rng, n, *cfg.proton_energy_tev, cfg.proton_index)
    cx, cy = _disk(rng, n, cfg.proton_max_impact_m)
    impact = np.hypot(cx, cy)
    sx, sy = _disk(rng, n, cfg.proton_viewcone_deg)
    light = np.exp(rng.normal(-0.5 * cfg.proton_light_sigma**2, cfg.proton_light_sigma, n))
    pe_total = (cfg.photon_density_per_tev * cfg.proton_light_ratio * cfg.mirror_area_m2 * cfg.photon_efficiency
                * energy * _proton_lateral(impact, cfg) * light)  # fmt: skip
    x1 = rng.exponential(80.0, n)  # proton-air interaction length ~80 g cm^-2
    k = np.minimum(1 + rng.poisson(cfg.proton_subshowers, n), 5)
    e_em = 0.5 * energy  # ~half of the energy ends in pi0 cascades
    comps = _subshowers(
        rng, idx, k, e_em, pe_total, (sx, sy), (cx, cy), x1, cfg.proton_subshower_spec, cfg.proton_scatter_deg
    )
    truth = dict(true_energy=energy, true_impact=impact, true_source_x=sx, true_source_y=sy,
                 true_x_max=x1 + _X0 * _t_max(e_em))  # fmt: skip
    has_mu = rng.random(n) < cfg.proton_muon_probability
    if has_mu.any():
        _, mu = _muon_rings(rng, idx[has_mu], cfg, impact_factor=(1.0, 4.0))
        comps = _concat([comps, mu])
    return truth, comps


def _muon_rings(
    rng: np.random.Generator, idx: np.ndarray, cfg: SimulationConfig,
    impact_factor: tuple[float, float] | None = None,
) -> tuple[dict, _Components]:  # fmt: skip
    n = idx.size
    impact_factor = impact_factor or (0.0, cfg.muon_max_impact_factor)
    energy = _power_law(rng, n, *cfg.muon_energy_tev, cfg.muon_index)
    gamma_l = energy * 1e3 / _MUON_MASS_GEV
    beta = np.sqrt(1.0 - 1.0 / gamma_l**2)
    cos_t = np.minimum(1.0 / ((1.0 + cfg.refractive_index_minus_one) * beta), 1.0)
    theta = np.arccos(cos_t)
    r_lo, r_hi = impact_factor[0] * cfg.mirror_radius_m, impact_factor[1] * cfg.mirror_radius_m
    rho = np.sqrt(rng.uniform(r_lo**2, r_hi**2, n))
    phi0 = rng.uniform(0, 2 * np.pi, n)
    ox, oy = _disk(rng, n, cfg.muon_max_offset_deg)
    # total photons for a central impact: (photons/m) sin^2 theta * R / tan theta; the chord D(phi)
    # (sampled later) makes partial arcs. Mean over phi of D/R is 1 for rho=0.
    pe = cfg.photon_efficiency * _PHOTONS_PER_M * np.sin(theta) ** 2 * cfg.mirror_radius_m / np.tan(theta)
    pe = pe * _mean_chord(rho / cfg.mirror_radius_m)
    comps = _Components(
        idx, pe, np.ones(n, bool), ox, oy, rho * np.cos(phi0), rho * np.sin(phi0), np.degrees(theta),
        np.zeros(n), np.tile([cfg.muon_ring_width_deg, cfg.muon_ring_width_deg, 0.0], (n, 1)), np.zeros(n),
    )  # fmt: skip
    truth = dict(true_energy=energy, true_impact=rho, true_source_x=ox, true_source_y=oy, true_x_max=np.full(n, np.nan))
    return truth, comps


def _chord(b: np.ndarray, dphi: np.ndarray) -> np.ndarray:
    """Mirror chord length / R seen from an impact at b = rho / R, in direction dphi (Vacanti 1994)."""
    s2 = (b * np.sin(dphi)) ** 2
    root = np.sqrt(np.clip(1.0 - s2, 0.0, None))
    inside = np.clip(root + b * np.cos(dphi), 0.0, None)
    outside = np.where((s2 <= 1.0) & (np.cos(dphi) > 0), 2.0 * root, 0.0)
    return np.where(b <= 1.0, inside, outside)


_PHI_GRID = np.linspace(0, 2 * np.pi, 257)[:-1] + np.pi / 256


def _mean_chord(b: np.ndarray) -> np.ndarray:
    return _chord(b[:, None], _PHI_GRID[None, :]).mean(axis=1)

