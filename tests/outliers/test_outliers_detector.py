"""The ``outlier-exposure`` detector: contract (fit / decision_function / predict), both modes, persistence."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from rareflow.detectors import available, get_detector
from rareflow.errors import RareflowError
from rareflow.persistence import load_model, save_model
from tests.conftest import toy_table

SMALL = dict(transforms=2, flow_hidden=[16, 16], flow_epochs=8, hidden=[32, 32], epochs=25, batch_size=64,
             n_threads=1, progress=False)  # fmt: skip


def _xy(seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    df = toy_table(seed=seed)
    return df[["a", "b", "c"]], (df["label"] == "gamma").to_numpy().astype(int)


@pytest.fixture(scope="module")
def fitted():
    X, y = _xy()
    return get_detector("outlier-exposure", generator="gumbel", sigma=2.0, **SMALL).fit(X, y)


def test_registered_one_class() -> None:
    assert "outlier-exposure" in available()
    det = get_detector("outlier-exposure")
    assert det.kind == "one-class" and det.fit_on == "bulk" and not det.requires_labels


def test_contract(fitted) -> None:
    X, y = _xy()
    Xt, yt = _xy(seed=1)
    s = fitted.decision_function(Xt)
    assert s.shape == (len(Xt),) and np.isfinite(s).all()
    assert roc_auc_score(yt, s) > 0.9  # higher = rarer
    assert fitted.decision_scores_.shape == ((y == 0).sum(),)  # fitted on the bulk rows only
    pred = fitted.predict(Xt)
    assert set(np.unique(pred)) <= {0, 1}
    assert np.array_equal(pred, (s > fitted.threshold_).astype(int))
    with pytest.raises(RareflowError):
        fitted.decision_function(Xt[["a", "b"]])


def test_save_load_round_trip(fitted, tmp_path) -> None:
    Xt, _ = _xy(seed=1)
    path = tmp_path / "oe.rfm"
    save_model(fitted, path)
    back = load_model(path)
    assert back.name == "outlier-exposure"
    assert np.allclose(back.decision_function(Xt), fitted.decision_function(Xt))
    assert back.threshold_ == fitted.threshold_


def test_classifier_mode_fit_on_rare_and_archetype_generator() -> None:
    X, y = _xy()
    Xt, yt = _xy(seed=1)
    clf = get_detector("outlier-exposure", mode="classifier", n_classes=3, beta=1.0, sigma=2.0, **SMALL).fit(X, y)
    assert roc_auc_score(yt, clf.decision_function(Xt)) > 0.7
    rare = get_detector("outlier-exposure", fit_on="rare", generator="archetype", sigma=0.3, **SMALL).fit(X, y)
    assert rare.decision_scores_.shape == ((y == 1).sum(),)
    assert np.isfinite(rare.decision_function(Xt)).all()


def test_bad_parameters() -> None:
    X, y = _xy()
    for bad in ({"mode": "gan"}, {"generator": "uniform"}, {"score": "entropy"}, {"n_generated": 0}):
        with pytest.raises(RareflowError):
            get_detector("outlier-exposure", **{**SMALL, **bad}).fit(X, y)


def test_selfsup_flow_synthetic_hook_uses_flow_outliers() -> None:
    """``selfsup-flow`` takes flow-generated outliers as its synthetic rare set (``flow-outliers``)."""
    sf = pytest.importorskip("rareflow.detectors.selfsup_flow")
    available()  # loads every detector module, which registers the hook
    assert "flow-outliers" in sf.synthetic_generators()
    X, y = _xy()
    Xb = X[y == 0].to_numpy()
    rows = sf.make_synthetic({"name": "flow-outliers", "size": 0.5, "method": "tail", "sigma": 2.0, "epochs": 5,
                              "transforms": 2, "hidden": [16, 16], "n_threads": 1}, Xb, seed=0)  # fmt: skip
    assert rows.shape == (round(0.5 * len(Xb)), 3) and np.isfinite(rows).all()
    det = get_detector("selfsup-flow", transforms=2, hidden=[16, 16], epochs=4, batch_size=128, n_threads=1,
                       progress=False, synthetic={"name": "flow-outliers", "size": 0.5, "epochs": 5,
                                                  "transforms": 2, "hidden": [16, 16], "n_threads": 1})  # fmt: skip
    det.fit(X, y)
    assert det.n_rare_set_ == round(0.5 * len(Xb))
    assert np.isfinite(det.decision_function(X)).all()
