"""Binned evaluation: per-bin cuts and efficiencies against pyirf, and bad binning."""

from __future__ import annotations

import operator

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from rareflow.errors import RareflowError
from rareflow.evaluation.binned import (
    aggregate_seeds,
    assign_bins,
    bin_column,
    binned_cuts,
    evaluate_binned,
    make_edges,
)

u = pytest.importorskip("astropy.units")
cuts = pytest.importorskip("pyirf.cuts")


def _events(seed: int, n: int = 4000):
    """Energy-dependent separation: rare scores shift up with log10(E)."""
    r = np.random.default_rng(seed)
    e = 10 ** r.uniform(-1.2, 1.9, n)  # avoid edge values exactly
    y = r.random(n) < 0.4
    s = r.normal(0, 1, n) + y * (1.0 + 0.8 * np.log10(e))
    return s, y, e


EDGES = np.array([0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 80.0])


@pytest.mark.parametrize("eff", [0.5, 0.7, 0.9])
def test_rare_efficiency_cuts_equal_pyirf(eff):
    s, y, e = _events(0)
    mine = binned_cuts(s, y, e, EDGES, rare_efficiency=eff, fill_value=-9.0)
    ref = cuts.calculate_percentile_cut(
        s[y], e[y] * u.TeV, EDGES * u.TeV, fill_value=-9.0, percentile=100 * (1 - eff), min_events=10
    )
    np.testing.assert_allclose(mine["cut"], np.asarray(ref["cut"]), rtol=1e-12)
    np.testing.assert_array_equal(mine["n_train"], np.asarray(ref["n_events"]))


def test_test_efficiencies_equal_pyirf_evaluate_binned_cut():
    s, y, e = _events(1)
    st, yt, et = _events(2)
    out = evaluate_binned((s, y, e), (st, yt, et), EDGES, rare_efficiency=0.7, fill_value=-9.0)
    ref_cut = cuts.calculate_percentile_cut(s[y], e[y] * u.TeV, EDGES * u.TeV, fill_value=-9.0, percentile=30)
    passed = cuts.evaluate_binned_cut(st, et * u.TeV, ref_cut, operator.ge)
    idx = assign_bins(et, EDGES)
    for b in range(len(EDGES) - 1):
        m = idx == b
        assert out["rare_efficiency"][b] == pytest.approx(passed[m & yt].mean(), abs=1e-12)
        assert out["bulk_acceptance"][b] == pytest.approx(passed[m & ~yt].mean(), abs=1e-12)
        assert out["auc"][b] == pytest.approx(roc_auc_score(yt[m], st[m]), abs=1e-9)
        q = out["rare_efficiency"][b] / np.sqrt(out["bulk_acceptance"][b])
        assert out["q_factor"][b] == pytest.approx(q)
    # the separation grows with energy in _events: AUC rises from the first to the last bin
    assert out["auc"].iloc[-1] > out["auc"].iloc[0] + 0.1


def test_bulk_acceptance_rule_and_weights():
    s, y, e = _events(3)
    w = np.random.default_rng(0).uniform(0.5, 2.0, len(s))
    out = evaluate_binned((s, y, e), (s, y, e), EDGES, bulk_acceptance=0.1, test_weight=w)
    idx = assign_bins(e, EDGES)
    for b in range(len(EDGES) - 1):
        m = (idx == b) & ~y
        # on the training data itself, ~10 % of bulk events pass (percentile interpolation)
        assert np.mean(s[m] >= out["cut"][b]) == pytest.approx(0.1, abs=1.5 / m.sum() + 1e-9)
        wr = w[(idx == b) & y]
        assert out["n_eff_rare"][b] == pytest.approx(wr.sum() ** 2 / (wr**2).sum())


def test_fill_value_and_low_statistics_flags():
    s, y, e = _events(4, n=600)
    edges = np.array([0.1, 1.0, 10.0, 79.0, 79.4])  # the last bin is nearly empty
    e = e.copy()
    e[:3] = 79.2
    out = evaluate_binned((s, y, e), (s, y, e), edges, rare_efficiency=0.7, fill_value=5.0)
    assert bool(out["cut_filled"].iloc[-1]) and out["cut"].iloc[-1] == 5.0
    assert bool(out["low_statistics"].iloc[-1]) and not out["low_statistics"].iloc[0]
    assert len(out) == 4  # never dropped


def test_default_edges_five_per_decade_hold_every_event():
    e = np.array([0.5, 1.0, 7.0, 50.0])
    edges = make_edges(e)
    assert edges[0] == 0.5 and edges[-1] == pytest.approx(50.0) and len(edges) - 1 == 10
    assert np.all(assign_bins(e, edges) >= 0)
    edges3 = make_edges(e, per_decade=3, value_range=(0.1, 100.0))
    np.testing.assert_allclose(edges3, np.logspace(-1, 2, 10))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(edges=[1.0]), ">= 2 finite edges"),
        (dict(edges=[1.0, 3.0, 2.0]), "strictly increasing"),
        (dict(values=np.array([-1.0, 2.0, 3.0])), "values <= 0"),
        (dict(value_range=(0.0, 10.0)), "0 < low < high"),
    ],
)
def test_bad_binning_is_one_line(kwargs, match):
    values = kwargs.pop("values", np.array([1.0, 2.0, 5.0]))
    with pytest.raises(RareflowError, match=match) as exc:
        make_edges(values, column="true_energy", **kwargs)
    assert "\n" not in str(exc.value) and "true_energy" in str(exc.value)


def test_empty_bin_and_missing_column_are_errors():
    s, y, e = _events(5, n=500)
    with pytest.raises(RareflowError, match=r"bin 3 .* holds no test events"):
        evaluate_binned((s, y, e), (s, y, e), np.array([0.1, 1, 10, 80, 200]), rare_efficiency=0.7, column="E")
    with pytest.raises(RareflowError, match="no bin column 'true_energy'.*hillas_intensity"):
        bin_column(pd.DataFrame({"hillas_intensity": [1.0]}), "true_energy", "events.parquet")


def test_aggregate_seeds_mean_std():
    frames = []
    for seed in range(3):
        s, y, e = _events(10 + seed)
        frames.append(evaluate_binned((s, y, e), _events(20 + seed), EDGES, rare_efficiency=0.7))
    agg = aggregate_seeds(frames)
    vals = np.array([f["rare_efficiency"] for f in frames])
    np.testing.assert_allclose(agg["rare_efficiency_mean"], vals.mean(0))
    np.testing.assert_allclose(agg["rare_efficiency_std"], vals.std(0, ddof=1))
    assert (agg["n_seeds"] == 3).all() and len(agg) == len(EDGES) - 1
