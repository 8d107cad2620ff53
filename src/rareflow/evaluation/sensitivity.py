r"""Event weights to physical spectra and differential point-source sensitivity, with pyirf.

Weights (pyirf, ``calculate_event_weights``): a sample drawn from the simulated power law
:math:`\Phi_{sim}` (normalised by :meth:`pyirf.spectral.PowerLaw.from_simulation` so that its
integral over energy, impact disk :math:`\pi r_{max}^2`, view cone and time :math:`T` equals the
number of thrown showers) is reweighted event by event,

.. math:: w_i = \Phi_{target}(E_i) / \Phi_{sim}(E_i),

so :math:`\sum_i w_i` is the number of events the target source gives in :math:`T` (default 50 h).
Targets: gammas -> the Crab Nebula as measured by HEGRA (``CRAB_HEGRA``, Aharonian et al. 2004,
a point source: gammas must be simulated as a point source), protons -> the CTA IRF-document
proton spectrum (``IRFDOC_PROTON_SPECTRUM``, diffuse: integrated over the simulated view cone).

Sensitivity (pyirf ``calculate_sensitivity``): per bin, the weighted gammas :math:`N_s` and protons
:math:`N_b` that pass the per-bin cut (:mod:`rareflow.evaluation.binned`) give
:math:`N_{on} = N_s + \alpha N_{off}`, :math:`N_{off} = N_b` (off regions of total exposure
:math:`1/\alpha = 5`); the relative sensitivity is the factor on the Crab flux that reaches
:math:`5\sigma` Li & Ma (1983, ApJ 272, 317, eq. 17), raised where needed to give at least 10 excess
events and an excess of at least 5 % of the background (systematics). The flux sensitivity is that
factor times the Crab flux at the bin centre, quoted as :math:`E^2\,dN/dE` in erg cm^-2 s^-1.

Honest limits of the toy: one telescope and no direction reconstruction, so the gamma/hadron score
(which sees ``alpha``) is the whole on-region selection: every proton passing the cut counts as
background unless ``on_region_radius_deg`` scales the diffuse weights to a signal-region solid angle,
and protons from outside the simulated view cone are missing. Energies are TRUE energies (perfect
energy resolution); pyirf's tables are labelled ``reco_energy`` only because its API asks for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from rareflow.errors import RareflowError
from rareflow.evaluation.binned import assign_bins
from rareflow.io.metadata import validate_particle

__all__ = [
    "ALPHA",
    "OBSTIME_H",
    "binned_sensitivity",
    "event_weights",
    "expected_rare_fraction",
    "simulated_info",
]

#: Ratio of on- to off-region exposure (one on region, five off regions).
ALPHA = 0.2
#: Default observation time [h].
OBSTIME_H = 50.0
#: Fewer raw passing events of either class than this flags a sensitivity bin ``low_statistics``.
MIN_RAW = 10


def simulated_info(record: dict | None, particle: str, *, sample_fraction: float = 1.0, source: str = "table") -> Any:
    """pyirf ``SimulatedEventsInfo`` of ``particle`` from a simulation record (``rareflow.io.metadata``).

    ``sample_fraction``: the share of the thrown showers this sample stands for (0.5 for a test set
    that is a random half of the table; cleaning/validity selections are NOT a share, they are cuts).
    """
    import astropy.units as u
    from pyirf.simulations import SimulatedEventsInfo

    e = validate_particle(record, particle, source)
    if not 0.0 < sample_fraction <= 1.0:
        raise RareflowError(f"sample_fraction must be in (0, 1] (got {sample_fraction})")
    if e["spectral_index"] > -1:
        raise RareflowError(f"{source}: spectral_index of {particle!r} must be <= -1, sign included (got {e['spectral_index']})")
    return SimulatedEventsInfo(
        n_showers=e["n_showers"] * sample_fraction, energy_min=e["energy_min_tev"] * u.TeV,
        energy_max=e["energy_max_tev"] * u.TeV, max_impact=e["max_impact_m"] * u.m,
        spectral_index=e["spectral_index"], viewcone_min=e["viewcone_min_deg"] * u.deg,
        viewcone_max=e["viewcone_max_deg"] * u.deg,
    )  # fmt: skip


def event_weights(
    true_energy: Any, record: dict | None, particle: str, *, obstime_h: float = OBSTIME_H,
    sample_fraction: float = 1.0, on_region_radius_deg: float | None = None, source: str = "table",
) -> np.ndarray:  # fmt: skip
    """Weights of ``particle`` events (true energy in TeV) to its target spectrum in ``obstime_h``.

    ``gamma`` -> ``CRAB_HEGRA`` (point source; the record must have a zero view cone);
    ``proton`` -> ``IRFDOC_PROTON_SPECTRUM`` over the simulated view cone, or scaled to a signal
    region of radius ``on_region_radius_deg`` (uniform acceptance assumed across the cone).
    """
    import astropy.units as u
    from pyirf.spectral import CRAB_HEGRA, IRFDOC_PROTON_SPECTRUM, PowerLaw, calculate_event_weights
    from pyirf.utils import cone_solid_angle

    info = simulated_info(record, particle, sample_fraction=sample_fraction, source=source)
    cone = info.viewcone_max - info.viewcone_min
    if particle == "gamma":
        if cone.value > 0:
            raise RareflowError(
                f"{source}: gammas were simulated diffuse ({info.viewcone_max}); point-source sensitivity needs "
                "`rareflow simulate --source point`"
            )
        target = CRAB_HEGRA
    elif particle == "proton":
        if cone.value <= 0:
            raise RareflowError(f"{source}: protons need a view cone > 0 in the simulation metadata (viewcone_max_deg)")
        target = IRFDOC_PROTON_SPECTRUM  # per sr, like the diffuse simulated flux: the ratio needs no cone
    else:
        raise RareflowError(f"event_weights: no target spectrum for particle {particle!r} (use gamma or proton)")
    simulated = PowerLaw.from_simulation(info, obstime_h * u.h)
    w = calculate_event_weights(np.asarray(true_energy, dtype=float) * u.TeV, target, simulated)
    if particle == "proton" and on_region_radius_deg is not None:
        on = cone_solid_angle(on_region_radius_deg * u.deg)
        w = w * (on / (cone_solid_angle(info.viewcone_max) - cone_solid_angle(info.viewcone_min))).to_value(u.one)
    return np.asarray(w, dtype=float)


def expected_rare_fraction(rare_weight: Any, bulk_weight: Any) -> dict[str, float]:
    """Expected gamma and hadron counts (sums of weights), their ratio and the rare fraction."""
    n_r, n_b = float(np.sum(rare_weight)), float(np.sum(bulk_weight))
    total = n_r + n_b
    return dict(
        n_rare=n_r, n_bulk=n_b, ratio=n_r / n_b if n_b > 0 else np.inf,
        rare_fraction=n_r / total if total > 0 else np.nan,
    )  # fmt: skip


def _hist(values: np.ndarray, weight: np.ndarray, edges: np.ndarray) -> Any:
    """pyirf-style histogram table (``reco_energy_*``, ``n``, ``n_weighted``) of the passing events."""
    import astropy.units as u
    from astropy.table import QTable

    idx = assign_bins(values, edges)
    ok = idx >= 0
    k = len(edges) - 1
    t = QTable()
    t["reco_energy_low"], t["reco_energy_high"] = edges[:-1] * u.TeV, edges[1:] * u.TeV
    t["reco_energy_center"] = np.sqrt(edges[:-1] * edges[1:]) * u.TeV
    t["n"] = np.bincount(idx[ok], minlength=k)
    t["n_weighted"] = np.bincount(idx[ok], weights=weight[ok], minlength=k)
    return t


def _limited_by(rel: np.ndarray, n_sig_w: np.ndarray, n_off_w: np.ndarray, alpha: float) -> list[str]:
    """Which condition fixed each bin's sensitivity (pyirf's defaults: 10 events, 5 % of background)."""
    out = []
    for r, s, b in zip(rel, n_sig_w, n_off_w):
        if not np.isfinite(r):
            out.append("no_signal" if r == np.inf else "undefined")
            continue
        need = max(10.0, 0.05 * alpha * b)
        if np.isclose(r * s, need, rtol=1e-6):
            out.append("min_signal" if need == 10.0 else "systematics")
        else:
            out.append("significance")
    return out


def binned_sensitivity(
    scores: Any, labels: Any, energy: Any, weight: Any, cuts: pd.DataFrame, *, alpha: float = ALPHA,
    min_significance: float = 5.0, min_signal_events: float = 10.0, min_excess_over_background: float = 0.05,
) -> pd.DataFrame:  # fmt: skip
    """Differential sensitivity after the per-bin cuts (``cuts``: a :func:`binned_cuts` frame).

    Test events: ``scores``, ``labels`` (truthy = gamma), true ``energy`` [TeV] and spectral
    ``weight`` (:func:`event_weights`, same observation time for both classes). One row per bin:
    ``bin, low, high, center, cut, n_signal, n_signal_weighted, n_background,
    n_background_weighted, relative_sensitivity, significance, flux_sensitivity`` [TeV^-1 cm^-2 s^-1],
    ``e2_flux_sensitivity`` [erg cm^-2 s^-1], ``limited_by``, ``low_statistics``.
    """
    import astropy.units as u
    from pyirf.sensitivity import calculate_sensitivity
    from pyirf.spectral import CRAB_HEGRA

    edges = np.append(cuts["low"].to_numpy(float), cuts["high"].to_numpy(float)[-1])
    if edges[0] <= 0:
        raise RareflowError("sensitivity needs energy bins with positive edges (TeV)")
    s, e = np.asarray(scores, dtype=float), np.asarray(energy, dtype=float)
    y, w = np.asarray(labels).astype(bool), np.asarray(weight, dtype=float)
    idx = assign_bins(e, edges)
    keep = (idx >= 0) & (s >= cuts["cut"].to_numpy(float)[np.maximum(idx, 0)])
    sig, bkg = _hist(e[keep & y], w[keep & y], edges), _hist(e[keep & ~y], w[keep & ~y], edges)
    sens = calculate_sensitivity(
        sig, bkg, alpha=alpha, min_significance=min_significance, min_signal_events=min_signal_events,
        min_excess_over_background=min_excess_over_background,
    )  # fmt: skip
    rel = np.asarray(sens["relative_sensitivity"], dtype=float)
    center = sig["reco_energy_center"]
    flux = (rel * CRAB_HEGRA(center)).to(1 / (u.TeV * u.cm**2 * u.s))
    n_sig_w = np.asarray(sig["n_weighted"], dtype=float)
    n_bkg_w = np.asarray(bkg["n_weighted"], dtype=float)
    return pd.DataFrame(dict(
        bin=np.arange(len(rel)), low=edges[:-1], high=edges[1:], center=center.to_value(u.TeV),
        cut=cuts["cut"].to_numpy(float), n_signal=np.asarray(sig["n"]), n_signal_weighted=n_sig_w,
        n_background=np.asarray(bkg["n"]), n_background_weighted=n_bkg_w, relative_sensitivity=rel,
        significance=np.asarray(sens["significance"], dtype=float), flux_sensitivity=flux.value,
        e2_flux_sensitivity=(center**2 * flux).to_value(u.erg / (u.cm**2 * u.s)),
        limited_by=_limited_by(rel, n_sig_w, n_bkg_w, alpha),
        low_statistics=(np.asarray(sig["n"]) < MIN_RAW) | (np.asarray(bkg["n"]) < MIN_RAW),
    ))  # fmt: skip
