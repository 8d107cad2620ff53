"""``selfsup-flow``: the indicator mask by hand, the guard that keeps L_B - L_R bounded, B/R
options, synthetic R generators, persistence."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

import rareflow.flows.selfsup as selfsup
from rareflow.detectors import get_detector
from rareflow.errors import RareflowError
from rareflow.flows.selfsup import rare_indicator, selfsup_terms
from rareflow.persistence import load_model, save_model
from tests.conftest import toy_table

SMALL = dict(transforms=2, hidden=[16, 16], epochs=8, batch_size=128, progress=False)


def _xy(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    df = toy_table(seed=seed)
    return df[["a", "b", "c"]], (df["label"] == "gamma").to_numpy().astype(int)


def test_indicator_matches_hand_computed_example() -> None:
    lp_r = torch.tensor([-1.0, -5.0, -20.0, -3.0, -12.0])
    lp_b = torch.tensor([-2.0, -4.0, -10.0])
    # c = -15, min over bulk = -10: only -20 (below c) and -12 (below the bulk minimum) drop out
    assert rare_indicator(lp_r, lp_b, -15.0).tolist() == [True, True, False, True, False]
    # c = -4 is now the binding floor
    assert rare_indicator(lp_r, lp_b, -4.0).tolist() == [True, False, False, True, False]
    # no c: the bulk minimum alone; a batch with a single bulk row at -2
    assert rare_indicator(lp_r, torch.tensor([-2.0]), None).tolist() == [True, False, False, False, False]
    # no bulk rows in the batch: c alone
    assert rare_indicator(lp_r, torch.tensor([]), -10.0).tolist() == [True, True, False, True, False]
    l_b, l_r, mask = selfsup_terms(lp_b, lp_r, -15.0)
    assert math.isclose(float(l_b), (2.0 + 4.0 + 10.0) / 3, rel_tol=1e-6)
    assert math.isclose(float(l_r), 1.0 + 5.0 + 3.0)  # sum of -log p over the kept rare rows
    _, l_r_mean, _ = selfsup_terms(lp_b, lp_r, -15.0, rare_reduction="mean")
    assert math.isclose(float(l_r_mean), 9.0 / 5, rel_tol=1e-6)
    assert mask.tolist() == [True, True, False, True, False]


def test_guard_keeps_the_loss_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the indicator the training loss stays above L_B + |R| * floor; without it, it runs away."""
    X, y = _xy()
    params = dict(SMALL, epochs=25, patience=100, lr=3e-3, c=-30.0)
    det = get_detector("selfsup-flow", **params).fit(X, y)
    losses = np.array(det.history_["train_loss"])
    assert np.isfinite(losses).all()
    # per batch L_R <= |R_batch| * 30 (every kept rare row has log p > c = -30); |R_batch| <= 128
    assert losses.min() > -128 * 30
    assert roc_auc_score(_xy(1)[1], det.decision_function(_xy(1)[0])) > 0.9

    def no_guard(log_p_rare, log_p_bulk, c):
        return torch.ones_like(log_p_rare, dtype=torch.bool)

    monkeypatch.setattr(selfsup, "rare_indicator", no_guard)
    try:
        runaway = get_detector("selfsup-flow", **params).fit(X, y)
        assert min(runaway.history_["train_loss"]) < -128 * 30  # unbounded: far below the guarded floor
    except RareflowError as exc:  # or it diverges to -inf / NaN outright
        assert "diverged" in str(exc)


def test_b_class_rare_flips_the_score() -> None:
    X, y = _xy()
    Xt, yt = _xy(seed=1)
    bulk_b = get_detector("selfsup-flow", **dict(SMALL, epochs=20)).fit(X, y)
    rare_b = get_detector("selfsup-flow", b_class="rare", warmup_epochs=0, c=None, **dict(SMALL, epochs=20)).fit(X, y)
    assert np.allclose(bulk_b.decision_function(Xt), -bulk_b.log_prob(Xt))
    assert np.allclose(rare_b.decision_function(Xt), rare_b.log_prob(Xt))
    for det in (bulk_b, rare_b):
        assert roc_auc_score(yt, det.decision_function(Xt)) > 0.9


def test_synthetic_r_without_labels() -> None:
    X, y = _xy()
    Xt, yt = _xy(seed=1)
    det = get_detector("selfsup-flow", synthetic={"name": "scaled", "size": 1.0, "factor": 2.0}, **SMALL)
    det.fit(X[y == 0])  # bulk only: R comes from the generator
    assert det.n_rare_set_ == det.n_b_set_ == int((y == 0).sum())
    assert np.isfinite(det.decision_function(Xt)).all()
    with pytest.raises(RareflowError, match="unknown synthetic generator"):
        get_detector("selfsup-flow", synthetic={"name": "nope"}, **SMALL).fit(X[y == 0])
    with pytest.raises(RareflowError, match="needs labels .* or a synthetic R set"):
        get_detector("selfsup-flow", **SMALL).fit(X)


def test_flow_outliers_hook_is_registered() -> None:
    from rareflow.detectors.selfsup_flow import _SYNTHETIC, make_synthetic

    X, y = _xy()
    rows = make_synthetic({"name": "flow-outliers", "size": 0.1, "epochs": 3, "transforms": 2, "hidden": [8, 8]},
                          X.to_numpy()[y == 0], seed=0)  # fmt: skip
    assert "flow-outliers" in _SYNTHETIC and rows.shape == (150, 3) and np.isfinite(rows).all()


def test_save_load_round_trip(tmp_path) -> None:
    X, y = _xy()
    det = get_detector("selfsup-flow", c=-50.0, **SMALL).fit(X, y)
    save_model(det, tmp_path / "s.rareflow")
    back = load_model(tmp_path / "s.rareflow")
    Xt, _ = _xy(seed=1)
    assert np.array_equal(back.decision_function(Xt), det.decision_function(Xt))
    assert back.get_params()["c"] == -50.0
