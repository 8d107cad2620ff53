"""Calibrated gammaness: monotone, in [0, 1], reliable on held-out data where the truth is known."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from rareflow.calibration import GammanessCalibrator, fit_gammaness
from rareflow.errors import RareflowError

MU = 1.5


def _sample(seed: int, n_rare: int, n_bulk: int):
    """Bulk N(0,1), rare N(MU,1) in a latent t; the score is exp(t), an arbitrary monotone map.

    The class-balanced posterior is exactly sigmoid(MU t - MU^2/2) whatever the class mix.
    """
    r = np.random.default_rng(seed)
    t = np.r_[r.normal(MU, 1, n_rare), r.normal(0, 1, n_bulk)]
    y = np.r_[np.ones(n_rare, bool), np.zeros(n_bulk, bool)]
    return np.exp(t), y, 1 / (1 + np.exp(-(MU * t - MU**2 / 2)))


def test_monotone_in_unit_interval_and_ranking_kept():
    s, y, _ = _sample(0, 3000, 12000)
    cal = fit_gammaness(s, y)
    grid = np.linspace(-5, 2 * s.max(), 20001)
    g = cal(grid)
    assert np.all(np.diff(g) > 0) and g.min() > 0 and g.max() < 1
    st, yt, _ = _sample(1, 2000, 2000)
    assert roc_auc_score(yt, cal(st)) == pytest.approx(roc_auc_score(yt, st), abs=1e-12)
    assert np.isnan(cal([np.nan]))[0]


def test_reliable_on_held_out_data_at_balanced_prior():
    s, y, _ = _sample(2, 4000, 20000)  # imbalanced training mix: the fit is balanced anyway
    cal = fit_gammaness(s, y)
    st, yt, p_true = _sample(3, 20000, 20000)
    g = cal(st)
    assert np.mean(np.abs(g - p_true)) < 0.03
    # reliability: in bins of predicted gammaness, the observed rare fraction matches the prediction
    bins = np.clip((g * 10).astype(int), 0, 9)
    for b in range(10):
        m = bins == b
        if m.sum() > 500:
            assert abs(yt[m].mean() - g[m].mean()) < 0.05, b


def test_prior_rescales_odds_and_json_round_trip():
    s, y, _ = _sample(4, 3000, 3000)
    cal = fit_gammaness(s, y)
    st, _, _ = _sample(5, 100, 100)
    g, g2 = cal(st), cal.with_prior(0.2)(st)
    np.testing.assert_allclose(g2 / (1 - g2), 0.25 * g / (1 - g), rtol=1e-9)
    back = GammanessCalibrator.from_dict(json.loads(json.dumps(cal.to_dict())))
    np.testing.assert_array_equal(back(st), g)


def test_bad_input_is_one_line():
    with pytest.raises(RareflowError, match="both classes"):
        fit_gammaness([1.0, 2.0], [1, 1])
    with pytest.raises(RareflowError, match="prior"):
        fit_gammaness([1.0, 2.0], [0, 1], prior=1.0)
    with pytest.raises(RareflowError, match="damaged"):
        GammanessCalibrator.from_dict({"x": [1, 0], "y": [0, 1], "center": 0, "scale": 1, "prior": 0.5, "epsilon": 0})
