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


@pytest.mark.parametrize("generator", ["extremal", "archetype"])
def test_the_training_device_reaches_every_network(monkeypatch, generator) -> None:
    """CI has no GPU: record the device every run of the loop is asked for (the flow, DeepAA when it
    generates, the network) and serve it on the CPU; then the nets really sit on the CPU."""
    import torch

    import rareflow.detectors.torch_base as torch_base
    import rareflow.training.loop as loop

    asked: list[str] = []

    def fake(device):
        asked.append(str(device))
        return torch.device("cpu")

    monkeypatch.setattr(loop, "resolve_device", fake)
    monkeypatch.setattr(torch_base, "resolve_device", fake)
    X, y = _xy()
    tiny = dict(transforms=2, flow_hidden=[8, 8], flow_epochs=2, hidden=[8], n_generated=100, sigma=2.0)
    det = get_detector("outlier-exposure", generator=generator, training={"device": "cuda:7", "epochs": 2,
                       "progress": False}, **tiny).fit(X, y)  # fmt: skip
    runs = 3 if generator == "archetype" else 2  # flow, (DeepAA head,) network
    assert asked.count("cuda:7") >= runs and set(asked) == {"cuda:7"}
    assert next(det.model_.parameters()).device.type == "cpu" and next(det.flow_.parameters()).device.type == "cpu"
    assert det.training_config().device == "cuda:7"


def test_files_saved_with_flat_training_parameters_still_load(fitted, tmp_path) -> None:
    """Before the template, outlier-exposure stored epochs, batch_size, lr, ... as flat parameters."""
    from tests.training.test_training_core import _rewrite

    path = tmp_path / "old.rfm"
    save_model(fitted, path)
    flat = {"epochs": 25, "batch_size": 64, "lr": 1e-3, "validation_fraction": 0.2, "n_threads": 1, "progress": False}

    def flatten(meta) -> None:
        params = meta["params"]
        assert params.pop("training") == {k: flat[k] for k in ("epochs", "batch_size", "n_threads", "progress")}
        params.update(flat)
        meta["state"].pop("history")  # not saved before the template

    _rewrite(path, flatten)
    back = load_model(path)
    cfg = back.training_config()
    assert (cfg.epochs, cfg.batch_size, cfg.n_threads, cfg.progress) == (25, 64, 1, False)
    Xt, _ = _xy(seed=1)
    np.testing.assert_array_equal(back.decision_function(Xt), fitted.decision_function(Xt))


def test_random_state_none_is_fresh_entropy_not_seed_zero() -> None:
    X, y = _xy()
    tiny = dict(transforms=2, flow_hidden=[8, 8], flow_epochs=2, hidden=[8], n_generated=100, sigma=2.0,
                training={"epochs": 2, "progress": False})  # fmt: skip
    a = get_detector("outlier-exposure", random_state=None, **tiny).fit(X, y).decision_function(X[:20])
    b = get_detector("outlier-exposure", random_state=None, **tiny).fit(X, y).decision_function(X[:20])
    zero = get_detector("outlier-exposure", random_state=0, **tiny).fit(X, y).decision_function(X[:20])
    assert not np.array_equal(a, b) and not np.array_equal(a, zero)
