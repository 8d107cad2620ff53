"""Scenario splits: class composition, realised rare fractions, disjointness, determinism."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from rareflow.errors import RareflowError
from rareflow.scenarios import anomaly_split, rare_split


def _labels(n_bulk: int = 5000, n_rare: int = 3000, seed: int = 0) -> np.ndarray:
    y = np.r_[np.zeros(n_bulk, int), np.ones(n_rare, int)]
    return np.random.default_rng(seed).permutation(y)


def _disjoint(split) -> None:
    parts = [split.fit_idx, split.calib_idx, split.test_idx]
    allidx = np.concatenate(parts)
    assert len(allidx) == len(np.unique(allidx))


@pytest.mark.parametrize("fit_on", ["bulk", "rare"])
def test_anomaly_split_trains_on_one_class_and_tests_balanced(fit_on: str) -> None:
    y = _labels()
    sp = anomaly_split(y, seed=1, fit_on=fit_on, test_size=0.5, calibration_fraction=0.2)
    own = 1 if fit_on == "rare" else 0
    assert (y[sp.fit_idx] == own).all() and (y[sp.calib_idx] == own).all()
    assert not sp.labelled_training
    n_r, n_b = (y[sp.test_idx] == 1).sum(), (y[sp.test_idx] == 0).sum()
    assert n_r == n_b
    _disjoint(sp)


def test_anomaly_contamination_count() -> None:
    y = _labels()
    sp = anomaly_split(y, seed=2, fit_on="bulk", test_size=0.5, contamination=0.05, calibration_fraction=0.0)
    frac = (y[sp.fit_idx] == 1).mean()
    assert frac == pytest.approx(0.05, abs=0.002)
    assert sp.info["n_train_contamination"] == (y[sp.fit_idx] == 1).sum()
    with pytest.raises(RareflowError, match="contamination"):
        anomaly_split(_labels(5000, 300), seed=0, fit_on="bulk", contamination=0.4)


@pytest.mark.parametrize("f", [1e-2, 1e-3, 1e-4])
def test_rare_split_weights_realise_fraction_and_keep_every_event(f: float) -> None:
    y = _labels()
    sp = rare_split(y, seed=3, test_size=0.5, test_rare_fraction=f, fraction_mode="weights", calibration_fraction=0.2)
    yt, w = y[sp.test_idx], sp.test_weight
    assert w[yt == 1].sum() / w.sum() == pytest.approx(f, rel=1e-9)
    assert (yt == 1).sum() == 1500 and (yt == 0).sum() == 2500  # nothing discarded
    # training keeps the natural ratio, stratified; calibration stratified too
    assert (y[sp.fit_idx] == 1).mean() == pytest.approx(3000 / 8000, abs=0.01)
    assert set(np.unique(y[sp.calib_idx])) == {0, 1}
    _disjoint(sp)


def test_rare_split_subsample_fraction_and_unreachable_warning(caplog) -> None:
    y = _labels()
    sp = rare_split(y, seed=4, test_rare_fraction=1e-2, fraction_mode="subsample")
    yt = y[sp.test_idx]
    assert (yt == 1).mean() == pytest.approx(1e-2, rel=0.05)
    assert "warning" not in sp.info
    with caplog.at_level(logging.WARNING):
        sp2 = rare_split(y, seed=4, test_rare_fraction=1e-4, fraction_mode="subsample", min_rare_events=10)
    assert "smallest reachable fraction" in sp2.info["warning"]
    assert "smallest reachable fraction" in caplog.text
    yt2 = y[sp2.test_idx]
    assert (yt2 == 1).sum() == 10
    assert sp2.info["test_rare_fraction"] == pytest.approx(10 / (10 + 2500))


def test_splits_are_seeded() -> None:
    y = _labels()
    a, b, c = (rare_split(y, seed=s) for s in (7, 7, 8))
    assert np.array_equal(a.fit_idx, b.fit_idx) and np.array_equal(a.test_idx, b.test_idx)
    assert not np.array_equal(a.fit_idx, c.fit_idx)
