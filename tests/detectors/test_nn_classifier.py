"""``nn-classifier``: contract, balance, persistence, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from rareflow.detectors import get_detector
from rareflow.persistence import load_model, save_model
from tests.conftest import toy_table

SMALL = dict(hidden=[32, 32], epochs=10, batch_size=128, progress=False)


def _xy(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    df = toy_table(seed=seed)
    return df[["a", "b", "c"]], (df["label"] == "gamma").to_numpy().astype(int)


def test_separates_and_round_trips(tmp_path) -> None:
    X, y = _xy()
    Xt, yt = _xy(seed=1)
    det = get_detector("nn-classifier", **SMALL).fit(X, y)
    s = det.decision_function(Xt)
    assert roc_auc_score(yt, s) > 0.97
    p = det.predict_proba(Xt)
    assert np.allclose(p.sum(axis=1), 1) and np.allclose(np.log(p[:, 1] / p[:, 0]), s, atol=1e-6)
    save_model(det, tmp_path / "nn.rareflow")
    back = load_model(tmp_path / "nn.rareflow")
    assert np.array_equal(back.decision_function(Xt), s)


def test_same_seed_same_scores_and_balance_changes_the_fit() -> None:
    X, y = _xy()
    a = get_detector("nn-classifier", random_state=5, **SMALL).fit(X, y).decision_function(X)
    b = get_detector("nn-classifier", random_state=5, **SMALL).fit(X, y).decision_function(X)
    assert np.array_equal(a, b)
    c = get_detector("nn-classifier", random_state=5, balance=False, **SMALL).fit(X, y).decision_function(X)
    # balanced training centres the logit between the classes: mean logit ~ 0 over a balanced mix
    mixed = np.concatenate([a[y == 0][:500], a[y == 1][:500]])
    assert abs(np.mean(mixed > 0) - 0.5) < 0.1 and not np.array_equal(a, c)
