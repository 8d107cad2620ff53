"""Spectral weights and sensitivity against pyirf fed by hand and against analytic integrals."""

from __future__ import annotations

import operator

import numpy as np
import pytest

from rareflow.errors import RareflowError
from rareflow.evaluation.binned import binned_cuts
from rareflow.evaluation.sensitivity import binned_sensitivity, event_weights, expected_rare_fraction

u = pytest.importorskip("astropy.units")
pytest.importorskip("pyirf")
from astropy.table import QTable  # noqa: E402
from pyirf.binning import create_histogram_table  # noqa: E402
from pyirf.cuts import evaluate_binned_cut  # noqa: E402
from pyirf.sensitivity import calculate_sensitivity  # noqa: E402

REC = {
    "particles": {
        "gamma": dict(n_showers=200_000, energy_min_tev=0.5, energy_max_tev=100.0, spectral_index=-2.0,
                      max_impact_m=300.0, viewcone_min_deg=0.0, viewcone_max_deg=0.0),
        "proton": dict(n_showers=400_000, energy_min_tev=1.0, energy_max_tev=300.0, spectral_index=-2.0,
                       max_impact_m=350.0, viewcone_min_deg=0.0, viewcone_max_deg=4.0),
    }
}  # fmt: skip


def _power_law(r, n, lo, hi, index):
    g = index + 1.0
    return (lo**g + r.random(n) * (hi**g - lo**g)) ** (1.0 / g)


def _analytic(norm, index, lo, hi):
    """Integral of norm * E^index over [lo, hi] (E in TeV, e_ref 1 TeV)."""
    return norm * (hi ** (index + 1) - lo ** (index + 1)) / (index + 1)


@pytest.mark.parametrize("fraction", [1.0, 0.5])
def test_weights_integrate_to_expected_counts(fraction):
    r = np.random.default_rng(0)
    g, p = REC["particles"]["gamma"], REC["particles"]["proton"]
    t = 50 * 3600.0  # s
    eg = _power_law(r, int(g["n_showers"] * fraction), 0.5, 100.0, -2.0)
    wg = event_weights(eg, REC, "gamma", obstime_h=50.0, sample_fraction=fraction)
    area_g = np.pi * (300.0 * 100) ** 2  # cm^2
    expect_g = _analytic(2.83e-11, -2.62, 0.5, 100.0) * area_g * t  # HEGRA Crab
    assert wg.sum() == pytest.approx(expect_g, rel=0.01)
    ep = _power_law(r, int(p["n_showers"] * fraction), 1.0, 300.0, -2.0)
    wp = event_weights(ep, REC, "proton", obstime_h=50.0, sample_fraction=fraction)
    omega = 2 * np.pi * (1 - np.cos(np.deg2rad(4.0)))
    expect_p = _analytic(9.8e-6, -2.62, 1.0, 300.0) * np.pi * (350.0 * 100) ** 2 * t * omega
    assert wp.sum() == pytest.approx(expect_p, rel=0.01)
    on = event_weights(ep, REC, "proton", sample_fraction=fraction, on_region_radius_deg=0.4)
    assert on.sum() / wp.sum() == pytest.approx((1 - np.cos(np.deg2rad(0.4))) / (1 - np.cos(np.deg2rad(4.0))))
    frac = expected_rare_fraction(wg, wp)
    assert frac["rare_fraction"] == pytest.approx(expect_g / (expect_g + expect_p), rel=0.02)


def test_sensitivity_equals_pyirf_fed_by_hand():
    r = np.random.default_rng(1)
    n_g, n_p = 20_000, 40_000
    e = np.concatenate([_power_law(r, n_g, 0.5, 100.0, -2.0), _power_law(r, n_p, 1.0, 300.0, -2.0)])
    y = np.r_[np.ones(n_g, bool), np.zeros(n_p, bool)]
    s = r.normal(0, 1, y.size) + y * (1.0 + 0.6 * np.log10(e))
    frac = dict(gamma=n_g / REC["particles"]["gamma"]["n_showers"], proton=n_p / REC["particles"]["proton"]["n_showers"])
    w = np.where(y, event_weights(e, REC, "gamma", sample_fraction=frac["gamma"]),
                 event_weights(e, REC, "proton", sample_fraction=frac["proton"], on_region_radius_deg=0.3))
    edges = np.geomspace(1.0, 100.0, 11)
    cuts = binned_cuts(s[::2], y[::2], e[::2], edges, rare_efficiency=0.7)
    mine = binned_sensitivity(s[1::2], y[1::2], e[1::2], w[1::2], cuts)

    st, yt, et, wt = s[1::2], y[1::2], e[1::2], w[1::2]
    cut_table = QTable({"low": edges[:-1] * u.TeV, "high": edges[1:] * u.TeV, "cut": cuts["cut"].to_numpy()})
    passed = evaluate_binned_cut(st, et * u.TeV, cut_table, operator.ge)
    hists = []
    for cls in (yt, ~yt):
        ev = QTable({"reco_energy": et[passed & cls] * u.TeV, "weight": wt[passed & cls]})
        h = create_histogram_table(ev, edges * u.TeV)
        h["reco_energy_center"] = np.sqrt(edges[:-1] * edges[1:]) * u.TeV
        hists.append(h)
    ref = calculate_sensitivity(hists[0], hists[1], alpha=0.2)
    np.testing.assert_allclose(mine["relative_sensitivity"], np.asarray(ref["relative_sensitivity"]), rtol=1e-10)
    np.testing.assert_allclose(mine["significance"], np.asarray(ref["significance"]), rtol=1e-10)
    np.testing.assert_array_equal(mine["n_background"], np.asarray(ref["n_background"]))
    from pyirf.spectral import CRAB_HEGRA

    c = mine["center"].to_numpy() * u.TeV
    e2 = (c**2 * mine["relative_sensitivity"].to_numpy() * CRAB_HEGRA(c)).to_value(u.erg / u.cm**2 / u.s)
    np.testing.assert_allclose(mine["e2_flux_sensitivity"], e2, rtol=1e-10)
    assert set(mine["limited_by"]) <= {"significance", "min_signal", "systematics", "no_signal", "undefined"}
    assert np.isfinite(mine["relative_sensitivity"]).sum() >= 5


def test_bad_metadata_is_one_line():
    rec = {"particles": {"gamma": dict(REC["particles"]["gamma"])}}
    del rec["particles"]["gamma"]["max_impact_m"]
    with pytest.raises(RareflowError, match="lacks field 'max_impact_m'") as exc:
        event_weights([1.0], rec, "gamma", source="events.parquet")
    assert "events.parquet" in str(exc.value)
    diffuse = {"particles": {"gamma": dict(REC["particles"]["gamma"], viewcone_max_deg=3.0)}}
    with pytest.raises(RareflowError, match="--source point"):
        event_weights([1.0], diffuse, "gamma")
    with pytest.raises(RareflowError, match="no simulation metadata"):
        event_weights([1.0], None, "proton")
